//! Who may call what: permissions documents ([`document`]: which roles may call which
//! route of an API), this API's own document ([`routes`]), the IAM policy the authorizer
//! answers from a document ([`policy`]), and the documents of every API that registered
//! one ([`registry`]). Imports the user's role and the token's claims; nothing here reads
//! a request, the store or AWS (a registry's source is handed in).

pub mod document;
pub mod policy;
pub mod registry;
pub mod routes;
