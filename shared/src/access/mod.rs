//! Who may call what: the route table of this API ([`routes`]) and the IAM policy the
//! authorizer answers from it ([`policy`]). Imports the user's role and the token's claims;
//! nothing here reads a request or the store.

pub mod policy;
pub mod routes;
