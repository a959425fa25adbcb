//! Refresh tokens, their families and the access-token deny-list, in memory.

use super::*;

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
