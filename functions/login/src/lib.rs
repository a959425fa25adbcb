//! `POST /login`: the HTTP adapter around [`jwt_auth_core::login::LoginService`].

use jwt_auth_core::ApiError;
use jwt_auth_core::error::json_response;
use jwt_auth_core::http::json_body;
use jwt_auth_core::login::{LOGIN_BODY_SHAPE, LoginRequest, LoginService};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

/// Answers every request; failures are problem+json responses, never `Err` (which API
/// Gateway would turn into a 502).
pub async fn handle(
    request: Request,
    service: &LoginService,
) -> Result<Response<Body>, std::convert::Infallible> {
    Ok(match login(request, service).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    })
}

async fn login(request: Request, service: &LoginService) -> Result<Response<Body>, ApiError> {
    if request.method() != Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let body: LoginRequest = json_body(&request, LOGIN_BODY_SHAPE)?;
    let answer = service.login(body, jwt_auth_core::unix_now()).await?;
    Ok(json_response(StatusCode::OK, &answer))
}
