//! A permissions document: which roles may call which route of one API. This API's own
//! routes are one ([`crate::access::routes`]); an API in another stack registers its own,
//! and the authorizer answers each API from its document ([`crate::access::policy`]).
//!
//! ```json
//! {"version": 1, "routes": [
//!   {"route": "POST /login", "public": true},
//!   {"route": "POST /logout", "roles": "*"},
//!   {"route": "GET /users", "roles": ["admin"]},
//!   {"route": "GET /users/{id}", "roles": ["admin"], "self": "id"}
//! ]}
//! ```
//!
//! - `public`: no token; the API does not run the authorizer on the route.
//! - `roles`: `"*"` for every signed-in user of a declared role, or a list of roles.
//! - `self`: a path parameter that, when it equals the caller's id (`sub`), admits the
//!   caller whatever its role ("only for oneself"). In the IAM policy the parameter becomes
//!   the caller's id, exactly; every other parameter becomes `*`.
//!
//! Everything that ends up in an IAM resource is checked here, so that no document can
//! widen a policy beyond its routes: methods from a fixed list, literal path segments
//! without `*` or `?`, parameters by name only. And since an IAM `*` also matches `/` (and
//! `ANY` every method), a route whose grant would also reach another route of the document
//! is refused unless that other route admits at least the same callers
//! ([`check_overlaps`]): `GET /files/{id}` for everyone beside `GET /files/{id}/acl` for
//! admins would otherwise give everyone the ACL.

use crate::users::user::Role;
use serde::Deserialize;

/// The format version this code reads.
pub const DOCUMENT_VERSION: u32 = 1;
/// Most routes one document may hold: every one of a role's routes is a resource in each
/// policy the authorizer answers, and API Gateway limits a policy's size.
pub const MAX_ROUTES: usize = 100;
/// Longest document accepted (an SSM parameter holds at most 8 KB).
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024;

/// Methods a route may name; `ANY` is API Gateway's any-method route.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

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

/// A parsed, checked permissions document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionsDocument {
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permissions document: {0}")]
pub struct DocumentError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    version: u32,
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    route: String,
    #[serde(default)]
    public: bool,
    roles: Option<RawRoles>,
    #[serde(rename = "self")]
    own: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoles {
    Any(String),
    Only(Vec<Role>),
}

impl PermissionsDocument {
    /// Parses and checks a document; the error names the first rule broken.
    pub fn parse(json: &str) -> Result<Self, DocumentError> {
        let fail = |reason: String| DocumentError(reason);
        if json.len() > MAX_DOCUMENT_BYTES {
            return Err(fail(format!("longer than {MAX_DOCUMENT_BYTES} bytes")));
        }
        let raw: RawDocument =
            serde_json::from_str(json).map_err(|err| fail(format!("not a document: {err}")))?;
        if raw.version != DOCUMENT_VERSION {
            return Err(fail(format!(
                "version {} is not {DOCUMENT_VERSION}",
                raw.version
            )));
        }
        if raw.routes.len() > MAX_ROUTES {
            return Err(fail(format!("more than {MAX_ROUTES} routes")));
        }
        let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
        for raw_route in raw.routes {
            let route = Route::from_raw(raw_route).map_err(fail)?;
            if routes
                .iter()
                .any(|seen| seen.method == route.method && seen.path == route.path)
            {
                return Err(fail(format!("{} is listed twice", route.key())));
            }
            routes.push(route);
        }
        check_overlaps(&routes).map_err(fail)?;
        Ok(Self { routes })
    }

    /// The route with this method and template path.
    pub fn route(&self, method: &str, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|route| route.method == method && route.path == path)
    }

    /// The route for a method and a concrete path, with its path parameters. An exact
    /// method wins over `ANY`, as on API Gateway.
    pub fn match_route<'d>(
        &'d self,
        method: &str,
        path: &str,
    ) -> Option<(&'d Route, Vec<(&'d str, String)>)> {
        let find = |wanted: &str| {
            self.routes.iter().find_map(|route| {
                if route.method != wanted {
                    return None;
                }
                match_path(&route.path, path).map(|params| (route, params))
            })
        };
        find(method).or_else(|| find("ANY"))
    }

    /// Every role the document names.
    pub fn roles(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = Vec::new();
        for route in &self.routes {
            if let Access::SignedIn {
                roles: RoleSet::Only(listed),
                ..
            } = &route.access
            {
                for role in listed {
                    if !roles.contains(role) {
                        roles.push(*role);
                    }
                }
            }
        }
        roles
    }
}

impl Route {
    fn from_raw(raw: RawRoute) -> Result<Self, String> {
        let (method, path) = raw
            .route
            .split_once(' ')
            .ok_or_else(|| format!("{:?}: a route is \"METHOD /path\"", raw.route))?;
        let key = &raw.route;
        if !METHODS.contains(&method) {
            return Err(format!(
                "{key:?}: the method must be one of {}",
                METHODS.join(", ")
            ));
        }
        check_path(path).map_err(|reason| format!("{key:?}: {reason}"))?;
        let access = match (raw.public, raw.roles, raw.own) {
            (true, None, None) => Access::Public,
            (true, _, _) => {
                return Err(format!(
                    "{key:?}: a public route names no roles and no self parameter"
                ));
            }
            (false, None, _) => {
                return Err(format!(
                    "{key:?}: says neither \"public\": true nor which \"roles\" may call it"
                ));
            }
            (false, Some(roles), own) => {
                let roles = match roles {
                    RawRoles::Any(star) if star == "*" => RoleSet::Any,
                    RawRoles::Any(other) => {
                        return Err(format!(
                            "{key:?}: \"roles\" is \"*\" or a list, not {other:?}"
                        ));
                    }
                    RawRoles::Only(roles) => RoleSet::Only(roles),
                };
                if let Some(own) = &own {
                    let is_parameter = path
                        .split('/')
                        .any(|segment| segment == format!("{{{own}}}"));
                    if !is_parameter {
                        return Err(format!(
                            "{key:?}: \"self\" must name a {{parameter}} of the path, not {own:?}"
                        ));
                    }
                }
                if roles == RoleSet::Only(Vec::new()) && own.is_none() {
                    return Err(format!(
                        "{key:?}: no role and no self parameter: nobody could call it"
                    ));
                }
                Access::SignedIn { roles, own }
            }
        };
        Ok(Self {
            method: method.to_string(),
            path: path.to_string(),
            access,
        })
    }
}

/// Stands for the caller's id while a document is compiled
/// ([`crate::access::policy::CompiledPolicy`]): a valid user id, so no literal segment may
/// hold it (it would be taken for the caller's id).
pub const SELF_MARK: &str = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f";

/// What a route's grants reach, as IAM patterns: the roles' grant (every parameter `*`) and
/// the self grant (the `self` parameter one concrete value, here `p`).
fn grants(route: &Route) -> Vec<(Option<&RoleSet>, String)> {
    let Access::SignedIn { roles, own } = &route.access else {
        return Vec::new();
    };
    let method = if route.method == "ANY" {
        "*"
    } else {
        &route.method
    };
    let pattern = |own: Option<&str>| {
        let path: Vec<&str> = route
            .path
            .split('/')
            .map(|segment| match parameter_name(segment) {
                Some(name) if Some(name) == own => "p",
                Some(_) => "*",
                None => segment,
            })
            .collect();
        format!("{method}{}", path.join("/"))
    };
    let mut grants = Vec::new();
    if *roles != RoleSet::Only(Vec::new()) {
        grants.push((Some(roles), pattern(None)));
    }
    if let Some(own) = own {
        grants.push((None, pattern(Some(own))));
    }
    grants
}

/// IAM's `*` (any characters, `/` included) against a literal resource.
fn iam_matches(pattern: &str, resource: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == resource,
        Some((head, rest)) => {
            let Some(remaining) = resource.strip_prefix(head) else {
                return false;
            };
            (0..=remaining.len())
                .filter(|&i| remaining.is_char_boundary(i))
                .any(|i| iam_matches(rest, &remaining[i..]))
        }
    }
}

/// Refuses a document in which the IAM grant of one route would also reach another route
/// (by `*` or `ANY`) that does not admit the same callers.
fn check_overlaps(routes: &[Route]) -> Result<(), String> {
    for route in routes {
        for (roles, pattern) in grants(route) {
            for other in routes {
                if std::ptr::eq(route, other) || other.access == Access::Public {
                    continue;
                }
                // A request of the other route: its method (ANY: the grant's, or GET) and
                // its path with every parameter `p`.
                let method = match (other.method.as_str(), route.method.as_str()) {
                    ("ANY", "ANY") => "GET",
                    // That method of the path is a route of its own, not the ANY one.
                    ("ANY", mine)
                        if routes
                            .iter()
                            .any(|r| r.method == mine && r.path == other.path) =>
                    {
                        continue;
                    }
                    ("ANY", mine) => mine,
                    (theirs, _) => theirs,
                };
                let path: Vec<&str> = other
                    .path
                    .split('/')
                    .map(|segment| {
                        if parameter_name(segment).is_some() {
                            "p"
                        } else {
                            segment
                        }
                    })
                    .collect();
                if !iam_matches(&pattern, &format!("{method}{}", path.join("/"))) {
                    continue;
                }
                let Access::SignedIn {
                    roles: other_roles,
                    own: other_own,
                } = &other.access
                else {
                    continue;
                };
                let covered = match (roles, other_roles) {
                    (_, RoleSet::Any) => true,
                    (Some(RoleSet::Only(mine)), RoleSet::Only(theirs)) => {
                        mine.iter().all(|role| theirs.contains(role))
                    }
                    (Some(RoleSet::Any), RoleSet::Only(_)) => false,
                    // The self grant reaches the other route for the caller's own id only.
                    (None, RoleSet::Only(_)) => other_own.is_some(),
                };
                if !covered {
                    return Err(format!(
                        "the grant of {} would also reach {}, which admits fewer callers (an IAM `*` matches `/`, and ANY every method)",
                        route.key(),
                        other.key()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `{name}` or `{name+}` gives `name`.
fn parameter_name(segment: &str) -> Option<&str> {
    let inner = segment.strip_prefix('{')?.strip_suffix('}')?;
    Some(inner.strip_suffix('+').unwrap_or(inner))
}

/// A resource path as API Gateway writes it: `/`, or `/`-separated segments that are
/// literals of URL-safe characters or `{parameters}`; a greedy `{name+}` only last.
fn check_path(path: &str) -> Result<(), String> {
    if path == "/" {
        return Ok(());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the path must start with /".into());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut names: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            return Err("the path has an empty segment".into());
        }
        if let Some(name) = parameter_name(segment) {
            let plain =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !plain {
                return Err(format!("{segment:?} is not a {{parameter}} name"));
            }
            if segment.ends_with("+}") && i + 1 != segments.len() {
                return Err("a greedy {parameter+} must be the last segment".into());
            }
            if names.contains(&name) {
                return Err(format!("{{{name}}} appears twice"));
            }
            names.push(name);
        } else if segment.contains(SELF_MARK) {
            return Err(format!("{segment:?} is reserved"));
        } else if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        {
            // `*` and `?` are IAM wildcards; `{`, `}` and anything else are not paths
            // API Gateway routes.
            return Err(format!(
                "{segment:?}: a literal segment is letters, digits and - _ . ~"
            ));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<PermissionsDocument, DocumentError> {
        PermissionsDocument::parse(&json.to_string())
    }

    fn rules(routes: serde_json::Value) -> Result<PermissionsDocument, DocumentError> {
        parse(serde_json::json!({"version": 1, "routes": routes}))
    }

    #[test]
    fn a_document_reads_public_any_listed_and_self_routes() {
        let document = rules(serde_json::json!([
            {"route": "GET /health", "public": true},
            {"route": "POST /orders", "roles": "*"},
            {"route": "GET /orders", "roles": ["support", "admin"]},
            {"route": "GET /customers/{customerId}/orders", "roles": ["support"], "self": "customerId"},
            {"route": "GET /accounts/{accountId}", "roles": [], "self": "accountId"},
            {"route": "ANY /files/{path+}", "roles": ["admin"]}
        ]))
        .unwrap();
        assert_eq!(document.routes.len(), 6);
        assert_eq!(document.routes[0].access, Access::Public);
        let support = Role::parse("support").unwrap();
        assert_eq!(document.roles(), vec![support, Role::Admin]);
        let (route, params) = document.match_route("GET", "/customers/c1/orders").unwrap();
        assert_eq!(route.key(), "GET /customers/{customerId}/orders");
        assert_eq!(params, vec![("customerId", "c1".to_string())]);
        assert!(is_allowed(route, support, "anyone", Some("c1")));
        assert!(is_allowed(route, Role::Customer, "c1", Some("c1")));
        assert!(!is_allowed(route, Role::Customer, "c2", Some("c1")));
        let (route, params) = document.match_route("DELETE", "/files/a/b").unwrap();
        assert_eq!(route.key(), "ANY /files/{path+}");
        assert_eq!(params, vec![("path", "a/b".to_string())]);
    }

    #[test]
    fn documents_that_could_widen_a_policy_or_mean_nothing_are_refused() {
        for (routes, why) in [
            (
                serde_json::json!([{"route": "GET /a*", "roles": "*"}]),
                "wildcard",
            ),
            (
                serde_json::json!([{"route": "GET /a?b", "roles": "*"}]),
                "wildcard",
            ),
            (
                serde_json::json!([{"route": "GET /{id}/x/{id}", "roles": "*"}]),
                "twice",
            ),
            (
                serde_json::json!([{"route": "GET /{p+}/x", "roles": "*"}]),
                "greedy",
            ),
            (
                serde_json::json!([{"route": "GET /{a*}", "roles": "*"}]),
                "name",
            ),
            (
                serde_json::json!([{"route": "GET a", "roles": "*"}]),
                "slash",
            ),
            (
                serde_json::json!([{"route": "GET /a//b", "roles": "*"}]),
                "empty",
            ),
            (
                serde_json::json!([{"route": "GET /a/", "roles": "*"}]),
                "empty",
            ),
            (
                serde_json::json!([{"route": "get /a", "roles": "*"}]),
                "method",
            ),
            (
                serde_json::json!([{"route": "* /a", "roles": "*"}]),
                "method",
            ),
            (
                serde_json::json!([{"route": "GET/a", "roles": "*"}]),
                "shape",
            ),
            (serde_json::json!([{"route": "GET /a"}]), "no access"),
            (
                serde_json::json!([{"route": "GET /a", "roles": "all"}]),
                "star",
            ),
            (
                serde_json::json!([{"route": "GET /a", "roles": ["Admin"]}]),
                "role",
            ),
            (
                serde_json::json!([{"route": "GET /a", "roles": ["a/b"]}]),
                "role",
            ),
            (
                serde_json::json!([{"route": "GET /a", "roles": []}]),
                "nobody",
            ),
            (
                serde_json::json!([{"route": "GET /a", "public": true, "roles": "*"}]),
                "public",
            ),
            (
                serde_json::json!([{"route": "GET /a/{id}", "roles": [], "self": "sub"}]),
                "self",
            ),
            (
                serde_json::json!([{"route": "GET /a/{p+}", "roles": [], "self": "p"}]),
                "greedy self",
            ),
            (
                serde_json::json!([{"route": "GET /a", "roles": "*", "extra": 1}]),
                "unknown",
            ),
            (
                serde_json::json!([{"route": "GET /a", "roles": "*"}, {"route": "GET /a", "public": true}]),
                "twice",
            ),
        ] {
            assert!(rules(routes.clone()).is_err(), "{why}: {routes}");
        }
        assert!(parse(serde_json::json!({"version": 2, "routes": []})).is_err());
        assert!(
            rules(serde_json::json!([{"route": format!("GET /x/{SELF_MARK}"), "roles": "*"}]))
                .is_err()
        );
        assert!(parse(serde_json::json!({"routes": []})).is_err());
        assert!(PermissionsDocument::parse("not json").is_err());
        let many: Vec<serde_json::Value> = (0..=MAX_ROUTES)
            .map(|i| serde_json::json!({"route": format!("GET /r{i}"), "roles": "*"}))
            .collect();
        assert!(rules(serde_json::Value::Array(many)).is_err());
        let long = format!(
            "{{\"version\":1,\"routes\":[]{}}}",
            " ".repeat(MAX_DOCUMENT_BYTES)
        );
        assert!(PermissionsDocument::parse(&long).is_err());
    }

    #[test]
    fn a_grant_that_would_also_reach_a_stricter_route_is_refused() {
        for (routes, why) in [
            (
                serde_json::json!([
                    {"route": "ANY /a", "roles": "*"},
                    {"route": "GET /a", "roles": ["admin"]}
                ]),
                "ANY covers GET",
            ),
            (
                serde_json::json!([
                    {"route": "GET /files/{id}", "roles": "*"},
                    {"route": "GET /files/{id}/acl", "roles": ["admin"]}
                ]),
                "* matches /",
            ),
            (
                serde_json::json!([
                    {"route": "GET /{proxy+}", "roles": ["customer", "admin"]},
                    {"route": "GET /admin", "roles": ["admin"]}
                ]),
                "greedy",
            ),
            (
                serde_json::json!([
                    {"route": "GET /u/{id}/{x}", "roles": [], "self": "id"},
                    {"route": "GET /u/{id}/a/b", "roles": ["admin"]}
                ]),
                "self grant",
            ),
        ] {
            let refused = rules(routes.clone());
            assert!(refused.is_err(), "{why}: {routes}");
        }
        // Wider routes that admit at least as many callers are fine.
        rules(serde_json::json!([
            {"route": "GET /files/{id}", "roles": ["admin"]},
            {"route": "GET /files/{id}/acl", "roles": "*"},
            {"route": "ANY /b", "roles": ["admin"]},
            {"route": "GET /b", "roles": ["admin", "support"]},
            {"route": "GET /users/{id}", "roles": ["admin"], "self": "id"},
            {"route": "GET /users/{id}/orders", "roles": ["admin"], "self": "id"}
        ]))
        .unwrap();
        assert!(iam_matches("GET/files/*", "GET/files/p/acl"));
        assert!(!iam_matches("GET/files", "GET/files/p"));
        assert!(iam_matches("*/a", "GET/a"));
    }

    #[test]
    fn an_exact_method_wins_over_any() {
        let document = rules(serde_json::json!([
            {"route": "ANY /a", "roles": ["admin"]},
            {"route": "GET /a", "roles": ["admin"]}
        ]))
        .unwrap();
        assert_eq!(document.match_route("GET", "/a").unwrap().0.method, "GET");
        assert_eq!(document.match_route("PUT", "/a").unwrap().0.method, "ANY");
        assert!(document.match_route("GET", "/b").is_none());
    }
}
