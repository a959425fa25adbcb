//! The IAM policy the authorizer returns, built from the route table ([`crate::access::routes`]).
//!
//! API Gateway caches the authorizer's answer per token and reuses it for **every** method
//! of the API, so the policy must list every route the caller may use, not just the one in
//! the incoming `methodArn` (otherwise the second route called within the cache TTL gets a
//! wrong 403). Resources are built from the API/stage prefix of the incoming `methodArn`,
//! never from token claims, except the caller's own id, which is checked to be an id.

use crate::access::document::{Access, PermissionsDocument};
pub use crate::access::second_factor::Reach;
use crate::users::user::{DeclaredRoles, Role, is_valid_user_id};
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerPolicy;
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde::Serialize;

/// The resource patterns (relative to `METHOD/`) that `role` may call on the API of
/// `document`, e.g. `GET/users/*`: every parameter is `*`, except a route's `self`
/// parameter on a route the role reaches only as itself, which is the caller's id (and
/// the route is left out when `sub` is not an id). A caller held to enrolment
/// ([`Reach::BeforeSecondFactor`]) keeps only the routes marked `before_second_factor`.
pub fn allowed_resources(
    document: &PermissionsDocument,
    role: Role,
    reach: Reach,
    sub: &str,
) -> Vec<String> {
    document
        .routes
        .iter()
        .filter(|route| reach == Reach::Full || route.before_second_factor)
        .filter_map(|route| {
            let Access::SignedIn { roles, own } = &route.access else {
                return None;
            };
            let method = if route.method == "ANY" {
                "*"
            } else {
                &route.method
            };
            let path = route.path.trim_start_matches('/');
            if roles.admits(role) {
                Some(format!("{method}/{}", replace_params(path, None, sub)))
            } else if own.is_some() && is_valid_user_id(sub) {
                Some(format!(
                    "{method}/{}",
                    replace_params(path, own.as_deref(), sub)
                ))
            } else {
                None
            }
        })
        .collect()
}

/// Stands for the caller's id in [`CompiledPolicy`]: a valid id, so that
/// [`allowed_resources`] keeps the caller's own routes (were it a real caller's id, the
/// replacement would leave it as it is; no document may hold it as a literal).
use crate::access::document::SELF_MARK;

/// One API's document made into each declared role's resources, once: each with whether
/// it holds the caller's id ([`SELF_MARK`]). The authorizer builds a policy on every
/// uncached call; from these it is one string per route rather than walking the document.
/// A role the deployment does not declare has no resources, whatever the document says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPolicy {
    /// Per role, its resources at each [`Reach`]: full, then before the second factor.
    by_role: Vec<(Role, [Templates; 2])>,
    /// For decisions on one route (an HTTP API's simple answers).
    document: PermissionsDocument,
}

/// A role's resources relative to the stage prefix, each with whether it holds
/// [`SELF_MARK`].
type Templates = Vec<(String, bool)>;

/// Whether a caller may call one concrete route, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Refused,
    /// Its role is among the route's roles.
    ByRole,
    /// Only because the route's `self` parameter is its own id: a decision that holds for
    /// this path alone.
    AsItself,
}

impl CompiledPolicy {
    pub fn compile(document: &PermissionsDocument, declared: &DeclaredRoles) -> Self {
        let by_role = declared
            .iter()
            .map(|role| {
                let templates = |reach| {
                    allowed_resources(document, role, reach, SELF_MARK)
                        .into_iter()
                        .map(|resource| {
                            let per_user = resource.contains(SELF_MARK);
                            (resource, per_user)
                        })
                        .collect()
                };
                (
                    role,
                    [templates(Reach::Full), templates(Reach::BeforeSecondFactor)],
                )
            })
            .collect();
        Self {
            by_role,
            document: document.clone(),
        }
    }

    /// The document's route (`METHOD /template`) that `method` on the concrete `path`
    /// reaches, as API Gateway names its route key.
    pub fn route_key_of(&self, method: &str, path: &str) -> Option<String> {
        self.document
            .match_route(method, path)
            .map(|(route, _)| route.key())
    }

    /// What this API's authorizer answers to an HTTP API event.
    pub fn http_api_answer(&self) -> crate::access::document::HttpApiAnswer {
        self.document.http_api_answer
    }

    /// Whether `role` (a declared one) with id `sub`, reaching as far as `reach`, may call
    /// `method` on the concrete `path` (`/customers/abc/orders`): the same decision
    /// [`Self::policy_for`]'s resources make, for one request.
    pub fn admits(
        &self,
        role: Role,
        reach: Reach,
        sub: &str,
        method: &str,
        path: &str,
    ) -> Admission {
        if !self.by_role.iter().any(|(declared, _)| *declared == role) {
            return Admission::Refused;
        }
        let Some((route, params)) = self.document.match_route(method, path) else {
            return Admission::Refused;
        };
        if reach == Reach::BeforeSecondFactor && !route.before_second_factor {
            return Admission::Refused;
        }
        let Access::SignedIn { roles, own } = &route.access else {
            // A public route has no authorizer; asked anyway, nothing is granted.
            return Admission::Refused;
        };
        if roles.admits(role) {
            return Admission::ByRole;
        }
        let own_value = own
            .as_deref()
            .and_then(|name| params.iter().find(|(param, _)| *param == name))
            .map(|(_, value)| value.as_str());
        if is_valid_user_id(sub) && own_value == Some(sub) {
            Admission::AsItself
        } else {
            Admission::Refused
        }
    }

    /// The IAM policy allowing every route `role` may call, reaching as far as `reach`, on
    /// the API and stage of `method_arn` (an explicit Deny of everything when there is
    /// none).
    pub fn policy_for(
        &self,
        role: Role,
        reach: Reach,
        sub: &str,
        method_arn: &MethodArn<'_>,
    ) -> ApiGatewayCustomAuthorizerPolicy {
        let at = match reach {
            Reach::Full => 0,
            Reach::BeforeSecondFactor => 1,
        };
        let templates = self
            .by_role
            .iter()
            .find(|(of, _)| *of == role)
            .map_or(&[][..], |(_, templates)| templates[at].as_slice());
        let sub_is_an_id = is_valid_user_id(sub);
        let resources: Vec<String> = templates
            .iter()
            .filter_map(|(template, per_user)| match per_user {
                false => Some(format!("{}/{template}", method_arn.prefix)),
                true if sub_is_an_id => Some(format!(
                    "{}/{}",
                    method_arn.prefix,
                    template.replace(SELF_MARK, sub)
                )),
                true => None,
            })
            .collect();
        policy_of(resources, method_arn)
    }
}

/// The policy of nothing at all: an explicit Deny of every route of the API and stage of
/// `method_arn` (403 on every route, for as long as API Gateway caches it).
pub fn deny_everything(method_arn: &MethodArn<'_>) -> ApiGatewayCustomAuthorizerPolicy {
    policy_of(Vec::new(), method_arn)
}

fn policy_of(
    resources: Vec<String>,
    method_arn: &MethodArn<'_>,
) -> ApiGatewayCustomAuthorizerPolicy {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    if resources.is_empty() {
        statement.effect = IamPolicyEffect::Deny;
        statement.resource = vec![format!("{}/*", method_arn.prefix)];
    } else {
        statement.effect = IamPolicyEffect::Allow;
        statement.resource = resources;
    }
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement];
    policy
}

/// `path` with every `{parameter}` made `*`, except `own`, made `sub`.
fn replace_params(path: &str, own: Option<&str>, sub: &str) -> String {
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if Some(name) == own => sub,
                Some(_) => "*",
                None => segment,
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The parts of a method ARN:
/// `arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}/{VERB}/{path...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodArn<'a> {
    /// `arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}`
    pub prefix: String,
    /// The API's id, which names its permissions document.
    pub api_id: &'a str,
    pub method: &'a str,
    /// The request path without its leading `/` (empty for the root resource).
    pub path: &'a str,
}

/// Longest method ARN API Gateway sends (longer is answered 414 before the authorizer).
pub const MAX_METHOD_ARN_BYTES: usize = 1600;

impl<'a> MethodArn<'a> {
    pub fn parse(arn: &'a str) -> Option<Self> {
        if arn.len() > MAX_METHOD_ARN_BYTES {
            return None;
        }
        let mut parts = arn.splitn(6, ':');
        let (arn_tag, partition, service, region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if arn_tag != "arn" || service != "execute-api" || partition.is_empty() {
            return None;
        }
        let mut resource_parts = resource.splitn(4, '/');
        let api_id = resource_parts.next()?;
        let stage = resource_parts.next()?;
        let method = resource_parts.next()?;
        let path = resource_parts.next().unwrap_or("");
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'$'))
        };
        if ![region, account, api_id, stage, method]
            .into_iter()
            .all(plain)
        {
            return None;
        }
        Some(Self {
            prefix: format!("arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}"),
            api_id,
            method,
            path,
        })
    }
}

/// The authorizer's answer. Our own type rather than aws_lambda_events'
/// `ApiGatewayCustomAuthorizerResponse` so that the context is typed as strings (a nested
/// value makes API Gateway answer 500) and `usageIdentifierKey` is omitted, not `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    pub principal_id: String,
    pub policy_document: ApiGatewayCustomAuthorizerPolicy,
    pub context: AuthorizerContext,
}

/// What the backends receive under `requestContext.authorizer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuthorizerContext {
    pub sub: String,
    pub role: String,
    pub username: String,
    pub jti: String,
    /// The session id, for logout.
    pub sid: String,
    /// The access token's `exp` (a string, like every context value the backend sees):
    /// the backends refuse the token past it, since a cached Allow outlives it, and logout
    /// keeps its `jti` on the deny-list exactly as long as needed.
    pub exp: String,
    /// The token's `ver` claim: the user's token version when the session began, which the
    /// backends compare with the stored one.
    pub ver: String,
    /// The token's `amr` claim, space-separated (`pwd`, or `pwd otp` after a second step):
    /// the backends hold a caller of a role that requires a second factor to the
    /// enrolment routes without `otp` ([`crate::access::second_factor`]).
    pub amr: String,
}

impl From<crate::crypto::token::Claims> for AuthorizerContext {
    /// The context of a verified token, as the backends receive it.
    fn from(claims: crate::crypto::token::Claims) -> Self {
        Self {
            sub: claims.sub,
            role: claims.role.as_str().into(),
            username: claims.username,
            jti: claims.jti,
            sid: claims.sid,
            exp: claims.exp.to_string(),
            ver: claims.ver.to_string(),
            amr: claims.amr.join(" "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::routes::*;

    /// This API's document for the default roles, as the authorizer compiles it.
    fn this_api() -> CompiledPolicy {
        CompiledPolicy::compile(&THIS_API, &DeclaredRoles::default())
    }

    fn policy_for(role: Role, sub: &str, arn: &MethodArn<'_>) -> ApiGatewayCustomAuthorizerPolicy {
        this_api().policy_for(role, Reach::Full, sub, arn)
    }

    /// The policy from the made-once templates is the policy of the route table itself,
    /// for every role, for the caller's own id, the mark's own value and a non-id.
    #[test]
    fn the_made_once_policy_is_the_route_tables() {
        let arn = MethodArn::parse(ARN).unwrap();
        for role in Role::DEFAULT {
            for reach in [Reach::Full, Reach::BeforeSecondFactor] {
                for sub in [SELF_ID, OTHER_ID, SELF_MARK, "not-an-id", "", "*"] {
                    let expected: Vec<String> = allowed_resources(&THIS_API, role, reach, sub)
                        .into_iter()
                        .map(|resource| format!("{}/{resource}", arn.prefix))
                        .collect();
                    // Every role has routes: the Deny-everything branch is not taken here.
                    assert!(!expected.is_empty());
                    let statement = &this_api().policy_for(role, reach, sub, &arn).statement[0];
                    assert_eq!(statement.effect, IamPolicyEffect::Allow);
                    assert_eq!(statement.resource, expected, "{role:?} {reach:?} {sub:?}");
                }
            }
        }
    }

    const ARN: &str = "arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/prod/GET/users";
    const SELF_ID: &str = "0123456789abcdef0123456789abcdef";
    const OTHER_ID: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn a_method_arn_splits_into_prefix_method_and_path() {
        let arn = MethodArn::parse(
            "arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/prod/GET/users/abc",
        )
        .unwrap();
        assert_eq!(
            arn.prefix,
            "arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/prod"
        );
        assert_eq!(arn.method, "GET");
        assert_eq!(arn.path, "users/abc");
    }

    #[test]
    fn the_root_resource_arn_has_an_empty_path() {
        let arn = MethodArn::parse("arn:aws:execute-api:us-east-1:1:abc/dev/GET/").unwrap();
        assert_eq!(arn.path, "");
    }

    #[test]
    fn malformed_method_arns_are_refused() {
        for bad in [
            "",
            "arn:aws:lambda:us-east-1:1:function:x",
            "arn:aws:execute-api:us-east-1:1:abc",
            "arn:aws:execute-api:us-east-1:1:abc/prod",
            "arn:aws:execute-api:us-east-1:1:a*c/prod/GET/users",
            "not an arn at all",
        ] {
            assert!(MethodArn::parse(bad).is_none(), "{bad}");
        }
        let long = format!("{ARN}/{}", "x".repeat(MAX_METHOD_ARN_BYTES));
        assert!(MethodArn::parse(&long).is_none());
    }

    #[test]
    fn admin_policy_allows_every_protected_route() {
        let policy = policy_for(Role::Admin, SELF_ID, &MethodArn::parse(ARN).unwrap());
        let statement = &policy.statement[0];
        assert_eq!(statement.effect, IamPolicyEffect::Allow);
        let prefix = "arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/prod";
        let expected: Vec<String> = [
            "POST/logout",
            "POST/logout/all",
            "POST/password",
            "POST/mfa/totp",
            "POST/mfa/totp/confirm",
            "POST/mfa/totp/disable",
            "GET/users",
            "POST/users",
            "GET/users/*",
            "PATCH/users/*",
            "DELETE/users/*",
            "POST/users/*/password",
            "DELETE/users/*/mfa",
        ]
        .iter()
        .map(|resource| format!("{prefix}/{resource}"))
        .collect();
        assert_eq!(statement.resource, expected);
        assert_eq!(policy.version.as_deref(), Some("2012-10-17"));
    }

    /// An admin who signed in with its password alone, where admins must use a second
    /// factor: enrolling and leaving, nothing else, whichever route asked.
    #[test]
    fn a_caller_held_to_enrolment_gets_only_the_enrolment_routes_and_logout() {
        let prefix = "arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/prod";
        let held: Vec<String> = [
            "POST/logout",
            "POST/logout/all",
            "POST/mfa/totp",
            "POST/mfa/totp/confirm",
        ]
        .iter()
        .map(|resource| format!("{prefix}/{resource}"))
        .collect();
        for arn in [ARN, &format!("{prefix}/POST/mfa/totp")] {
            let policy = this_api().policy_for(
                Role::Admin,
                Reach::BeforeSecondFactor,
                SELF_ID,
                &MethodArn::parse(arn).unwrap(),
            );
            assert_eq!(policy.statement[0].effect, IamPolicyEffect::Allow);
            assert_eq!(policy.statement[0].resource, held);
        }
        let compiled = this_api();
        for (method, path, admitted) in [
            ("POST", "/mfa/totp", true),
            ("POST", "/logout", true),
            ("GET", "/users", false),
            ("POST", "/password", false),
            ("POST", "/mfa/totp/disable", false),
            (
                "DELETE",
                "/users/0123456789abcdef0123456789abcdef/mfa",
                false,
            ),
        ] {
            let admission = compiled.admits(
                Role::Admin,
                Reach::BeforeSecondFactor,
                SELF_ID,
                method,
                path,
            );
            assert_eq!(admission != Admission::Refused, admitted, "{method} {path}");
            assert_ne!(
                compiled.admits(Role::Admin, Reach::Full, SELF_ID, method, path),
                Admission::Refused,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn customer_policy_allows_only_its_own_user_and_logging_out() {
        let policy = policy_for(Role::Customer, SELF_ID, &MethodArn::parse(ARN).unwrap());
        let prefix = "arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/prod";
        assert_eq!(
            policy.statement[0].resource,
            vec![
                format!("{prefix}/POST/logout"),
                format!("{prefix}/POST/logout/all"),
                format!("{prefix}/POST/password"),
                format!("{prefix}/POST/mfa/totp"),
                format!("{prefix}/POST/mfa/totp/confirm"),
                format!("{prefix}/POST/mfa/totp/disable"),
                format!("{prefix}/GET/users/{SELF_ID}"),
            ]
        );
    }

    #[test]
    fn a_customer_whose_sub_is_not_an_id_is_never_given_a_user_route() {
        let policy = policy_for(Role::Customer, "*", &MethodArn::parse(ARN).unwrap());
        assert!(
            policy.statement[0]
                .resource
                .iter()
                .all(|r| !r.contains("/users"))
        );
    }

    #[test]
    fn the_policy_is_the_same_whichever_route_triggered_it() {
        // API Gateway reuses the cached policy for every route: it must not depend on the
        // method or path of the first request.
        for role in Role::DEFAULT {
            let from_list = policy_for(role, SELF_ID, &MethodArn::parse(ARN).unwrap());
            let other_arn = format!(
                "arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/prod/GET/users/{OTHER_ID}"
            );
            let from_item = policy_for(role, SELF_ID, &MethodArn::parse(&other_arn).unwrap());
            assert_eq!(from_list, from_item, "{role}");
        }
    }

    #[test]
    fn every_role_and_write_route_is_allowed_or_not_as_the_table_says() {
        let expectations = [
            ("POST", "/users", Role::Admin, None, true),
            ("POST", "/users", Role::Customer, None, false),
            ("PATCH", "/users/{id}", Role::Admin, Some(OTHER_ID), true),
            ("PATCH", "/users/{id}", Role::Customer, Some(SELF_ID), false),
            ("DELETE", "/users/{id}", Role::Admin, Some(OTHER_ID), true),
            (
                "DELETE",
                "/users/{id}",
                Role::Customer,
                Some(SELF_ID),
                false,
            ),
            ("POST", "/logout", Role::Customer, None, true),
            ("POST", "/logout/all", Role::Customer, None, true),
            ("POST", "/logout", Role::Admin, None, true),
            ("POST", "/token/refresh", Role::Customer, None, true),
            ("POST", "/password", Role::Customer, None, true),
            (
                "POST",
                "/users/{id}/password",
                Role::Admin,
                Some(OTHER_ID),
                true,
            ),
            (
                "POST",
                "/users/{id}/password",
                Role::Customer,
                Some(SELF_ID),
                false,
            ),
        ];
        for (method, path, role, id, allowed) in expectations {
            let found = route(method, path).unwrap();
            assert_eq!(
                is_allowed(found, role, SELF_ID, id),
                allowed,
                "{role} {method} {path}"
            );
        }
    }

    #[test]
    fn every_role_and_route_is_allowed_or_not_as_the_table_says() {
        let expectations = [
            (Role::Admin, "/users", None, true),
            (Role::Admin, "/users/{id}", Some(OTHER_ID), true),
            (Role::Admin, "/users/{id}", Some(SELF_ID), true),
            (Role::Customer, "/users", None, false),
            (Role::Customer, "/users/{id}", Some(SELF_ID), true),
            (Role::Customer, "/users/{id}", Some(OTHER_ID), false),
            (Role::Admin, "/login", None, true),
            (Role::Customer, "/login", None, true),
        ];
        for (role, path, id, allowed) in expectations {
            let route = route("GET", path).or_else(|| route("POST", path)).unwrap();
            assert_eq!(
                is_allowed(route, role, SELF_ID, id),
                allowed,
                "{role} {path} {id:?}"
            );
        }
    }

    #[test]
    fn the_policy_json_has_the_shape_api_gateway_expects() {
        let response = AuthorizerResponse {
            principal_id: SELF_ID.into(),
            policy_document: policy_for(Role::Admin, SELF_ID, &MethodArn::parse(ARN).unwrap()),
            context: AuthorizerContext {
                sub: SELF_ID.into(),
                role: "admin".into(),
                username: "alice".into(),
                jti: "j".into(),
                sid: "s".into(),
                exp: "1800000900".into(),
                ver: "0".into(),
                amr: "pwd otp".into(),
            },
        };
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["principalId"], SELF_ID);
        assert_eq!(json["policyDocument"]["Version"], "2012-10-17");
        assert_eq!(
            json["policyDocument"]["Statement"][0]["Action"][0],
            "execute-api:Invoke"
        );
        assert_eq!(json["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert!(json.get("usageIdentifierKey").is_none());
        assert!(
            json["context"]
                .as_object()
                .unwrap()
                .values()
                .all(|v| v.is_string())
        );
    }

    #[test]
    fn paths_match_route_templates_segment_by_segment() {
        let (route, params) = match_route("GET", &format!("/users/{SELF_ID}")).unwrap();
        assert_eq!(route.path, "/users/{id}");
        assert_eq!(params, vec![("id", SELF_ID.to_string())]);
        assert_eq!(match_route("GET", "/users").unwrap().0.path, "/users");
        assert!(match_route("GET", "/users/").is_none());
        assert!(match_route("GET", "/users/a/b").is_none());
        assert!(match_route("DELETE", "/users").is_none());
        assert_eq!(
            match_route("POST", "/logout/all").unwrap().0.path,
            "/logout/all"
        );
        assert!(match_route("GET", "/nope").is_none());
    }
}
