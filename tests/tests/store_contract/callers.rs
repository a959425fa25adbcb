//! Writes re-checked where they land: a caller's write lands only while it stands.

use super::*;

pub(super) async fn a_revoked_caller_learns_nothing_of_a_taken_username(subject: Subject) {
    let store = subject.store.as_ref();
    let mallory = admin(&subject, "mallory").await;
    create(&subject, "bob").await;
    store.revoke_access_token("j1", NOW + 900).await.unwrap();
    assert!(is_caller_revoked(
        store
            .create_user(
                new_user("bob", "again"),
                NOW,
                Actor::Caller(standing(&mallory, "j1", "s1"))
            )
            .await
    ));
}

pub(super) async fn every_write_lands_only_while_its_caller_stands(subject: Subject) {
    let store = subject.store.as_ref();
    let mallory = admin(&subject, "mallory").await;
    let bob = create(&subject, "bob").await;
    let as_mallory = |jti, sid| Actor::Caller(standing(&mallory, jti, sid));

    // Standing: its writes land.
    store
        .create_user(new_user("carol", "c"), NOW, as_mallory("j1", "s1"))
        .await
        .expect("a standing caller's create lands");

    // Its token logged out: nothing lands.
    store.revoke_access_token("j1", NOW + 900).await.unwrap();
    assert!(is_caller_revoked(
        store
            .create_user(new_user("dave", "d"), NOW, as_mallory("j1", "s1"))
            .await
    ));
    // Its session revoked: nothing lands, whatever the token.
    store.revoke_family("s1", NOW + 900).await.unwrap();
    assert!(is_caller_revoked(
        store.delete_user(&bob.id, as_mallory("j2", "s1")).await
    ));
    // Disabled, demoted or with its tokens revoked: nothing lands.
    let changes = || UserChanges {
        name: Some("renamed".into()),
        ..UserChanges::default()
    };
    for revoke in 0..3 {
        let caller = admin(&subject, &format!("admin{revoke}")).await;
        let as_caller = Actor::Caller(standing(&caller, "j3", "s3"));
        match revoke {
            0 => store
                .set_disabled(&caller.id, true, Actor::Operator)
                .await
                .map(|_| ()),
            1 => store
                .update_user(
                    &caller.id,
                    UserChanges {
                        role: Some(Role::Customer),
                        ..UserChanges::default()
                    },
                    Actor::Operator,
                )
                .await
                .map(|_| ()),
            _ => store.revoke_all_tokens(&caller.id, Actor::Operator).await,
        }
        .unwrap();
        assert!(is_caller_revoked(
            store.update_user(&bob.id, changes(), as_caller).await
        ));
        assert!(is_caller_revoked(
            store
                .set_password_hash(&bob.id, fake_hash("taken"), PasswordWrite::Reset, as_caller)
                .await
        ));
        assert!(is_caller_revoked(
            store.delete_user(&bob.id, as_caller).await
        ));
        assert!(is_caller_revoked(
            store.revoke_all_tokens(&caller.id, as_caller).await
        ));
        assert!(is_caller_revoked(
            store
                .end_session(standing(&caller, "j3", "s3"), NOW + 900, NOW + 900)
                .await
        ));
    }

    // Nothing of it was written.
    assert!(store.find_login("dave").await.unwrap().is_none());
    let bob_now = store
        .find_login("bob")
        .await
        .unwrap()
        .expect("bob is still there");
    assert_eq!(bob_now.user, bob);
    assert_eq!(bob_now.password_hash, fake_hash("first"));
    assert_eq!(bob_now.token_version, 0);
}

pub(super) async fn a_caller_changing_itself_is_checked_on_what_the_write_replaces(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let alice = admin(&subject, "alice").await;
    let as_alice = Actor::Caller(standing(&alice, "j1", "s1"));
    let renamed = store
        .update_user(
            &alice.id,
            UserChanges {
                name: Some("Alice A.".into()),
                ..UserChanges::default()
            },
            as_alice,
        )
        .await
        .expect("a standing caller renames itself");
    assert_eq!(renamed.name, "Alice A.");
    // A caller whose token version moved on (another session logged out everywhere)
    // no longer stands; one with the new version does, for another user as for itself.
    store.revoke_all_tokens(&alice.id, as_alice).await.unwrap();
    let bob = create(&subject, "bob").await;
    let as_new_alice = Actor::Caller(StandingCaller {
        token_version: 1,
        ..standing(&alice, "j2", "s2")
    });
    let rename = || UserChanges {
        name: Some("Bob B.".into()),
        ..UserChanges::default()
    };
    assert!(is_caller_revoked(
        store.update_user(&bob.id, rename(), as_alice).await
    ));
    store
        .update_user(&bob.id, rename(), as_new_alice)
        .await
        .expect("a caller at version 1 stands");
    // A self-write whose user is gone: the caller no longer stands (401), not 404.
    let carol = admin(&subject, "carol").await;
    store.delete_user(&carol.id, Actor::Operator).await.unwrap();
    assert!(is_caller_revoked(
        store
            .revoke_all_tokens(&carol.id, Actor::Caller(standing(&carol, "j", "s")))
            .await
    ));
    // A password change by the caller at its old version does not land; at the new one
    // it does.
    assert!(is_caller_revoked(
        store
            .set_password_hash(
                &alice.id,
                fake_hash("second"),
                PasswordWrite::Change {
                    previous: &fake_hash("admin")
                },
                as_alice,
            )
            .await
    ));
    assert_eq!(
        store
            .find_login("alice")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        fake_hash("admin")
    );
    store
        .set_password_hash(
            &alice.id,
            fake_hash("renewed"),
            PasswordWrite::Change {
                previous: &fake_hash("admin"),
            },
            as_new_alice,
        )
        .await
        .expect("its own change lands");
}
