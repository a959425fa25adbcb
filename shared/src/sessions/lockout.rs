//! Failed-login throttling per account (ASVS 6.1.1 / 6.3.1; OWASP Authentication Cheat
//! Sheet "Account Lockout").
//!
//! - Every login attempt is counted per username (unknown usernames too, so both take the
//!   same path) with an atomic counter, *before* its password is checked: a burst of
//!   parallel guesses is counted before any of them is verified, so it cannot slip past the
//!   threshold. A success clears the count; counts older than [`FAILURE_WINDOW_SECS`] are
//!   forgotten.
//! - The first [`LOCK_THRESHOLD`] attempts are checked freely. The next one locks the
//!   username for [`BASE_LOCK_SECS`]; from then on one attempt per lock period is checked,
//!   and it starts the next, doubled lock: 30 s, 60 s, 2 min, … up to [`MAX_LOCK_SECS`].
//! - While locked every attempt, the right password included, gets the same 429 with
//!   `Retry-After`, without a password check and without extending the lock, so the lock
//!   always ends by itself. An attacker can keep a username throttled (about one guess per
//!   15 minutes at the cap) for clients without a device token; a user's known devices
//!   ([`crate::sessions::device`]) have counters of their own and are never locked by it.
//! - Failed logins are also counted per source address across usernames (password
//!   spraying): past the limit in a fixed [`SOURCE_WINDOW_SECS`] window the source gets
//!   429 until the window ends, without a password check. Every attempt is counted before
//!   its check (so a parallel burst cannot slip past the limit) and a success is taken off
//!   again, so only failures use up the limit.

use crate::store::{LoginFailures, Store};
use std::net::IpAddr;

/// Attempts checked freely before the first lock.
pub const LOCK_THRESHOLD: u64 = 5;
/// Length of the first lock.
pub const BASE_LOCK_SECS: u64 = 30;
/// Longest lock.
pub const MAX_LOCK_SECS: u64 = 15 * 60;
/// Attempts older than this are forgotten (an hour, the ASVS 4 2.2.1 window).
pub const FAILURE_WINDOW_SECS: u64 = 3600;

/// Default for `LOGIN_SOURCE_FAILURE_LIMIT`: failed logins per source per window.
pub const DEFAULT_SOURCE_FAILURE_LIMIT: u64 = 100;
/// The per-source window: fixed 15-minute windows.
pub const SOURCE_WINDOW_SECS: u64 = 15 * 60;

/// The counter of failed logins from `source_ip` in the window holding `now`. IPv6
/// addresses count per /64, which one client usually holds whole (counting per address
/// would give it 2^64 budgets); anything that is not an address counts as one "unknown"
/// source.
pub fn source_counter(source_ip: &str, now: u64) -> String {
    let source = match source_ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => "unknown".into(),
    };
    format!("source#{source}#{}", now / SOURCE_WINDOW_SECS)
}

/// Seconds until the per-source window holding `now` ends.
pub fn source_window_left(now: u64) -> u64 {
    SOURCE_WINDOW_SECS - now % SOURCE_WINDOW_SECS
}

/// Length of the `lock`-th lock (1-based): doubling from [`BASE_LOCK_SECS`] up to the cap.
pub fn lock_secs(lock: u64) -> u64 {
    let doublings = lock.saturating_sub(1).min(16) as u32;
    BASE_LOCK_SECS
        .saturating_mul(1 << doublings)
        .min(MAX_LOCK_SECS)
}

/// Decides whether the just-counted `attempt` may have its password checked. `Some(secs)`:
/// refuse it, the username is locked for that long.
pub async fn throttle(
    store: &dyn Store,
    username: &str,
    attempt: &LoginFailures,
    now: u64,
) -> Result<Option<u64>, crate::store::StoreError> {
    if attempt.count <= LOCK_THRESHOLD {
        return Ok(None);
    }
    if attempt.locked_until > now {
        return Ok(Some(attempt.locked_until - now));
    }
    // Past the threshold and not locked: the first lock starts now (and this attempt is
    // refused), or a lock has run out and this attempt is the one checked for this period
    // (and the next, longer lock starts). Of parallel attempts only one gets to do either.
    let locked_until = now + lock_secs(attempt.locks + 1);
    if store
        .lock_login(username, attempt.locks, now, locked_until)
        .await?
    {
        return Ok(if attempt.locks == 0 {
            Some(locked_until - now)
        } else {
            None
        });
    }
    let current = store.login_failures(username).await?;
    Ok(Some(current.locked_until.saturating_sub(now).max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_counted_per_address_per_window_and_ipv6_per_64() {
        let now = 1_900_000_000;
        assert_eq!(
            source_counter("203.0.113.7", now),
            format!("source#203.0.113.7#{}", now / SOURCE_WINDOW_SECS)
        );
        assert_eq!(
            source_counter("2001:db8:1:2:aaaa::1", now),
            source_counter("2001:db8:1:2:ffff:ffff:ffff:ffff", now)
        );
        assert_ne!(
            source_counter("2001:db8:1:2::1", now),
            source_counter("2001:db8:1:3::1", now)
        );
        assert_eq!(
            source_counter("::ffff:203.0.113.7", now),
            source_counter("203.0.113.7", now)
        );
        assert_eq!(
            source_counter("not an address#x", now),
            source_counter("", now),
            "no key injection"
        );
        let window_start = now - now % SOURCE_WINDOW_SECS;
        assert_ne!(
            source_counter("203.0.113.7", window_start - 1),
            source_counter("203.0.113.7", window_start)
        );
        assert_eq!(source_window_left(window_start), SOURCE_WINDOW_SECS);
        assert_eq!(source_window_left(window_start + SOURCE_WINDOW_SECS - 1), 1);
    }

    #[test]
    fn locks_double_from_the_base_up_to_the_cap() {
        assert_eq!(lock_secs(1), 30);
        assert_eq!(lock_secs(2), 60);
        assert_eq!(lock_secs(3), 120);
        assert_eq!(lock_secs(6), MAX_LOCK_SECS);
        assert_eq!(lock_secs(u64::MAX), MAX_LOCK_SECS);
    }
}
