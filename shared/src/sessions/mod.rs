//! Everything about a signed-in session: sign-in with its lockout ([`lockout`]) and device
//! tokens ([`device`]), the second step of a two-step sign-in ([`challenge`]), refresh, logout and password change ([`login`], the use cases of
//! the login function), and the re-check every state-changing route makes of its caller
//! ([`revocation`]). Imports crypto, users, the store and the web types it answers with.

pub mod challenge;
pub mod device;
pub mod lockout;
pub mod login;
pub mod revocation;
