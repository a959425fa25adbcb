//! `GET /users` and `GET /users/{id}`: the HTTP adapter around [`jwt_auth_core::users`].

use jwt_auth_core::ApiError;
use jwt_auth_core::cursor::CursorCodec;
use jwt_auth_core::error::json_response;
use jwt_auth_core::http::{Caller, path_exists_with_other_method, query_param, route_of};
use jwt_auth_core::store::UserStore;
use jwt_auth_core::users::{get_user, list_users};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use std::sync::Arc;

/// What the users function needs, built once at cold start.
pub struct UsersService {
    pub store: Arc<dyn UserStore>,
    pub cursors: CursorCodec,
}

/// Answers every request; failures are problem+json responses, never `Err`.
pub async fn handle(
    request: Request,
    service: &UsersService,
) -> Result<Response<Body>, std::convert::Infallible> {
    Ok(match route(request, service).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    })
}

async fn route(request: Request, service: &UsersService) -> Result<Response<Body>, ApiError> {
    let Some((route, id)) = route_of(&request) else {
        return Err(if path_exists_with_other_method(&request) {
            ApiError::MethodNotAllowed
        } else {
            ApiError::NotFound
        });
    };
    match (route.path, id) {
        ("/users", _) => {
            let caller = Caller::from_request(&request)?;
            let page = list_users(
                service.store.as_ref(),
                &service.cursors,
                &caller,
                query_param(&request, "limit"),
                query_param(&request, "cursor"),
            )
            .await?;
            Ok(json_response(StatusCode::OK, &page))
        }
        ("/users/{id}", Some(id)) => {
            let caller = Caller::from_request(&request)?;
            let user = get_user(service.store.as_ref(), &caller, &id).await?;
            Ok(json_response(StatusCode::OK, &user))
        }
        // Another function's route (POST /login) sent here by mistake.
        _ => Err(ApiError::NotFound),
    }
}
