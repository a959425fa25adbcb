//! An in-memory store (every trait of [`super::Store`]) for local runs and unit tests. It keeps
//! the same contract as the DynamoDB store (same ordering, same uniqueness, same errors,
//! same atomicity) and passes the same test suite.

use super::{
    Actor, AuthorizationState, LoginFailureStore, LoginFailures, LoginRecord, NewRefreshToken,
    NewUser, PageKey, PasswordWrite, RefreshTokenRecord, Rotation, SessionStore, StandingCaller,
    StoreError, UserAuthState, UserChanges, UserPage, UserStore,
};
use crate::password::StoredHash;
use crate::user::{User, new_user_id};
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

#[derive(Default)]
pub struct MemoryUserStore {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    by_id: HashMap<String, LoginRecord>,
    /// username -> id, ordered like the DynamoDB `by-kind` index.
    by_username: BTreeMap<String, String>,
    /// refresh-token hash -> (token, retired_at)
    refresh_tokens: HashMap<String, (NewRefreshToken, Option<u64>)>,
    /// family id -> expires_at
    revoked_families: HashMap<String, u64>,
    /// jti -> expires_at
    revoked_jtis: HashMap<String, u64>,
    login_failures: HashMap<String, LoginFailures>,
    /// lease name -> (holder, held until)
    leases: HashMap<String, (String, u64)>,
    published_keys: Option<crate::keys::published::PublishedKeys>,
}

impl State {
    /// Checks `actor` under the same write lock as the write it guards, so nothing can
    /// revoke the caller between this check and the write.
    fn check(&self, actor: Actor<'_>) -> Result<(), StoreError> {
        match actor {
            Actor::Operator => Ok(()),
            Actor::Caller(caller) if self.stands(&caller) => Ok(()),
            Actor::Caller(_) => Err(StoreError::CallerRevoked),
        }
    }

    fn stands(&self, caller: &StandingCaller<'_>) -> bool {
        self.by_id
            .get(caller.id)
            .is_some_and(|record| caller.is_stood_for_by(&record.user, record.token_version))
            && !self.revoked_jtis.contains_key(caller.jti)
            && !self.revoked_families.contains_key(caller.sid)
    }
}

impl MemoryUserStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update; every update here is a
        // few inserts with no await in between, so the data is still consistent.
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl UserStore for MemoryUserStore {
    async fn create_user(
        &self,
        new_user: NewUser,
        now: u64,
        actor: Actor<'_>,
    ) -> Result<User, StoreError> {
        let mut state = self.write();
        state.check(actor)?;
        if state.by_username.contains_key(&new_user.username) {
            return Err(StoreError::UsernameTaken);
        }
        let user = User {
            id: new_user_id(),
            username: new_user.username,
            name: new_user.name,
            role: new_user.role,
            disabled: false,
            created_at: now,
        };
        state
            .by_username
            .insert(user.username.clone(), user.id.clone());
        state.by_id.insert(
            user.id.clone(),
            LoginRecord {
                user: user.clone(),
                password_hash: new_user.password_hash,
                token_version: 0,
            },
        );
        Ok(user)
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.read().by_id.get(id).map(|record| record.user.clone()))
    }

    async fn find_login(&self, username: &str) -> Result<Option<LoginRecord>, StoreError> {
        let state = self.read();
        Ok(state
            .by_username
            .get(username)
            .and_then(|id| state.by_id.get(id))
            .cloned())
    }

    async fn list_users(
        &self,
        limit: usize,
        after: Option<&PageKey>,
    ) -> Result<UserPage, StoreError> {
        let state = self.read();
        let range = match after {
            Some(key) => state.by_username.range::<String, _>((
                std::ops::Bound::Excluded(&key.username),
                std::ops::Bound::Unbounded,
            )),
            None => state.by_username.range::<String, _>(..),
        };
        let users: Vec<User> = range
            .take(limit.saturating_add(1))
            .filter_map(|(_, id)| state.by_id.get(id).map(|record| record.user.clone()))
            .collect();
        Ok(UserPage::from_one_more(users, limit))
    }

    async fn update_user(
        &self,
        id: &str,
        changes: UserChanges,
        actor: Actor<'_>,
    ) -> Result<User, StoreError> {
        let mut state = self.write();
        if !state.by_id.contains_key(id) {
            return Err(actor.no_such_user(id));
        }
        state.check(actor)?;
        let record = state.by_id.get_mut(id).ok_or(StoreError::NotFound)?;
        if changes.revokes_tokens_of(&record.user) {
            record.token_version += 1;
        }
        if let Some(name) = changes.name {
            record.user.name = name;
        }
        if let Some(role) = changes.role {
            record.user.role = role;
        }
        if let Some(disabled) = changes.disabled {
            record.user.disabled = disabled;
        }
        Ok(record.user.clone())
    }

    async fn delete_user(&self, id: &str, actor: Actor<'_>) -> Result<(), StoreError> {
        let mut state = self.write();
        if !state.by_id.contains_key(id) {
            return Err(actor.no_such_user(id));
        }
        state.check(actor)?;
        let record = state.by_id.remove(id).ok_or(StoreError::NotFound)?;
        state.by_username.remove(&record.user.username);
        Ok(())
    }

    async fn revoke_all_tokens(&self, id: &str, actor: Actor<'_>) -> Result<(), StoreError> {
        let mut state = self.write();
        if !state.by_id.contains_key(id) {
            return Err(actor.no_such_user(id));
        }
        state.check(actor)?;
        let record = state.by_id.get_mut(id).ok_or(StoreError::NotFound)?;
        record.token_version += 1;
        Ok(())
    }

    async fn authorization_state(
        &self,
        id: &str,
        jti: &str,
        sid: &str,
    ) -> Result<AuthorizationState, StoreError> {
        let state = self.read();
        Ok(AuthorizationState {
            user: state.by_id.get(id).map(|record| UserAuthState {
                role: record.user.role,
                disabled: record.user.disabled,
                token_version: record.token_version,
            }),
            jti_revoked: state.revoked_jtis.contains_key(jti),
            session_revoked: state.revoked_families.contains_key(sid),
        })
    }

    async fn set_password_hash(
        &self,
        id: &str,
        password_hash: StoredHash,
        write: PasswordWrite<'_>,
        actor: Actor<'_>,
    ) -> Result<(User, u64), StoreError> {
        let mut state = self.write();
        if !state.by_id.contains_key(id) {
            return Err(actor.no_such_user(id));
        }
        state.check(actor)?;
        let record = state.by_id.get_mut(id).ok_or(StoreError::NotFound)?;
        if write
            .previous()
            .is_some_and(|previous| *previous != record.password_hash)
        {
            return Err(StoreError::PasswordChanged);
        }
        record.password_hash = password_hash;
        if write.revokes_tokens() {
            record.token_version += 1;
        }
        Ok((record.user.clone(), record.token_version))
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryUserStore {
    async fn create_refresh_token(&self, token: NewRefreshToken) -> Result<(), StoreError> {
        let mut state = self.write();
        if state.refresh_tokens.contains_key(&token.hash) {
            return Err(StoreError::backend("refresh token hash collision"));
        }
        state
            .refresh_tokens
            .insert(token.hash.clone(), (token, None));
        Ok(())
    }

    async fn find_refresh_token(
        &self,
        hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let state = self.read();
        Ok(state
            .refresh_tokens
            .get(hash)
            .map(|(token, retired_at)| RefreshTokenRecord {
                family_revoked: state.revoked_families.contains_key(&token.family_id),
                token: token.clone(),
                retired_at: *retired_at,
            }))
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        successor: NewRefreshToken,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let mut state = self.write();
        let usable = match state.refresh_tokens.get(old_hash) {
            Some((token, None)) => {
                token.expires_at > now
                    && token.family_id == successor.family_id
                    && !state.revoked_families.contains_key(&token.family_id)
            }
            _ => false,
        };
        if !usable || state.refresh_tokens.contains_key(&successor.hash) {
            return Ok(Rotation::Refused);
        }
        if let Some((_, retired_at)) = state.refresh_tokens.get_mut(old_hash) {
            *retired_at = Some(now);
        }
        state
            .refresh_tokens
            .insert(successor.hash.clone(), (successor, None));
        Ok(Rotation::Rotated)
    }

    async fn revoke_family(&self, family_id: &str, expires_at: u64) -> Result<(), StoreError> {
        let mut state = self.write();
        let kept_until = state
            .revoked_families
            .entry(family_id.to_string())
            .or_insert(expires_at);
        *kept_until = (*kept_until).max(expires_at);
        Ok(())
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: u64) -> Result<(), StoreError> {
        self.write()
            .revoked_jtis
            .insert(jti.to_string(), expires_at);
        Ok(())
    }

    async fn end_session(
        &self,
        caller: StandingCaller<'_>,
        jti_expires_at: u64,
        session_expires_at: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.write();
        state.check(Actor::Caller(caller))?;
        state
            .revoked_jtis
            .insert(caller.jti.to_string(), jti_expires_at);
        state
            .revoked_families
            .insert(caller.sid.to_string(), session_expires_at);
        Ok(())
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: u64,
        until: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.write();
        match state.leases.get(name) {
            Some((_, held_until)) if *held_until > now => Ok(false),
            _ => {
                state
                    .leases
                    .insert(name.to_string(), (holder.to_string(), until));
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut state = self.write();
        if state
            .leases
            .get(name)
            .is_some_and(|(held_by, _)| held_by == holder)
        {
            state.leases.remove(name);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl LoginFailureStore for MemoryUserStore {
    async fn login_failures(&self, username: &str) -> Result<LoginFailures, StoreError> {
        Ok(self
            .read()
            .login_failures
            .get(username)
            .copied()
            .unwrap_or_default())
    }

    async fn count_login_attempt(
        &self,
        username: &str,
        now: u64,
        window_secs: u64,
    ) -> Result<LoginFailures, StoreError> {
        let mut state = self.write();
        let entry = state
            .login_failures
            .entry(username.to_string())
            .or_default();
        if entry.count > 0 && entry.last_failure_at.saturating_add(window_secs) < now {
            *entry = LoginFailures::default();
        }
        entry.count += 1;
        entry.last_failure_at = now;
        Ok(*entry)
    }

    async fn lock_login(
        &self,
        username: &str,
        seen_locks: u64,
        now: u64,
        locked_until: u64,
    ) -> Result<bool, StoreError> {
        let mut state = self.write();
        match state.login_failures.get_mut(username) {
            Some(entry) if entry.locks == seen_locks && entry.locked_until <= now => {
                entry.locks += 1;
                entry.locked_until = locked_until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError> {
        self.write().login_failures.remove(username);
        Ok(())
    }

    async fn uncount_login_attempt(&self, counter: &str) -> Result<(), StoreError> {
        if let Some(entry) = self.write().login_failures.get_mut(counter) {
            entry.count = entry.count.saturating_sub(1);
        }
        Ok(())
    }

    async fn record_refused_login(&self, counter: &str, now: u64) -> Result<(), StoreError> {
        if let Some(entry) = self.write().login_failures.get_mut(counter) {
            entry.last_refused_at = now;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl super::PublicKeyStore for MemoryUserStore {
    async fn published_keys(
        &self,
    ) -> Result<Option<crate::keys::published::PublishedKeys>, StoreError> {
        Ok(self.read().published_keys.clone())
    }

    async fn publish_keys(
        &self,
        keys: &crate::keys::published::PublishedKeys,
        _now: u64,
    ) -> Result<(), StoreError> {
        self.write().published_keys = Some(keys.clone());
        Ok(())
    }
}
