//! Sessions: logging in, refreshing, logging out.
//!
//! **Login.** Every attempt is counted first ([`crate::lockout`]); a locked username gets
//! 429 without a password check. Unknown user, wrong password and disabled user get one
//! answer ([`ApiError::InvalidCredentials`]) after the same work: the same reads and
//! writes, and one argon2id verify with the same parameters (a dummy hash when there is no
//! user).
//!
//! **Refresh tokens.** Login starts a session (a refresh-token *family*) and answers an
//! opaque refresh token: 256 random bits, stored only as its SHA-256 (the token has full
//! entropy, so a fast hash is enough and a leaked table yields nothing usable). Each
//! `POST /token/refresh` rotates it: the old one is retired and a new access token and
//! refresh token are answered; of parallel refreshes of one token exactly one succeeds.
//! Presenting a retired token again means it was copied: the whole family is revoked and
//! the user must log in again, except within [`REFRESH_REUSE_GRACE_SECS`] of its rotation,
//! where a client retrying a refresh whose answer it lost is refused without revoking
//! anything (it may hold the successor already).
//!
//! **Sessions end.** A family records when its login happened and ends
//! `session_max_secs` later however often it is refreshed (its refresh tokens never outlive
//! it); a refresh after that is 401 "session expired; log in again".
//!
//! **Logout** revokes the session's family, which ends every access token of the session
//! (the authorizer and the signed-in routes check the session), and puts the access
//! token's `jti` on the deny-list until its `exp` plus the verifier's leeway; **logout
//! everywhere** bumps the user's token version, which every earlier access and refresh
//! token of the user carries.
//!
//! **Password change** (`POST /password`) proves the current password (its failures are
//! throttled like logins, on a counter of its own), then replaces the hash and bumps the
//! token version in one transaction, so every earlier token of the user dies at once, and
//! answers a fresh token pair for a new session.

use crate::ApiError;
use crate::device::{DeviceOwner, DeviceTokens, device_counter};
use crate::http::Caller;
use crate::lockout::{
    FAILURE_WINDOW_SECS, SOURCE_WINDOW_SECS, source_counter, source_window_left, throttle,
};
use crate::password::{
    MAX_PASSWORD_CHARS, PasswordHasher, StoredHash, Verification, check_new_password,
};
use crate::store::{Actor, LoginRecord, NewRefreshToken, PasswordWrite, Rotation, Store};
use crate::token::{CLOCK_LEEWAY_SECS, Session, TokenIssuer};
use crate::user::{User, normalize_username};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Refresh-token lifetime: 14 days from its issue; each rotation starts a new one.
pub const DEFAULT_REFRESH_TTL_SECS: u64 = 14 * 24 * 3600;
/// How long after a rotation the old token may be presented again without revoking the
/// family (a client retrying a refresh whose answer was lost).
pub const REFRESH_REUSE_GRACE_SECS: u64 = 10;
/// Longest refresh token accepted (ours are 43 characters).
const MAX_REFRESH_TOKEN_CHARS: usize = 128;

/// `POST /login` body. Unknown fields are refused, so a typo is a 400, not a silent default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: SecretString,
    /// The device token an earlier login of this username answered on this device
    /// ([`crate::device`]); an invalid one is treated as absent.
    #[serde(default)]
    pub device_token: Option<SecretString>,
}

/// What `POST /login` names in its 400 answers.
pub const LOGIN_BODY_SHAPE: &str =
    r#"a JSON object {"username": string, "password": string, "device_token"?: string}"#;

/// `POST /token/refresh` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: SecretString,
}

pub const REFRESH_BODY_SHAPE: &str = r#"a JSON object {"refresh_token": string}"#;

/// `POST /password` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: SecretString,
    pub new_password: SecretString,
}

pub const CHANGE_PASSWORD_BODY_SHAPE: &str =
    r#"a JSON object {"current_password": string, "new_password": string}"#;

/// The answer of `POST /login`, `POST /token/refresh` and `POST /password`.
#[derive(Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub user: User,
    /// Answered by login and password change: send it back with later logins of this
    /// username from this device ([`crate::device`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// The tokens are credentials: `Debug` shows none of them.
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[REDACTED]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"[REDACTED]")
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("user", &self.user)
            .field(
                "device_token",
                &self.device_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// Everything the session routes need, built once at cold start.
pub struct LoginService {
    pub store: Arc<dyn Store>,
    pub hasher: Arc<PasswordHasher>,
    pub issuer: TokenIssuer,
    pub refresh_ttl_secs: u64,
    /// Absolute session lifetime, from login ([`crate::Config::session_max_secs`]).
    pub session_max_secs: u64,
    /// "Now" for the HTTP adapter; the methods here take `now` as an argument.
    pub clock: crate::clock::Clock,
    /// Issues and checks device tokens.
    pub devices: DeviceTokens,
    /// Failed logins a source may make per [`SOURCE_WINDOW_SECS`], across usernames
    /// ([`crate::Config::login_source_failure_limit`]).
    pub source_failure_limit: u64,
    /// The public keys as rotation published them (re-read every
    /// [`JWKS_REFRESH_SECS`]): what `GET /.well-known/jwks.json` answers, so a new key is
    /// public before this instance's signer uses it.
    pub public_keys: Arc<crate::keys::live::LiveKeys>,
    /// CORS headers on every answer ([`crate::Config::cors`]).
    pub cors: crate::http::Cors,
}

/// Least time between two reads of the published public keys by the JWKS route.
pub const JWKS_REFRESH_SECS: u64 = 30;

impl LoginService {
    /// `POST /login` from `source_ip` (API Gateway's `requestContext.identity.sourceIp`).
    pub async fn login(
        &self,
        request: LoginRequest,
        source_ip: &str,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        // Shape checks answer 400; they depend only on the input, never on what is stored,
        // so they reveal nothing about which usernames exist.
        if request.username.trim().is_empty() || request.password.expose_secret().is_empty() {
            return Err(ApiError::BadRequest(
                "username and password must not be empty".into(),
            ));
        }
        if request.password.expose_secret().chars().count() > MAX_PASSWORD_CHARS {
            return Err(ApiError::BadRequest(format!(
                "password must be at most {MAX_PASSWORD_CHARS} characters"
            )));
        }
        let username = normalize_username(&request.username)
            .map_err(|reason| ApiError::BadRequest(reason.into()))?;
        // Spraying: an untrusted client's failures from one source, across usernames.
        // Checked before the username's counter, so a source past its limit touches no
        // username's count. A known device is not counted here: sharing an address (a
        // carrier NAT, an office) with an attacker must not lock it out. Without a device
        // token the source is counted while the credentials are read (one round trip for
        // both); a device token is only valid for the user as it stands, so it waits for
        // the read.
        let (record, source_attempt) = match &request.device_token {
            None => {
                let source = source_counter(source_ip, now);
                let (record, attempt) = tokio::join!(
                    self.store.find_login(&username),
                    self.store
                        .count_login_attempt(&source, now, SOURCE_WINDOW_SECS),
                );
                let record = match record {
                    Ok(record) => record,
                    Err(err) => {
                        // No verdict: the count is taken back (best effort), as below.
                        if attempt.is_ok() {
                            let _ = self.store.uncount_login_attempt(&source).await;
                        }
                        return Err(err.into());
                    }
                };
                (record, Some((source, attempt)))
            }
            Some(_) => (self.store.find_login(&username).await?, None),
        };
        let device = match (&request.device_token, &record) {
            (Some(token), Some(record)) => {
                self.devices
                    .verify(token.expose_secret(), &DeviceOwner::of(record), now)
            }
            _ => None,
        };
        let source_attempt = match (source_attempt, device.is_some()) {
            (Some((source, attempt)), _) => Some((source, attempt?)),
            (None, true) => None,
            // A device token that is not valid counts like none.
            (None, false) => {
                let source = source_counter(source_ip, now);
                let attempt = self
                    .store
                    .count_login_attempt(&source, now, SOURCE_WINDOW_SECS)
                    .await?;
                Some((source, attempt))
            }
        };
        let source = source_attempt.as_ref().map(|(source, _)| source.clone());
        if let Some((_, source_attempt)) = &source_attempt
            && source_attempt.count > self.source_failure_limit
        {
            tracing::info!(outcome = "source_limited", "login refused");
            crate::audit::record(crate::audit::SecurityEvent::LoginLocked, None, None);
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: source_window_left(now),
            });
        }

        // A known device is counted on its own; anyone else shares the username's counter.
        let counter = device
            .as_deref()
            .map_or_else(|| username.clone(), device_counter);
        let attempt = self
            .store
            .count_login_attempt(&counter, now, FAILURE_WINDOW_SECS)
            .await;
        let counted = [Some(counter.as_str()), source.as_deref()];
        // Set once the password has verified: the counts are then settled by the login
        // itself (cleared, un-counted), and must not be taken back a second time.
        let settled = std::sync::atomic::AtomicBool::new(false);
        let result = match attempt {
            Ok(attempt) => {
                self.check_counted_login(
                    request.password,
                    record,
                    &username,
                    device.as_deref(),
                    &counter,
                    source.as_deref(),
                    &attempt,
                    now,
                    &settled,
                )
                .await
            }
            Err(err) => Err(err.into()),
        };
        if let Err(ApiError::Unavailable(_)) = &result
            && !settled.load(std::sync::atomic::Ordering::SeqCst)
        {
            // The store failed after counting: no verdict reached the client, so the attempt
            // is taken back (best effort) rather than used up by a client retrying an outage.
            for counter in counted.into_iter().flatten() {
                let _ = self.store.uncount_login_attempt(counter).await;
            }
        }
        result
    }

    /// The rest of a login, once the attempt is counted on `counter` (and `source`).
    #[allow(clippy::too_many_arguments)]
    async fn check_counted_login(
        &self,
        password: SecretString,
        record: Option<LoginRecord>,
        username: &str,
        device: Option<&str>,
        counter: &str,
        source: Option<&str>,
        attempt: &crate::store::LoginFailures,
        now: u64,
        settled: &std::sync::atomic::AtomicBool,
    ) -> Result<TokenResponse, ApiError> {
        if let Some(retry_after_secs) = throttle(self.store.as_ref(), counter, attempt, now).await?
        {
            tracing::info!(
                outcome = "locked",
                known_device = device.is_some(),
                "login refused"
            );
            let target = record.as_ref().map(|record| record.user.id.as_str());
            crate::audit::record(crate::audit::SecurityEvent::LoginLocked, target, None);
            return Err(ApiError::TooManyAttempts { retry_after_secs });
        }

        let known_user = record.as_ref().map(|record| record.user.id.clone());
        let hasher = Arc::clone(&self.hasher);
        let (record, verification, password) = tokio::task::spawn_blocking(move || {
            let verification = match &record {
                Some(record) => hasher.verify(&password, &record.password_hash),
                None => hasher.verify_dummy(&password),
            };
            (record, verification, password)
        })
        .await
        .map_err(ApiError::internal)?;

        let (record, needs_rehash) = match (record, verification) {
            (Some(record), Verification::Match { needs_rehash }) if !record.user.disabled => {
                (record, needs_rehash)
            }
            _ => {
                // The verdict is written, as a success's session is: while the store
                // fails, a wrong password is the same 503 as a right one.
                self.store.record_refused_login(counter, now).await?;
                tracing::info!(
                    outcome = "invalid_credentials",
                    known_device = device.is_some(),
                    "login refused"
                );
                crate::audit::record(
                    crate::audit::SecurityEvent::LoginFailed,
                    known_user.as_deref(),
                    None,
                );
                return Err(ApiError::InvalidCredentials);
            }
        };
        if needs_rehash {
            self.upgrade_hash(&record.user.id, password, &record.password_hash)
                .await;
        }
        let device_token = self.devices.issue(&DeviceOwner::of(&record), device, now);
        let LoginRecord {
            user,
            token_version,
            ..
        } = record;
        let session = Session::start(token_version);
        settled.store(true, std::sync::atomic::Ordering::SeqCst);
        // Clearing the counts and storing the session do not depend on each other: one
        // round trip. Only the counter this attempt used is cleared: a known device's
        // success does not reset the username's count, which an attacker may be running up.
        // (Should a clear fail, the stored session is never answered: unusable, it expires.)
        let (cleared, uncounted, issued) = tokio::join!(
            self.store.clear_login_failures(counter),
            async {
                match source {
                    Some(source) => self.store.uncount_login_attempt(source).await,
                    None => Ok(()),
                }
            },
            self.issue(user, &session, now, now),
        );
        cleared?;
        uncounted?;
        let mut response = issued?;
        response.device_token = Some(device_token);
        tracing::info!(sub = %response.user.id, sid = %session.id, known_device = device.is_some(), username, "login succeeded");
        crate::audit::record(
            crate::audit::SecurityEvent::LoginSucceeded,
            Some(&response.user.id),
            None,
        );
        Ok(response)
    }

    /// `POST /token/refresh`: rotates the refresh token. Every refusal is recorded as
    /// `refresh/refused` (a reuse additionally as `refresh/reuse_detected`).
    pub async fn refresh(
        &self,
        request: RefreshRequest,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let result = self.rotate_refresh_token(request, now).await;
        if let Err(ApiError::InvalidRefreshToken | ApiError::SessionExpired) = &result {
            crate::audit::record(crate::audit::SecurityEvent::RefreshRefused, None, None);
        }
        result
    }

    async fn rotate_refresh_token(
        &self,
        request: RefreshRequest,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let presented = request.refresh_token.expose_secret();
        if presented.is_empty()
            || presented.len() > MAX_REFRESH_TOKEN_CHARS
            || !presented
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ApiError::InvalidRefreshToken);
        }
        let hash = refresh_token_hash(presented);
        let Some(record) = self.store.find_refresh_token(&hash).await? else {
            return Err(ApiError::InvalidRefreshToken);
        };
        let family_id = record.token.family_id.clone();
        if record.family_revoked {
            return Err(ApiError::InvalidRefreshToken);
        }
        if self.session_ends_at(record.token.session_started_at) <= now {
            tracing::info!(sid = %family_id, sub = %record.token.user_id, "refresh past the session's absolute lifetime refused");
            return Err(ApiError::SessionExpired);
        }
        if record.token.expires_at <= now {
            return Err(ApiError::InvalidRefreshToken);
        }
        if let Some(retired_at) = record.retired_at {
            if now.saturating_sub(retired_at) > REFRESH_REUSE_GRACE_SECS {
                self.store
                    .revoke_family(&family_id, now + self.refresh_ttl_secs)
                    .await?;
                tracing::warn!(sid = %family_id, sub = %record.token.user_id, "retired refresh token reused: session revoked");
                crate::audit::record(
                    crate::audit::SecurityEvent::RefreshReuseDetected,
                    Some(&record.token.user_id),
                    None,
                );
            }
            return Err(ApiError::InvalidRefreshToken);
        }
        // The user must still exist, be enabled, and not have revoked its tokens since.
        let user = self.store.get_user(&record.token.user_id).await?;
        let state = self
            .store
            .authorization_state(&record.token.user_id, "", &family_id)
            .await?;
        let (Some(user), Some(state)) = (user, state.user) else {
            return Err(ApiError::InvalidRefreshToken);
        };
        if user.disabled || state.token_version != record.token.token_version {
            self.store
                .revoke_family(&family_id, now + self.refresh_ttl_secs)
                .await?;
            return Err(ApiError::InvalidRefreshToken);
        }
        let session = Session {
            id: family_id,
            token_version: record.token.token_version,
        };
        let (refresh_token, successor) =
            self.new_refresh_token(&user, &session, record.token.session_started_at, now);
        let refresh_expires_at = successor.expires_at;
        match self
            .store
            .rotate_refresh_token(&hash, successor, now)
            .await?
        {
            Rotation::Rotated => {}
            Rotation::Refused => return Err(ApiError::InvalidRefreshToken),
        }
        let response =
            self.access_token_response(user, &session, refresh_token, refresh_expires_at, now)?;
        tracing::info!(sub = %response.user.id, sid = %session.id, "session refreshed");
        crate::audit::record(
            crate::audit::SecurityEvent::RefreshRotated,
            Some(&response.user.id),
            None,
        );
        Ok(response)
    }

    /// `POST /logout`: ends the caller's session (every access and refresh token of it) and
    /// its current access token. `caller` is the one [`crate::revocation::current_caller`]
    /// checked.
    pub async fn logout(&self, caller: &Caller, now: u64) -> Result<(), ApiError> {
        self.store
            .end_session(
                caller.standing(),
                deny_list_expiry(caller.exp, now),
                now + self.refresh_ttl_secs,
            )
            .await?;
        tracing::info!(sub = %caller.sub, sid = %caller.sid, "logged out");
        crate::audit::record(crate::audit::SecurityEvent::Logout, Some(&caller.sub), None);
        Ok(())
    }

    /// `POST /logout/all`: revokes every token issued to the caller before now.
    pub async fn logout_everywhere(&self, caller: &Caller, now: u64) -> Result<(), ApiError> {
        self.store
            .revoke_all_tokens(&caller.sub, caller.actor())
            .await?;
        self.store
            .revoke_access_token(&caller.jti, deny_list_expiry(caller.exp, now))
            .await?;
        tracing::info!(sub = %caller.sub, "logged out everywhere");
        crate::audit::record(
            crate::audit::SecurityEvent::LogoutEverywhere,
            Some(&caller.sub),
            None,
        );
        Ok(())
    }

    /// `POST /password`: the caller proves its current password and sets a new one. Every
    /// earlier access and refresh token of the user dies; the answer is a fresh token pair
    /// for a new session. The proof goes through the login lockout: a wrong current password
    /// counts as a failed login of the caller's username.
    pub async fn change_password(
        &self,
        caller: &Caller,
        request: ChangePasswordRequest,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let current = request.current_password.expose_secret();
        if current.is_empty() || current.chars().count() > MAX_PASSWORD_CHARS {
            return Err(ApiError::BadRequest(format!(
                "current_password must be 1 to {MAX_PASSWORD_CHARS} characters"
            )));
        }
        check_new_password(&request.new_password, &caller.username)
            .map_err(|err| ApiError::BadRequest(format!("new_password: {err}")))?;
        // Said before any work: whether the current password is right or not, the caller
        // learns nothing it did not send.
        if request.new_password.expose_secret() == current {
            return Err(ApiError::BadRequest(
                "new_password must differ from current_password".into(),
            ));
        }

        // One change per user at a time, decided before any argon2 work and before its
        // attempt is counted: parallel changes with one token (each a verify and a hash)
        // would otherwise hold the login function's executions, which login and refresh
        // share, and use up the user's own guess budget.
        let lease = password_change_lease(&caller.sub);
        let holder = lease_holder();
        if !self
            .store
            .take_lease(&lease, &holder, now, now + PASSWORD_CHANGE_LEASE_SECS)
            .await?
        {
            return Err(ApiError::Conflict(
                "a password change of this user is already under way".into(),
            ));
        }
        let result = self.change_password_leased(caller, request, now).await;
        if let Err(err) = self.store.release_lease(&lease, &holder).await {
            // It ends by itself at its time.
            tracing::warn!(error = %crate::error::error_chain(&err), "password change lease not released");
        }
        result
    }

    /// The rest of [`Self::change_password`], under the user's lease.
    async fn change_password_leased(
        &self,
        caller: &Caller,
        request: ChangePasswordRequest,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        // Its own counter, keyed by the user id: guesses at the current password with a
        // stolen access token are throttled like logins, and an attacker who hammers
        // `/login` for the username cannot hold the signed-in user's password change shut.
        let counter = password_change_counter(&caller.sub);
        let attempt = self
            .store
            .count_login_attempt(&counter, now, FAILURE_WINDOW_SECS)
            .await?;
        if let Some(retry_after_secs) =
            throttle(self.store.as_ref(), &counter, &attempt, now).await?
        {
            tracing::info!(sub = %caller.sub, outcome = "locked", "password change refused");
            crate::audit::record(
                crate::audit::SecurityEvent::PasswordChangeRefused,
                Some(&caller.sub),
                None,
            );
            return Err(ApiError::TooManyAttempts { retry_after_secs });
        }
        // The credential item is keyed by username; it must still be the caller's.
        let Some(record) = self
            .store
            .find_login(&caller.username)
            .await?
            .filter(|record| record.user.id == caller.sub)
        else {
            return Err(ApiError::Unauthorized);
        };
        let hasher = Arc::clone(&self.hasher);
        let ChangePasswordRequest {
            current_password,
            new_password,
        } = request;
        let previous = record.password_hash.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            match hasher.verify(&current_password, &previous) {
                Verification::Match { .. } => hasher.hash(&new_password).map(Some),
                Verification::Mismatch => Ok(None),
            }
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        let Some(new_hash) = outcome else {
            // Written as a login's refusal is: an outage answers 503 to either password.
            self.store.record_refused_login(&counter, now).await?;
            tracing::info!(sub = %caller.sub, outcome = "wrong_password", "password change refused");
            crate::audit::record(
                crate::audit::SecurityEvent::PasswordChangeRefused,
                Some(&caller.sub),
                None,
            );
            return Err(ApiError::WrongPassword);
        };
        self.store.clear_login_failures(&counter).await?;
        let (user, token_version) = self
            .store
            .set_password_hash(
                &caller.sub,
                new_hash,
                PasswordWrite::Change {
                    previous: &record.password_hash,
                },
                caller.actor(),
            )
            .await?;
        // The user as written (a demotion or disable may have landed since it was read).
        if user.disabled {
            return Err(ApiError::Unauthorized);
        }
        let session = Session::start(token_version);
        let device_token = self.devices.issue(
            &DeviceOwner {
                username: &user.username,
                user_id: &user.id,
                token_version,
            },
            None,
            now,
        );
        let mut response = self.issue(user, &session, now, now).await?;
        response.device_token = Some(device_token);
        tracing::info!(sub = %caller.sub, sid = %session.id, "password changed; earlier tokens revoked");
        crate::audit::record(
            crate::audit::SecurityEvent::PasswordChanged,
            Some(&caller.sub),
            None,
        );
        Ok(response)
    }

    /// When a session that began at `started_at` ends.
    fn session_ends_at(&self, started_at: u64) -> u64 {
        started_at.saturating_add(self.session_max_secs)
    }

    /// `503` while no signing key has been read (see [`crate::keys::live`]).
    pub fn ensure_signing_keys(&self) -> Result<(), ApiError> {
        // The ring the issuer will sign with, stale ones refused: a refresh or password
        // change must not write its session and then fail to sign.
        match self.issuer.keys().signing_ring() {
            Some(_) => Ok(()),
            None => Err(ApiError::Unavailable("no signing key loaded yet".into())),
        }
    }

    /// `GET /.well-known/jwks.json`: the public keys verifying at `now`, as an RFC 7517
    /// JWK Set (empty for HS256, whose keys have no public half).
    pub async fn public_keys(&self, now: u64) -> Result<String, ApiError> {
        self.public_keys.refresh_if_due().await;
        let ring = self
            .public_keys
            .ring()
            .ok_or_else(|| ApiError::Unavailable("no public keys published yet".into()))?;
        serde_json::to_string(&ring.public_jwks(now)).map_err(ApiError::internal)
    }

    /// Starts the refresh-token side of `session` (begun at `started_at`) and answers the
    /// token pair.
    async fn issue(
        &self,
        user: User,
        session: &Session,
        started_at: u64,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        // No refresh token is stored for a session that cannot get its access token.
        self.ensure_signing_keys()?;
        let (refresh_token, stored) = self.new_refresh_token(&user, session, started_at, now);
        let refresh_expires_at = stored.expires_at;
        self.store.create_refresh_token(stored).await?;
        self.access_token_response(user, session, refresh_token, refresh_expires_at, now)
    }

    /// The token pair answer. Neither token outlives the session: `refresh_expires_at` is
    /// already capped at its end, and the access token's lifetime is capped at the same
    /// moment (a refresh just before the end would otherwise buy one more token lifetime).
    fn access_token_response(
        &self,
        user: User,
        session: &Session,
        refresh_token: String,
        refresh_expires_at: u64,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let ttl_secs = self
            .issuer
            .ttl_secs()
            .min(refresh_expires_at.saturating_sub(now));
        let issued = self
            .issuer
            .issue_with_lifetime(&user, session, now, ttl_secs)
            .map_err(|err| match err {
                crate::token::IssueError::NoKeys => ApiError::Unavailable(err.into()),
                other => ApiError::internal(other),
            })?;
        Ok(TokenResponse {
            access_token: issued.token,
            token_type: "Bearer".into(),
            expires_in: ttl_secs,
            refresh_token,
            refresh_expires_in: refresh_expires_at.saturating_sub(now),
            user,
            device_token: None,
        })
    }

    /// A new refresh token of `session`: valid for `refresh_ttl_secs`, never past the
    /// session's end.
    fn new_refresh_token(
        &self,
        user: &User,
        session: &Session,
        session_started_at: u64,
        now: u64,
    ) -> (String, NewRefreshToken) {
        let mut bytes = [0u8; 32];
        crate::secret::fill_random(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let stored = NewRefreshToken {
            hash: refresh_token_hash(&token),
            user_id: user.id.clone(),
            family_id: session.id.clone(),
            token_version: session.token_version,
            session_started_at,
            created_at: now,
            expires_at: (now + self.refresh_ttl_secs).min(self.session_ends_at(session_started_at)),
        };
        (token, stored)
    }

    /// Rehashes a password stored with weaker parameters, only if the stored hash is still
    /// `previous` (a concurrent change or reset wins). A failure is logged and the login
    /// still succeeds: the old hash stays valid and the next login tries again.
    async fn upgrade_hash(&self, user_id: &str, password: SecretString, previous: &StoredHash) {
        let hasher = Arc::clone(&self.hasher);
        let rehashed = tokio::task::spawn_blocking(move || hasher.hash(&password)).await;
        match rehashed {
            Ok(Ok(new_hash)) => {
                let write = PasswordWrite::Rehash { previous };
                let stored = self
                    .store
                    .set_password_hash(user_id, new_hash, write, Actor::Operator)
                    .await;
                if let Err(err) = stored {
                    tracing::warn!(error = %crate::error::error_chain(&err), "password rehash not stored");
                }
            }
            _ => tracing::warn!("password rehash failed"),
        }
    }
}

/// How long a password change may hold its user's lease: far more than one verify and one
/// hash take, short enough that a crashed change blocks the next one only briefly.
pub const PASSWORD_CHANGE_LEASE_SECS: u64 = 30;

/// 128 random bits, hex: who holds a lease.
fn lease_holder() -> String {
    let mut bytes = [0u8; 16];
    crate::secret::fill_random(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The lease of `POST /password` for user `sub`: one change at a time.
pub fn password_change_lease(sub: &str) -> String {
    format!("password#{sub}")
}

/// The lockout counter of `POST /password` for user `sub` (usernames cannot contain `#`,
/// so it never shares a counter with a login).
pub fn password_change_counter(sub: &str) -> String {
    format!("password#{sub}")
}

/// How long a logged-out `jti` stays on the deny-list: as long as the verifier would still
/// accept the token (its `exp` plus [`CLOCK_LEEWAY_SECS`]).
pub fn deny_list_expiry(exp: u64, now: u64) -> u64 {
    exp.saturating_add(CLOCK_LEEWAY_SECS).max(now)
}

/// SHA-256 of a refresh token, hex: the only form in which refresh tokens are stored.
pub fn refresh_token_hash(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::Role;

    #[test]
    fn debug_output_of_a_token_response_shows_neither_token() {
        let response = TokenResponse {
            access_token: "eyJhbGciOiJIUzI1NiJ9.access-secret.sig".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            refresh_token: "refresh-secret-0123456789".into(),
            refresh_expires_in: 3600,
            user: User {
                id: "0".repeat(32),
                username: "alice".into(),
                name: "Alice".into(),
                role: Role::Customer,
                disabled: false,
                created_at: 0,
            },
            device_token: Some("device-secret-0123".into()),
        };
        let debug = format!("{response:?}");
        assert!(!debug.contains("access-secret"), "{debug}");
        assert!(!debug.contains("refresh-secret"), "{debug}");
        assert!(!debug.contains("device-secret"), "{debug}");
        assert!(debug.contains("alice"), "the rest is still there: {debug}");
    }

    #[test]
    fn a_logged_out_jti_is_denied_as_long_as_the_verifier_would_accept_it() {
        let exp = 1_900_000_900;
        let expiry = deny_list_expiry(exp, exp - 600);
        assert!(!crate::token::is_expired(exp, expiry - 1));
        assert!(crate::token::is_expired(exp, expiry));
    }
}
