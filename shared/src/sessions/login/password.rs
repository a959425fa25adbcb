//! `POST /password`: the current password proven, one change per user at a time.

use super::*;

impl LoginService {
    /// `POST /password`: the caller proves its current password and sets a new one. Every
    /// earlier access and refresh token of the user dies; the answer is a fresh token pair
    /// for a new session. The proof goes through the login lockout: a wrong current password
    /// counts as a failed login of the caller's username.
    pub async fn change_password(
        &self,
        caller: &Caller,
        request: ChangePasswordRequest,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let current = request.current_password.expose_secret();
        if current.is_empty() || current.chars().count() > MAX_PASSWORD_CHARS {
            return Err(ApiError::BadRequest(format!(
                "current_password must be 1 to {MAX_PASSWORD_CHARS} characters"
            )));
        }
        check_new_password(&request.new_password, &caller.username)
            .map_err(|err| ApiError::BadRequest(format!("new_password: {err}")))?;
        // Said before any work: whether the current password is right or not, the caller
        // learns nothing it did not send.
        if request.new_password.expose_secret() == current {
            return Err(ApiError::BadRequest(
                "new_password must differ from current_password".into(),
            ));
        }

        // One change per user at a time, decided before any argon2 work and before its
        // attempt is counted: parallel changes with one token (each a verify and a hash)
        // would otherwise hold the login function's executions, which login and refresh
        // share, and use up the user's own guess budget.
        let lease = password_change_lease(&caller.sub);
        let holder = lease_holder();
        if !self
            .store
            .take_lease(&lease, &holder, now, now + PASSWORD_CHANGE_LEASE_SECS)
            .await?
        {
            return Err(ApiError::Conflict(
                "a password change of this user is already under way".into(),
            ));
        }
        let result = self.change_password_leased(caller, request, now).await;
        if let Err(err) = self.store.release_lease(&lease, &holder).await {
            // It ends by itself at its time.
            tracing::warn!(error = %crate::web::error::error_chain(&err), "password change lease not released");
        }
        result
    }

    /// The rest of [`Self::change_password`], under the user's lease.
    async fn change_password_leased(
        &self,
        caller: &Caller,
        request: ChangePasswordRequest,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        // Its own counter, keyed by the user id: guesses at the current password with a
        // stolen access token are throttled like logins, and an attacker who hammers
        // `/login` for the username cannot hold the signed-in user's password change shut.
        let counter = password_change_counter(&caller.sub);
        let attempt = self
            .store
            .count_login_attempt(&counter, now, FAILURE_WINDOW_SECS)
            .await?;
        if let Some(retry_after_secs) =
            throttle(self.store.as_ref(), &counter, &attempt, now).await?
        {
            tracing::info!(sub = %caller.sub, outcome = "locked", "password change refused");
            crate::audit::record(
                crate::audit::SecurityEvent::PasswordChangeRefused,
                Some(&caller.sub),
                None,
            );
            return Err(ApiError::TooManyAttempts { retry_after_secs });
        }
        // The credential item is keyed by username; it must still be the caller's.
        let Some(record) = self
            .store
            .find_login(&caller.username)
            .await?
            .filter(|record| record.user.id == caller.sub)
        else {
            return Err(ApiError::Unauthorized);
        };
        let hasher = Arc::clone(&self.hasher);
        let ChangePasswordRequest {
            current_password,
            new_password,
        } = request;
        let previous = record.password_hash.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            match hasher.verify(&current_password, &previous) {
                Verification::Match { .. } => hasher.hash(&new_password).map(Some),
                Verification::Mismatch => Ok(None),
            }
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        let Some(new_hash) = outcome else {
            tracing::info!(sub = %caller.sub, outcome = "wrong_password", "password change refused");
            crate::audit::record(
                crate::audit::SecurityEvent::PasswordChangeRefused,
                Some(&caller.sub),
                None,
            );
            // Written as a login's refusal is: an outage answers 503 to either password.
            self.store.record_refused_login(&counter, now).await?;
            return Err(ApiError::WrongPassword);
        };
        self.store.clear_login_failures(&counter).await?;
        let (user, token_version) = self
            .store
            .set_password_hash(
                &caller.sub,
                new_hash,
                PasswordWrite::Change {
                    previous: &record.password_hash,
                },
                caller.actor(),
            )
            .await?;
        // The user as written (a demotion or disable may have landed since it was read).
        if user.disabled {
            return Err(ApiError::Unauthorized);
        }
        // Whoever was guessing codes with the old password has it no more.
        self.store
            .clear_login_failures(&crate::sessions::challenge::code_counter(&caller.sub))
            .await?;
        // The new session was signed in to as the caller's was: with its second factor
        // or without.
        let session = Session {
            second_factor: caller.second_factor,
            ..Session::start(token_version)
        };
        let device_token = self.devices.issue(
            &DeviceOwner {
                username: &user.username,
                user_id: &user.id,
                token_version,
            },
            None,
            now,
        );
        let mut response = self.issue(user, &session, now, now).await?;
        response.device_token = Some(device_token);
        tracing::info!(sub = %caller.sub, sid = %session.id, "password changed; earlier tokens revoked");
        crate::audit::record(
            crate::audit::SecurityEvent::PasswordChanged,
            Some(&caller.sub),
            None,
        );
        Ok(response)
    }
}
