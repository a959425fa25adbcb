//! Turning the second factor on and off while signed in: `POST /mfa/totp` (with the
//! password: a new secret, pending), `POST /mfa/totp/confirm` (a first code turns it on and
//! answers the recovery codes once; every session ends) and `POST /mfa/totp/disable` (the
//! password, then a current code; every session ends).

use super::second_factor::{CodeCheck, check_code_length};
use super::*;
use crate::crypto::recovery_codes::NewRecoveryCodes;
use crate::crypto::totp::{self, TotpSecret};
use crate::sessions::challenge::code_counter;
use crate::store::second_factor::FactorState;

/// How long a started enrolment waits for its first code.
pub const ENROLMENT_TTL_SECS: u64 = 900;

/// `POST /mfa/totp`'s answer: the new secret, for the authenticator app. Shown this once.
#[derive(Serialize)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing in.
    pub secret: String,
    /// The same as a Key Uri Format URI, for a QR code.
    pub otpauth_uri: String,
    /// That URI as a QR code (an SVG document), for a page to show.
    pub qr_code_svg: String,
    /// Seconds left to confirm it with a first code.
    pub expires_in: u64,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// `POST /mfa/totp` body: the password, so that a stolen access token alone cannot put a
/// second factor of the thief's on the account.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartTotpRequest {
    pub password: SecretString,
}

pub const START_TOTP_BODY_SHAPE: &str = r#"a JSON object {"password": string}"#;

/// `POST /mfa/totp/confirm` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmTotpRequest {
    pub code: String,
}

pub const CONFIRM_TOTP_BODY_SHAPE: &str = r#"a JSON object {"code": string}"#;

/// `POST /mfa/totp/confirm`'s answer: the recovery codes, shown this once.
#[derive(Serialize)]
pub struct RecoveryCodesAnswer {
    pub recovery_codes: Vec<String>,
}

/// `POST /mfa/totp/disable` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableTotpRequest {
    pub password: SecretString,
    pub code: String,
}

pub const DISABLE_TOTP_BODY_SHAPE: &str = r#"a JSON object {"password": string, "code": string}"#;

impl LoginService {
    /// The label an authenticator app shows for our codes: the issuer's host when it is a
    /// URL, else the issuer itself.
    fn totp_label(&self) -> String {
        let issuer = self.issuer.issuer_name();
        issuer
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or(rest))
            .unwrap_or(issuer)
            .to_string()
    }
    /// Whether `password` is the caller's, in the blocking pool; `None` when the caller's
    /// user is gone or no longer this caller's (401).
    async fn caller_password_matches(
        &self,
        caller: &Caller,
        password: SecretString,
    ) -> Result<bool, ApiError> {
        let record = self
            .store
            .find_login(&caller.username)
            .await?
            .filter(|record| record.user.id == caller.sub)
            .ok_or(ApiError::Unauthorized)?;
        let hasher = Arc::clone(&self.hasher);
        tokio::task::spawn_blocking(move || {
            hasher.verify(&password, &record.password_hash).is_match()
        })
        .await
        .map_err(ApiError::internal)
    }

    /// `POST /mfa/totp`: with the password, a new secret, pending until confirmed
    /// (replacing a pending one); 409 while a second factor is on. Wrong passwords are
    /// throttled on the counter of `POST /password`, the other proof of the password a
    /// signed-in caller makes.
    pub async fn start_totp_enrolment(
        &self,
        caller: &Caller,
        request: StartTotpRequest,
        now: u64,
    ) -> Result<TotpEnrolment, ApiError> {
        if request.password.expose_secret().chars().count() > MAX_PASSWORD_CHARS {
            return Err(ApiError::BadRequest(format!(
                "password must be at most {MAX_PASSWORD_CHARS} characters"
            )));
        }
        let counter = password_change_counter(&caller.sub);
        self.count_password_attempt(&counter, now).await?;
        if !self
            .caller_password_matches(caller, request.password)
            .await?
        {
            self.store.record_refused_login(&counter, now).await?;
            return Err(ApiError::WrongPassword);
        }
        self.store.clear_login_failures(&counter).await?;
        let secret = TotpSecret::generate();
        let otpauth_uri = totp::otpauth_uri(&secret, &self.totp_label(), &caller.username);
        let qr_code_svg = totp::qr_code_svg(&otpauth_uri)
            .ok_or_else(|| ApiError::internal("the otpauth URI does not fit a QR code"))?;
        let sealed = self.second_factor.sealer.seal(&caller.sub, secret.expose());
        let started = self
            .store
            .start_enrolment(
                &caller.sub,
                &sealed,
                now.saturating_add(ENROLMENT_TTL_SECS),
                now,
                caller.actor(),
            )
            .await?;
        if !started {
            return Err(ApiError::Conflict(
                "a second factor is already on; to enrol again turn it off first (sign in with a code to do so)".into(),
            ));
        }
        tracing::info!(sub = %caller.sub, "second-factor enrolment started");
        Ok(TotpEnrolment {
            otpauth_uri,
            qr_code_svg,
            secret: secret.base32(),
            expires_in: ENROLMENT_TTL_SECS,
        })
    }

    /// `POST /mfa/totp/confirm`: the first code turns the pending factor on and answers
    /// the recovery codes (stored only as hashes).
    pub async fn confirm_totp(
        &self,
        caller: &Caller,
        request: ConfirmTotpRequest,
        now: u64,
    ) -> Result<RecoveryCodesAnswer, ApiError> {
        check_code_length(&request.code)?;
        let factor = self
            .store
            .second_factor(&caller.sub, now)
            .await?
            .filter(|factor| factor.state == FactorState::Pending)
            .ok_or_else(|| {
                ApiError::Conflict(
                    "no enrolment is waiting for a code: start one with POST /mfa/totp".into(),
                )
            })?;
        // Counted only once there is something to guess.
        let counter = code_counter(&caller.sub);
        self.count_code_attempt(&counter, CodeCheck::Uncapped, now)
            .await?;
        let secret = self.open_secret(&caller.sub, &factor)?;
        let Some(step) = secret.verify(request.code.trim(), now, None) else {
            return Err(self.refuse_code(&caller.sub, &counter, now).await);
        };
        let codes = NewRecoveryCodes::generate();
        // Every session of the user ends first, this one included: one begun with the
        // password alone (a thief's, say) must not outlive the second factor's arrival.
        // The caller signs in again, now in two steps. The write lands only while the caller
        // stands; the activation after it is then the operator's.
        self.store
            .revoke_all_tokens(&caller.sub, caller.actor())
            .await?;
        let activated = self
            .store
            .activate_factor(
                &caller.sub,
                &factor.sealed_secret,
                step,
                &codes.stored,
                now,
                Actor::Operator,
            )
            .await?;
        if !activated {
            return Err(ApiError::Conflict(
                "the enrolment changed meanwhile (restarted or lapsed): start again".into(),
            ));
        }
        self.store.clear_login_failures(&counter).await?;
        tracing::info!(sub = %caller.sub, "second factor turned on; the user's sessions ended");
        crate::audit::record(
            crate::audit::SecurityEvent::SecondFactorEnrolled,
            Some(&caller.sub),
            None,
        );
        Ok(RecoveryCodesAnswer {
            recovery_codes: codes.shown,
        })
    }

    /// `POST /mfa/totp/disable`: the password and a current code turn the factor off. The
    /// password is checked first, on the counter of `POST /password` (a wrong one is 403,
    /// as when enrolling), so an access token alone never reaches the code counter; then
    /// the code, on the code counter.
    pub async fn disable_totp(
        &self,
        caller: &Caller,
        request: DisableTotpRequest,
        now: u64,
    ) -> Result<(), ApiError> {
        check_code_length(&request.code)?;
        if request.password.expose_secret().chars().count() > MAX_PASSWORD_CHARS {
            return Err(ApiError::BadRequest(format!(
                "password must be at most {MAX_PASSWORD_CHARS} characters"
            )));
        }
        let factor = self
            .store
            .second_factor(&caller.sub, now)
            .await?
            .filter(|factor| factor.state == FactorState::Active)
            .ok_or_else(|| ApiError::Conflict("no second factor is on".into()))?;
        let password_counter = password_change_counter(&caller.sub);
        self.count_password_attempt(&password_counter, now).await?;
        if !self
            .caller_password_matches(caller, request.password)
            .await?
        {
            self.store
                .record_refused_login(&password_counter, now)
                .await?;
            return Err(ApiError::WrongPassword);
        }
        self.store.clear_login_failures(&password_counter).await?;
        let counter = code_counter(&caller.sub);
        self.count_code_attempt(&counter, CodeCheck::Capped, now)
            .await?;
        let accepted = match self.open_secret(&caller.sub, &factor)?.verify(
            request.code.trim(),
            now,
            factor.last_step,
        ) {
            Some(step) => {
                self.store
                    .spend_step(&caller.sub, &factor.sealed_secret, step)
                    .await?
            }
            None => false,
        };
        if !accepted {
            return Err(self.refuse_code(&caller.sub, &counter, now).await);
        }
        // Every session ends, this one too: tokens that say `otp` must not outlive the
        // factor (a role that requires one would otherwise keep its full reach without
        // it). The first write lands only while the caller stands; the removal after it is
        // then the operator's (should it fail, the factor stays on, the user signed out),
        // and the sessions are ended once more after it: a second step that landed in
        // between began a session that says `otp`.
        self.store
            .revoke_all_tokens(&caller.sub, caller.actor())
            .await?;
        self.store
            .remove_factor(&caller.sub, crate::store::Actor::Operator)
            .await?;
        self.store
            .revoke_all_tokens(&caller.sub, crate::store::Actor::Operator)
            .await?;
        self.store.clear_login_failures(&counter).await?;
        tracing::info!(sub = %caller.sub, "second factor turned off; every session ended");
        crate::audit::record(
            crate::audit::SecurityEvent::SecondFactorDisabled,
            Some(&caller.sub),
            None,
        );
        Ok(())
    }
}
