//! An in-memory [`UserStore`] for local runs and unit tests. It keeps the same contract as
//! the DynamoDB store (same ordering, same uniqueness, same errors) and passes the same
//! test suite.

use super::{LoginRecord, NewUser, PageKey, StoreError, UserPage, UserStore};
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
}

impl MemoryUserStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update; every update here is a
        // single insert, so the data is still consistent.
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
    async fn create_user(&self, new_user: NewUser, now: u64) -> Result<User, StoreError> {
        let mut state = self.write();
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
        let mut users: Vec<User> = range
            .take(limit.saturating_add(1))
            .filter_map(|(_, id)| state.by_id.get(id).map(|record| record.user.clone()))
            .collect();
        let next = if users.len() > limit {
            users.truncate(limit);
            users.last().map(PageKey::after)
        } else {
            None
        };
        Ok(UserPage { users, next })
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<User, StoreError> {
        let mut state = self.write();
        let record = state.by_id.get_mut(id).ok_or(StoreError::NotFound)?;
        record.user.disabled = disabled;
        Ok(record.user.clone())
    }

    async fn set_password_hash(
        &self,
        id: &str,
        password_hash: StoredHash,
    ) -> Result<(), StoreError> {
        let mut state = self.write();
        let record = state.by_id.get_mut(id).ok_or(StoreError::NotFound)?;
        record.password_hash = password_hash;
        Ok(())
    }
}
