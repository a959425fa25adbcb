//! Sessions: refresh tokens and their families, logout, leases, revoked sessions.

use super::*;

pub(super) async fn ending_a_session_revokes_its_token_and_session_once(subject: Subject) {
    let store = subject.store.as_ref();
    let alice = admin(&subject, "alice").await;
    store
        .end_session(standing(&alice, "j1", "s1"), NOW + 900, NOW + 3_600)
        .await
        .expect("logout lands");
    let state = store
        .authorization_state(&alice.id, "j1", "s1")
        .await
        .unwrap();
    assert!(state.jti_revoked && state.session_revoked);
    // Its other access tokens of the session are refused; other sessions are not touched.
    assert!(
        store
            .authorization_state(&alice.id, "j2", "s1")
            .await
            .unwrap()
            .session_revoked
    );
    let other = store
        .authorization_state(&alice.id, "j9", "s9")
        .await
        .unwrap();
    assert!(!other.jti_revoked && !other.session_revoked);
    // The same logout again: the caller no longer stands.
    assert!(is_caller_revoked(
        store
            .end_session(standing(&alice, "j1", "s1"), NOW + 900, NOW + 3_600)
            .await
    ));
}

pub(super) async fn a_lease_has_one_holder_until_it_ends_or_is_released(subject: Subject) {
    let store = subject.store.clone();
    let takers: Vec<_> = (0..8)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .take_lease("password#u1", &format!("h{n}"), NOW, NOW + 30)
                    .await
            })
        })
        .collect();
    let mut taken = 0;
    for taker in takers {
        taken += usize::from(taker.await.unwrap().unwrap());
    }
    assert_eq!(taken, 1, "exactly one of parallel takers holds it");
    assert!(
        store
            .take_lease("password#u2", "a", NOW, NOW + 30)
            .await
            .unwrap(),
        "leases are per name"
    );
    assert!(
        !store
            .take_lease("password#u1", "b", NOW + 29, NOW + 59)
            .await
            .unwrap()
    );
    // Past its end it is free again (a holder that crashed)...
    assert!(
        store
            .take_lease("password#u1", "c", NOW + 30, NOW + 60)
            .await
            .unwrap()
    );
    // ...and the old holder, outliving it, cannot free the new holder's lease.
    for n in 0..8 {
        store
            .release_lease("password#u1", &format!("h{n}"))
            .await
            .unwrap();
    }
    assert!(
        !store
            .take_lease("password#u1", "d", NOW + 31, NOW + 61)
            .await
            .unwrap()
    );
    // Its holder can, before its time.
    store.release_lease("password#u1", "c").await.unwrap();
    assert!(
        store
            .take_lease("password#u1", "d", NOW + 31, NOW + 61)
            .await
            .unwrap()
    );
}

pub(super) async fn a_refresh_token_round_trips_through_create_and_find(subject: Subject) {
    let store = subject.store.as_ref();
    let token = refresh_token("a1", "family-1", NOW + 3600);

    store
        .create_refresh_token(token.clone())
        .await
        .expect("stored");
    let found = store
        .find_refresh_token(&token.hash)
        .await
        .unwrap()
        .expect("found");

    assert_eq!(found.token, token);
    assert_eq!(found.retired_at, None);
    assert!(!found.family_revoked);
    assert!(
        store
            .find_refresh_token(&refresh_token("a2", "family-1", NOW).hash)
            .await
            .unwrap()
            .is_none()
    );
    // A hash is stored once: a second create of it fails and changes nothing.
    let again = store
        .create_refresh_token(refresh_token("a1", "family-2", NOW + 60))
        .await;
    assert!(matches!(again, Err(StoreError::Backend(_))), "{again:?}");
    assert_eq!(
        store
            .find_refresh_token(&token.hash)
            .await
            .unwrap()
            .expect("found")
            .token,
        token
    );
    if let Some(raw) = &subject.raw {
        let item = raw
            .item(&format!("REFRESH#{}", token.hash))
            .await
            .expect("refresh token item");
        assert_eq!(number(&item, "expires_at"), NOW + 3600, "expires by TTL");
        assert!(!item.contains_key("retired_at"), "{item:?}");
        assert!(!item.contains_key("kind"), "{item:?}");
        assert!(raw.index_items().await.is_empty());
    }
}

pub(super) async fn rotating_retires_the_old_token_at_now_and_stores_the_successor(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let old = refresh_token("b1", "family-b", NOW + 3600);
    let successor = NewRefreshToken {
        created_at: NOW + 10,
        expires_at: NOW + 3610,
        ..refresh_token("b2", "family-b", 0)
    };
    store.create_refresh_token(old.clone()).await.unwrap();

    let rotation = store
        .rotate_refresh_token(&old.hash, successor.clone(), NOW + 10)
        .await
        .expect("rotation decided");

    assert_eq!(rotation, Rotation::Rotated);
    let retired = store
        .find_refresh_token(&old.hash)
        .await
        .unwrap()
        .expect("the old token stays, retired");
    assert_eq!(retired.token, old);
    assert_eq!(retired.retired_at, Some(NOW + 10));
    assert!(!retired.family_revoked);
    let stored = store
        .find_refresh_token(&successor.hash)
        .await
        .unwrap()
        .expect("the successor");
    assert_eq!(stored.token, successor);
    assert_eq!(stored.retired_at, None);
    assert!(!stored.family_revoked);

    // The successor rotates in its turn.
    let third = refresh_token("b3", "family-b", NOW + 3620);
    assert_eq!(
        store
            .rotate_refresh_token(&successor.hash, third.clone(), NOW + 20)
            .await
            .unwrap(),
        Rotation::Rotated
    );
}

pub(super) async fn rotating_a_retired_token_is_refused_and_writes_nothing(subject: Subject) {
    let store = subject.store.as_ref();
    let old = refresh_token("c1", "family-c", NOW + 3600);
    store.create_refresh_token(old.clone()).await.unwrap();
    let first = refresh_token("c2", "family-c", NOW + 3600);
    assert_eq!(
        store
            .rotate_refresh_token(&old.hash, first, NOW + 10)
            .await
            .unwrap(),
        Rotation::Rotated
    );

    let second = refresh_token("c3", "family-c", NOW + 3600);
    let rotation = store
        .rotate_refresh_token(&old.hash, second.clone(), NOW + 20)
        .await
        .expect("rotation decided");

    assert_eq!(rotation, Rotation::Refused);
    assert!(
        store
            .find_refresh_token(&second.hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .find_refresh_token(&old.hash)
            .await
            .unwrap()
            .expect("old")
            .retired_at,
        Some(NOW + 10),
        "retired when it was first rotated"
    );
    // An unknown token, and a token as its own successor, are refused too.
    let unknown = store
        .rotate_refresh_token(
            &refresh_token("c9", "family-c", 0).hash,
            refresh_token("c4", "family-c", NOW + 3600),
            NOW + 20,
        )
        .await
        .unwrap();
    assert_eq!(unknown, Rotation::Refused);
    let active = refresh_token("c5", "family-c", NOW + 3600);
    store.create_refresh_token(active.clone()).await.unwrap();
    let itself = store
        .rotate_refresh_token(&active.hash, active.clone(), NOW + 20)
        .await
        .unwrap();
    assert_eq!(itself, Rotation::Refused);
    assert_eq!(
        store
            .find_refresh_token(&active.hash)
            .await
            .unwrap()
            .expect("active")
            .retired_at,
        None
    );
}

pub(super) async fn rotating_an_expired_token_is_refused_and_writes_nothing(subject: Subject) {
    let store = subject.store.as_ref();
    let old = refresh_token("d1", "family-d", NOW + 100);
    store.create_refresh_token(old.clone()).await.unwrap();
    let successor = refresh_token("d2", "family-d", NOW + 3700);

    // It expires at `expires_at`: that second is already too late.
    for now in [NOW + 100, NOW + 5000] {
        let rotation = store
            .rotate_refresh_token(&old.hash, successor.clone(), now)
            .await
            .expect("rotation decided");
        assert_eq!(rotation, Rotation::Refused, "at {now}");
    }

    assert_eq!(
        store
            .find_refresh_token(&old.hash)
            .await
            .unwrap()
            .expect("old")
            .retired_at,
        None
    );
    assert!(
        store
            .find_refresh_token(&successor.hash)
            .await
            .unwrap()
            .is_none()
    );
    // One second earlier it was still good.
    assert_eq!(
        store
            .rotate_refresh_token(&old.hash, successor, NOW + 99)
            .await
            .unwrap(),
        Rotation::Rotated
    );
}

pub(super) async fn rotating_a_token_of_a_revoked_family_is_refused_and_find_shows_the_family_revoked(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let old = refresh_token("e1", "family-e", NOW + 3600);
    let bystander = refresh_token("e9", "family-other", NOW + 3600);
    store.create_refresh_token(old.clone()).await.unwrap();
    store.create_refresh_token(bystander.clone()).await.unwrap();

    store
        .revoke_family("family-e", NOW + 3600)
        .await
        .expect("family revoked");

    let found = store
        .find_refresh_token(&old.hash)
        .await
        .unwrap()
        .expect("the token stays");
    assert!(found.family_revoked);
    assert_eq!(found.retired_at, None);
    let successor = refresh_token("e2", "family-e", NOW + 3600);
    let rotation = store
        .rotate_refresh_token(&old.hash, successor.clone(), NOW + 10)
        .await
        .expect("rotation decided");
    assert_eq!(rotation, Rotation::Refused);
    assert!(
        store
            .find_refresh_token(&successor.hash)
            .await
            .unwrap()
            .is_none()
    );
    // Other families are untouched.
    assert!(
        !store
            .find_refresh_token(&bystander.hash)
            .await
            .unwrap()
            .expect("bystander")
            .family_revoked
    );

    // Revoking again (e.g. logout after reuse detection) keeps it revoked, and the family
    // item lives as long as the longest revocation asked for.
    store.revoke_family("family-e", NOW + 100).await.unwrap();
    assert!(
        store
            .find_refresh_token(&old.hash)
            .await
            .unwrap()
            .expect("old")
            .family_revoked
    );
    if let Some(raw) = &subject.raw {
        let family = raw.item("FAMILY#family-e").await.expect("family item");
        assert_eq!(number(&family, "expires_at"), NOW + 3600, "never shortened");
        store.revoke_family("family-e", NOW + 7200).await.unwrap();
        let family = raw.item("FAMILY#family-e").await.expect("family item");
        assert_eq!(number(&family, "expires_at"), NOW + 7200, "extended");
        assert_eq!(family.get("revoked"), Some(&AttributeValue::Bool(true)));
    }
}

pub(super) async fn parallel_rotations_of_one_token_have_exactly_one_winner(subject: Subject) {
    let old = refresh_token("f0", "family-f", NOW + 3600);
    subject
        .store
        .create_refresh_token(old.clone())
        .await
        .unwrap();

    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = Arc::clone(&subject.store);
            let old_hash = old.hash.clone();
            let successor = refresh_token(&format!("f{}", i + 1), "family-f", NOW + 3600);
            tokio::spawn(async move {
                let rotation = store
                    .rotate_refresh_token(&old_hash, successor.clone(), NOW + 10)
                    .await;
                (successor, rotation)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        let (successor, rotation) = task.await.expect("task finished");
        match rotation.expect("every rotation is decided") {
            Rotation::Rotated => winners.push(successor),
            Rotation::Refused => losers.push(successor),
        }
    }

    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let found = subject
        .store
        .find_refresh_token(&winners[0].hash)
        .await
        .unwrap()
        .expect("the winner's successor");
    assert_eq!(found.retired_at, None);
    for loser in losers {
        assert!(
            subject
                .store
                .find_refresh_token(&loser.hash)
                .await
                .unwrap()
                .is_none(),
            "a refused rotation stored its successor"
        );
    }
    assert_eq!(
        subject
            .store
            .find_refresh_token(&old.hash)
            .await
            .unwrap()
            .expect("old")
            .retired_at,
        Some(NOW + 10)
    );
}

pub(super) async fn authorization_state_reports_a_revoked_session_and_not_another_one(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let wanda = create(&subject, "wanda").await;
    store
        .revoke_family("session-ended", NOW + 3600)
        .await
        .expect("revoked");

    let state = |sid: &'static str| {
        let id = wanda.id.clone();
        async move { store.authorization_state(&id, "jti", sid).await.unwrap() }
    };
    let ended = state("session-ended").await;
    assert!(ended.session_revoked && !ended.jti_revoked, "{ended:?}");
    assert!(ended.user.is_some(), "the user half is read as well");
    assert!(!state("session-alive").await.session_revoked);
    // A session id is not a jti: the same value names nothing on the deny-list.
    assert!(
        !store
            .authorization_state(&wanda.id, "session-ended", "session-alive")
            .await
            .unwrap()
            .jti_revoked
    );
}
