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
//! **Logout** revokes the session's family and puts the access token's `jti` on the
//! deny-list until its `exp`; **logout everywhere** bumps the user's token version, which
//! every earlier access and refresh token of the user carries.

use crate::ApiError;
use crate::http::Caller;
use crate::lockout::{FAILURE_WINDOW_SECS, throttle};
use crate::password::{MAX_PASSWORD_CHARS, PasswordHasher, Verification};
use crate::store::{LoginRecord, NewRefreshToken, Rotation, Store};
use crate::token::{Session, TokenIssuer};
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
}

/// What `POST /login` names in its 400 answers.
pub const LOGIN_BODY_SHAPE: &str = r#"a JSON object {"username": string, "password": string}"#;

/// `POST /token/refresh` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: SecretString,
}

pub const REFRESH_BODY_SHAPE: &str = r#"a JSON object {"refresh_token": string}"#;

/// The answer of `POST /login` and `POST /token/refresh`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub user: User,
}

/// Everything the session routes need, built once at cold start.
pub struct LoginService {
    pub store: Arc<dyn Store>,
    pub hasher: Arc<PasswordHasher>,
    pub issuer: TokenIssuer,
    pub refresh_ttl_secs: u64,
}

impl LoginService {
    pub async fn login(&self, request: LoginRequest, now: u64) -> Result<TokenResponse, ApiError> {
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

        let attempt = self
            .store
            .count_login_attempt(&username, now, FAILURE_WINDOW_SECS)
            .await?;
        if let Some(retry_after_secs) =
            throttle(self.store.as_ref(), &username, &attempt, now).await?
        {
            tracing::info!(outcome = "locked", "login refused");
            return Err(ApiError::TooManyAttempts { retry_after_secs });
        }

        let record = self.store.find_login(&username).await?;
        let hasher = Arc::clone(&self.hasher);
        let password = request.password;
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
                tracing::info!(outcome = "invalid_credentials", "login refused");
                return Err(ApiError::InvalidCredentials);
            }
        };
        self.store.clear_login_failures(&username).await?;
        if needs_rehash {
            self.upgrade_hash(&record.user.id, password).await;
        }
        let LoginRecord {
            user,
            token_version,
            ..
        } = record;
        let session = Session::start(token_version);
        let response = self.issue(user, &session, now).await?;
        tracing::info!(sub = %response.user.id, sid = %session.id, "login succeeded");
        Ok(response)
    }

    /// `POST /token/refresh`: rotates the refresh token.
    pub async fn refresh(
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
        if record.family_revoked || record.token.expires_at <= now {
            return Err(ApiError::InvalidRefreshToken);
        }
        if let Some(retired_at) = record.retired_at {
            if now.saturating_sub(retired_at) > REFRESH_REUSE_GRACE_SECS {
                self.store
                    .revoke_family(&family_id, now + self.refresh_ttl_secs)
                    .await?;
                tracing::warn!(sid = %family_id, sub = %record.token.user_id, "retired refresh token reused: session revoked");
            }
            return Err(ApiError::InvalidRefreshToken);
        }
        // The user must still exist, be enabled, and not have revoked its tokens since.
        let user = self.store.get_user(&record.token.user_id).await?;
        let state = self
            .store
            .authorization_state(&record.token.user_id, "")
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
        let (refresh_token, successor) = self.new_refresh_token(&user, &session, now);
        match self
            .store
            .rotate_refresh_token(&hash, successor, now)
            .await?
        {
            Rotation::Rotated => {}
            Rotation::Refused => return Err(ApiError::InvalidRefreshToken),
        }
        let response = self.access_token_response(user, &session, refresh_token, now)?;
        tracing::info!(sub = %response.user.id, sid = %session.id, "session refreshed");
        Ok(response)
    }

    /// `POST /logout`: ends the caller's session and its current access token.
    pub async fn logout(&self, caller: &Caller, now: u64) -> Result<(), ApiError> {
        self.store
            .revoke_access_token(&caller.jti, caller.exp.max(now))
            .await?;
        self.store
            .revoke_family(&caller.sid, now + self.refresh_ttl_secs)
            .await?;
        tracing::info!(sub = %caller.sub, sid = %caller.sid, "logged out");
        Ok(())
    }

    /// `POST /logout/all`: revokes every token issued to the caller before now.
    pub async fn logout_everywhere(&self, caller: &Caller, now: u64) -> Result<(), ApiError> {
        self.store.revoke_all_tokens(&caller.sub).await?;
        self.store
            .revoke_access_token(&caller.jti, caller.exp.max(now))
            .await?;
        tracing::info!(sub = %caller.sub, "logged out everywhere");
        Ok(())
    }

    async fn issue(
        &self,
        user: User,
        session: &Session,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let (refresh_token, stored) = self.new_refresh_token(&user, session, now);
        self.store.create_refresh_token(stored).await?;
        self.access_token_response(user, session, refresh_token, now)
    }

    fn access_token_response(
        &self,
        user: User,
        session: &Session,
        refresh_token: String,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let issued = self
            .issuer
            .issue(&user, session, now)
            .map_err(ApiError::internal)?;
        Ok(TokenResponse {
            access_token: issued.token,
            token_type: "Bearer".into(),
            expires_in: self.issuer.ttl_secs(),
            refresh_token,
            refresh_expires_in: self.refresh_ttl_secs,
            user,
        })
    }

    fn new_refresh_token(
        &self,
        user: &User,
        session: &Session,
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
            created_at: now,
            expires_at: now + self.refresh_ttl_secs,
        };
        (token, stored)
    }

    /// Rehashes a password stored with weaker parameters. A failure is logged and the login
    /// still succeeds: the old hash stays valid and the next login tries again.
    async fn upgrade_hash(&self, user_id: &str, password: SecretString) {
        let hasher = Arc::clone(&self.hasher);
        let rehashed = tokio::task::spawn_blocking(move || hasher.hash(&password)).await;
        match rehashed {
            Ok(Ok(new_hash)) => {
                if let Err(err) = self.store.set_password_hash(user_id, new_hash).await {
                    tracing::warn!(error = %crate::error::error_chain(&err), "password rehash not stored");
                }
            }
            _ => tracing::warn!("password rehash failed"),
        }
    }
}

/// SHA-256 of a refresh token, hex: the only form in which refresh tokens are stored.
pub fn refresh_token_hash(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
