//! Failed-login counters: counts, windows, locks, refusals, uncounting.

use super::*;

pub(super) async fn parallel_login_failures_are_all_counted(subject: Subject) {
    const FAILURES: u64 = 20;

    let tasks: Vec<_> = (0..FAILURES)
        .map(|_| {
            let store = Arc::clone(&subject.store);
            tokio::spawn(async move { store.count_login_attempt("wendy", NOW, WINDOW).await })
        })
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        let failures = task
            .await
            .expect("task finished")
            .expect("failure recorded");
        assert_eq!(failures.last_failure_at, NOW);
        counts.push(failures.count);
    }

    // Each call saw its own count: atomic increments, not read-modify-write.
    counts.sort_unstable();
    assert_eq!(counts, (1..=FAILURES).collect::<Vec<_>>());
    assert_eq!(
        subject.store.login_failures("wendy").await.unwrap(),
        LoginFailures {
            count: FAILURES,
            last_failure_at: NOW,
            ..LoginFailures::default()
        }
    );
    if let Some(raw) = &subject.raw {
        let item = raw.item("FAILURES#wendy").await.expect("failures item");
        assert_eq!(number(&item, "count"), FAILURES);
        assert_eq!(number(&item, "expires_at"), NOW + WINDOW, "expires by TTL");
        assert!(!item.contains_key("kind"), "{item:?}");
    }
}

pub(super) async fn a_login_failure_after_the_window_starts_the_count_again_from_one(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    assert_eq!(
        store.login_failures("xavier").await.unwrap(),
        LoginFailures::default()
    );
    for expected in 1..=3 {
        let failures = store
            .count_login_attempt("xavier", NOW, WINDOW)
            .await
            .unwrap();
        assert_eq!(failures.count, expected);
    }

    // Exactly one window after the last failure it still counts...
    let at_edge = store
        .count_login_attempt("xavier", NOW + WINDOW, WINDOW)
        .await
        .unwrap();
    assert_eq!(
        at_edge,
        LoginFailures {
            count: 4,
            last_failure_at: NOW + WINDOW,
            ..LoginFailures::default()
        }
    );
    // ...one second later it is forgotten.
    let later = NOW + 2 * WINDOW + 1;
    let restarted = store
        .count_login_attempt("xavier", later, WINDOW)
        .await
        .unwrap();
    assert_eq!(
        restarted,
        LoginFailures {
            count: 1,
            last_failure_at: later,
            ..LoginFailures::default()
        }
    );
    assert_eq!(store.login_failures("xavier").await.unwrap(), restarted);
    let next = store
        .count_login_attempt("xavier", later + 1, WINDOW)
        .await
        .unwrap();
    assert_eq!(next.count, 2);
    if let Some(raw) = &subject.raw {
        let item = raw.item("FAILURES#xavier").await.expect("failures item");
        assert_eq!(number(&item, "expires_at"), later + 1 + WINDOW);
    }
}

pub(super) async fn parallel_login_failures_after_the_window_restart_the_count_once(
    subject: Subject,
) {
    const FAILURES: u64 = 10;
    for _ in 0..5 {
        subject
            .store
            .count_login_attempt("yvonne", NOW, WINDOW)
            .await
            .unwrap();
    }

    // All of these find a stale count; one of them resets it and the others add to it.
    let later = NOW + 10 * WINDOW;
    let tasks: Vec<_> = (0..FAILURES)
        .map(|_| {
            let store = Arc::clone(&subject.store);
            tokio::spawn(async move { store.count_login_attempt("yvonne", later, WINDOW).await })
        })
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.expect("task finished").unwrap().count);
    }

    counts.sort_unstable();
    assert_eq!(counts, (1..=FAILURES).collect::<Vec<_>>());
    assert_eq!(
        subject.store.login_failures("yvonne").await.unwrap(),
        LoginFailures {
            count: FAILURES,
            last_failure_at: later,
            ..LoginFailures::default()
        }
    );
}

pub(super) async fn clearing_login_failures_resets_the_count_to_zero(subject: Subject) {
    let store = subject.store.as_ref();
    store.count_login_attempt("zoe", NOW, WINDOW).await.unwrap();
    store.count_login_attempt("zoe", NOW, WINDOW).await.unwrap();

    store.clear_login_failures("zoe").await.expect("cleared");

    assert_eq!(
        store.login_failures("zoe").await.unwrap(),
        LoginFailures::default()
    );
    assert_eq!(
        store
            .count_login_attempt("zoe", NOW + 1, WINDOW)
            .await
            .unwrap(),
        LoginFailures {
            count: 1,
            last_failure_at: NOW + 1,
            ..LoginFailures::default()
        }
    );
    // Clearing a name without failures is fine too.
    store
        .clear_login_failures("nobody")
        .await
        .expect("cleared nothing");
    if let Some(raw) = &subject.raw {
        store.clear_login_failures("zoe").await.unwrap();
        assert_eq!(raw.item("FAILURES#zoe").await, None);
    }
}

pub(super) async fn login_failures_are_counted_per_username(subject: Subject) {
    let store = subject.store.as_ref();
    for _ in 0..3 {
        store.count_login_attempt("amy", NOW, WINDOW).await.unwrap();
    }
    store
        .count_login_attempt("amy@example.com", NOW + 5, WINDOW)
        .await
        .unwrap();

    assert_eq!(store.login_failures("amy").await.unwrap().count, 3);
    assert_eq!(
        store.login_failures("amy@example.com").await.unwrap(),
        LoginFailures {
            count: 1,
            last_failure_at: NOW + 5,
            ..LoginFailures::default()
        }
    );
    assert_eq!(store.login_failures("AMY").await.unwrap().count, 0);

    store.clear_login_failures("amy").await.unwrap();
    assert_eq!(store.login_failures("amy").await.unwrap().count, 0);
    assert_eq!(
        store.login_failures("amy@example.com").await.unwrap().count,
        1
    );
}

pub(super) async fn a_login_lock_is_set_once_holds_and_then_allows_the_next_level(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    assert!(
        !store.lock_login("lena", 0, NOW, NOW + 30).await.unwrap(),
        "nothing counted yet"
    );
    store
        .count_login_attempt("lena", NOW, WINDOW)
        .await
        .unwrap();
    assert!(store.lock_login("lena", 0, NOW, NOW + 30).await.unwrap());
    assert!(
        !store.lock_login("lena", 0, NOW, NOW + 30).await.unwrap(),
        "already set once"
    );
    assert!(
        !store
            .lock_login("lena", 1, NOW + 29, NOW + 89)
            .await
            .unwrap(),
        "still locked"
    );
    let state = store.login_failures("lena").await.unwrap();
    assert_eq!((state.locked_until, state.locks), (NOW + 30, 1));
    assert!(
        store
            .lock_login("lena", 1, NOW + 30, NOW + 90)
            .await
            .unwrap(),
        "expired: next level"
    );
    let state = store.login_failures("lena").await.unwrap();
    assert_eq!(
        (state.count, state.locked_until, state.locks),
        (1, NOW + 90, 2)
    );
    let counted = store
        .count_login_attempt("lena", NOW + 31, WINDOW)
        .await
        .unwrap();
    assert_eq!(
        (counted.count, counted.locked_until, counted.locks),
        (2, NOW + 90, 2),
        "counting keeps the lock"
    );
}

pub(super) async fn parallel_lock_attempts_have_exactly_one_winner(subject: Subject) {
    subject
        .store
        .count_login_attempt("mona", NOW, WINDOW)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&subject.store);
            tokio::spawn(async move { store.lock_login("mona", 0, NOW, NOW + 30).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(subject.store.login_failures("mona").await.unwrap().locks, 1);
}

pub(super) async fn a_stale_count_restarts_unlocked_and_clearing_removes_the_lock(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    store
        .count_login_attempt("nina", NOW, WINDOW)
        .await
        .unwrap();
    assert!(store.lock_login("nina", 0, NOW, NOW + 30).await.unwrap());
    let later = NOW + WINDOW + 1;
    assert_eq!(
        store
            .count_login_attempt("nina", later, WINDOW)
            .await
            .unwrap(),
        LoginFailures {
            count: 1,
            last_failure_at: later,
            locked_until: 0,
            locks: 0,
            last_refused_at: 0,
            refused: 0,
        }
    );
    store
        .count_login_attempt("olive", NOW, WINDOW)
        .await
        .unwrap();
    assert!(store.lock_login("olive", 0, NOW, NOW + 30).await.unwrap());
    store.clear_login_failures("olive").await.unwrap();
    assert_eq!(
        store.login_failures("olive").await.unwrap(),
        LoginFailures::default()
    );
}

pub(super) async fn a_refusal_is_written_on_its_counter_and_brings_back_no_cleared_one(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    store
        .count_login_attempt("ruth", NOW, WINDOW)
        .await
        .unwrap();
    store.count_login_attempt("sam", NOW, WINDOW).await.unwrap();
    store.record_refused_login("ruth", NOW + 1).await.unwrap();
    assert_eq!(
        store.login_failures("ruth").await.unwrap(),
        LoginFailures {
            count: 1,
            last_failure_at: NOW,
            last_refused_at: NOW + 1,
            refused: 1,
            ..LoginFailures::default()
        },
        "the count is not changed: it was taken when the attempt began"
    );
    // Refusals add up; a count started afresh (stale) starts them afresh too.
    store
        .count_login_attempt("ruth", NOW + 2, WINDOW)
        .await
        .unwrap();
    store.record_refused_login("ruth", NOW + 3).await.unwrap();
    assert_eq!(store.login_failures("ruth").await.unwrap().refused, 2);
    let fresh = store
        .count_login_attempt("ruth", NOW + 3 + WINDOW + 1, WINDOW)
        .await
        .unwrap();
    assert_eq!((fresh.count, fresh.refused), (1, 0), "{fresh:?}");
    store
        .record_refused_login("ruth", NOW + 3 + WINDOW + 1)
        .await
        .unwrap();
    assert_eq!(store.login_failures("ruth").await.unwrap().refused, 1);
    assert_eq!(
        store.login_failures("sam").await.unwrap().last_refused_at,
        0,
        "another counter is untouched"
    );
    // A success cleared the counter in between: the refusal does not bring it back.
    store.clear_login_failures("sam").await.unwrap();
    store.record_refused_login("sam", NOW + 2).await.unwrap();
    store.record_refused_login("nobody", NOW + 2).await.unwrap();
    for counter in ["sam", "nobody"] {
        assert_eq!(
            store.login_failures(counter).await.unwrap(),
            LoginFailures::default(),
            "{counter}"
        );
    }
    if let Some(raw) = &subject.raw {
        assert_eq!(
            number(&raw.item("FAILURES#ruth").await.unwrap(), "last_refused_at"),
            NOW + 3 + WINDOW + 1
        );
        assert!(raw.item("FAILURES#sam").await.is_none());
        assert!(raw.item("FAILURES#nobody").await.is_none());
    }
}

pub(super) async fn uncounting_takes_one_attempt_off_its_own_counter_and_never_below_zero(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    for _ in 0..3 {
        store
            .count_login_attempt("source#203.0.113.7#1", NOW, WINDOW)
            .await
            .unwrap();
    }
    store
        .count_login_attempt("source#198.51.100.1#1", NOW, WINDOW)
        .await
        .unwrap();

    store
        .uncount_login_attempt("source#203.0.113.7#1")
        .await
        .unwrap();
    assert_eq!(
        store
            .login_failures("source#203.0.113.7#1")
            .await
            .unwrap()
            .count,
        2
    );
    assert_eq!(
        store
            .login_failures("source#198.51.100.1#1")
            .await
            .unwrap()
            .count,
        1,
        "another counter is untouched"
    );
    for _ in 0..5 {
        store
            .uncount_login_attempt("source#203.0.113.7#1")
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .login_failures("source#203.0.113.7#1")
            .await
            .unwrap()
            .count,
        0,
        "never below zero"
    );
    // A counter that does not exist stays absent.
    store
        .uncount_login_attempt("source#nobody#1")
        .await
        .unwrap();
    assert_eq!(
        store.login_failures("source#nobody#1").await.unwrap(),
        LoginFailures::default()
    );
    if let Some(raw) = &subject.raw {
        assert!(raw.item("FAILURES#source#nobody#1").await.is_none());
    }
}
