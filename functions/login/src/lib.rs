//! The session routes: `POST /login`, `POST /token/refresh` (public), `POST /logout` and
//! `POST /logout/all` (signed in). The HTTP adapter around
//! [`jwt_auth_core::login::LoginService`].

use jwt_auth_core::ApiError;
use jwt_auth_core::error::{json_response, no_content};
use jwt_auth_core::http::{Caller, json_body, path_exists_with_other_method, route_of};
use jwt_auth_core::login::{
    LOGIN_BODY_SHAPE, LoginRequest, LoginService, REFRESH_BODY_SHAPE, RefreshRequest,
};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

/// Answers every request; failures are problem+json responses, never `Err` (which API
/// Gateway would turn into a 502).
pub async fn handle(
    request: Request,
    service: &LoginService,
) -> Result<Response<Body>, std::convert::Infallible> {
    Ok(match route(request, service).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    })
}

async fn route(request: Request, service: &LoginService) -> Result<Response<Body>, ApiError> {
    let now = jwt_auth_core::unix_now();
    let Some((route, _)) = route_of(&request) else {
        return Err(if path_exists_with_other_method(&request) {
            ApiError::MethodNotAllowed
        } else {
            ApiError::NotFound
        });
    };
    match (route.method, route.path) {
        ("POST", "/login") => {
            let body: LoginRequest = json_body(&request, LOGIN_BODY_SHAPE)?;
            Ok(json_response(
                StatusCode::OK,
                &service.login(body, now).await?,
            ))
        }
        ("POST", "/token/refresh") => {
            let body: RefreshRequest = json_body(&request, REFRESH_BODY_SHAPE)?;
            Ok(json_response(
                StatusCode::OK,
                &service.refresh(body, now).await?,
            ))
        }
        ("POST", "/logout") => {
            service
                .logout(&Caller::from_request(&request)?, now)
                .await?;
            Ok(no_content())
        }
        ("POST", "/logout/all") => {
            service
                .logout_everywhere(&Caller::from_request(&request)?, now)
                .await?;
            Ok(no_content())
        }
        // Another function's route sent here by mistake.
        _ => Err(ApiError::NotFound),
    }
}
