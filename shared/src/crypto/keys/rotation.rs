//! Rotating the token keys without logging anyone out: the four steps of a Secrets Manager
//! rotation, run by the rotation function.
//!
//! The timeline of one rotation (T = when `createSecret` runs):
//! 1. `createSecret` (T): a new key set is stored as `AWSPENDING`: a fresh current key
//!    (`created_at` = T, `signs_from` = T + the publication lead), the previous keys kept,
//!    and each key that was current given a `retires_at` of T + [`retention_secs`]; keys
//!    whose `retires_at` has passed leave.
//! 2. `setSecret`: the pending set's public half ([`PublishedKeys`]) is written to the
//!    table, where verifiers read it: the new key is public before anyone signs with it.
//!    The new retirement is not published yet: if the rotation stalls here, nothing
//!    retires while signers still use the old key.
//! 3. `testSecret`: the published set must hold every public key of the pending set, and a
//!    probe token signed with the new key must verify with what was published.
//! 4. `finishSecret`: `AWSCURRENT` moves to the pending version and the set it promoted is
//!    published again, now with the old key's retirement.
//!
//! A pending set that is stale (begun more than [`ROTATION_WINDOW_SECS`] ago: the retention
//! counts from T), unreadable, or made from a current set that was replaced since, is
//! refused at whatever step meets it and taken off `AWSPENDING`, so the next rotation
//! starts over instead of resuming it for ever.
//!
//! Signers re-read `AWSCURRENT` at most every [`super::live::SIGNER_REFRESH_SECS`] and sign
//! with the new key only once its publication lead has passed (`signs_from`, by default
//! [`super::DEFAULT_PUBLISH_LEAD_SECS`]: longer than any verifier we support keeps a key set,
//! API Gateway's JWT authorizers' two hours included, so a verifier that never re-reads on
//! an unknown `kid` has the key before it meets a token of it) and
//! [`super::SIGNING_LEAD_SECS`] after they first saw it; our own verifiers, meeting the
//! `kid` first, re-read at once (at most once per [`super::live::UNKNOWN_KID_REREAD_SECS`]).
//! The old key signs until then and keeps verifying until its `retires_at`, after the last
//! token it can have signed expired.
//!
//! Every step can be repeated (Secrets Manager retries a step that failed or timed out):
//! each one first checks whether its work is already done.

use super::live::{SIGNER_REFRESH_SECS, is_placeholder};
use super::{
    KeyError, KeyRing, KeySetDocument, PublishedKeys, SIGNING_LEAD_SECS, SigningAlgorithm,
};
use crate::crypto::secret::{
    SecretError, SecretVersion, read_secret_string, secrets_manager_error,
};
use crate::crypto::token::{CLOCK_LEEWAY_SECS, Session, TokenIssuer, TokenSettings, TokenVerifier};
use crate::store::{PublicKeyStore, StoreError};
use std::collections::HashMap;
use std::sync::Arc;

/// The longest a rotation may take from `createSecret` to `finishSecret` (Secrets Manager
/// runs the four steps within seconds, retries included); a later `finishSecret` is refused.
pub const ROTATION_WINDOW_SECS: u64 = 300;

/// The longest from a rotation's start to its new key being on every JWKS we serve: the
/// rotation's window (`setSecret` publishes within it) and the JWKS route's re-read
/// interval (`sessions::login::JWKS_REFRESH_SECS`, held equal by a test).
pub const PUBLICATION_DELAY_SECS: u64 = ROTATION_WINDOW_SECS + 30;

/// How long a replaced key keeps verifying: the longest an access token it signed can
/// live after the rotation. The rotation may finish up to [`ROTATION_WINDOW_SECS`] after it
/// started; a signer may sign with the old key until the new key's publication lead has
/// passed and it has re-read the set, and the token then lives its lifetime plus the clock
/// leeway; API Gateway may replay a cached Allow for one more cache TTL.
pub fn retention_secs(
    token_ttl_secs: u64,
    authorizer_cache_ttl_secs: u64,
    publish_lead_secs: u64,
) -> u64 {
    [
        PUBLICATION_DELAY_SECS,
        publish_lead_secs.max(SIGNING_LEAD_SECS),
        SIGNER_REFRESH_SECS,
        SIGNING_LEAD_SECS,
        token_ttl_secs,
        CLOCK_LEEWAY_SECS,
        authorizer_cache_ttl_secs,
    ]
    .into_iter()
    .fold(0, u64::saturating_add)
}

/// The set after a rotation at `now`: a new current key of `alg` that signs from
/// `now + publish_lead_secs`, the previous current key(s) retiring at `now + retention_secs`,
/// retired keys gone. `previous` is `None` for a deployment's first set, whose key signs
/// after the least lead: no token exists yet, so no verifier can hold an older set.
pub fn rotate(
    previous: Option<&KeySetDocument>,
    alg: SigningAlgorithm,
    now: u64,
    retention_secs: u64,
    publish_lead_secs: u64,
) -> KeySetDocument {
    let mut next = KeySetDocument::generate(alg, now);
    let mut new_key = next.keys.remove(0);
    if previous.is_some() {
        // Counted from publication, which `setSecret` does up to the rotation's window
        // after this step, and which our JWKS route shows within its re-read interval.
        new_key.signs_from = Some(
            now.saturating_add(PUBLICATION_DELAY_SECS)
                .saturating_add(publish_lead_secs.max(SIGNING_LEAD_SECS)),
        );
    }
    if let Some(previous) = previous {
        for key in &previous.keys {
            match key.retires_at {
                Some(at) if at <= now => continue,
                Some(_) => next.keys.push(key.clone()),
                None => {
                    let mut retiring = key.clone();
                    retiring.retires_at = Some(now.saturating_add(retention_secs));
                    next.keys.push(retiring);
                }
            }
        }
    }
    // The cap: each key is a signature check a verifier may be asked to make ready, and a
    // set that only grows (rotations faster than the retention) would grow every read.
    // Whoever rotates that fast retires keys early: first those replaced before their lead
    // ended (they never signed a token), the latest successor first, so that the earliest
    // one stays to take over; then those that retire soonest. A key that signs now stays:
    // during a new key's lead it is the one signers use.
    while next.keys.len() + 1 > MAX_KEYS_IN_SET {
        let Some(soonest) = next
            .keys
            .iter()
            .enumerate()
            .min_by_key(|(_, key)| {
                let ready = key.signs_from() <= now;
                let latest_successor_first = if ready {
                    0
                } else {
                    u64::MAX - key.signs_from()
                };
                (
                    ready,
                    latest_successor_first,
                    key.retires_at.unwrap_or(u64::MAX),
                )
            })
            .map(|(index, _)| index)
        else {
            break;
        };
        let dropped = next.keys.remove(soonest);
        tracing::warn!(kid = %dropped.kid, "key set full: the key retiring soonest leaves early");
    }
    next.keys.insert(0, new_key);
    next
}

/// The most keys a set holds: the current one and those still retiring. More are only
/// reached by rotating several times within one retention.
pub const MAX_KEYS_IN_SET: usize = 4;

/// The set without `kid`, for a key that leaked: its tokens stop verifying as soon as each
/// verifier re-reads the set. If it was the current key, a new key of `alg` replaces it
/// and is used at once (no lead: the old key must not sign another token).
pub fn revoke(
    document: &KeySetDocument,
    kid: &str,
    alg: SigningAlgorithm,
    now: u64,
) -> Result<KeySetDocument, RotationError> {
    if !document.keys.iter().any(|key| key.kid == kid) {
        return Err(RotationError::Refused(format!(
            "the key set has no key {kid}"
        )));
    }
    let mut next = document.clone();
    next.keys.retain(|key| key.kid != kid);
    if document.current == kid {
        let mut fresh = KeySetDocument::generate(alg, now.saturating_sub(SIGNING_LEAD_SECS));
        let key = fresh.keys.remove(0);
        next.current = key.kid.clone();
        next.keys.insert(0, key);
    }
    Ok(next)
}

/// Whether `pending` is the rotation of `current`: it keeps the key `current` signs with,
/// and every key it holds but its new one is in `current` (none came back after being
/// removed). A first set holds its new key only.
fn extends(pending: &KeySetDocument, current: Option<&KeySetDocument>) -> bool {
    let Some(current) = current else {
        return pending.keys.len() == 1;
    };
    let holds = |set: &KeySetDocument, kid: &str| set.keys.iter().any(|key| key.kid == kid);
    holds(pending, &current.current)
        && pending
            .keys
            .iter()
            .filter(|key| key.kid != pending.current)
            .all(|key| holds(current, &key.kid))
}

/// A Secrets Manager rotation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl Step {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "createSecret" => Some(Self::CreateSecret),
            "setSecret" => Some(Self::SetSecret),
            "testSecret" => Some(Self::TestSecret),
            "finishSecret" => Some(Self::FinishSecret),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("rotation refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the key set is unusable: {0}")]
    Keys(#[from] KeyError),
}

/// The versions of the key-set secret, as a rotation sees them.
#[async_trait::async_trait]
pub trait RotatedSecret: Send + Sync {
    /// Version id -> its staging labels (`DescribeSecret`'s `VersionIdsToStages`).
    async fn stages(&self) -> Result<HashMap<String, Vec<String>>, RotationError>;
    async fn read(&self, version: SecretVersion<'_>) -> Result<Option<String>, RotationError>;
    /// Stores `value` as version `token`, labelled `AWSPENDING`.
    async fn put_pending(&self, token: &str, value: &str) -> Result<(), RotationError>;
    /// Moves `AWSCURRENT` to version `token` (from `previous`, its holder).
    async fn make_current(&self, token: &str, previous: Option<&str>) -> Result<(), RotationError>;
    /// Takes `AWSPENDING` off version `token`, so that the next rotation creates a fresh
    /// set instead of resuming this one (Secrets Manager resumes a pending version).
    async fn cancel_pending(&self, token: &str) -> Result<(), RotationError>;
}

/// The key-set secret in Secrets Manager.
pub struct SecretsManagerSecret {
    pub client: aws_sdk_secretsmanager::Client,
    pub secret_id: String,
}

#[async_trait::async_trait]
impl RotatedSecret for SecretsManagerSecret {
    async fn stages(&self) -> Result<HashMap<String, Vec<String>>, RotationError> {
        let output = self
            .client
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(secrets_manager_error)?;
        Ok(output.version_ids_to_stages.unwrap_or_default())
    }

    async fn read(&self, version: SecretVersion<'_>) -> Result<Option<String>, RotationError> {
        Ok(read_secret_string(&self.client, &self.secret_id, version).await?)
    }

    async fn put_pending(&self, token: &str, value: &str) -> Result<(), RotationError> {
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .client_request_token(token)
            .secret_string(value)
            .version_stages("AWSPENDING")
            .send()
            .await
            .map_err(secrets_manager_error)?;
        Ok(())
    }

    async fn make_current(&self, token: &str, previous: Option<&str>) -> Result<(), RotationError> {
        self.client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage("AWSCURRENT")
            .move_to_version_id(token)
            .set_remove_from_version_id(previous.map(str::to_owned))
            .send()
            .await
            .map_err(secrets_manager_error)?;
        Ok(())
    }

    async fn cancel_pending(&self, token: &str) -> Result<(), RotationError> {
        self.client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage("AWSPENDING")
            .remove_from_version_id(token)
            .send()
            .await
            .map_err(secrets_manager_error)?;
        Ok(())
    }
}

/// Runs the rotation steps of one deployment's key set.
pub struct KeyRotation {
    pub secret: Box<dyn RotatedSecret>,
    pub store: Arc<dyn PublicKeyStore>,
    /// The algorithm of every new key (`SIGNING_ALGORITHM`): changing it takes effect at
    /// the next rotation, with no downtime either.
    pub algorithm: SigningAlgorithm,
    /// [`retention_secs`] of the deployment's token lifetime, cache TTL and lead.
    pub retention_secs: u64,
    /// How long a new key is published before it signs (`KEY_PUBLISH_LEAD_SECONDS`).
    pub publish_lead_secs: u64,
    pub tokens: TokenSettings,
}

impl KeyRotation {
    pub async fn run(&self, step: Step, token: &str, now: u64) -> Result<(), RotationError> {
        let stages = self.secret.stages().await?;
        match stages.get(token) {
            Some(labels) if labels.iter().any(|label| label == "AWSCURRENT") => {
                if step == Step::FinishSecret {
                    // A retry after the stage moved: the publication after it may not have.
                    self.publish_current(now).await?;
                }
                tracing::info!(?step, "version already current: nothing to do");
                return Ok(());
            }
            Some(labels) if !labels.iter().any(|label| label == "AWSPENDING") => {
                return Err(RotationError::Refused(
                    "the version is not pending rotation".into(),
                ));
            }
            None if step != Step::CreateSecret => {
                return Err(RotationError::Refused("no such version".into()));
            }
            None => {}
            Some(_) => self.refuse_unless_resumable(token, now).await?,
        }
        match step {
            Step::CreateSecret => self.create(token, now).await,
            Step::SetSecret => self.publish(token, now).await,
            Step::TestSecret => self.test(token, now).await,
            Step::FinishSecret => self.finish(token, &stages, now).await,
        }
    }

    /// A pending set may be resumed only while it can still finish and still extends the
    /// current set. One that is stale (begun more than [`ROTATION_WINDOW_SECS`] ago: its
    /// retirement times count from its start), unreadable, or made from a set that was
    /// replaced since (an emergency revocation: resuming it would republish the revoked
    /// key) is taken off `AWSPENDING` and refused. Secrets Manager would otherwise resume it
    /// on every later rotation, and keys would silently stop rotating; with the label gone,
    /// the next rotation starts over.
    async fn refuse_unless_resumable(&self, token: &str, now: u64) -> Result<(), RotationError> {
        let reason = match self.pending(token).await {
            Err(RotationError::Keys(err)) => {
                Some(format!("the pending key set is unusable: {err}"))
            }
            Err(err) => return Err(err),
            Ok(pending) => {
                let current = self.current_set().await?;
                let started = pending.current_key().map_or(0, |key| key.created_at);
                // A first set retires nothing, so it may finish whenever it can: a new
                // deployment whose first setSecret keeps failing (IAM still propagating)
                // gets its keys at the next retry, not at the next scheduled rotation.
                if current.is_some() && now > started.saturating_add(ROTATION_WINDOW_SECS) {
                    Some(format!(
                        "the pending rotation began {} s ago, more than {ROTATION_WINDOW_SECS} s",
                        now.saturating_sub(started)
                    ))
                } else if !extends(&pending, current.as_ref()) {
                    Some("the pending key set was made from a key set replaced since".into())
                } else {
                    None
                }
            }
        };
        let Some(reason) = reason else {
            return Ok(());
        };
        self.secret.cancel_pending(token).await?;
        tracing::warn!(%reason, "pending key set cancelled: the next rotation starts over");
        Err(RotationError::Refused(format!(
            "{reason}; it is no longer pending, and the next rotation starts over"
        )))
    }

    /// The current set; `None` before the first rotation (no secret value, or the
    /// deployment's placeholder).
    async fn current_set(&self) -> Result<Option<KeySetDocument>, RotationError> {
        match self.secret.read(SecretVersion::Current).await? {
            Some(json) if !is_placeholder(&json) => Ok(Some(KeySetDocument::from_json(&json)?)),
            _ => Ok(None),
        }
    }

    async fn pending(&self, token: &str) -> Result<KeySetDocument, RotationError> {
        let json = self
            .secret
            .read(SecretVersion::Pending(token))
            .await?
            .ok_or_else(|| RotationError::Refused("no pending key set".into()))?;
        Ok(KeySetDocument::from_json(&json)?)
    }

    async fn create(&self, token: &str, now: u64) -> Result<(), RotationError> {
        if self
            .secret
            .read(SecretVersion::Pending(token))
            .await?
            .is_some()
        {
            tracing::info!("pending key set already created");
            return Ok(());
        }
        let current = self.secret.read(SecretVersion::Current).await?;
        let previous = match current.as_deref() {
            None => None,
            Some(json) if is_placeholder(json) => None,
            Some(json) => Some(KeySetDocument::from_json(json).map_err(|err| {
                // Keys nobody can use cannot be kept; refusing leaves a person to look.
                RotationError::Refused(format!("the current key set is unusable: {err}"))
            })?),
        };
        let next = rotate(
            previous.as_ref(),
            self.algorithm,
            now,
            self.retention_secs,
            self.publish_lead_secs,
        );
        self.secret.put_pending(token, &next.to_json()).await?;
        tracing::info!(kid = %next.current, alg = %self.algorithm, "pending key set created");
        Ok(())
    }

    async fn publish(&self, token: &str, now: u64) -> Result<(), RotationError> {
        let pending = self.pending(token).await?;
        let retiring_now = match self.secret.read(SecretVersion::Current).await? {
            Some(json) if !is_placeholder(&json) => {
                KeySetDocument::from_json(&json)?.published()?.retires_at
            }
            _ => Default::default(),
        };
        let published = pending.published()?.retiring_only_as_in(&retiring_now);
        self.store.publish_keys(&published, now).await?;
        tracing::info!(kid = %pending.current, "public keys published");
        Ok(())
    }

    /// Publishes the current set with its retirement times (the end of `finishSecret`).
    async fn publish_current(&self, now: u64) -> Result<(), RotationError> {
        let json = self
            .secret
            .read(SecretVersion::Current)
            .await?
            .ok_or_else(|| RotationError::Refused("no current key set".into()))?;
        let current = KeySetDocument::from_json(&json)?;
        self.store.publish_keys(&current.published()?, now).await?;
        Ok(())
    }

    async fn test(&self, token: &str, now: u64) -> Result<(), RotationError> {
        let pending = self.pending(token).await?;
        let expected = pending.published()?;
        let published = self.store.published_keys().await?.unwrap_or_default();
        for jwk in &expected.jwks.keys {
            if !published.jwks.keys.contains(jwk) {
                return Err(RotationError::Refused(format!(
                    "key {} is not published",
                    jwk.common.key_id.as_deref().unwrap_or("?")
                )));
            }
        }
        // A probe signed with the new key (as a signer will once its lead has passed)
        // verifies with what a verifier reads.
        let at = pending
            .current_key()
            .map_or(now, super::StoredKey::signs_from)
            .max(now.saturating_add(SIGNING_LEAD_SECS));
        let issuer = TokenIssuer::new(KeyRing::from_document(&pending)?, self.tokens.clone());
        let verifying = match self.algorithm {
            SigningAlgorithm::Hs256 => KeyRing::from_document(&pending)?,
            _ => KeyRing::from_published(&published)?,
        };
        let probe = crate::users::user::User {
            id: "0".repeat(crate::users::user::USER_ID_LEN),
            username: "rotation-probe".into(),
            name: "rotation probe".into(),
            role: crate::users::user::Role::Customer,
            disabled: true,
            created_at: now,
        };
        let issued = issuer
            .issue_with_lifetime(&probe, &Session::start(0), at, 60)
            .map_err(|err| RotationError::Refused(format!("probe not signed: {err}")))?;
        let verifier = TokenVerifier::new(verifying, &self.tokens);
        let claims = verifier
            .verify(&issued.token, at)
            .map_err(|err| RotationError::Refused(format!("probe not verified: {err}")))?;
        let header = jsonwebtoken::decode_header(&issued.token)
            .map_err(|err| RotationError::Refused(format!("probe header: {err}")))?;
        if header.kid.as_deref() != Some(pending.current.as_str()) || claims.sub != probe.id {
            return Err(RotationError::Refused(
                "the probe was not signed by the new key".into(),
            ));
        }
        Ok(())
    }

    async fn finish(
        &self,
        token: &str,
        stages: &HashMap<String, Vec<String>>,
        now: u64,
    ) -> Result<(), RotationError> {
        // `run` refused a stale pending set (the old key's retirement counts from the
        // rotation's start: finishing late could retire it before its last tokens expire).
        let pending = self.pending(token).await?;
        let previous = stages
            .iter()
            .find(|(_, labels)| labels.iter().any(|label| label == "AWSCURRENT"))
            .map(|(version, _)| version.as_str());
        self.secret.make_current(token, previous).await?;
        // What was promoted, not a re-read: a write to the secret in between must not be
        // what verifiers get.
        self.store.publish_keys(&pending.published()?, now).await?;
        tracing::info!("key set rotated: the new version is current");
        Ok(())
    }
}

/// Writes the public half of `document` where verifiers read it (local runs and the
/// emergency revocation command, which change the set outside a rotation).
pub async fn publish(
    store: &dyn PublicKeyStore,
    document: &KeySetDocument,
    now: u64,
) -> Result<PublishedKeys, RotationError> {
    let published = document.published()?;
    store.publish_keys(&published, now).await?;
    Ok(published)
}

#[cfg(test)]
mod tests;
