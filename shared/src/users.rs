//! The user-reading use cases: `GET /users` and `GET /users/{id}`.

use crate::ApiError;
use crate::cursor::CursorCodec;
use crate::http::Caller;
use crate::policy::{ROUTES, is_allowed};
use crate::store::UserStore;
use crate::user::{Role, User, is_valid_user_id};
use serde::{Deserialize, Serialize};

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
    let route = ROUTES
        .iter()
        .find(|route| route.path == "/users/{id}")
        .ok_or_else(|| ApiError::internal("route table lacks /users/{id}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
