//! A local stand-in for API Gateway (REST API with a Lambda TOKEN authorizer) that runs the
//! real authorizer and function handlers in-process. See the README's "Quick start (local, no AWS)".

pub mod admin;
pub mod app;
pub mod events;
pub mod gateway;
pub mod iam;
pub mod keys;
pub mod server;
pub mod template;
pub mod web;
