//! The login use case: username + password in, signed access token out.
//!
//! Unknown user, wrong password and disabled user get one answer
//! ([`ApiError::InvalidCredentials`]) after the same work: one strongly consistent read and
//! one argon2id verify with the same parameters (a dummy hash when there is no user).

use crate::ApiError;
use crate::password::{MAX_PASSWORD_CHARS, PasswordHasher, Verification};
use crate::store::UserStore;
use crate::token::TokenIssuer;
use crate::user::{User, normalize_username};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `POST /login` body. Unknown fields are refused, so a typo is a 400, not a silent default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: SecretString,
}

/// What `POST /login` names in its 400 answers.
pub const LOGIN_BODY_SHAPE: &str = r#"a JSON object {"username": string, "password": string}"#;

/// `POST /login` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub user: User,
}

/// Everything login needs, built once at cold start.
pub struct LoginService {
    pub store: Arc<dyn UserStore>,
    pub hasher: Arc<PasswordHasher>,
    pub issuer: TokenIssuer,
}

impl LoginService {
    pub async fn login(&self, request: LoginRequest, now: u64) -> Result<LoginResponse, ApiError> {
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

        let record = match (record, verification) {
            (Some(record), Verification::Match { needs_rehash }) if !record.user.disabled => {
                if needs_rehash {
                    self.upgrade_hash(&record.user.id, password).await;
                }
                record
            }
            _ => {
                tracing::info!(outcome = "invalid_credentials", "login refused");
                return Err(ApiError::InvalidCredentials);
            }
        };

        let issued = self
            .issuer
            .issue(&record.user, now)
            .map_err(ApiError::internal)?;
        tracing::info!(sub = %record.user.id, jti = %issued.claims.jti, "login succeeded");
        Ok(LoginResponse {
            access_token: issued.token,
            token_type: "Bearer".into(),
            expires_in: self.issuer.ttl_secs(),
            user: record.user,
        })
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
