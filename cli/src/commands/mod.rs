//! The commands of `jwt-auth`, one module each; `main.rs` parses and dispatches.

use jwt_auth_core::crypto::keys::SigningAlgorithm;
use jwt_auth_core::crypto::secret::SigningSecret;

pub mod event;
pub mod keys;
pub mod permissions;
pub mod serve;
pub mod users;

pub fn parse_algorithm(raw: &str) -> Result<SigningAlgorithm, String> {
    SigningAlgorithm::parse(raw).ok_or_else(|| "expected ES256, EdDSA or HS256".to_string())
}

/// The local signing secret: `JWT_SECRET` when set (at least 32 bytes), else generated.
pub fn local_secret() -> Result<Option<SigningSecret>, String> {
    match std::env::var("JWT_SECRET") {
        Ok(value) if !value.is_empty() => SigningSecret::new(value.into_bytes())
            .map(Some)
            .map_err(|err| format!("JWT_SECRET: {err}")),
        _ => Ok(None),
    }
}
