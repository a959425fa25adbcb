//! HTTP as the functions speak it: reading a request ([`request`]), CORS ([`cors`]), the
//! one error type and its problem+json envelope ([`error`]), successful answers
//! ([`response`]) and the one handler shape ([`handler`]). [`error`] and [`response`] are
//! leaves every layer may use; [`request`] imports the route table and the user's role.

pub mod cors;
pub mod error;
pub mod handler;
pub mod request;
pub mod response;
