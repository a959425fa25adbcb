//! Failed-login throttling per account (ASVS 6.1.1 / 6.3.1; OWASP Authentication Cheat
//! Sheet "Account Lockout").
//!
//! - Failures are counted per username (unknown usernames too, so both take the same path)
//!   with an atomic counter; failures older than [`FAILURE_WINDOW_SECS`] are forgotten.
//! - From the [`LOCK_THRESHOLD`]th failure on, the username is locked for
//!   `BASE_LOCK_SECS * 2^(failures - LOCK_THRESHOLD)` seconds after the last failure, capped
//!   at [`MAX_LOCK_SECS`]: 30 s, 60 s, 2 min, … 15 min.
//! - While locked every attempt, the right password included, gets the same 429 with
//!   `Retry-After`, without a password check and without counting: so attempts during a
//!   lock never extend it, and the lock always ends by itself within [`MAX_LOCK_SECS`] of the
//!   last counted failure. An attacker can keep an account throttled (one guess per lock
//!   period, about 100 a day at the cap) but never locked out for good.
//! - A successful login clears the count.

use crate::store::LoginFailures;

/// Failures before the first lock.
pub const LOCK_THRESHOLD: u64 = 5;
/// Length of the first lock.
pub const BASE_LOCK_SECS: u64 = 30;
/// Longest lock.
pub const MAX_LOCK_SECS: u64 = 15 * 60;
/// Failures older than this are forgotten (an hour, the ASVS 4 2.2.1 window).
pub const FAILURE_WINDOW_SECS: u64 = 3600;

/// How long a lock lasts after `failures` failures (0 below the threshold).
pub fn lock_secs(failures: u64) -> u64 {
    if failures < LOCK_THRESHOLD {
        return 0;
    }
    let doublings = (failures - LOCK_THRESHOLD).min(16) as u32;
    BASE_LOCK_SECS
        .saturating_mul(1 << doublings)
        .min(MAX_LOCK_SECS)
}

/// Seconds until the username may try again, if it is locked at `now`.
pub fn locked_for(failures: &LoginFailures, now: u64) -> Option<u64> {
    if failures.last_failure_at.saturating_add(FAILURE_WINDOW_SECS) < now {
        return None;
    }
    let until = failures
        .last_failure_at
        .saturating_add(lock_secs(failures.count));
    (until > now).then(|| until - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(count: u64, last_failure_at: u64) -> LoginFailures {
        LoginFailures {
            count,
            last_failure_at,
        }
    }

    #[test]
    fn the_lock_starts_at_the_threshold_and_doubles_up_to_the_cap() {
        assert_eq!(lock_secs(LOCK_THRESHOLD - 1), 0);
        assert_eq!(lock_secs(LOCK_THRESHOLD), 30);
        assert_eq!(lock_secs(LOCK_THRESHOLD + 1), 60);
        assert_eq!(lock_secs(LOCK_THRESHOLD + 2), 120);
        assert_eq!(lock_secs(LOCK_THRESHOLD + 10), MAX_LOCK_SECS);
        assert_eq!(lock_secs(u64::MAX), MAX_LOCK_SECS);
    }

    #[test]
    fn a_lock_ends_by_itself() {
        let now = 1_000_000;
        assert_eq!(locked_for(&failures(LOCK_THRESHOLD, now), now), Some(30));
        assert_eq!(
            locked_for(&failures(LOCK_THRESHOLD, now), now + 29),
            Some(1)
        );
        assert_eq!(locked_for(&failures(LOCK_THRESHOLD, now), now + 30), None);
        assert_eq!(locked_for(&failures(1000, now), now + MAX_LOCK_SECS), None);
    }

    #[test]
    fn fewer_failures_than_the_threshold_never_lock() {
        assert_eq!(locked_for(&failures(LOCK_THRESHOLD - 1, 100), 100), None);
        assert_eq!(locked_for(&LoginFailures::default(), 100), None);
    }
}
