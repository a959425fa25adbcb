//! The common crate of lambda-jwt-auth: everything the four Lambda functions share.
//!
//! The functions are thin adapters; the rules live here, one folder per concept, so that
//! they can be tested without Lambda:
//!
//! | module | owns |
//! |---|---|
//! | [`crypto`] | randomness and secrets, password hashing, signing keys and their rotation, JWTs |
//! | [`users`] | the user (ids, names, roles), the admin use cases, the paging cursor |
//! | [`sessions`] | sign-in with lockout and device tokens, refresh, logout, password change, revocation |
//! | [`store`] | the storage traits by aggregate, on DynamoDB and in memory |
//! | [`access`] | the route table and the authorizer's IAM policy |
//! | [`web`] | reading requests, CORS, the error envelope, building answers, the one handler shape |
//! | [`startup`] | configuration, the AWS SDK set-up, the cold start, logs, the clock |
//! | [`audit`] | security events as log lines and metrics |
//!
//! Each folder's `mod.rs` says what it may import. No file imports one that (through
//! others) imports it back: `shared/tests/module_cycles.rs` checks it.

pub mod access;
pub mod audit;
pub mod crypto;
pub mod sessions;
pub mod startup;
pub mod store;
pub mod users;
pub mod web;

pub use startup::config::Config;
pub use web::error::ApiError;
