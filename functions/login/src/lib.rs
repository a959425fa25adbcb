//! The session routes: `POST /login` and its second step `POST /login/mfa`,
//! `POST /token/refresh`, the public keys and the discovery document that names them
//! (public), `POST /logout`, `POST /logout/all`, `POST /password` and the TOTP routes
//! `POST /mfa/totp`, `/mfa/totp/confirm`, `/mfa/totp/disable` (signed in). The HTTP adapter around
//! [`jwt_auth_core::sessions::login::LoginService`]. Signed-in routes act only on a caller re-checked
//! against the store ([`current_caller`]): API Gateway's cached Allow may be stale.

use jwt_auth_core::ApiError;
use jwt_auth_core::access::route::Route;
use jwt_auth_core::sessions::login::{
    CHANGE_PASSWORD_BODY_SHAPE, CONFIRM_TOTP_BODY_SHAPE, ChangePasswordRequest, ConfirmTotpRequest,
    DISABLE_TOTP_BODY_SHAPE, DisableTotpRequest, LOGIN_BODY_SHAPE, LoginRequest, LoginService,
    REFRESH_BODY_SHAPE, RefreshRequest, SECOND_STEP_BODY_SHAPE, START_TOTP_BODY_SHAPE,
    SecondStepRequest, StartTotpRequest,
};
use jwt_auth_core::sessions::revocation::{current_caller, within_reach};
use jwt_auth_core::web::request::{Caller, json_body, path_exists_with_other_method, route_of};
use jwt_auth_core::web::response::{json_response, no_content, public_json_response};
use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

/// How long clients and caches may keep the JWK Set (RFC 7517 gives no default; five
/// minutes bounds how stale another service's copy can be).
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// Answers every request; failures are problem+json responses, never `Err` (which API
/// Gateway would turn into a 502).
pub async fn handle(
    request: Request,
    service: &LoginService,
) -> Result<Response<Body>, std::convert::Infallible> {
    jwt_auth_core::web::handler::answer(request, &service.cors, |request| route(request, service))
        .await
}

async fn route(request: Request, service: &LoginService) -> Result<Response<Body>, ApiError> {
    // A rotation's new current key reaches this instance without a cold start.
    service.issuer.keys().refresh_if_due().await;
    let now = service.clock.now();
    let Some((route, _)) = route_of(&request) else {
        return Err(if path_exists_with_other_method(&request) {
            ApiError::MethodNotAllowed
        } else {
            ApiError::NotFound
        });
    };
    match (route.method.as_str(), route.path.as_str()) {
        ("POST", "/login") => {
            // Checked before any attempt is counted or refresh token spent: no key, 503.
            service.ensure_signing_keys()?;
            let body: LoginRequest = json_body(&request, LOGIN_BODY_SHAPE)?;
            Ok(json_response(
                StatusCode::OK,
                &service.login(body, &source_ip(&request), now).await?,
            ))
        }
        ("POST", "/login/mfa") => {
            service.ensure_signing_keys()?;
            let body: SecondStepRequest = json_body(&request, SECOND_STEP_BODY_SHAPE)?;
            Ok(json_response(
                StatusCode::OK,
                &service.complete_sign_in(body, now).await?,
            ))
        }
        ("POST", "/mfa/totp") => {
            let caller = signed_in(&request, route, service, now).await?;
            let body: StartTotpRequest = json_body(&request, START_TOTP_BODY_SHAPE)?;
            Ok(json_response(
                StatusCode::OK,
                &service.start_totp_enrolment(&caller, body, now).await?,
            ))
        }
        ("POST", "/mfa/totp/confirm") => {
            let caller = signed_in(&request, route, service, now).await?;
            let body: ConfirmTotpRequest = json_body(&request, CONFIRM_TOTP_BODY_SHAPE)?;
            Ok(json_response(
                StatusCode::OK,
                &service.confirm_totp(&caller, body, now).await?,
            ))
        }
        ("POST", "/mfa/totp/disable") => {
            let caller = signed_in(&request, route, service, now).await?;
            let body: DisableTotpRequest = json_body(&request, DISABLE_TOTP_BODY_SHAPE)?;
            service.disable_totp(&caller, body, now).await?;
            Ok(no_content())
        }
        ("GET", "/.well-known/jwks.json") => Ok(public_json_response(
            &service.public_keys(now).await?,
            JWKS_MAX_AGE_SECS,
        )),
        // Changes only with the issuer setting or the algorithm: cached like the keys.
        ("GET", "/.well-known/openid-configuration") => Ok(public_json_response(
            &service.discovery(now).await?,
            JWKS_MAX_AGE_SECS,
        )),
        ("POST", "/token/refresh") => {
            service.ensure_signing_keys()?;
            let body: RefreshRequest = json_body(&request, REFRESH_BODY_SHAPE)?;
            Ok(json_response(
                StatusCode::OK,
                &service.refresh(body, now).await?,
            ))
        }
        ("POST", "/logout") => {
            let caller = signed_in(&request, route, service, now).await?;
            service.logout(&caller, now).await?;
            Ok(no_content())
        }
        ("POST", "/logout/all") => {
            let caller = signed_in(&request, route, service, now).await?;
            service.logout_everywhere(&caller, now).await?;
            Ok(no_content())
        }
        ("POST", "/password") => {
            service.ensure_signing_keys()?;
            let caller = signed_in(&request, route, service, now).await?;
            let body: ChangePasswordRequest = json_body(&request, CHANGE_PASSWORD_BODY_SHAPE)?;
            Ok(json_response(
                StatusCode::OK,
                &service.change_password(&caller, body, now).await?,
            ))
        }
        // Another function's route sent here by mistake.
        _ => Err(ApiError::NotFound),
    }
}

/// The caller of a signed-in route, as it stands in the store now, if `route` is within
/// its reach (a caller held to enrolment reaches only the enrolment routes and logout).
async fn signed_in(
    request: &Request,
    route: &Route,
    service: &LoginService,
    now: u64,
) -> Result<Caller, ApiError> {
    let caller =
        current_caller(service.store.as_ref(), Caller::from_request(request)?, now).await?;
    within_reach(&caller, route, &service.second_factor_rule)?;
    Ok(caller)
}

/// The client address API Gateway saw (`requestContext.identity.sourceIp`); a request
/// without one (a hand-written event) counts as the "unknown" source.
fn source_ip(request: &Request) -> String {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => {
            context.identity.source_ip.clone().unwrap_or_default()
        }
        _ => String::new(),
    }
}
