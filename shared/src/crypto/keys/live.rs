//! Key sets that change while a function runs: rotation adds a key and retires an old one
//! without a cold start anywhere.
//!
//! A [`LiveKeys`] holds the [`KeyRing`] built from the last read of its [`KeySetSource`]
//! and re-reads it:
//! - **on a schedule**: at most every `refresh_secs` ([`SIGNER_REFRESH_SECS`] for signers,
//!   [`VERIFIER_REFRESH_SECS`] for verifiers), checked when a request comes, so a signer
//!   picks up a new current key and a verifier drops a removed one within that time;
//! - **on an unknown `kid`** (verifiers): at most once per [`UNKNOWN_KID_REREAD_SECS`],
//!   whatever the number of such tokens, so forged `kid`s cannot multiply reads;
//! - **while it has no set** (the source was unreachable at cold start, or rotation has not
//!   created the first set yet), or its last read failed: at most every
//!   [`UNAVAILABLE_RETRY_SECS`].
//!
//! One read runs at a time; requests that arrive meanwhile use the ring they have. A failed
//! read keeps the previous ring (and is logged): an outage of the source never drops keys.

use super::{KeyError, KeyRing, KeySetDocument, SIGNING_LEAD_SECS};
use crate::startup::clock::Clock;
use crate::store::{PublicKeyStore, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Least time between two scheduled re-reads of a signer (the login function).
pub const SIGNER_REFRESH_SECS: u64 = 300;

/// The oldest a signer's ring may be. A key replaced by a rotation verifies for a retention
/// that lets a signer sign with it until one re-read interval and one lead after the
/// rotation finishes (see `rotation::retention_secs`); a ring read just before a
/// rotation finished and never re-read since is as old as that after the same time, so an
/// older one may hold a current key that is already retiring: the signer stops signing.
pub const MAX_SIGNING_RING_AGE_SECS: u64 = SIGNER_REFRESH_SECS + SIGNING_LEAD_SECS;
/// Least time between two scheduled re-reads of a verifier (the authorizer).
pub const VERIFIER_REFRESH_SECS: u64 = 300;
/// Least time between two re-reads caused by tokens naming a `kid` the verifier lacks.
pub const UNKNOWN_KID_REREAD_SECS: u64 = 30;
/// The EMF metric of the age of a signer's current key, at each read of its set.
pub const KEY_SET_AGE_METRIC: &str = "SigningKeyAgeSeconds";

/// The refresh interval of a fixed ring: never re-read, so never stale either.
const NEVER: u64 = u64::MAX;
/// Least time between two tries while no key set could be read at all.
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    /// The source is throttled, failing or unreachable: a later read may work.
    #[error("the key set source is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The source answered something that is not a usable key set.
    #[error("the stored key set is unusable")]
    Invalid(#[source] KeyError),
    /// Any other failure (access denied, no such secret): a misconfiguration.
    #[error("could not read the key set")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for KeySourceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(source) => Self::Unavailable(source),
            other => Self::Failed(Box::new(other)),
        }
    }
}

/// Where a key set is read from.
#[async_trait::async_trait]
pub trait KeySetSource: Send + Sync {
    /// The set as stored now; `None` when none has been created yet (a new deployment
    /// before its first rotation).
    async fn read(&self) -> Result<Option<KeyRing>, KeySourceError>;
}

/// The private key set in a Secrets Manager secret (`AWSCURRENT`): the signer's source, and
/// the verifier's for HS256, whose keys have no public half.
pub struct SecretKeySet {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretKeySet {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: String) -> Self {
        Self { client, secret_id }
    }
}

#[async_trait::async_trait]
impl KeySetSource for SecretKeySet {
    async fn read(&self) -> Result<Option<KeyRing>, KeySourceError> {
        let value = crate::crypto::secret::read_secret_string(
            &self.client,
            &self.secret_id,
            crate::crypto::secret::SecretVersion::Current,
        )
        .await
        .map_err(|err| match err {
            crate::crypto::secret::SecretError::Unavailable(source) => {
                KeySourceError::Unavailable(source)
            }
            other => KeySourceError::Failed(Box::new(other)),
        })?;
        match value.map(zeroize::Zeroizing::new) {
            Some(json) => ring_of_stored(&json),
            None => Ok(None),
        }
    }
}

/// A stored secret value as a ring: `None` for the placeholder a new deployment's secret
/// holds until rotation writes the first key set (JSON without `keys`).
pub fn ring_of_stored(json: &str) -> Result<Option<KeyRing>, KeySourceError> {
    if is_placeholder(json) {
        return Ok(None);
    }
    let document = KeySetDocument::from_json(json).map_err(KeySourceError::Invalid)?;
    KeyRing::from_document(&document)
        .map(Some)
        .map_err(KeySourceError::Invalid)
}

/// The placeholder of a new deployment: a JSON object with no `keys` member.
pub fn is_placeholder(json: &str) -> bool {
    // Skims the members without copying them: a real set's private keys stay where they are.
    #[derive(serde::Deserialize)]
    struct Probe {
        keys: Option<serde::de::IgnoredAny>,
    }
    json.trim_start().starts_with('{')
        && serde_json::from_str::<Probe>(json).is_ok_and(|probe| probe.keys.is_none())
}

/// The public keys rotation published in the table: the verifier's source for ES256 and
/// EdDSA, which needs no permission on the private keys.
pub struct PublishedKeySet {
    store: Arc<dyn PublicKeyStore>,
}

impl PublishedKeySet {
    pub fn new(store: Arc<dyn PublicKeyStore>) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl KeySetSource for PublishedKeySet {
    async fn read(&self) -> Result<Option<KeyRing>, KeySourceError> {
        match self.store.published_keys().await? {
            None => Ok(None),
            Some(published) => KeyRing::from_published(&published)
                .map(Some)
                .map_err(KeySourceError::Invalid),
        }
    }
}

/// A set that never changes (tests, and local runs without a store to rotate in).
struct Fixed;

#[async_trait::async_trait]
impl KeySetSource for Fixed {
    async fn read(&self) -> Result<Option<KeyRing>, KeySourceError> {
        Err(KeySourceError::Failed(
            "a fixed key set is never re-read".into(),
        ))
    }
}

#[derive(Default)]
struct State {
    ring: Option<Arc<KeyRing>>,
    /// When the last read (successful or not) started.
    last_read: Option<u64>,
    /// When the last read that brought a ring started.
    last_ring_read: Option<u64>,
    /// When the last read caused by an unknown `kid` started.
    last_unknown_kid_read: Option<u64>,
}

/// The current key ring of a function, re-read as the module documentation says.
pub struct LiveKeys {
    source: Box<dyn KeySetSource>,
    clock: Clock,
    refresh_secs: u64,
    state: RwLock<State>,
    reading: tokio::sync::Mutex<()>,
    reads: AtomicU64,
    /// When this instance first read each `kid` (a signer waits the lead from then too).
    first_seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl LiveKeys {
    /// A ring that is never re-read.
    pub fn fixed(ring: Arc<KeyRing>) -> Arc<Self> {
        Arc::new(Self {
            source: Box::new(Fixed),
            clock: Clock::system(),
            refresh_secs: NEVER,
            state: RwLock::new(State {
                ring: Some(ring),
                last_read: Some(0),
                last_ring_read: Some(0),
                last_unknown_kid_read: Some(u64::MAX),
            }),
            reading: tokio::sync::Mutex::new(()),
            reads: AtomicU64::new(0),
            first_seen: Default::default(),
        })
    }

    /// Reads `source` now (at cold start) and re-reads it every `refresh_secs`. A failed
    /// first read is logged and leaves no ring: signing answers 503 and verifying refuses
    /// until a later read works; a misconfiguration is left to the caller to refuse.
    pub async fn load(
        source: Box<dyn KeySetSource>,
        clock: Clock,
        refresh_secs: u64,
    ) -> Result<Arc<Self>, KeySourceError> {
        let live = Arc::new(Self {
            source,
            clock,
            refresh_secs,
            state: RwLock::new(State::default()),
            reading: tokio::sync::Mutex::new(()),
            reads: AtomicU64::new(0),
            first_seen: Default::default(),
        });
        match live.read_now().await {
            Ok(()) | Err(KeySourceError::Unavailable(_)) => Ok(live),
            Err(fatal) => Err(fatal),
        }
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The ring of the last successful read.
    pub fn ring(&self) -> Option<Arc<KeyRing>> {
        self.state().ring.clone()
    }

    /// The ring to sign with: the last one read, unless it was read more than
    /// [`MAX_SIGNING_RING_AGE_SECS`] ago (its source has kept failing since). A stale ring
    /// may hold a current key that a rotation has since set to retire: signing with it
    /// would hand out tokens that die before their `exp`, so the signer stops (503) instead.
    pub fn signing_ring(&self) -> Option<Arc<KeyRing>> {
        let state = self.state();
        let stale = self.refresh_secs != NEVER
            && state
                .last_ring_read
                .is_some_and(|at| self.clock.now().saturating_sub(at) > MAX_SIGNING_RING_AGE_SECS);
        if stale {
            tracing::error!("signing key set not re-read for too long: refusing to sign");
            return None;
        }
        state.ring.clone()
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// When this instance first read `kid`; 0 for a key it has always had (a fixed ring).
    pub fn first_seen(&self, kid: &str) -> u64 {
        self.first_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .copied()
            .unwrap_or(0)
    }

    /// How many times the source has been read (for tests and figures).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    fn due(&self, now: u64) -> bool {
        let state = self.state();
        // After a failed read, try again soon: a signer's ring must not age past
        // [`MAX_SIGNING_RING_AGE_SECS`] because of one lost read.
        let last_read_failed = state.last_ring_read != state.last_read;
        let interval = if state.ring.is_some() && !last_read_failed {
            self.refresh_secs
        } else {
            UNAVAILABLE_RETRY_SECS.min(self.refresh_secs)
        };
        state
            .last_read
            .is_none_or(|at| at.saturating_add(interval) <= now)
    }

    /// Re-reads the set if the schedule says so. Never fails: a failed read keeps the ring.
    pub async fn refresh_if_due(&self) {
        if !self.due(self.clock.now()) {
            return;
        }
        let Ok(_reading) = self.reading.try_lock() else {
            return; // another request is reading; this one uses the ring it has
        };
        if self.due(self.clock.now()) {
            let _ = self.read_now().await;
        }
    }

    /// For a token naming `kid`, which the ring lacks: re-reads the set unless a re-read
    /// for an unknown `kid` happened in the last [`UNKNOWN_KID_REREAD_SECS`]. Answers
    /// whether the ring knows `kid` now.
    pub async fn reread_for_unknown_kid(&self, kid: &str) -> Result<bool, KeySourceError> {
        let knows = |this: &Self| this.ring().is_some_and(|ring| ring.knows(kid));
        if knows(self) {
            return Ok(true);
        }
        let _reading = self.reading.lock().await;
        // Someone else's read, while this one waited, may have brought the key.
        if knows(self) {
            return Ok(true);
        }
        let now = self.clock.now();
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            let recently = state
                .last_unknown_kid_read
                .is_some_and(|at| now < at.saturating_add(UNKNOWN_KID_REREAD_SECS));
            if recently {
                return Ok(false);
            }
            state.last_unknown_kid_read = Some(now);
        }
        self.read_now().await?;
        Ok(knows(self))
    }

    async fn read_now(&self) -> Result<(), KeySourceError> {
        let now = self.clock.now();
        self.state
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .last_read = Some(now);
        self.reads.fetch_add(1, Ordering::SeqCst);
        match self.source.read().await {
            Ok(Some(ring)) => {
                {
                    let mut seen = self.first_seen.lock().unwrap_or_else(|p| p.into_inner());
                    for (kid, _) in ring.kids() {
                        seen.entry(kid.to_string()).or_insert(now);
                    }
                }
                if let Some(created) = ring.current_created_at() {
                    // What the key-set age alarm watches: keys that silently stopped
                    // rotating (a rotation that keeps failing) show here first.
                    crate::audit::gauge(KEY_SET_AGE_METRIC, "Seconds", now.saturating_sub(created));
                }
                let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
                state.ring = Some(Arc::new(ring));
                state.last_ring_read = Some(now);
                Ok(())
            }
            Ok(None) => {
                tracing::warn!("no key set yet: rotation has not created the first one");
                Ok(())
            }
            Err(err) => {
                tracing::error!(error = %crate::web::error::error_chain(&err), "key set not read; keeping the previous one");
                Err(err)
            }
        }
    }
}
