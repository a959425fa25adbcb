//! This API's own routes: the permissions document in `shared/permissions/this-api.json`,
//! built in. The local gateway and the backends route by it, the backends re-check callers
//! with it ([`is_allowed`]), and `template.yaml` registers the same document for the
//! authorizer (a test holds the two, the template's routes and `openapi.yaml` together).

pub use crate::access::document::{
    Access, PermissionsDocument, RoleSet, Route, is_allowed, match_path,
};
use std::sync::LazyLock;

/// The document, as the template registers it.
pub const THIS_API_DOCUMENT: &str = include_str!("../../permissions/this-api.json");

/// This API's routes and who may call each.
pub static THIS_API: LazyLock<PermissionsDocument> = LazyLock::new(|| {
    // Built in and checked by this module's test: a broken file fails every test run.
    PermissionsDocument::parse(THIS_API_DOCUMENT).expect("shared/permissions/this-api.json")
});

/// Every route of this API.
pub fn routes() -> &'static [Route] {
    &THIS_API.routes
}

/// The route with this method and template path.
pub fn route(method: &str, path: &str) -> Option<&'static Route> {
    THIS_API.route(method, path)
}

/// The route for a method and concrete path, with its path parameters.
pub fn match_route(
    method: &str,
    path: &str,
) -> Option<(&'static Route, Vec<(&'static str, String)>)> {
    THIS_API.match_route(method, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_apis_document_parses() {
        assert_eq!(
            PermissionsDocument::parse(THIS_API_DOCUMENT)
                .unwrap()
                .routes
                .len(),
            18
        );
    }
}
