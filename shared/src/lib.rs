//! The common crate of lambda-jwt-auth: everything the four Lambda functions share.
//!
//! The functions are thin adapters; the rules live here so that they can be tested without
//! Lambda: [`token`] issues and verifies JWTs, [`password`] owns the argon2id parameters
//! and the password policy, [`lockout`] the failed-login back-off, [`store`] hides DynamoDB
//! behind [`store::UserStore`], [`store::SessionStore`], [`store::LoginFailureStore`] and
//! [`store::PublicKeyStore`], [`policy`] maps roles to API
//! routes and builds the authorizer's IAM policy, [`error`] turns every failure into one
//! `application/problem+json` answer, and [`login`] (sessions) and [`users`] are the use
//! cases.

pub mod audit;
pub mod aws;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod device;
pub mod error;
pub mod http;
pub mod keys;
pub mod lockout;
pub mod login;
pub mod password;
pub mod policy;
pub mod revocation;
pub mod runtime;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod user;
pub mod users;

pub use config::Config;
pub use error::ApiError;

/// Seconds since the Unix epoch. Every rule that depends on time takes "now" as an argument
/// (so tests control time); only the adapters call this.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
