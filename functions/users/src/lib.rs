//! `GET /users` and `GET /users/{id}`: the HTTP adapter around [`jwt_auth_core::users`].

use jwt_auth_core::ApiError;
use jwt_auth_core::cursor::CursorCodec;
use jwt_auth_core::error::{json_response, no_content};
use jwt_auth_core::http::{
    Caller, json_body, path_exists_with_other_method, query_param, route_of,
};
use jwt_auth_core::password::PasswordHasher;
use jwt_auth_core::store::Store;
use jwt_auth_core::users::{
    CREATE_USER_BODY_SHAPE, CreateUserRequest, UPDATE_USER_BODY_SHAPE, UpdateUserRequest,
    create_user, delete_user, get_user, list_users, update_user,
};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use std::sync::Arc;

/// What the users function needs, built once at cold start.
pub struct UsersService {
    pub store: Arc<dyn Store>,
    pub cursors: CursorCodec,
    /// Hashes the passwords of users created over the API.
    pub hasher: Arc<PasswordHasher>,
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
    // Another function's route (POST /login) sent here by mistake: not ours.
    if !route.path.starts_with("/users") {
        return Err(ApiError::NotFound);
    }
    let caller = Caller::from_request(&request)?;
    let store = service.store.as_ref();
    match (route.method, id) {
        ("GET", None) => {
            let page = list_users(
                store,
                &service.cursors,
                &caller,
                query_param(&request, "limit"),
                query_param(&request, "cursor"),
            )
            .await?;
            Ok(json_response(StatusCode::OK, &page))
        }
        ("POST", None) => {
            let body: CreateUserRequest = json_body(&request, CREATE_USER_BODY_SHAPE)?;
            let created = create_user(
                store,
                &service.hasher,
                &caller,
                body,
                jwt_auth_core::unix_now(),
            )
            .await?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        ("GET", Some(id)) => Ok(json_response(
            StatusCode::OK,
            &get_user(store, &caller, &id).await?,
        )),
        ("PATCH", Some(id)) => {
            let body: UpdateUserRequest = json_body(&request, UPDATE_USER_BODY_SHAPE)?;
            Ok(json_response(
                StatusCode::OK,
                &update_user(store, &caller, &id, body).await?,
            ))
        }
        ("DELETE", Some(id)) => {
            delete_user(store, &caller, &id).await?;
            Ok(no_content())
        }
        _ => Err(ApiError::NotFound),
    }
}
