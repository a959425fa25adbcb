//! The authorizer on HTTP APIs: REQUEST events in payload format 2.0, answered as the
//! API's permissions document says its authorizer is configured
//! (`http_api_answer`, [`jwt_auth_core::access::document::HttpApiAnswer`]).
//!
//! - **IAM policy** (the default): the same policy as for a REST API, every route the
//!   caller may call, so that the answer API Gateway caches under the token is right for
//!   every route. A refused token gets an explicit Deny of every route.
//! - **Simple** (`{"isAuthorized": …}`, `EnableSimpleResponses`): a decision for the one
//!   route asked. API Gateway caches it under the identity sources and, by default, reuses
//!   it on every route, so a `true` for a customer's route would open an admin route.
//!   The answer is therefore `true` only when the API's route (`routeKey`) is exactly the
//!   document's route the request reaches (a `$default`, `ANY` or `{proxy+}` route would
//!   cover routes the document tells apart, and a `true` for one would be reused on the
//!   others), the identity sources hold that route key (`$context.routeKey`), and that
//!   value is nowhere in what the client sent (headers, query, cookies, path): a client
//!   header carrying a route key of its choosing would otherwise key the cache for it.
//!   Otherwise `false`, with the reason logged. A document
//!   with simple answers has no `self` routes (refused when parsed): the answer for one
//!   user's path would be reused for another's.
//!
//! Either way the token is read from the `Authorization` header, and only when the
//! identity sources hold it: an answer cached under anything else would be reused for
//! other tokens. A refused, expired or revoked token is a negative answer (API Gateway
//! answers 403: an HTTP API has no way for a Lambda authorizer to answer 401, which it
//! gives only for a request without the identity sources). As with TOKEN events, the
//! backends re-check the caller on every request; an unreadable store or key set is an
//! error (500), never an Allow.

use crate::{AuthorizerError, still_standing, verified};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayV2CustomAuthorizerV2Request,
};
use jwt_auth_core::access::document::HttpApiAnswer;
use jwt_auth_core::access::policy::{
    Admission, AuthorizerContext, AuthorizerResponse, MethodArn, deny_everything,
};
use jwt_auth_core::access::registry::Permissions;
use jwt_auth_core::audit::SecurityEvent;
use jwt_auth_core::crypto::token::TokenVerifier;
use jwt_auth_core::store::UserStore;
use serde::Serialize;

/// The principal of a Deny: the caller is not known.
const NO_PRINCIPAL: &str = "anonymous";

/// An HTTP API authorizer's answer.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum HttpApiResponse {
    Allow(AuthorizerResponse),
    Deny(DenyResponse),
    Simple(SimpleResponse),
}

/// An IAM answer that denies every route.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DenyResponse {
    pub principal_id: String,
    pub policy_document: ApiGatewayCustomAuthorizerPolicy,
}

/// `EnableSimpleResponses`' answer; the context only with `true`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimpleResponse {
    pub is_authorized: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<AuthorizerContext>,
}

/// Decides one payload 2.0 REQUEST event at time `now`.
pub async fn authorize_http_api(
    event: &ApiGatewayV2CustomAuthorizerV2Request,
    verifier: &TokenVerifier,
    permissions: &Permissions,
    store: &dyn UserStore,
    now: u64,
) -> Result<HttpApiResponse, AuthorizerError> {
    let route_arn = event
        .route_arn
        .as_deref()
        .and_then(MethodArn::parse)
        .ok_or(AuthorizerError::BadEvent("routeArn missing or malformed"))
        .inspect_err(|_| {
            jwt_auth_core::audit::record(SecurityEvent::AuthorizerError, None, None)
        })?;
    let compiled = permissions.for_api(route_arn.api_id, now).await;
    let shape = compiled
        .as_ref()
        .map_or(HttpApiAnswer::Policy, |compiled| compiled.http_api_answer());
    let refused = || match shape {
        HttpApiAnswer::Policy => HttpApiResponse::Deny(DenyResponse {
            principal_id: NO_PRINCIPAL.into(),
            policy_document: deny_everything(&route_arn),
        }),
        HttpApiAnswer::Simple => HttpApiResponse::Simple(SimpleResponse {
            is_authorized: false,
            context: None,
        }),
    };
    let identity: &[String] = event.identity_source.as_deref().unwrap_or_default();
    let in_identity = |value: &str| identity.iter().any(|source| source == value);

    let authorization = event
        .headers
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    if let Some(authorization) = authorization
        && !in_identity(authorization)
    {
        tracing::error!(
            api = route_arn.api_id,
            "the authorizer's identity sources must include $request.header.Authorization: refused"
        );
        jwt_auth_core::audit::record(SecurityEvent::AuthorizerError, None, None);
        return Ok(refused());
    }
    let claims = match verified(verifier, authorization, now).await {
        Ok(claims) => claims,
        Err(AuthorizerError::Unauthorized) => return Ok(refused()),
        Err(other) => return Err(other),
    };
    match still_standing(store, &claims).await {
        Ok(()) => {}
        Err(AuthorizerError::Unauthorized) => return Ok(refused()),
        Err(other) => return Err(other),
    }
    let Some(compiled) = compiled else {
        tracing::warn!(
            api = route_arn.api_id,
            "no permissions document for this API: every route denied"
        );
        jwt_auth_core::audit::record(SecurityEvent::AuthorizerDeny, Some(&claims.sub), None);
        return Ok(refused());
    };
    let reach = permissions.reach(claims.role, claims.second_factor());
    let answer = match shape {
        HttpApiAnswer::Policy => HttpApiResponse::Allow(AuthorizerResponse {
            principal_id: claims.sub.clone(),
            policy_document: compiled.policy_for(claims.role, reach, &claims.sub, &route_arn),
            context: AuthorizerContext::from(claims.clone()),
        }),
        HttpApiAnswer::Simple => {
            let path = format!("/{}", route_arn.path);
            let admitted = match compiled.admits(
                claims.role,
                reach,
                &claims.sub,
                route_arn.method,
                &path,
            ) {
                Admission::Refused => false,
                _ if compiled.route_key_of(route_arn.method, &path).as_deref()
                    != event.route_key.as_deref() =>
                {
                    tracing::error!(
                        api = route_arn.api_id,
                        "simple answers need the API's routes to be the document's routes (no $default, ANY or proxy route over several): refused"
                    );
                    false
                }
                // Exactly the token and the route key: how API Gateway joins several
                // identity values into one cache key is not documented, so no third,
                // client-chosen value may shift them.
                _ if identity.len() != 2 => {
                    tracing::error!(
                        api = route_arn.api_id,
                        "simple answers need exactly two identity sources, the Authorization header and $context.routeKey: refused"
                    );
                    false
                }
                _ if !event.route_key.as_deref().is_some_and(in_identity) => {
                    tracing::error!(
                        api = route_arn.api_id,
                        "simple answers need $context.routeKey among the identity sources: refused"
                    );
                    false
                }
                _ if event
                    .route_key
                    .as_deref()
                    .is_some_and(|route_key| client_supplied(event, route_key)) =>
                {
                    tracing::error!(
                        api = route_arn.api_id,
                        "the route key is also in what the client sent: the cache key cannot be trusted; refused"
                    );
                    false
                }
                Admission::ByRole => true,
                // Refused when the document was parsed; were it not, never cacheable.
                Admission::AsItself => false,
            };
            HttpApiResponse::Simple(SimpleResponse {
                is_authorized: admitted,
                context: admitted.then(|| AuthorizerContext::from(claims.clone())),
            })
        }
    };
    let allowed = !matches!(
        answer,
        HttpApiResponse::Simple(SimpleResponse {
            is_authorized: false,
            ..
        })
    );
    let event = if allowed {
        SecurityEvent::AuthorizerAllow
    } else {
        SecurityEvent::AuthorizerDeny
    };
    tracing::info!(sub = %claims.sub, role = %claims.role, jti = %claims.jti, allowed, "token accepted");
    jwt_auth_core::audit::record(event, Some(&claims.sub), None);
    Ok(answer)
}

/// Whether `value` is anywhere the client chose: a header, a query or path parameter, a
/// cookie, the raw path or query.
fn client_supplied(event: &ApiGatewayV2CustomAuthorizerV2Request, value: &str) -> bool {
    event
        .headers
        .values()
        .any(|header| header.as_bytes() == value.as_bytes())
        || event.query_string_parameters.values().any(|v| v == value)
        || event.path_parameters.values().any(|v| v == value)
        || event.cookies.iter().any(|cookie| cookie.contains(value))
        || event
            .raw_path
            .as_deref()
            .is_some_and(|raw| raw.contains(value))
        || event
            .raw_query_string
            .as_deref()
            .is_some_and(|raw| raw.contains(value))
}
