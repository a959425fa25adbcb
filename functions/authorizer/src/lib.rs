//! The API Gateway Lambda authorizer: REST APIs' TOKEN events (below) and HTTP APIs'
//! REQUEST events in payload format 2.0 ([`http_api`]), with the same rules.
//!
//! - Missing, malformed, forged or expired token: the error `Unauthorized`, which API
//!   Gateway answers with 401 (the message must be exactly that word).
//! - Revoked: a logged-out `jti` or session, a deleted or disabled user, or a token older
//!   than the user's last "log out everywhere", role change, password change or reset (its
//!   `ver` claim is behind the user's token version): also `Unauthorized`. This costs one
//!   DynamoDB round trip (a BatchGetItem of the user, the `jti` and the session) per
//!   uncached authorization ([`jwt_auth_core::sessions::revocation`]).
//! - Valid token: `principalId` = `sub`, a policy allowing every route the role may call
//!   on the API that asks, from that API's permissions document
//!   ([`jwt_auth_core::access::registry`]; an API with none is denied every route; API
//!   Gateway caches the answer per token and reuses it on every route), and the context
//!   `sub`, `role`, `username`, `jti`, `sid`, `exp`, `ver`, `amr` for the backends. A
//!   token of a role that must sign in with a second factor, issued without one
//!   (`MFA_REQUIRED_ROLES`, [`jwt_auth_core::access::second_factor`]), gets only the
//!   routes marked `before_second_factor`: enrolling and logging out.
//!
//! **What the cache does to this.** API Gateway keeps this answer for the cache TTL
//! (`AuthorizerCacheTtlSeconds`, counted from the last *uncached* call, whatever the
//! token's `exp`), so this function alone would let a revoked or expired token through
//! until then. It does not stand alone: every function route re-checks the caller with the
//! same read and refuses a token past its `exp` ([`jwt_auth_core::sessions::revocation::current_caller`]),
//! so revocation and expiry take effect on the very next request. What the cache still
//! decides alone is the gateway's 403 for a route the cached policy does not list.
//! - Anything else (no usable `methodArn`, the store unreachable): another error, which
//!   API Gateway answers with 500. Never an Allow, never a panic.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayV2CustomAuthorizerV2Request,
};
use jwt_auth_core::access::policy::{
    AuthorizerContext, AuthorizerResponse, MethodArn, deny_everything,
};
use jwt_auth_core::access::registry::Permissions;
use jwt_auth_core::audit::{RequestMeta, SecurityEvent, with_request};
use jwt_auth_core::crypto::token::{Claims, TokenVerifier};
use jwt_auth_core::sessions::revocation::refusal;
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::store::UserStore;
use lambda_runtime::{Diagnostic, LambdaEvent};

mod http_api;
pub use http_api::{HttpApiResponse, SimpleResponse, authorize_http_api};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizerError {
    /// API Gateway maps exactly this message to 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// The event is not one API Gateway would send; answered 500.
    #[error("AuthorizerFailure: {0}")]
    BadEvent(&'static str),
    /// The revocation state could not be read: fail closed with a 500, never an Allow.
    #[error("AuthorizerFailure: revocation state unavailable")]
    StoreUnavailable,
    /// A token named a key this instance lacks and the key set could not be re-read.
    #[error("AuthorizerFailure: token keys unavailable")]
    KeysUnavailable,
}

impl From<AuthorizerError> for Diagnostic {
    fn from(error: AuthorizerError) -> Self {
        let error_type = match error {
            AuthorizerError::Unauthorized => "Unauthorized",
            AuthorizerError::BadEvent(_)
            | AuthorizerError::StoreUnavailable
            | AuthorizerError::KeysUnavailable => "AuthorizerFailure",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// Decides one TOKEN event at time `now`.
pub async fn authorize(
    event: &ApiGatewayCustomAuthorizerRequest,
    verifier: &TokenVerifier,
    permissions: &Permissions,
    store: &dyn UserStore,
    now: u64,
) -> Result<AuthorizerResponse, AuthorizerError> {
    let claims = verified(verifier, event.authorization_token.as_deref(), now).await?;
    let method_arn = event
        .method_arn
        .as_deref()
        .and_then(MethodArn::parse)
        .ok_or(AuthorizerError::BadEvent("methodArn missing or malformed"))
        .inspect_err(|_| {
            jwt_auth_core::audit::record(SecurityEvent::AuthorizerError, Some(&claims.sub), None)
        })?;
    still_standing(store, &claims).await?;
    // The document of the API named in the methodArn (API Gateway's, never the token's);
    // an API that registered none is denied every route.
    let policy_document = match permissions.for_api(method_arn.api_id, now).await {
        Some(compiled) => compiled.policy_for(
            claims.role,
            permissions.reach(claims.role, claims.second_factor()),
            &claims.sub,
            &method_arn,
        ),
        None => {
            tracing::warn!(
                api = method_arn.api_id,
                "no permissions document for this API: every route denied"
            );
            deny_everything(&method_arn)
        }
    };
    tracing::info!(sub = %claims.sub, role = %claims.role, jti = %claims.jti, "token accepted");
    jwt_auth_core::audit::record(SecurityEvent::AuthorizerAllow, Some(&claims.sub), None);
    Ok(AuthorizerResponse {
        principal_id: claims.sub.clone(),
        policy_document,
        context: AuthorizerContext::from(claims),
    })
}

/// The claims of `authorization` (`Bearer <token>`) if it verifies at `now`.
pub(crate) async fn verified(
    verifier: &TokenVerifier,
    authorization: Option<&str>,
    now: u64,
) -> Result<Claims, AuthorizerError> {
    verifier
        .verify_authorization_live(authorization, now)
        .await
        .map_err(|failure| match failure {
            Ok(reason) => {
                // The reason and nothing of the token itself: tokens never reach the logs.
                tracing::info!(%reason, "token refused");
                jwt_auth_core::audit::record(SecurityEvent::AuthorizerDeny, None, None);
                AuthorizerError::Unauthorized
            }
            Err(_) => {
                jwt_auth_core::audit::record(SecurityEvent::AuthorizerError, None, None);
                AuthorizerError::KeysUnavailable
            }
        })
}

/// Whether the caller of `claims` still stands: not logged out, disabled, deleted or
/// behind its token version (one strongly consistent read).
pub(crate) async fn still_standing(
    store: &dyn UserStore,
    claims: &Claims,
) -> Result<(), AuthorizerError> {
    let state = store
        .authorization_state(&claims.sub, &claims.jti, &claims.sid)
        .await
        .map_err(|err| {
            tracing::error!(error = %jwt_auth_core::web::error::error_chain(&err), "revocation check failed");
            jwt_auth_core::audit::record(SecurityEvent::AuthorizerError, Some(&claims.sub), None);
            AuthorizerError::StoreUnavailable
        })?;
    if let Some(reason) = refusal(&state, claims.role, claims.ver) {
        tracing::info!(reason, sub = %claims.sub, jti = %claims.jti, "token refused");
        jwt_auth_core::audit::record(SecurityEvent::AuthorizerDeny, Some(&claims.sub), None);
        return Err(AuthorizerError::Unauthorized);
    }
    Ok(())
}

/// What API Gateway sends: a REST API's TOKEN event, or an HTTP API's REQUEST event in
/// payload format 2.0 (told apart by its `version`).
#[derive(Debug, Clone)]
pub enum AuthorizerEvent {
    Token(ApiGatewayCustomAuthorizerRequest),
    HttpApi(Box<ApiGatewayV2CustomAuthorizerV2Request>),
}

impl<'de> serde::Deserialize<'de> for AuthorizerEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("version").and_then(|version| version.as_str()) == Some("2.0") {
            serde_json::from_value(value)
                .map(|event| Self::HttpApi(Box::new(event)))
                .map_err(D::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(Self::Token)
                .map_err(D::Error::custom)
        }
    }
}

/// The answer in the shape the event's API expects.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum AuthorizerAnswer {
    Token(AuthorizerResponse),
    HttpApi(HttpApiResponse),
}

/// The Lambda handler; "now" comes from `clock`, as in the other functions.
pub async fn handle(
    event: LambdaEvent<AuthorizerEvent>,
    verifier: &TokenVerifier,
    permissions: &Permissions,
    store: &dyn UserStore,
    clock: &Clock,
) -> Result<AuthorizerAnswer, AuthorizerError> {
    let request_id = event.context.request_id.clone();
    match event.payload {
        AuthorizerEvent::Token(token_event) => {
            // A TOKEN event carries no client address.
            let meta = RequestMeta {
                request_id,
                source_ip: String::new(),
            };
            with_request(
                meta,
                authorize(&token_event, verifier, permissions, store, clock.now()),
            )
            .await
            .map(AuthorizerAnswer::Token)
        }
        AuthorizerEvent::HttpApi(http_event) => {
            let meta = RequestMeta {
                request_id,
                source_ip: http_event
                    .request_context
                    .http
                    .source_ip
                    .clone()
                    .unwrap_or_default(),
            };
            with_request(
                meta,
                authorize_http_api(&http_event, verifier, permissions, store, clock.now()),
            )
            .await
            .map(AuthorizerAnswer::HttpApi)
        }
    }
}
