//! "Now", as the adapters see it. Every rule takes `now` as an argument; the adapters
//! (function handlers, the local gateway) read it from a [`Clock`], so tests can move time
//! over HTTP too (a token past its `exp` behind a cached Allow, a session past its
//! absolute lifetime) without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds since the Unix epoch: the system clock, or one that a test sets and moves.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock (what the deployed functions use).
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock standing at `now` until [`Clock::advance`] or [`Clock::set`] moves it.
    /// Clones share the same time.
    pub fn manual(now: u64) -> Self {
        Self {
            manual: Some(Arc::new(AtomicU64::new(now))),
        }
    }

    pub fn now(&self) -> u64 {
        match &self.manual {
            Some(now) => now.load(Ordering::SeqCst),
            None => unix_now(),
        }
    }

    /// Moves a manual clock forward; the system clock cannot be moved (no effect).
    pub fn advance(&self, secs: u64) {
        if let Some(now) = &self.manual {
            now.fetch_add(secs, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock; the system clock cannot be set (no effect).
    pub fn set(&self, at: u64) {
        if let Some(now) = &self.manual {
            now.store(at, Ordering::SeqCst);
        }
    }
}

/// Seconds since the Unix epoch. Every rule that depends on time takes "now" as an argument
/// (so tests control time); only the adapters call this, or a [`Clock`].
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = Clock::manual(1_000);
        let shared = clock.clone();
        assert_eq!(clock.now(), 1_000);
        shared.advance(31);
        assert_eq!(clock.now(), 1_031);
        clock.set(5);
        assert_eq!(shared.now(), 5);
    }

    #[test]
    fn the_system_clock_is_now_and_ignores_moves() {
        let clock = Clock::system();
        clock.advance(1_000_000);
        assert!(clock.now().abs_diff(unix_now()) <= 1);
    }
}
