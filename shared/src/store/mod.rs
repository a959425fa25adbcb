//! Where users live. One trait, two implementations that pass one test suite:
//! [`dynamodb::DynamoUserStore`] (production, DynamoDB Local in tests) and
//! [`memory::MemoryUserStore`] (local runs and fast unit tests).

pub mod dynamodb;
pub mod memory;
pub mod second_factor;

use crate::crypto::keys::published::PublishedKeys;
use crate::crypto::password::StoredHash;
use crate::users::user::{Role, User};
use serde::{Deserialize, Serialize};

/// A user to create. `username` is already normalised ([`crate::users::user::normalize_username`]).
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
    /// The user's current token version (see [`UserStore::revoke_all_tokens`]); login puts
    /// it in the token's `ver` claim.
    pub token_version: u64,
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

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

impl UserChanges {
    /// Whether applying these changes to `current` revokes the user's tokens: its role or
    /// its access really changes. Setting a field to the value it already has revokes
    /// nothing (a client re-sending a whole form must not log the user out).
    pub fn revokes_tokens_of(&self, current: &User) -> bool {
        self.role.is_some_and(|role| role != current.role)
            || self
                .disabled
                .is_some_and(|disabled| disabled != current.disabled)
    }
}

/// A caller's current state, read in one strongly consistent round trip: what the
/// authorizer and every signed-in backend route check before acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationState {
    /// `None` when the user does not exist (deleted).
    pub user: Option<UserAuthState>,
    /// The access token's `jti` is on the deny-list (logged out).
    pub jti_revoked: bool,
    /// The token's session (refresh-token family) is revoked: logout, or reuse of a
    /// retired refresh token.
    pub session_revoked: bool,
}

/// How a password hash is replaced ([`UserStore::set_password_hash`]).
#[derive(Debug, Clone, Copy)]
pub enum PasswordWrite<'a> {
    /// The same password under stronger parameters (rehash at login): written only if the
    /// stored hash is still `previous`, so it can never undo a concurrent change or reset;
    /// the user's tokens stay valid.
    Rehash { previous: &'a StoredHash },
    /// The user changed it after proving `previous`: written only if the stored hash is
    /// still `previous`; bumps the token version in the same transaction, so every earlier
    /// access and refresh token of the user dies with the old password.
    Change { previous: &'a StoredHash },
    /// An admin set it: unconditional; bumps the token version like [`PasswordWrite::Change`].
    Reset,
}

impl PasswordWrite<'_> {
    pub fn revokes_tokens(&self) -> bool {
        !matches!(self, PasswordWrite::Rehash { .. })
    }

    pub fn previous(&self) -> Option<&StoredHash> {
        match self {
            PasswordWrite::Rehash { previous } | PasswordWrite::Change { previous } => {
                Some(previous)
            }
            PasswordWrite::Reset => None,
        }
    }
}

/// Who a write is made for, and so what must still hold of them when it lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// No signed-in caller stands behind the write: an operator's command (the CLI, with
    /// direct access to the table), seeding, or login's own rehash.
    Operator,
    /// A signed-in caller, as its access token and the re-check found it. The write lands
    /// only if, at the moment it lands (the same transaction, or the same lock), this still
    /// holds: the caller's user exists, is enabled, has this role and this token version,
    /// the token's `jti` is not on the deny-list and its session is not revoked. Otherwise
    /// nothing is written and the write fails with [`StoreError::CallerRevoked`]: a caller
    /// disabled, demoted or logged out while its request was in flight acts on nothing.
    Caller(StandingCaller<'a>),
}

impl Actor<'_> {
    /// What a write of user `id` that finds no such user fails with: a caller writing its
    /// own user, which is gone, no longer stands (401, as for any revoked caller); anyone
    /// else named a user that does not exist.
    pub fn no_such_user(self, id: &str) -> StoreError {
        match self {
            Actor::Caller(caller) if caller.id == id => StoreError::CallerRevoked,
            _ => StoreError::NotFound,
        }
    }
}

/// What an [`Actor::Caller`] must still be when its write lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandingCaller<'a> {
    pub id: &'a str,
    pub role: Role,
    pub token_version: u64,
    pub jti: &'a str,
    pub sid: &'a str,
}

impl StandingCaller<'_> {
    /// Whether a user record read under the write's own condition still speaks for this
    /// caller (used where the write changes the caller's own user item).
    pub fn is_stood_for_by(&self, user: &User, token_version: u64) -> bool {
        user.id == self.id
            && !user.disabled
            && user.role == self.role
            && token_version == self.token_version
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAuthState {
    pub role: Role,
    pub disabled: bool,
    pub token_version: u64,
}

/// A refresh token to store: only its hash, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    /// SHA-256 of the token, hex.
    pub hash: String,
    pub user_id: String,
    /// The login this token descends from; reuse of a retired token revokes the family.
    pub family_id: String,
    /// The user's token version when the family began.
    pub token_version: u64,
    /// When the family began (its login): the session's absolute lifetime counts from
    /// here, and every rotation carries it over.
    pub session_started_at: u64,
    pub created_at: u64,
    pub expires_at: u64,
    /// The family began with the second factor: its refreshed access tokens say so too.
    pub second_factor: bool,
}

/// A stored refresh token and the state of its family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token: NewRefreshToken,
    /// When it was rotated (then it is retired); `None` while active.
    pub retired_at: Option<u64>,
    /// The family was revoked (logout, or reuse detected).
    pub family_revoked: bool,
}

/// How a rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The old token is retired and the new one stored.
    Rotated,
    /// The old token was not active any more (already rotated, e.g. by a parallel request),
    /// or its family is revoked: nothing was written.
    Refused,
}

/// Login attempts of one username, as counted so far (see [`crate::sessions::lockout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginFailures {
    /// Attempts counted since the last successful login (or since the window restarted).
    pub count: u64,
    /// When the last one was counted (seconds since the epoch); 0 when there was none.
    pub last_failure_at: u64,
    /// Until when the username is locked (0: never locked).
    pub locked_until: u64,
    /// How many locks were set since the count started: the back-off level.
    pub locks: u64,
    /// When an attempt counted here was last refused for its credentials (0: never).
    pub last_refused_at: u64,
    /// Attempts refused for their credentials (checked, and wrong) since the count
    /// started: unlike `count`, never an attempt the lock turned away unchecked.
    pub refused: u64,
}

/// One page of users, and where the next one starts (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next: Option<PageKey>,
}

impl UserPage {
    /// The page of `limit` users from up to `limit + 1` read in order, one more than the
    /// page holds: if that one exists there is a next page, after the page's last user.
    /// (Both stores page this way, so they give the same pages, and a list whose size is a
    /// multiple of `limit` does not end with an empty page.)
    pub fn from_one_more(mut users: Vec<User>, limit: usize) -> Self {
        let next = if users.len() > limit {
            users.truncate(limit);
            users.last().map(PageKey::after)
        } else {
            None
        };
        Self { users, next }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username already taken")]
    UsernameTaken,
    #[error("no such user")]
    NotFound,
    /// A conditional password write found another hash than the one it was based on (a
    /// concurrent change or reset): nothing was written.
    #[error("the password was changed concurrently")]
    PasswordChanged,
    /// The [`Actor::Caller`] of a write no longer stands (disabled, demoted, deleted,
    /// logged out, its session or token version revoked) when the write would land:
    /// nothing was written. Answered like a revoked token: 401.
    #[error("the caller was revoked before the write landed")]
    CallerRevoked,
    /// The store is throttled, unreachable or failing on its side (DynamoDB throttling, a
    /// 5xx, a timeout, a refused connection): nothing was decided, a retry later may work.
    /// Answered 503 with `Retry-After`.
    #[error("user store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else: a bug or bad data. Answered with an opaque 500.
    #[error("user store failure")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn backend(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Backend(err.into())
    }

    pub fn unavailable(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Unavailable(err.into())
    }
}

impl From<StoreError> for crate::ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UsernameTaken => crate::ApiError::Conflict("username already taken".into()),
            StoreError::NotFound => crate::ApiError::NotFound,
            StoreError::PasswordChanged => crate::ApiError::Conflict(
                "the password was changed by another request; sign in again".into(),
            ),
            StoreError::CallerRevoked => {
                tracing::info!("write refused: its caller was revoked while it was in flight");
                crate::ApiError::Unauthorized
            }
            StoreError::Unavailable(source) => crate::ApiError::Unavailable(source),
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
    /// [`StoreError::CallerRevoked`] if `actor` no longer stands when it would land.
    async fn create_user(
        &self,
        new_user: NewUser,
        now: u64,
        actor: Actor<'_>,
    ) -> Result<User, StoreError>;

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

    /// Applies `changes` with optimistic locking (a concurrent change is re-read and
    /// re-applied, never lost). A change of `role` or `disabled` to another value also
    /// bumps the user's token version, which revokes every token issued before
    /// ([`UserChanges::revokes_tokens_of`]). [`StoreError::NotFound`] if none.
    /// [`StoreError::CallerRevoked`] if `actor` no longer stands when it would land.
    async fn update_user(
        &self,
        id: &str,
        changes: UserChanges,
        actor: Actor<'_>,
    ) -> Result<User, StoreError>;

    /// Disables or re-enables a user (revoking its tokens if that changes anything);
    /// [`StoreError::NotFound`] if there is none.
    async fn set_disabled(
        &self,
        id: &str,
        disabled: bool,
        actor: Actor<'_>,
    ) -> Result<User, StoreError> {
        self.update_user(
            id,
            UserChanges {
                disabled: Some(disabled),
                ..UserChanges::default()
            },
            actor,
        )
        .await
    }

    /// Deletes a user and frees its username; [`StoreError::NotFound`] if there is none,
    /// [`StoreError::CallerRevoked`] if `actor` no longer stands when it would land.
    async fn delete_user(&self, id: &str, actor: Actor<'_>) -> Result<(), StoreError>;

    /// "Log out everywhere": bumps the user's token version, so every access and refresh
    /// token issued before stops working. [`StoreError::NotFound`] if there is none,
    /// [`StoreError::CallerRevoked`] if `actor` no longer stands when it would land.
    async fn revoke_all_tokens(&self, id: &str, actor: Actor<'_>) -> Result<(), StoreError>;

    /// What the authorizer and the signed-in routes check, in one strongly consistent
    /// round trip (one BatchGetItem on DynamoDB): the user's state, whether this access
    /// token's `jti` is on the deny-list, and whether its session `sid` is revoked.
    async fn authorization_state(
        &self,
        id: &str,
        jti: &str,
        sid: &str,
    ) -> Result<AuthorizationState, StoreError>;

    /// Replaces a user's password hash as `write` says, and returns the user as it stands
    /// after the write with its token version (bumped for a change or a reset).
    /// [`StoreError::NotFound`] if there is no such user; [`StoreError::PasswordChanged`]
    /// if `write` names a previous hash that is no longer the stored one (nothing is
    /// written then); [`StoreError::CallerRevoked`] if `actor` no longer stands.
    async fn set_password_hash(
        &self,
        id: &str,
        password_hash: StoredHash,
        write: PasswordWrite<'_>,
        actor: Actor<'_>,
    ) -> Result<(User, u64), StoreError>;
}

/// Refresh tokens, the access-token deny-list and failed-login counters.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a refresh token (the first of a family at login, or a rotation's successor).
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError>;

    /// The refresh token with this hash and its family's state (strongly consistent).
    async fn find_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError>;

    /// Atomically retires `old_hash` (if it is still active, unexpired at `now`, of the
    /// successor's family, and that family is not revoked) and stores `successor`. Of several parallel rotations of one
    /// token exactly one gets [`Rotation::Rotated`].
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: NewRefreshToken,
        now: u64,
    ) -> Result<Rotation, StoreError>;

    /// Revokes every refresh token of a family (logout, or reuse of a retired token).
    async fn revoke_family(&self, family_id: &str, expires_at: u64) -> Result<(), StoreError>;

    /// Puts an access token's `jti` on the deny-list until `expires_at` (its `exp`).
    async fn revoke_access_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError>;

    /// Logout: in one atomic write, puts `caller.jti` on the deny-list until
    /// `jti_expires_at` and revokes the session `caller.sid` (until `session_expires_at`),
    /// only if the caller still stands ([`Actor::Caller`]): else
    /// [`StoreError::CallerRevoked`] and nothing is written. Never half done: a logout
    /// that failed can be sent again.
    async fn end_session(
        &self,
        caller: StandingCaller<'_>,
        jti_expires_at: u64,
        session_expires_at: u64,
    ) -> Result<(), StoreError>;

    /// Takes the lease `name` for `holder` (a value of the taker's own, e.g. random) until
    /// `until` if no one holds it at `now` (a lease past its `until` is free again, so a
    /// holder that crashed blocks no one for long). Of parallel callers exactly one gets
    /// `true`. What it guards must be cheap to refuse: the lease is taken before the
    /// expensive work, not after.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: u64,
        until: u64,
    ) -> Result<bool, StoreError>;

    /// Gives the lease `name` back before its time, if `holder` still holds it (a holder
    /// that outlived its lease never frees someone else's).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}

/// Failed-login counters (per username, known device, source address, and password
/// change), kept apart from sessions: they are the lockout's state, written before a
/// password is checked and settled by its verdict.
#[async_trait::async_trait]
pub trait LoginFailureStore: Send + Sync {
    /// Login attempts counted for `username` (normalised; counted for unknown names too).
    async fn login_failures(&self, username: &str) -> Result<LoginFailures, StoreError>;

    /// Counts a login attempt before its password is checked (a success then clears the
    /// count), atomically, never read-modify-write: N parallel calls add exactly N, so a
    /// burst of parallel guesses is counted before any of them is checked. A count whose
    /// last attempt is older than `window_secs` starts again from 1 (and unlocked).
    async fn count_login_attempt(
        &self,
        username: &str,
        now: u64,
        window_secs: u64,
    ) -> Result<LoginFailures, StoreError>;

    /// Sets the `seen_locks + 1`-th lock, until `locked_until`, if the username is not
    /// locked at `now` and no one else set a lock since `seen_locks` was read. Of parallel
    /// callers exactly one gets `true`.
    async fn lock_login(
        &self,
        username: &str,
        seen_locks: u64,
        now: u64,
        locked_until: u64,
    ) -> Result<bool, StoreError>;

    /// Forgets the attempts and locks of `username` (after a successful login).
    async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError>;

    /// Takes one attempt off the count of `counter` (never below zero), atomically: a
    /// per-source count, where every attempt is counted before its check and a success is
    /// then taken off again, so that only failures use up the source's limit.
    async fn uncount_login_attempt(&self, counter: &str) -> Result<(), StoreError>;

    /// Writes down that an attempt counted on `counter` was refused for its credentials
    /// (`last_refused_at`, and one more `refused`). A login's verdict is always a write, refused or not: a
    /// successful one stores its session, so a refused one writes this, and while the
    /// store fails both answer `503`: the answer never tells a right password from a
    /// wrong one. A counter that is gone (cleared, expired) stays gone.
    async fn record_refused_login(&self, counter: &str, now: u64) -> Result<(), StoreError>;
}

/// The public token keys, published by rotation for the verifiers (one item).
#[async_trait::async_trait]
pub trait PublicKeyStore: Send + Sync {
    /// The published set; `None` before the first rotation.
    async fn published_keys(&self) -> Result<Option<PublishedKeys>, StoreError>;

    /// Replaces the published set.
    async fn publish_keys(&self, keys: &PublishedKeys, now: u64) -> Result<(), StoreError>;
}

/// Everything the functions need from storage; both stores implement it.
pub trait Store:
    UserStore + SessionStore + LoginFailureStore + PublicKeyStore + SecondFactorStore
{
}

impl<T: UserStore + SessionStore + LoginFailureStore + PublicKeyStore + SecondFactorStore> Store
    for T
{
}

pub use second_factor::SecondFactorStore;
