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
//! - `before_second_factor` (optional, `false` by default): the route is also reached by a
//!   caller held to enrolment, one whose role must sign in with a second factor and who
//!   signed in with its password alone ([`crate::access::second_factor`]). Every other
//!   route is closed to such a caller, whatever its role.
//! - `http_api_answer` (optional, `"policy"` by default): what the authorizer answers an
//!   HTTP API's payload 2.0 event for this API: an IAM policy, or `"simple"`
//!   (`{"isAuthorized": …}`, for an authorizer with `EnableSimpleResponses`), which decides
//!   for the one route asked and so needs the API's cache keyed by route (see
//!   [`crate::access::policy::CompiledPolicy::admits`]); such a document has no `self`
//!   rules, since one user's answer would be reused on another's path.
//!
//! Everything that ends up in an IAM resource is checked here, so that no document can
//! widen a policy beyond its routes: methods from a fixed list, literal path segments
//! without `*` or `?`, parameters by name only. And since an IAM `*` also matches `/` (and
//! `ANY` every method), a route whose grant would also reach another route of the document
//! is refused unless that other route admits at least the same callers
//! ([`crate::access::overlaps`]): `GET /files/{id}` for everyone beside `GET /files/{id}/acl` for
//! admins would otherwise give everyone the ACL.

use crate::access::route::parameter_name;
pub use crate::access::route::{Access, RoleSet, Route, is_allowed, match_path};
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

/// A parsed, checked permissions document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionsDocument {
    pub routes: Vec<Route>,
    pub http_api_answer: HttpApiAnswer,
}

/// How the authorizer answers this API's HTTP API (payload 2.0) events: the shape its
/// authorizer is configured for (`EnableSimpleResponses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpApiAnswer {
    /// An IAM policy listing every route the caller may call: cacheable per token.
    #[default]
    Policy,
    /// `isAuthorized` for the route asked.
    Simple,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permissions document: {0}")]
pub struct DocumentError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    version: u32,
    routes: Vec<RawRoute>,
    #[serde(default)]
    http_api_answer: HttpApiAnswer,
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
    #[serde(default)]
    before_second_factor: bool,
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
        crate::access::overlaps::check_overlaps(&routes).map_err(fail)?;
        if raw.http_api_answer == HttpApiAnswer::Simple
            && let Some(route) = routes
                .iter()
                .find(|route| matches!(&route.access, Access::SignedIn { own: Some(_), .. }))
        {
            return Err(fail(format!(
                "{} has a self rule, which simple answers cannot carry (API Gateway would reuse one user's answer on another's path): use policy answers",
                route.key()
            )));
        }
        Ok(Self {
            routes,
            http_api_answer: raw.http_api_answer,
        })
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
        if raw.before_second_factor && access == Access::Public {
            return Err(format!(
                "{key:?}: a public route is reached without any sign-in; \"before_second_factor\" is for signed-in routes"
            ));
        }
        Ok(Self {
            method: method.to_string(),
            path: path.to_string(),
            access,
            before_second_factor: raw.before_second_factor,
        })
    }
}

/// Stands for the caller's id while a document is compiled
/// ([`crate::access::policy::CompiledPolicy`]): a valid user id, so no literal segment may
/// hold it (it would be taken for the caller's id).
pub const SELF_MARK: &str = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f";

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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<PermissionsDocument, DocumentError> {
        PermissionsDocument::parse(&json.to_string())
    }

    #[test]
    fn simple_http_api_answers_are_chosen_per_document_and_never_carry_a_self_rule() {
        let routes = serde_json::json!([{"route": "GET /orders", "roles": ["admin"]}]);
        let policy = parse(serde_json::json!({"version": 1, "routes": routes})).unwrap();
        assert_eq!(policy.http_api_answer, HttpApiAnswer::Policy);
        let simple = parse(serde_json::json!({
            "version": 1, "http_api_answer": "simple", "routes": routes
        }))
        .unwrap();
        assert_eq!(simple.http_api_answer, HttpApiAnswer::Simple);
        let with_self = parse(
            serde_json::json!({"version": 1, "http_api_answer": "simple", "routes": [
                {"route": "GET /customers/{id}/orders", "roles": ["admin"], "self": "id"}
            ]}),
        )
        .unwrap_err();
        assert!(with_self.0.contains("self rule"), "{with_self}");
        assert!(
            parse(serde_json::json!({"version": 1, "http_api_answer": "yes", "routes": routes}))
                .is_err()
        );
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
