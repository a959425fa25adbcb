//! `POST /login`: the source and username counters, the password check, a new session.

use super::*;
use crate::store::second_factor::FactorState;

/// Where a login attempt was counted, and the flag its verdict sets.
struct CountedAttempt<'a> {
    username: &'a str,
    /// The known device it came from, if it sent a valid device token.
    device: Option<&'a str>,
    /// The counter it was counted on: the username's, or the known device's.
    counter: &'a str,
    /// The source address's counter; none for a known device.
    source: Option<&'a str>,
    /// The counter as the attempt left it.
    failures: &'a crate::store::LoginFailures,
    /// Set once the verdict settles the counts, which are then never taken back.
    settled: &'a std::sync::atomic::AtomicBool,
}

impl LoginService {
    /// `POST /login` from `source_ip` (API Gateway's `requestContext.identity.sourceIp`).
    pub async fn login(
        &self,
        request: LoginRequest,
        source_ip: &str,
        now: u64,
    ) -> Result<LoginAnswer, ApiError> {
        // Shape checks answer 400; they depend only on the input, never on what is stored,
        // so they reveal nothing about which usernames exist.
        if request.username.trim().is_empty() || request.password.expose_secret().is_empty() {
            return Err(ApiError::BadRequest(
                "username and password must not be empty".into(),
            ));
        }
        if request.password.expose_secret().chars().count() > MAX_PASSWORD_CHARS {
            return Err(ApiError::BadRequest(format!(
                "password must be at most {MAX_PASSWORD_CHARS} characters"
            )));
        }
        let username = normalize_username(&request.username)
            .map_err(|reason| ApiError::BadRequest(reason.into()))?;
        // Spraying: an untrusted client's failures from one source, across usernames.
        // Checked before the username's counter, so a source past its limit touches no
        // username's count. A known device is not counted here: sharing an address (a
        // carrier NAT, an office) with an attacker must not lock it out. Without a device
        // token the source is counted while the credentials are read (one round trip for
        // both); a device token is only valid for the user as it stands, so it waits for
        // the read.
        let (record, source_attempt) = match &request.device_token {
            None => {
                let source = source_counter(source_ip, now);
                let (record, attempt) = tokio::join!(
                    self.store.find_login(&username),
                    self.store
                        .count_login_attempt(&source, now, SOURCE_WINDOW_SECS),
                );
                let record = match record {
                    Ok(record) => record,
                    Err(err) => {
                        // No verdict: the count is taken back (best effort), as below.
                        if attempt.is_ok() {
                            let _ = self.store.uncount_login_attempt(&source).await;
                        }
                        return Err(err.into());
                    }
                };
                (record, Some((source, attempt)))
            }
            Some(_) => (self.store.find_login(&username).await?, None),
        };
        let device = match (&request.device_token, &record) {
            (Some(token), Some(record)) => {
                self.devices
                    .verify(token.expose_secret(), &DeviceOwner::of(record), now)
            }
            _ => None,
        };
        let source_attempt = match (source_attempt, device.is_some()) {
            (Some((source, attempt)), _) => Some((source, attempt?)),
            (None, true) => None,
            // A device token that is not valid counts like none.
            (None, false) => {
                let source = source_counter(source_ip, now);
                let attempt = self
                    .store
                    .count_login_attempt(&source, now, SOURCE_WINDOW_SECS)
                    .await?;
                Some((source, attempt))
            }
        };
        let source = source_attempt.as_ref().map(|(source, _)| source.clone());
        if let Some((_, source_attempt)) = &source_attempt
            && source_attempt.count > self.source_failure_limit
        {
            tracing::info!(outcome = "source_limited", "login refused");
            crate::audit::record(crate::audit::SecurityEvent::LoginLocked, None, None);
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: source_window_left(now),
            });
        }

        // A known device is counted on its own; anyone else shares the username's counter.
        let counter = device
            .as_deref()
            .map_or_else(|| username.clone(), device_counter);
        let attempt = self
            .store
            .count_login_attempt(&counter, now, FAILURE_WINDOW_SECS)
            .await;
        let counted = [Some(counter.as_str()), source.as_deref()];
        // Set once the password was checked: the counts are then settled by the verdict
        // (cleared and un-counted on a success, kept on a refusal) and never taken back.
        let settled = std::sync::atomic::AtomicBool::new(false);
        let result = match attempt {
            Ok(attempt) => {
                let counted = CountedAttempt {
                    username: &username,
                    device: device.as_deref(),
                    counter: &counter,
                    source: source.as_deref(),
                    failures: &attempt,
                    settled: &settled,
                };
                self.check_counted_login(request.password, record, counted, now)
                    .await
            }
            Err(err) => Err(err.into()),
        };
        if let Err(ApiError::Unavailable(_)) = &result
            && !settled.load(std::sync::atomic::Ordering::SeqCst)
        {
            // The store failed after counting: no verdict reached the client, so the attempt
            // is taken back (best effort) rather than used up by a client retrying an outage.
            for counter in counted.into_iter().flatten() {
                let _ = self.store.uncount_login_attempt(counter).await;
            }
        }
        result
    }

    /// The rest of a login, once the attempt is counted on `counter` (and `source`).
    async fn check_counted_login(
        &self,
        password: SecretString,
        record: Option<LoginRecord>,
        counted: CountedAttempt<'_>,
        now: u64,
    ) -> Result<LoginAnswer, ApiError> {
        let CountedAttempt {
            username,
            device,
            counter,
            source,
            failures: attempt,
            settled,
        } = counted;
        if let Some(retry_after_secs) = throttle(self.store.as_ref(), counter, attempt, now).await?
        {
            tracing::info!(
                outcome = "locked",
                known_device = device.is_some(),
                "login refused"
            );
            let target = record.as_ref().map(|record| record.user.id.as_str());
            crate::audit::record(crate::audit::SecurityEvent::LoginLocked, target, None);
            return Err(ApiError::TooManyAttempts { retry_after_secs });
        }

        let known_user = record.as_ref().map(|record| record.user.id.clone());
        let hasher = Arc::clone(&self.hasher);
        // The user's second factor is read beside the password check, for every attempt
        // (a user id no one has when there is no user): the same work whether or not the
        // password is right and TOTP is on. It is only looked at once the password was.
        let factor_owner = known_user.clone().unwrap_or_else(|| "0".repeat(32));
        let (verified, factor) = tokio::join!(
            tokio::task::spawn_blocking(move || {
                let verification = match &record {
                    Some(record) => hasher.verify(&password, &record.password_hash),
                    None => hasher.verify_dummy(&password),
                };
                (record, verification, password)
            }),
            self.store.second_factor(&factor_owner, now),
        );
        let (record, verification, password) = verified.map_err(ApiError::internal)?;
        // A failed read is answered before the verdict, alike for a right and a wrong
        // password (the same 503 after the same round trips), and the attempt, whose
        // password was checked, stays counted.
        let factor = match factor {
            Ok(factor) => factor,
            Err(err) => {
                settled.store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(err.into());
            }
        };

        let (record, needs_rehash) = match (record, verification) {
            (Some(record), Verification::Match { needs_rehash }) if !record.user.disabled => {
                (record, needs_rehash)
            }
            _ => {
                tracing::info!(
                    outcome = "invalid_credentials",
                    known_device = device.is_some(),
                    "login refused"
                );
                crate::audit::record(
                    crate::audit::SecurityEvent::LoginFailed,
                    known_user.as_deref(),
                    None,
                );
                // The verdict is written, as a success's session is, and the counts stay
                // settled whatever that write does: while the store fails, a wrong password
                // gets the same 503, after the same one round trip, as a right one, and
                // its guess stays counted.
                settled.store(true, std::sync::atomic::Ordering::SeqCst);
                self.store.record_refused_login(counter, now).await?;
                return Err(ApiError::InvalidCredentials);
            }
        };
        if needs_rehash {
            self.upgrade_hash(&record.user.id, password, &record.password_hash)
                .await;
        }
        if factor.is_some_and(|factor| factor.state == FactorState::Active) {
            return self
                .require_second_factor(&record, device, counter, source, settled, now)
                .await;
        }
        let device_token = self.devices.issue(&DeviceOwner::of(&record), device, now);
        let LoginRecord {
            user,
            token_version,
            ..
        } = record;
        let session = Session::start(token_version);
        settled.store(true, std::sync::atomic::Ordering::SeqCst);
        // Clearing the counts and storing the session do not depend on each other: one
        // round trip. Only the counter this attempt used is cleared: a known device's
        // success does not reset the username's count, which an attacker may be running up.
        // (Should a clear fail, the stored session is never answered: unusable, it expires.)
        let (cleared, uncounted, issued) = tokio::join!(
            self.store.clear_login_failures(counter),
            async {
                match source {
                    Some(source) => self.store.uncount_login_attempt(source).await,
                    None => Ok(()),
                }
            },
            self.issue(user, &session, now, now),
        );
        cleared?;
        uncounted?;
        let mut response = issued?;
        response.device_token = Some(device_token);
        tracing::info!(sub = %response.user.id, sid = %session.id, known_device = device.is_some(), username, "login succeeded");
        crate::audit::record(
            crate::audit::SecurityEvent::LoginSucceeded,
            Some(&response.user.id),
            None,
        );
        Ok(LoginAnswer::Tokens(response))
    }

    /// The password was right and the user has a second factor: the password's counts are
    /// settled as for a success (the password was not guessed wrong), and the answer is a
    /// challenge for the second step instead of tokens. No session exists yet.
    async fn require_second_factor(
        &self,
        record: &LoginRecord,
        device: Option<&str>,
        counter: &str,
        source: Option<&str>,
        settled: &std::sync::atomic::AtomicBool,
        now: u64,
    ) -> Result<LoginAnswer, ApiError> {
        settled.store(true, std::sync::atomic::Ordering::SeqCst);
        let (cleared, uncounted) = tokio::join!(self.store.clear_login_failures(counter), async {
            match source {
                Some(source) => self.store.uncount_login_attempt(source).await,
                None => Ok(()),
            }
        },);
        cleared?;
        uncounted?;
        let (challenge, _) = self.second_factor.challenges.issue(record, device, now);
        tracing::info!(sub = %record.user.id, known_device = device.is_some(), "password accepted; second factor required");
        Ok(LoginAnswer::SecondFactorRequired(SecondFactorRequired {
            mfa_required: true,
            challenge,
            expires_in: crate::sessions::challenge::CHALLENGE_TTL_SECS,
            methods: ["totp", "recovery_code"],
        }))
    }
}
