//! What a function does once, at cold start: the typed configuration ([`config`]), the AWS
//! SDK set-up and clients ([`aws`]), where permissions documents are registered
//! ([`permissions`]), the shared cold start ([`cold_start`]), log set-up
//! ([`telemetry`]), and the clock every rule reads "now" from ([`clock`], a leaf anyone may
//! import). The top layer: it assembles the others.

pub mod aws;
pub mod clock;
pub mod cold_start;
pub mod config;
pub mod permissions;
pub mod telemetry;
