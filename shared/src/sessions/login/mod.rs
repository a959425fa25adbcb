//! Sessions: logging in, refreshing, logging out.
//!
//! **Login.** Every attempt is counted first ([`crate::sessions::lockout`]); a locked username gets
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
//! **Second factor.** A user with TOTP on gets no tokens from a right password: the first
//! step answers a challenge, and `POST /login/mfa` with it and a code (or a recovery code)
//! answers the token pair ([`second_factor`]). The first step does the same work for every
//! user, so its answer to a wrong password says nothing of whether TOTP is on.
//!
//! **Password change** (`POST /password`) proves the current password (its failures are
//! throttled like logins, on a counter of its own), then replaces the hash and bumps the
//! token version in one transaction, so every earlier token of the user dies at once, and
//! answers a fresh token pair for a new session.

use crate::ApiError;
use crate::crypto::password::{
    MAX_PASSWORD_CHARS, PasswordHasher, StoredHash, Verification, check_new_password,
};
use crate::crypto::token::{CLOCK_LEEWAY_SECS, Session, TokenIssuer};
use crate::sessions::device::{DeviceOwner, DeviceTokens, device_counter};
use crate::sessions::lockout::{
    FAILURE_WINDOW_SECS, SOURCE_WINDOW_SECS, source_counter, source_window_left, throttle,
};
use crate::store::{Actor, LoginRecord, NewRefreshToken, PasswordWrite, Rotation, Store};
use crate::users::user::{User, normalize_username};
use crate::web::request::Caller;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

mod enrolment;
mod logout;
mod password;
mod refresh;
mod second_factor;
mod sign_in;

pub use enrolment::{
    CONFIRM_TOTP_BODY_SHAPE, ConfirmTotpRequest, DISABLE_TOTP_BODY_SHAPE, DisableTotpRequest,
    ENROLMENT_TTL_SECS, RecoveryCodesAnswer, START_TOTP_BODY_SHAPE, StartTotpRequest,
    TotpEnrolment,
};
pub use second_factor::{
    CODE_FAILURE_WINDOW_SECS, CODE_GUESS_CAP, LoginAnswer, SECOND_STEP_BODY_SHAPE,
    SecondFactorKeys, SecondFactorRequired, SecondStepRequest,
};

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
    /// ([`crate::sessions::device`]); an invalid one is treated as absent.
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
    /// username from this device ([`crate::sessions::device`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// Present (true) when the user's role must sign in with a second factor and this
    /// session began without one: its tokens reach only enrolment and logout until the
    /// user turns two-step sign-in on and signs in again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub second_factor_enrolment_required: bool,
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
                "second_factor_enrolment_required",
                &self.second_factor_enrolment_required,
            )
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
    pub clock: crate::startup::clock::Clock,
    /// Issues and checks device tokens.
    pub devices: DeviceTokens,
    /// The second factor's challenge and sealing keys.
    pub second_factor: SecondFactorKeys,
    /// Failed logins a source may make per [`SOURCE_WINDOW_SECS`], across usernames
    /// ([`crate::Config::login_source_failure_limit`]).
    pub source_failure_limit: u64,
    /// The public keys as rotation published them (re-read every
    /// [`JWKS_REFRESH_SECS`]): what `GET /.well-known/jwks.json` answers, so a new key is
    /// public before this instance's signer uses it.
    pub public_keys: Arc<crate::crypto::keys::live::LiveKeys>,
    /// CORS headers on every answer ([`crate::Config::cors`]).
    pub cors: crate::web::cors::Cors,
    /// The roles that must sign in with a second factor
    /// ([`crate::Config::second_factor_rule`]).
    pub second_factor_rule: crate::access::second_factor::SecondFactorRule,
}

/// Least time between two reads of the published public keys by the JWKS route.
pub const JWKS_REFRESH_SECS: u64 = 30;

/// What the routes share: sessions, signing, the answer.
impl LoginService {
    /// When a session that began at `started_at` ends.
    fn session_ends_at(&self, started_at: u64) -> u64 {
        started_at.saturating_add(self.session_max_secs)
    }

    /// `503` while no signing key has been read (see [`crate::crypto::keys::live`]).
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
        let ring = self.published_ring().await?;
        serde_json::to_string(&ring.public_jwks(now)).map_err(ApiError::internal)
    }

    /// The public keys as rotation last published them (re-read when due); 503 until a
    /// new deployment's first rotation has published any.
    async fn published_ring(&self) -> Result<Arc<crate::crypto::keys::KeyRing>, ApiError> {
        self.public_keys.refresh_if_due().await;
        self.public_keys
            .ring()
            .ok_or_else(|| ApiError::Unavailable("no public keys published yet".into()))
    }

    /// `GET /.well-known/openid-configuration`: where a verifier that knows only our issuer
    /// finds the keys ([`crate::crypto::discovery`]); 404 with the reason when the issuer
    /// is not a URL or the keys have no public half (HS256).
    pub async fn discovery(&self, now: u64) -> Result<String, ApiError> {
        let ring = self.published_ring().await?;
        let metadata = crate::crypto::discovery::provider_metadata(
            self.issuer.issuer_name(),
            ring.algorithms(now),
        )
        .map_err(|reason| ApiError::NotOffered(reason.to_string()))?;
        serde_json::to_string(&metadata).map_err(ApiError::internal)
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
                crate::crypto::token::IssueError::NoKeys => ApiError::Unavailable(err.into()),
                other => ApiError::internal(other),
            })?;
        let second_factor_enrolment_required = self
            .second_factor_rule
            .reach(user.role, session.second_factor)
            == crate::access::second_factor::Reach::BeforeSecondFactor;
        Ok(TokenResponse {
            second_factor_enrolment_required,
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
        crate::crypto::secret::fill_random(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let stored = NewRefreshToken {
            hash: refresh_token_hash(&token),
            user_id: user.id.clone(),
            family_id: session.id.clone(),
            token_version: session.token_version,
            session_started_at,
            created_at: now,
            expires_at: (now + self.refresh_ttl_secs).min(self.session_ends_at(session_started_at)),
            second_factor: session.second_factor,
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
                    tracing::warn!(error = %crate::web::error::error_chain(&err), "password rehash not stored");
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
    crate::crypto::secret::fill_random(&mut bytes);
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
    use crate::users::user::Role;

    #[test]
    fn debug_output_of_a_token_response_shows_neither_token() {
        let response = TokenResponse {
            access_token: "eyJhbGciOiJIUzI1NiJ9.access-secret.sig".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            refresh_token: "refresh-secret-0123456789".into(),
            refresh_expires_in: 3600,
            second_factor_enrolment_required: false,
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
        assert!(!crate::crypto::token::is_expired(exp, expiry - 1));
        assert!(crate::crypto::token::is_expired(exp, expiry));
    }
}
