//! `POST /logout` and `POST /logout/all`.

use super::*;

impl LoginService {
    /// `POST /logout`: ends the caller's session (every access and refresh token of it) and
    /// its current access token. `caller` is the one [`crate::sessions::revocation::current_caller`]
    /// checked.
    pub async fn logout(&self, caller: &Caller, now: u64) -> Result<(), ApiError> {
        self.store
            .end_session(
                caller.standing(),
                deny_list_expiry(caller.exp, now),
                now + self.refresh_ttl_secs,
            )
            .await?;
        tracing::info!(sub = %caller.sub, sid = %caller.sid, "logged out");
        crate::audit::record(crate::audit::SecurityEvent::Logout, Some(&caller.sub), None);
        Ok(())
    }

    /// `POST /logout/all`: revokes every token issued to the caller before now.
    pub async fn logout_everywhere(&self, caller: &Caller, now: u64) -> Result<(), ApiError> {
        self.store
            .revoke_all_tokens(&caller.sub, caller.actor())
            .await?;
        self.store
            .revoke_access_token(&caller.jti, deny_list_expiry(caller.exp, now))
            .await?;
        tracing::info!(sub = %caller.sub, "logged out everywhere");
        crate::audit::record(
            crate::audit::SecurityEvent::LogoutEverywhere,
            Some(&caller.sub),
            None,
        );
        Ok(())
    }
}
