//! The cryptography: randomness and the HMAC secret ([`secret`]), password hashing
//! ([`password`]), second factors ([`totp`], [`recovery_codes`], and [`sealing`] for
//! their secrets at rest), signing keys, key sets and their rotation ([`keys`]), and JWTs
//! ([`token`]). Imports only the user model and, for keys that live in the table, the
//! store's key trait; never a request or a use case.

pub mod discovery;
pub mod keys;
pub mod password;
pub mod recovery_codes;
pub mod sealing;
pub mod secret;
pub mod token;
pub mod totp;
