//! A document's routes must not reach each other through IAM's wildcards: the grant of one
//! route (every parameter `*`, `ANY` as method `*`) also matches, in IAM, any resource that
//! extends it, since `*` matches `/`. A route whose grant would also reach another route
//! that admits fewer callers makes the document refused.

use crate::access::route::{Access, RoleSet, Route, parameter_name};

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
pub(crate) fn check_overlaps(routes: &[Route]) -> Result<(), String> {
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
                // A caller held to enrolment gets only the routes marked for it: a marked
                // route's grant must not reach one that is not.
                if route.before_second_factor && !other.before_second_factor {
                    return Err(format!(
                        "the grant of {} (before_second_factor) would also reach {}, which is not (an IAM `*` matches `/`, and ANY every method)",
                        route.key(),
                        other.key()
                    ));
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::document::{DocumentError, PermissionsDocument};

    fn rules(routes: serde_json::Value) -> Result<PermissionsDocument, DocumentError> {
        PermissionsDocument::parse(&serde_json::json!({"version": 1, "routes": routes}).to_string())
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
            (
                serde_json::json!([
                    {"route": "POST /me/{proxy+}", "roles": "*", "before_second_factor": true},
                    {"route": "POST /me/keys", "roles": "*"}
                ]),
                "a held caller's grant reaching a route not marked for it",
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
            {"route": "GET /users/{id}/orders", "roles": ["admin"], "self": "id"},
            {"route": "POST /me", "roles": "*"},
            {"route": "POST /me/enrol", "roles": "*", "before_second_factor": true}
        ]))
        .unwrap();
        assert!(iam_matches("GET/files/*", "GET/files/p/acl"));
        assert!(!iam_matches("GET/files", "GET/files/p"));
        assert!(iam_matches("*/a", "GET/a"));
    }
}
