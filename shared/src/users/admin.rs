//! The user use cases: `GET /users`, `GET /users/{id}`, and for admins `POST /users`,
//! `PATCH /users/{id}`, `DELETE /users/{id}`, the resets of a user's password and second
//! factor.

use crate::ApiError;
use crate::access::routes::{is_allowed, route};
use crate::crypto::password::{PasswordHasher, check_new_password};
use crate::store::{NewUser, PasswordWrite, StoreError, UserChanges, UserStore};
use crate::users::cursor::CursorCodec;
use crate::users::user::{
    DeclaredRoles, Role, User, is_valid_user_id, normalize_username, validate_display_name,
};
use crate::web::request::Caller;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Page size when `limit` is not given.
pub const DEFAULT_PAGE_SIZE: usize = 25;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: usize = 100;

#[derive(Debug, Serialize, Deserialize)]
pub struct UserListResponse {
    pub users: Vec<User>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UserResponse {
    pub user: User,
}

/// Parses `limit`: absent means [`DEFAULT_PAGE_SIZE`]; otherwise a whole number in
/// 1..=[`MAX_PAGE_SIZE`].
pub fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE_SIZE).contains(limit))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE_SIZE}"
                ))
            }),
    }
}

/// `GET /users` (admins only).
pub async fn list_users(
    store: &dyn UserStore,
    cursors: &CursorCodec,
    caller: &Caller,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<UserListResponse, ApiError> {
    // The authorizer already refused non-admins; checking again keeps a misconfigured
    // gateway (or a cached policy gone wrong) from exposing the list.
    if caller.role != Role::Admin {
        return Err(ApiError::Forbidden);
    }
    let limit = parse_limit(limit)?;
    let after = cursor
        .map(|cursor| cursors.decode(cursor))
        .transpose()
        .map_err(|_| ApiError::BadRequest("cursor is not one this API issued".into()))?;
    let page = store.list_users(limit, after.as_ref()).await?;
    Ok(UserListResponse {
        users: page.users,
        next_cursor: page.next.map(|key| cursors.encode(&key)),
    })
}

/// `GET /users/{id}` (admins, or the user itself). A customer gets the same 403 for every
/// id but its own, existing or not, so ids cannot be probed.
pub async fn get_user(
    store: &dyn UserStore,
    caller: &Caller,
    id: &str,
) -> Result<UserResponse, ApiError> {
    let route = route("GET", "/users/{id}")
        .ok_or_else(|| ApiError::internal("route table lacks GET /users/{id}"))?;
    if !is_allowed(route, caller.role, &caller.sub, Some(id)) {
        return Err(ApiError::Forbidden);
    }
    if !is_valid_user_id(id) {
        return Err(ApiError::NotFound);
    }
    match store.get_user(id).await? {
        Some(user) => Ok(UserResponse { user }),
        None => Err(ApiError::NotFound),
    }
}

/// `POST /users` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    /// Display name; the username when absent.
    pub name: Option<String>,
    pub role: Role,
    pub password: SecretString,
}

pub const CREATE_USER_BODY_SHAPE: &str = r#"a JSON object {"username": string, "name"?: string, "role": one of the deployment's roles, "password": string}"#;

/// `PATCH /users/{id}` body: the fields to change. A field left out is unchanged; a field
/// given as `null` is a mistake (400), not "unchanged".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub role: Option<Role>,
    #[serde(default, deserialize_with = "present")]
    pub disabled: Option<bool>,
}

/// A field that, when present, must hold a value (serde would read `null` as `None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

pub const UPDATE_USER_BODY_SHAPE: &str = r#"a JSON object with any of {"name": string, "role": one of the deployment's roles, "disabled": boolean}"#;

fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// `POST /users` (admins): creates a user; the password must pass the policy.
pub async fn create_user(
    store: &dyn UserStore,
    hasher: &Arc<PasswordHasher>,
    roles: &DeclaredRoles,
    caller: &Caller,
    request: CreateUserRequest,
    now: u64,
) -> Result<UserResponse, ApiError> {
    require_admin(caller)?;
    let role = roles.check(request.role).map_err(ApiError::BadRequest)?;
    let username = normalize_username(&request.username)
        .map_err(|reason| ApiError::BadRequest(reason.into()))?;
    let name = validate_display_name(request.name.as_deref().unwrap_or(&username))
        .map_err(|reason| ApiError::BadRequest(reason.into()))?;
    check_new_password(&request.password, &username)
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let hasher = Arc::clone(hasher);
    let password = request.password;
    let password_hash = tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let user = store
        .create_user(
            NewUser {
                username,
                name,
                role,
                password_hash,
            },
            now,
            caller.actor(),
        )
        .await?;
    tracing::info!(admin = %caller.sub, user = %user.id, role = %user.role, "user created");
    crate::audit::record(
        crate::audit::SecurityEvent::UserCreated,
        Some(&caller.sub),
        Some(&user.id),
    );
    Ok(UserResponse { user })
}

/// `PATCH /users/{id}` (admins). Changing the role or disabling (to another value than the
/// stored one) revokes the user's tokens.
/// An admin cannot change its own role or disabled state (409): demoting itself could leave
/// no admin, and re-enabling itself would undo its own disable. Every write lands only
/// while the calling admin still stands ([`crate::store::Actor::Caller`]): of two admins
/// demoting each other at once, the second write finds its caller demoted and fails.
pub async fn update_user(
    store: &dyn UserStore,
    roles: &DeclaredRoles,
    caller: &Caller,
    id: &str,
    request: UpdateUserRequest,
) -> Result<UserResponse, ApiError> {
    require_admin(caller)?;
    if !is_valid_user_id(id) {
        return Err(ApiError::NotFound);
    }
    let role = request
        .role
        .map(|role| roles.check(role))
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let name = request
        .name
        .as_deref()
        .map(validate_display_name)
        .transpose()
        .map_err(|reason| ApiError::BadRequest(reason.into()))?;
    let changes = UserChanges {
        name,
        role,
        disabled: request.disabled,
    };
    if changes == UserChanges::default() {
        return Err(ApiError::BadRequest("nothing to change".into()));
    }
    // Whatever the value: re-enabling or re-promoting oneself is how a caller being cut
    // off would keep its access, and demoting or disabling oneself could leave no admin.
    if id == caller.sub && (changes.role.is_some() || changes.disabled.is_some()) {
        return Err(ApiError::Conflict(
            "an admin cannot change its own role or disabled state".into(),
        ));
    }
    let user = store.update_user(id, changes, caller.actor()).await?;
    tracing::info!(admin = %caller.sub, user = %user.id, "user updated");
    crate::audit::record(
        crate::audit::SecurityEvent::UserUpdated,
        Some(&caller.sub),
        Some(&user.id),
    );
    Ok(UserResponse { user })
}

/// `POST /users/{id}/password` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    pub new_password: SecretString,
}

pub const RESET_PASSWORD_BODY_SHAPE: &str = r#"a JSON object {"new_password": string}"#;

/// `POST /users/{id}/password` (admins): sets a user's password and, in the same
/// transaction, bumps its token version, so every session of the user (an attacker's
/// included) ends. An admin changes its own password with `POST /password`, which asks for
/// the current one: a stolen admin token alone cannot take over the admin's account.
pub async fn reset_password(
    store: &dyn crate::store::Store,
    hasher: &Arc<PasswordHasher>,
    caller: &Caller,
    id: &str,
    request: ResetPasswordRequest,
) -> Result<(), ApiError> {
    require_admin(caller)?;
    if !is_valid_user_id(id) {
        return Err(ApiError::NotFound);
    }
    if id == caller.sub {
        return Err(ApiError::Conflict(
            "change your own password with POST /password".into(),
        ));
    }
    let user = store.get_user(id).await?.ok_or(ApiError::NotFound)?;
    check_new_password(&request.new_password, &user.username)
        .map_err(|err| ApiError::BadRequest(format!("new_password: {err}")))?;
    let hasher = Arc::clone(hasher);
    let password = request.new_password;
    let password_hash = tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    store
        .set_password_hash(id, password_hash, PasswordWrite::Reset, caller.actor())
        .await?;
    // Whoever was guessing codes with the old password has it no more: the user's code
    // counter starts afresh.
    store
        .clear_login_failures(&crate::sessions::challenge::code_counter(id))
        .await?;
    tracing::info!(admin = %caller.sub, user = %id, "password reset; the user's tokens revoked");
    crate::audit::record(
        crate::audit::SecurityEvent::PasswordReset,
        Some(&caller.sub),
        Some(id),
    );
    Ok(())
}

/// `DELETE /users/{id}/mfa` (admins): removes a user's second factor (a lost phone with
/// no recovery code left) and ends every session of the user, as a password reset does:
/// whoever held one of them signs in again, with the password alone until the user enrols
/// again. An admin removes its own with `POST /mfa/totp/disable`, which asks for a code.
pub async fn reset_second_factor(
    store: &dyn crate::store::Store,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    require_admin(caller)?;
    if !is_valid_user_id(id) {
        return Err(ApiError::NotFound);
    }
    if id == caller.sub {
        return Err(ApiError::Conflict(
            "turn your own second factor off with POST /mfa/totp/disable".into(),
        ));
    }
    remove_second_factor(store, id, caller.actor()).await?;
    tracing::info!(admin = %caller.sub, user = %id, "second factor reset; the user's tokens revoked");
    crate::audit::record(
        crate::audit::SecurityEvent::SecondFactorReset,
        Some(&caller.sub),
        Some(id),
    );
    Ok(())
}

/// Removes user `id`'s second factor for `actor` (an admin's reset, the CLI's): its
/// sessions first (should the removal then fail, the user has lost sessions, not kept ones
/// a reset was meant to end), then the factor, then its code counter (someone guessing
/// with the password may have spent it: the next enrolment starts afresh).
pub async fn remove_second_factor(
    store: &dyn crate::store::Store,
    id: &str,
    actor: crate::store::Actor<'_>,
) -> Result<(), StoreError> {
    store.revoke_all_tokens(id, actor).await?;
    store.remove_factor(id, actor).await?;
    store
        .clear_login_failures(&crate::sessions::challenge::code_counter(id))
        .await
}

/// `DELETE /users/{id}` (admins). An admin cannot delete itself.
pub async fn delete_user(store: &dyn UserStore, caller: &Caller, id: &str) -> Result<(), ApiError> {
    require_admin(caller)?;
    if !is_valid_user_id(id) {
        return Err(ApiError::NotFound);
    }
    if id == caller.sub {
        return Err(ApiError::Conflict("an admin cannot delete itself".into()));
    }
    match store.delete_user(id, caller.actor()).await {
        Ok(()) => {
            tracing::info!(admin = %caller.sub, user = %id, "user deleted");
            crate::audit::record(
                crate::audit::SecurityEvent::UserDeleted,
                Some(&caller.sub),
                Some(id),
            );
            Ok(())
        }
        Err(StoreError::NotFound) => Err(ApiError::NotFound),
        Err(err) => Err(err.into()),
    }
}

/// What the users function needs, built once at cold start (its HTTP adapter is the users
/// function crate, as the login function's is around [`crate::sessions::login::LoginService`]).
pub struct UsersService {
    pub store: std::sync::Arc<dyn crate::store::Store>,
    pub cursors: crate::users::cursor::CursorCodec,
    /// Hashes the passwords of users created over the API.
    pub hasher: std::sync::Arc<crate::crypto::password::PasswordHasher>,
    pub clock: crate::startup::clock::Clock,
    /// CORS headers on every answer ([`crate::Config::cors`]).
    pub cors: crate::web::cors::Cors,
    /// The roles users may be given ([`crate::Config::roles`]).
    pub roles: crate::users::user::DeclaredRoles,
    /// The roles that must sign in with a second factor
    /// ([`crate::Config::second_factor_rule`]).
    pub second_factor_rule: crate::access::second_factor::SecondFactorRule,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_with_a_null_field_is_refused_and_an_absent_field_is_unchanged() {
        assert!(serde_json::from_str::<UpdateUserRequest>(r#"{"disabled": null}"#).is_err());
        assert!(
            serde_json::from_str::<UpdateUserRequest>(r#"{"role": null, "name": "x"}"#).is_err()
        );
        let update: UpdateUserRequest = serde_json::from_str(r#"{"name": "x"}"#).unwrap();
        assert_eq!(
            (update.name.as_deref(), update.role, update.disabled),
            (Some("x"), None, None)
        );
    }

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in [
            "0",
            "101",
            "abc",
            "",
            "-1",
            "1.5",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(parse_limit(Some(bad)), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }
}
