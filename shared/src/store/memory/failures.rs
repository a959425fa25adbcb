//! Login-failure counters, in memory.

use super::*;

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
            entry.refused += 1;
        }
        Ok(())
    }
}
