//! Where users live. One trait, two implementations that pass one test suite:
//! [`dynamodb::DynamoUserStore`] (production, DynamoDB Local in tests) and
//! [`memory::MemoryUserStore`] (local runs and fast unit tests).

pub mod dynamodb;
pub mod memory;

use crate::password::StoredHash;
use crate::user::{Role, User};
use serde::{Deserialize, Serialize};

/// A user to create. `username` is already normalised ([`crate::user::normalize_username`]).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub name: String,
    pub role: Role,
    pub password_hash: StoredHash,
}

/// What login needs: the user and its password hash. Only the store and the login use case
/// ever hold one; nothing serialises it.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub user: User,
    pub password_hash: StoredHash,
}

/// Where a page of the user list ends: users are listed in username order, and the next page
/// starts after this one. Both stores use the same key, so cursors are store-independent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageKey {
    #[serde(rename = "u")]
    pub username: String,
    #[serde(rename = "i")]
    pub id: String,
}

impl PageKey {
    pub fn after(user: &User) -> Self {
        Self {
            username: user.username.clone(),
            id: user.id.clone(),
        }
    }
}

/// One page of users, and where the next one starts (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next: Option<PageKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username already taken")]
    UsernameTaken,
    #[error("no such user")]
    NotFound,
    #[error("user store failure")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn backend(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Backend(err.into())
    }
}

impl From<StoreError> for crate::ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UsernameTaken => crate::ApiError::Conflict("username already taken".into()),
            StoreError::NotFound => crate::ApiError::NotFound,
            StoreError::Backend(source) => crate::ApiError::Internal(source),
        }
    }
}

/// The user store. Implementations must keep usernames unique under concurrent creates and
/// read logins with strong consistency.
#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user with a new random id; [`StoreError::UsernameTaken`] if the username
    /// exists (exactly one of several concurrent creates of one username succeeds).
    async fn create_user(&self, new_user: NewUser, now: u64) -> Result<User, StoreError>;

    /// The user with this id, if any.
    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// The user with this (normalised) username and its password hash: one strongly
    /// consistent read.
    async fn find_login(&self, username: &str) -> Result<Option<LoginRecord>, StoreError>;

    /// Up to `limit` users in username order, starting after `after`. `next` is `Some`
    /// only when another user follows, so there is never an empty last page.
    async fn list_users(
        &self,
        limit: usize,
        after: Option<&PageKey>,
    ) -> Result<UserPage, StoreError>;

    /// Disables or re-enables a user; [`StoreError::NotFound`] if there is none.
    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<User, StoreError>;

    /// Replaces a user's password hash (password reset, or a rehash after a parameter change).
    async fn set_password_hash(
        &self,
        id: &str,
        password_hash: StoredHash,
    ) -> Result<(), StoreError>;
}
