//! Who may call what. A route and who may call it ([`route`]); permissions documents, which
//! list an API's routes ([`document`]), none of whose grants may reach another route
//! ([`overlaps`]); this API's own document ([`routes`]); the IAM policy the authorizer
//! answers from a document ([`policy`]); the documents of every API that registered one
//! ([`registry`]); and which roles must sign in with a second factor ([`second_factor`]).
//! Imports the user's role and the token's claims; nothing here reads a request, the store
//! or AWS (a registry's source is handed in).

pub mod document;
pub mod overlaps;
pub mod policy;
pub mod registry;
pub mod route;
pub mod routes;
pub mod second_factor;
