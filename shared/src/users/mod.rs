//! The user: ids, usernames and roles ([`user`]), the admin use cases of the users function
//! ([`admin`]), and the signed paging cursor ([`cursor`]). The model imports only
//! randomness; the use cases import the store, access rules and sessions' re-check.

pub mod admin;
pub mod cursor;
pub mod user;
