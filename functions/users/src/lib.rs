//! The users routes (`GET`/`POST /users`, `GET`/`PATCH`/`DELETE /users/{id}`,
//! `POST /users/{id}/password`, `DELETE /users/{id}/mfa`): the HTTP adapter around [`jwt_auth_core::users::admin`]. Every
//! route acts only on a caller re-checked against the store, with its stored role
//! ([`current_caller`]): API Gateway's cached Allow and context may be stale.

use jwt_auth_core::ApiError;
use jwt_auth_core::sessions::revocation::{current_caller, within_reach};
use jwt_auth_core::users::admin::{
    CREATE_USER_BODY_SHAPE, CreateUserRequest, RESET_PASSWORD_BODY_SHAPE, ResetPasswordRequest,
    UPDATE_USER_BODY_SHAPE, UpdateUserRequest, create_user, delete_user, get_user, list_users,
    reset_password, reset_second_factor, update_user,
};
use jwt_auth_core::web::request::{
    Caller, json_body, path_exists_with_other_method, query_param, route_of,
};
use jwt_auth_core::web::response::{json_response, no_content};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

pub use jwt_auth_core::users::admin::UsersService;

/// Answers every request; failures are problem+json responses, never `Err`.
pub async fn handle(
    request: Request,
    service: &UsersService,
) -> Result<Response<Body>, std::convert::Infallible> {
    jwt_auth_core::web::handler::answer(request, &service.cors, |request| route(request, service))
        .await
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
    let now = service.clock.now();
    let store = service.store.as_ref();
    let caller = current_caller(store, Caller::from_request(&request)?, now).await?;
    within_reach(&caller, route, &service.second_factor_rule)?;
    match (route.method.as_str(), route.path.as_str(), id) {
        ("GET", _, None) => {
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
        ("POST", _, None) => {
            let body: CreateUserRequest = json_body(&request, CREATE_USER_BODY_SHAPE)?;
            let created =
                create_user(store, &service.hasher, &service.roles, &caller, body, now).await?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        ("GET", _, Some(id)) => Ok(json_response(
            StatusCode::OK,
            &get_user(store, &caller, &id).await?,
        )),
        ("PATCH", _, Some(id)) => {
            let body: UpdateUserRequest = json_body(&request, UPDATE_USER_BODY_SHAPE)?;
            Ok(json_response(
                StatusCode::OK,
                &update_user(store, &service.roles, &caller, &id, body).await?,
            ))
        }
        ("DELETE", "/users/{id}/mfa", Some(id)) => {
            reset_second_factor(store, &caller, &id).await?;
            Ok(no_content())
        }
        ("DELETE", "/users/{id}", Some(id)) => {
            delete_user(store, &caller, &id).await?;
            Ok(no_content())
        }
        ("POST", "/users/{id}/password", Some(id)) => {
            let body: ResetPasswordRequest = json_body(&request, RESET_PASSWORD_BODY_SHAPE)?;
            reset_password(store, &service.hasher, &caller, &id, body).await?;
            Ok(no_content())
        }
        _ => Err(ApiError::NotFound),
    }
}
