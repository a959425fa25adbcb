//! Users, their credentials and the caller re-check, in memory.

use super::*;

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
        state.second_factors.remove(id);
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
