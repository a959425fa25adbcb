//! The API Gateway TOKEN authorizer.
//!
//! - Missing, malformed, forged or expired token: the error `Unauthorized`, which API
//!   Gateway answers with 401 (the message must be exactly that word).
//! - Valid token: `principalId` = `sub`, a policy allowing every route the role may call
//!   (API Gateway caches it per token and reuses it on every route), and the context
//!   `sub`, `role`, `username`, `jti` for the backends.
//! - Anything else (no usable `methodArn`): another error, which API Gateway answers with
//!   500. Never an Allow, never a panic.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequest;
use jwt_auth_core::policy::{AuthorizerContext, AuthorizerResponse, MethodArn, policy_for};
use jwt_auth_core::token::TokenVerifier;
use lambda_runtime::{Diagnostic, LambdaEvent};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizerError {
    /// API Gateway maps exactly this message to 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// The event is not one API Gateway would send; answered 500.
    #[error("AuthorizerFailure: {0}")]
    BadEvent(&'static str),
}

impl From<AuthorizerError> for Diagnostic {
    fn from(error: AuthorizerError) -> Self {
        let error_type = match error {
            AuthorizerError::Unauthorized => "Unauthorized",
            AuthorizerError::BadEvent(_) => "AuthorizerFailure",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// Decides one TOKEN event at time `now`.
pub fn authorize(
    event: &ApiGatewayCustomAuthorizerRequest,
    verifier: &TokenVerifier,
    now: u64,
) -> Result<AuthorizerResponse, AuthorizerError> {
    let claims = verifier
        .verify_authorization(event.authorization_token.as_deref(), now)
        .map_err(|reason| {
            // The reason and nothing of the token itself: tokens never reach the logs.
            tracing::info!(%reason, "token refused");
            AuthorizerError::Unauthorized
        })?;
    let method_arn = event
        .method_arn
        .as_deref()
        .and_then(MethodArn::parse)
        .ok_or(AuthorizerError::BadEvent("methodArn missing or malformed"))?;
    let policy_document = policy_for(claims.role, &claims.sub, &method_arn);
    tracing::info!(sub = %claims.sub, role = %claims.role, jti = %claims.jti, "token accepted");
    Ok(AuthorizerResponse {
        principal_id: claims.sub.clone(),
        policy_document,
        context: AuthorizerContext {
            sub: claims.sub,
            role: claims.role.as_str().into(),
            username: claims.username,
            jti: claims.jti,
        },
    })
}

/// The Lambda handler.
pub async fn handle(
    event: LambdaEvent<ApiGatewayCustomAuthorizerRequest>,
    verifier: &TokenVerifier,
) -> Result<AuthorizerResponse, AuthorizerError> {
    authorize(&event.payload, verifier, jwt_auth_core::unix_now())
}
