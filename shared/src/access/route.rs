//! A route of an API and who may call it, as a permissions document states it
//! ([`crate::access::document`]), and how a request finds it.

use crate::users::user::Role;

/// Who may call a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token needed; the authorizer does not run (`Auth: {Authorizer: NONE}`).
    Public,
    /// A signed-in caller whose role is in `roles`, or, when `own` names a path
    /// parameter, whose id is that parameter's value.
    SignedIn { roles: RoleSet, own: Option<String> },
}

/// The roles a route admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleSet {
    /// Every role the deployment declares.
    Any,
    Only(Vec<Role>),
}

impl RoleSet {
    pub fn admits(&self, role: Role) -> bool {
        match self {
            RoleSet::Any => true,
            RoleSet::Only(roles) => roles.contains(&role),
        }
    }
}

/// One API route and who may call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    /// The resource path as in the API's template, e.g. `/users/{id}`.
    pub path: String,
    pub access: Access,
    /// `"before_second_factor": true`: also reachable by a caller whose role must sign in
    /// with a second factor and who has not ([`crate::access::second_factor`]): the routes
    /// that let it enrol one, or leave.
    pub before_second_factor: bool,
}

impl Route {
    /// `METHOD /path`, as the document writes it.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The names of the path's parameters, in order (`{proxy+}` gives `proxy`).
    pub fn parameters(&self) -> impl Iterator<Item = &str> {
        self.path.split('/').filter_map(parameter_name)
    }
}

/// `{name}` or `{name+}` gives `name`.
pub(crate) fn parameter_name(segment: &str) -> Option<&str> {
    let inner = segment.strip_prefix('{')?.strip_suffix('}')?;
    Some(inner.strip_suffix('+').unwrap_or(inner))
}

/// Matches a concrete path (`/users/abc`) against a route template (`/users/{id}`) and
/// returns the path parameters. Segments are compared exactly: `/users/` is not `/users`,
/// and a parameter never matches an empty segment, as on API Gateway. A greedy
/// `{name+}` takes the rest of the path (one segment at least).
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
                    if let Some(name) = name.strip_suffix('+') {
                        let rest: Vec<&str> =
                            std::iter::once(actual).chain(path_segments).collect();
                        return Some({
                            params.push((name, rest.join("/")));
                            params
                        });
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

/// Whether `role` (as user `sub`) may call `route`, where `own_value` is the value of the
/// route's `self` parameter in the request. The backends re-check with this after the
/// authorizer (defence in depth).
pub fn is_allowed(route: &Route, role: Role, sub: &str, own_value: Option<&str>) -> bool {
    match &route.access {
        Access::Public => true,
        Access::SignedIn { roles, own } => {
            roles.admits(role) || (own.is_some() && own_value == Some(sub))
        }
    }
}
