//! `jwt-auth`, the one CLI of lambda-jwt-auth, as a library: its commands
//! ([`commands::serve`], [`commands::users`], [`commands::keys`], [`commands::event`]),
//! which the binary dispatches to and the tests call directly.

pub mod commands;
