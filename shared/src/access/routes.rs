//! Who may call what: every route of this API, the access each needs, and how a concrete
//! path finds its route. The authorizer's policy ([`crate::access::policy`]) and the
//! backends' re-check ([`is_allowed`]) both read this one table.

use crate::users::user::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed; the authorizer does not run (`Auth: {Authorizer: NONE}`).
    Public,
    /// Any signed-in user, whatever the role.
    Authenticated,
    /// Admins only.
    Admin,
    /// Admins, or the user whose id is the `{id}` path parameter.
    AdminOrSelf,
}

/// One API route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// The resource path as in template.yaml, e.g. `/users/{id}`.
    pub path: &'static str,
    pub access: Access,
}

/// Every route of the API. A test checks this against the events in template.yaml.
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/login",
        access: Access::Public,
    },
    Route {
        method: "POST",
        path: "/token/refresh",
        access: Access::Public,
    },
    Route {
        method: "GET",
        path: "/.well-known/jwks.json",
        access: Access::Public,
    },
    Route {
        method: "POST",
        path: "/logout",
        access: Access::Authenticated,
    },
    Route {
        method: "POST",
        path: "/logout/all",
        access: Access::Authenticated,
    },
    Route {
        method: "POST",
        path: "/password",
        access: Access::Authenticated,
    },
    Route {
        method: "GET",
        path: "/users",
        access: Access::Admin,
    },
    Route {
        method: "POST",
        path: "/users",
        access: Access::Admin,
    },
    Route {
        method: "GET",
        path: "/users/{id}",
        access: Access::AdminOrSelf,
    },
    Route {
        method: "PATCH",
        path: "/users/{id}",
        access: Access::Admin,
    },
    Route {
        method: "DELETE",
        path: "/users/{id}",
        access: Access::Admin,
    },
    Route {
        method: "POST",
        path: "/users/{id}/password",
        access: Access::Admin,
    },
];

/// The route with this method and template path.
pub fn route(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|route| route.method == method && route.path == path)
}

/// Whether `role` (as user `sub`) may call `route` with the given `{id}` path parameter.
/// The backends re-check with this after the authorizer (defence in depth).
pub fn is_allowed(route: &Route, role: Role, sub: &str, path_id: Option<&str>) -> bool {
    match route.access {
        Access::Public | Access::Authenticated => true,
        Access::Admin => role == Role::Admin,
        Access::AdminOrSelf => role == Role::Admin || path_id == Some(sub),
    }
}

/// Matches a concrete path (`/users/abc`) against a route template (`/users/{id}`) and
/// returns the path parameters. Segments are compared exactly: `/users/` is not `/users`,
/// and a parameter never matches an empty segment, as on API Gateway.
pub fn match_path<'t>(template: &'t str, path: &str) -> Option<Vec<(&'t str, String)>> {
    let mut params = Vec::new();
    let mut template_segments = template.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (template_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(expected), Some(actual)) => {
                if let Some(name) = expected.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if actual.is_empty() {
                        return None;
                    }
                    params.push((name, actual.to_string()));
                } else if expected != actual {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// The route for a method and path, with its path parameters.
pub fn match_route(
    method: &str,
    path: &str,
) -> Option<(&'static Route, Vec<(&'static str, String)>)> {
    ROUTES.iter().find_map(|route| {
        if route.method != method {
            return None;
        }
        match_path(route.path, path).map(|params| (route, params))
    })
}
