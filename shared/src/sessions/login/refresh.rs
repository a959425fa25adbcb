//! `POST /token/refresh`: the refresh token rotates; a replay ends its session.

use super::*;

impl LoginService {
    /// `POST /token/refresh`: rotates the refresh token. Every refusal is recorded as
    /// `refresh/refused` (a reuse additionally as `refresh/reuse_detected`).
    pub async fn refresh(
        &self,
        request: RefreshRequest,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let result = self.rotate_refresh_token(request, now).await;
        if let Err(ApiError::InvalidRefreshToken | ApiError::SessionExpired) = &result {
            crate::audit::record(crate::audit::SecurityEvent::RefreshRefused, None, None);
        }
        result
    }

    async fn rotate_refresh_token(
        &self,
        request: RefreshRequest,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let presented = request.refresh_token.expose_secret();
        if presented.is_empty()
            || presented.len() > MAX_REFRESH_TOKEN_CHARS
            || !presented
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ApiError::InvalidRefreshToken);
        }
        let hash = refresh_token_hash(presented);
        let Some(record) = self.store.find_refresh_token(&hash).await? else {
            return Err(ApiError::InvalidRefreshToken);
        };
        let family_id = record.token.family_id.clone();
        if record.family_revoked {
            return Err(ApiError::InvalidRefreshToken);
        }
        if self.session_ends_at(record.token.session_started_at) <= now {
            tracing::info!(sid = %family_id, sub = %record.token.user_id, "refresh past the session's absolute lifetime refused");
            return Err(ApiError::SessionExpired);
        }
        if record.token.expires_at <= now {
            return Err(ApiError::InvalidRefreshToken);
        }
        if let Some(retired_at) = record.retired_at {
            if now.saturating_sub(retired_at) > REFRESH_REUSE_GRACE_SECS {
                self.store
                    .revoke_family(&family_id, now + self.refresh_ttl_secs)
                    .await?;
                tracing::warn!(sid = %family_id, sub = %record.token.user_id, "retired refresh token reused: session revoked");
                crate::audit::record(
                    crate::audit::SecurityEvent::RefreshReuseDetected,
                    Some(&record.token.user_id),
                    None,
                );
            }
            return Err(ApiError::InvalidRefreshToken);
        }
        // The user must still exist, be enabled, and not have revoked its tokens since.
        let user = self.store.get_user(&record.token.user_id).await?;
        let state = self
            .store
            .authorization_state(&record.token.user_id, "", &family_id)
            .await?;
        let (Some(user), Some(state)) = (user, state.user) else {
            return Err(ApiError::InvalidRefreshToken);
        };
        if user.disabled || state.token_version != record.token.token_version {
            self.store
                .revoke_family(&family_id, now + self.refresh_ttl_secs)
                .await?;
            return Err(ApiError::InvalidRefreshToken);
        }
        let session = Session {
            id: family_id,
            token_version: record.token.token_version,
            second_factor: record.token.second_factor,
        };
        let (refresh_token, successor) =
            self.new_refresh_token(&user, &session, record.token.session_started_at, now);
        let refresh_expires_at = successor.expires_at;
        match self
            .store
            .rotate_refresh_token(&hash, successor, now)
            .await?
        {
            Rotation::Rotated => {}
            Rotation::Refused => return Err(ApiError::InvalidRefreshToken),
        }
        let response =
            self.access_token_response(user, &session, refresh_token, refresh_expires_at, now)?;
        tracing::info!(sub = %response.user.id, sid = %session.id, "session refreshed");
        crate::audit::record(
            crate::audit::SecurityEvent::RefreshRotated,
            Some(&response.user.id),
            None,
        );
        Ok(response)
    }
}
