//! The second factor (TOTP, [`crate::crypto::totp`]): its keys, how its codes are counted,
//! and sign-in's second step (`POST /login/mfa`: the first step's challenge with a code or
//! a recovery code). Turning it on and off is [`super::enrolment`].
//!
//! Codes are counted on their own lockout counter per user ([`code_counter`]) with the
//! password's back-off ([`crate::sessions::lockout`]): guessing codes neither uses up nor
//! is reset by the password's count. Each step's code is accepted once (the store spends
//! the step in the same write that accepts it), and each recovery code once.

use super::*;
use crate::crypto::recovery_codes;
use crate::crypto::sealing::Sealer;
use crate::crypto::secret::SigningSecret;
use crate::crypto::totp::TotpSecret;
use crate::sessions::challenge::{ChallengeTokens, code_counter};
use crate::sessions::device::device_counter;
use crate::store::second_factor::{FactorState, SecondFactor, SignInProof, SignInSpend};

/// Longest code or recovery code read (a recovery code with separators is 19).
const MAX_CODE_CHARS: usize = 64;

/// Wrong codes are remembered this long after the last one (the password's counts, an
/// hour): a guesser slowed to one code per lock period cannot wait for its count to be
/// forgotten.
pub const CODE_FAILURE_WINDOW_SECS: u64 = 30 * 86_400;
/// Wrong codes a counter may have checked without a success (NIST SP 800-63B §5.2.2: at
/// most 100 consecutive failed attempts): past it no code of an active factor is checked
/// on that counter, until a success elsewhere clears it (a recovery code, which is not
/// counted there), an admin's reset, a password change or reset, or 30 days without a
/// checked code. Attempts the lock turned away are not checked and do not count towards
/// it: reaching it takes a day of guessing at the lock's pace, as it was meant to bound.
pub const CODE_GUESS_CAP: u64 = 100;

/// How a code attempt is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CodeCheck {
    /// A code of an active factor (a sign-in's second step, turning it off): capped by
    /// [`CODE_GUESS_CAP`].
    Capped,
    /// An enrolment's first code: there are no recovery codes yet to go past a cap with.
    Uncapped,
}

/// The keys of the second factor, derived from the HMAC secret under their own labels:
/// the challenges' MAC key and the key that seals TOTP secrets at rest. Deriving keeps
/// one secret to hold and rotate in Secrets Manager; the labels keep each key to its purpose.
pub struct SecondFactorKeys {
    pub challenges: ChallengeTokens,
    pub sealer: Sealer,
}

impl SecondFactorKeys {
    pub fn new(secret: &SigningSecret) -> Self {
        let sealing = secret.derive("lambda-jwt-auth/totp-secret-sealing/v1");
        Self {
            challenges: ChallengeTokens::new(secret),
            sealer: Sealer::new(sealing.expose()).expect("HMAC-SHA256 gives a 256-bit key"),
        }
    }
}

/// `POST /login/mfa` body: the challenge and exactly one of a code or a recovery code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondStepRequest {
    pub challenge: SecretString,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub recovery_code: Option<SecretString>,
}

pub const SECOND_STEP_BODY_SHAPE: &str = r#"a JSON object {"challenge": string, "code": string} or {"challenge": string, "recovery_code": string}"#;

/// What the first step answers when the password was right and the user has a second
/// factor: no tokens, a challenge for the second step.
#[derive(Serialize)]
pub struct SecondFactorRequired {
    pub mfa_required: bool,
    pub challenge: String,
    pub expires_in: u64,
    /// What the second step takes.
    pub methods: [&'static str; 2],
}

impl std::fmt::Debug for SecondFactorRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactorRequired")
            .field("challenge", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// What `POST /login` answers on a right password.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LoginAnswer {
    Tokens(TokenResponse),
    SecondFactorRequired(SecondFactorRequired),
}

impl LoginAnswer {
    /// The tokens, when the sign-in is complete.
    pub fn tokens(self) -> Option<TokenResponse> {
        match self {
            LoginAnswer::Tokens(tokens) => Some(tokens),
            LoginAnswer::SecondFactorRequired(_) => None,
        }
    }
}

/// A second step's proof.
enum Proof {
    Code(String),
    RecoveryCode(SecretString),
}

/// A code as sent: 400 only for what no code could be (too long); anything else shaped
/// wrong is simply a wrong code, counted as one.
pub(super) fn check_code_length(code: &str) -> Result<(), ApiError> {
    if code.chars().count() > MAX_CODE_CHARS {
        return Err(ApiError::BadRequest(format!(
            "a code is at most {MAX_CODE_CHARS} characters"
        )));
    }
    Ok(())
}

impl LoginService {
    pub(super) fn open_secret(
        &self,
        user_id: &str,
        factor: &SecondFactor,
    ) -> Result<TotpSecret, ApiError> {
        self.second_factor
            .sealer
            .open(user_id, &factor.sealed_secret)
            .and_then(|bytes| TotpSecret::from_bytes(bytes.to_vec()))
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "the TOTP secret of user {user_id} does not open (another key, or altered)"
                ))
            })
    }

    /// Counts an attempt of the password on `counter`, refused (429) while it is locked.
    pub(super) async fn count_password_attempt(
        &self,
        counter: &str,
        now: u64,
    ) -> Result<(), ApiError> {
        let attempt = self
            .store
            .count_login_attempt(counter, now, FAILURE_WINDOW_SECS)
            .await?;
        self.refuse_while_locked(counter, &attempt, now).await
    }

    /// Counts a code attempt on `counter`: refused (429) while it is locked, and, when
    /// `Capped`, once [`CODE_GUESS_CAP`] wrong codes were checked on it. A capped attempt
    /// is refused before it is counted: it moves neither the count nor its window.
    pub(super) async fn count_code_attempt(
        &self,
        counter: &str,
        check: CodeCheck,
        now: u64,
    ) -> Result<(), ApiError> {
        if check == CodeCheck::Capped {
            let so_far = self.store.login_failures(counter).await?;
            let forgotten_at = so_far
                .last_failure_at
                .saturating_add(CODE_FAILURE_WINDOW_SECS);
            if so_far.refused >= CODE_GUESS_CAP && now <= forgotten_at {
                tracing::warn!(
                    outcome = "capped",
                    "second-factor code refused: too many wrong codes"
                );
                crate::audit::record(crate::audit::SecurityEvent::SecondFactorLocked, None, None);
                return Err(ApiError::CodesExhausted {
                    retry_after_secs: forgotten_at - now + 1,
                });
            }
        }
        let attempt = self
            .store
            .count_login_attempt(counter, now, CODE_FAILURE_WINDOW_SECS)
            .await?;
        self.refuse_while_locked(counter, &attempt, now).await
    }

    async fn refuse_while_locked(
        &self,
        counter: &str,
        attempt: &crate::store::LoginFailures,
        now: u64,
    ) -> Result<(), ApiError> {
        if let Some(retry_after_secs) = throttle(self.store.as_ref(), counter, attempt, now).await?
        {
            tracing::info!(outcome = "locked", "second-factor code refused");
            crate::audit::record(crate::audit::SecurityEvent::SecondFactorLocked, None, None);
            return Err(ApiError::TooManyAttempts { retry_after_secs });
        }
        Ok(())
    }

    /// A wrong code of user `user_id`: written down on its counter, and answered.
    pub(super) async fn refuse_code(&self, user_id: &str, counter: &str, now: u64) -> ApiError {
        tracing::info!(outcome = "invalid_code", "second-factor code refused");
        crate::audit::record(
            crate::audit::SecurityEvent::SecondFactorFailed,
            Some(user_id),
            None,
        );
        match self.store.record_refused_login(counter, now).await {
            Ok(()) => ApiError::InvalidCode,
            Err(err) => err.into(),
        }
    }

    /// `POST /login/mfa`: the first step's challenge and a code (or a recovery code)
    /// answer the token pair, as `POST /login` does without a second factor.
    pub async fn complete_sign_in(
        &self,
        request: SecondStepRequest,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let proof = match (request.code, request.recovery_code) {
            (Some(code), None) => {
                check_code_length(&code)?;
                Proof::Code(code)
            }
            (None, Some(recovery_code)) => {
                check_code_length(recovery_code.expose_secret())?;
                Proof::RecoveryCode(recovery_code)
            }
            _ => {
                return Err(ApiError::BadRequest(
                    "send exactly one of code and recovery_code".into(),
                ));
            }
        };
        let challenge = self
            .second_factor
            .challenges
            .verify(request.challenge.expose_secret(), now)
            .ok_or(ApiError::InvalidChallenge)?;
        // From a known device (its device token came with the first step), codes are counted
        // on the device's own counter, as passwords are: someone guessing codes elsewhere
        // cannot lock the user's own devices out of their second step.
        let counter = match &challenge.device {
            Some(device) => format!("mfa#{}", device_counter(device)),
            None => code_counter(&challenge.user_id),
        };
        // Codes are counted (and capped); recovery codes, 80 random bits each, are not: a
        // guesser holding the code counter's lock (or past its cap) cannot keep the user
        // from the way out they are for.
        if matches!(proof, Proof::Code(_)) {
            self.count_code_attempt(&counter, CodeCheck::Capped, now)
                .await?;
        }
        let (record, factor) = tokio::join!(
            self.store.find_login(&challenge.username),
            self.store.second_factor(&challenge.user_id, now),
        );
        // The user as the first step found it: a password reset, "log out everywhere",
        // disabling or deleting in between ends the challenge.
        let record = record?
            .filter(|record| {
                record.user.id == challenge.user_id
                    && record.token_version == challenge.token_version
                    && !record.user.disabled
            })
            .ok_or(ApiError::InvalidChallenge)?;
        let factor = factor?
            .filter(|factor| factor.state == FactorState::Active)
            .ok_or(ApiError::InvalidChallenge)?;
        // The proof as the store spends it, with the challenge, in one write; `None` for a
        // code or recovery code that is simply wrong.
        let recovery_index;
        let spend = match &proof {
            Proof::Code(code) => self
                .open_secret(&challenge.user_id, &factor)?
                .verify(code.trim(), now, factor.last_step)
                .map(|step| SignInProof::Step {
                    sealed_secret: &factor.sealed_secret,
                    step,
                }),
            Proof::RecoveryCode(typed) => {
                recovery_index =
                    recovery_codes::matching(typed.expose_secret(), &factor.recovery_codes);
                recovery_index.map(|index| SignInProof::RecoveryCode(&factor.recovery_codes[index]))
            }
        };
        let outcome = match spend {
            Some(spend) => {
                self.store
                    .spend_sign_in(&challenge.user_id, spend, &challenge.id, challenge.exp)
                    .await?
            }
            None => SignInSpend::ProofRefused,
        };
        match outcome {
            SignInSpend::Spent => {}
            SignInSpend::ChallengeUsed => return Err(ApiError::InvalidChallenge),
            SignInSpend::ProofRefused if matches!(proof, Proof::Code(_)) => {
                return Err(self.refuse_code(&challenge.user_id, &counter, now).await);
            }
            SignInSpend::ProofRefused => {
                tracing::info!(
                    outcome = "invalid_recovery_code",
                    "second-factor recovery code refused"
                );
                crate::audit::record(
                    crate::audit::SecurityEvent::SecondFactorFailed,
                    Some(&challenge.user_id),
                    None,
                );
                return Err(ApiError::InvalidCode);
            }
        }
        if matches!(proof, Proof::RecoveryCode(_)) {
            tracing::warn!(
                sub = %challenge.user_id,
                left = factor.recovery_codes.len() - 1,
                "recovery code used"
            );
            crate::audit::record(
                crate::audit::SecurityEvent::RecoveryCodeUsed,
                Some(&challenge.user_id),
                None,
            );
        }
        self.store.clear_login_failures(&counter).await?;
        let device_token =
            self.devices
                .issue(&DeviceOwner::of(&record), challenge.device.as_deref(), now);
        let session = Session::start_with_second_factor(record.token_version);
        let mut response = self.issue(record.user, &session, now, now).await?;
        response.device_token = Some(device_token);
        tracing::info!(sub = %response.user.id, sid = %session.id, "login succeeded with a second factor");
        crate::audit::record(
            crate::audit::SecurityEvent::LoginSucceeded,
            Some(&response.user.id),
            None,
        );
        Ok(response)
    }
}
