//! A local stand-in for API Gateway (REST API with a Lambda TOKEN authorizer) that runs the
//! real authorizer and function handlers in-process. See the README's "Quick start (local, no AWS)".

pub mod app;
pub mod gateway;
pub mod iam;
pub mod server;
pub mod template;
pub mod web;
