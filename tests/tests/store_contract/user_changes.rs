//! Changes to users: updates, disabling, passwords, and the token version they move.

use super::*;

pub(super) async fn set_disabled_changes_what_get_user_and_find_login_see(subject: Subject) {
    let store = subject.store.as_ref();
    let heidi = create(&subject, "heidi").await;

    let disabled = store
        .set_disabled(&heidi.id, true, Actor::Operator)
        .await
        .expect("disabled");

    assert_eq!(
        disabled,
        User {
            disabled: true,
            ..heidi.clone()
        }
    );
    assert_eq!(
        store.get_user(&heidi.id).await.unwrap(),
        Some(disabled.clone())
    );
    let login = store
        .find_login("heidi")
        .await
        .unwrap()
        .expect("a disabled user still has a login record");
    assert_eq!(login.user, disabled);
    assert_eq!(login.password_hash.as_phc(), fake_hash("first").as_phc());

    let enabled = store
        .set_disabled(&heidi.id, false, Actor::Operator)
        .await
        .expect("re-enabled");

    assert_eq!(enabled, heidi);
    assert_eq!(
        store.get_user(&heidi.id).await.unwrap(),
        Some(heidi.clone())
    );
    assert_eq!(
        store
            .find_login("heidi")
            .await
            .unwrap()
            .expect("login record")
            .user,
        heidi
    );
}

pub(super) async fn changing_an_unknown_id_is_not_found(subject: Subject) {
    create(&subject, "ivan").await;
    let unknown_id = "fedcba9876543210fedcba9876543210";

    let disabled = subject
        .store
        .set_disabled(unknown_id, true, Actor::Operator)
        .await;
    let rehashed = subject
        .store
        .set_password_hash(
            unknown_id,
            fake_hash("new"),
            PasswordWrite::Reset,
            Actor::Operator,
        )
        .await;
    let updated = subject
        .store
        .update_user(
            unknown_id,
            UserChanges {
                name: Some("Nobody".into()),
                ..UserChanges::default()
            },
            Actor::Operator,
        )
        .await;
    let unchanged = subject
        .store
        .update_user(unknown_id, UserChanges::default(), Actor::Operator)
        .await;
    let revoked = subject
        .store
        .revoke_all_tokens(unknown_id, Actor::Operator)
        .await;

    assert!(
        matches!(disabled, Err(StoreError::NotFound)),
        "{disabled:?}"
    );
    assert!(
        matches!(rehashed, Err(StoreError::NotFound)),
        "{rehashed:?}"
    );
    assert!(matches!(updated, Err(StoreError::NotFound)), "{updated:?}");
    assert!(
        matches!(unchanged, Err(StoreError::NotFound)),
        "{unchanged:?}"
    );
    assert!(matches!(revoked, Err(StoreError::NotFound)), "{revoked:?}");
    // Nothing was created on the way.
    assert_eq!(
        subject
            .store
            .list_users(10, None)
            .await
            .unwrap()
            .users
            .len(),
        1
    );
}

pub(super) async fn concurrent_changes_to_one_user_lose_nothing(subject: Subject) {
    let judy = create(&subject, "judy").await;

    // Half the racers flip `disabled`, half change the password: both touch the credential
    // item, so they contend for it.
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = Arc::clone(&subject.store);
            let id = judy.id.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let user = store.set_disabled(&id, i % 4 == 0, Actor::Operator).await?;
                    assert_eq!(user.disabled, i % 4 == 0);
                    Ok(())
                } else {
                    store
                        .set_password_hash(
                            &id,
                            fake_hash(&format!("racer-{i}")),
                            PasswordWrite::Reset,
                            Actor::Operator,
                        )
                        .await
                        .map(|_| ())
                }
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("task finished")
            .expect("every change succeeds");
    }

    let profile = subject
        .store
        .get_user(&judy.id)
        .await
        .unwrap()
        .expect("user");
    let login = subject
        .store
        .find_login("judy")
        .await
        .unwrap()
        .expect("login record");
    assert_eq!(login.user, profile, "the two copies of the user agree");
    assert_eq!(
        profile,
        User {
            disabled: profile.disabled,
            ..judy.clone()
        }
    );
    let written: HashSet<String> = (1..RACERS)
        .step_by(2)
        .map(|i| fake_hash(&format!("racer-{i}")).as_phc().to_string())
        .collect();
    assert!(
        written.contains(login.password_hash.as_phc()),
        "the hash is one that was written"
    );

    if let Some(raw) = &subject.raw {
        let disables = RACERS.div_ceil(2) as u64;
        let rehashes = (RACERS / 2) as u64;
        let profile_item = raw
            .item(&format!("USER#{}", judy.id))
            .await
            .expect("profile item");
        let credential_item = raw.item("USERNAME#judy").await.expect("credential item");
        // A password write moves both items: the profile holds the token version it bumps.
        assert_eq!(
            number(&profile_item, "version"),
            1 + disables + rehashes,
            "one version per change"
        );
        assert_eq!(
            number(&credential_item, "version"),
            1 + disables + rehashes,
            "one version per change"
        );
    }
}

pub(super) async fn set_password_hash_replaces_the_hash_seen_by_find_login(subject: Subject) {
    let store = subject.store.as_ref();
    let mike = create(&subject, "mike").await;

    store
        .set_password_hash(
            &mike.id,
            fake_hash("rehashed"),
            PasswordWrite::Reset,
            Actor::Operator,
        )
        .await
        .expect("hash replaced");

    let login = store
        .find_login("mike")
        .await
        .unwrap()
        .expect("login record");
    assert_eq!(login.password_hash.as_phc(), fake_hash("rehashed").as_phc());
    assert_eq!(login.user, mike);
    assert_eq!(store.get_user(&mike.id).await.unwrap(), Some(mike));
}

pub(super) async fn update_user_applies_name_role_and_disabled_and_bumps_the_token_version_only_for_role_or_disabled(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let olga = create(&subject, "olga").await;
    assert_eq!(token_version(&subject, &olga).await, 0, "a new user");

    // A name is not a grant: tokens stay valid.
    let renamed = store
        .update_user(
            &olga.id,
            UserChanges {
                name: Some("Olga Renamed".into()),
                ..UserChanges::default()
            },
            Actor::Operator,
        )
        .await
        .expect("renamed");
    assert_eq!(
        renamed,
        User {
            name: "Olga Renamed".into(),
            ..olga.clone()
        }
    );
    assert_eq!(token_version(&subject, &olga).await, 0, "after a rename");

    // A role change revokes.
    let promoted = store
        .update_user(
            &olga.id,
            UserChanges {
                role: Some(Role::Admin),
                ..UserChanges::default()
            },
            Actor::Operator,
        )
        .await
        .expect("promoted");
    assert_eq!(
        promoted,
        User {
            role: Role::Admin,
            ..renamed.clone()
        }
    );
    assert_eq!(
        token_version(&subject, &olga).await,
        1,
        "after a role change"
    );

    // So does a change of access, and several changes at once revoke once.
    let changed = store
        .update_user(
            &olga.id,
            UserChanges {
                name: Some("Olga Disabled".into()),
                role: Some(Role::Customer),
                disabled: Some(true),
            },
            Actor::Operator,
        )
        .await
        .expect("changed");
    let expected = User {
        name: "Olga Disabled".into(),
        role: Role::Customer,
        disabled: true,
        ..olga.clone()
    };
    assert_eq!(changed, expected);
    assert_eq!(
        token_version(&subject, &olga).await,
        2,
        "after three changes"
    );

    // No change changes nothing.
    let unchanged = store
        .update_user(&olga.id, UserChanges::default(), Actor::Operator)
        .await
        .expect("no change");
    assert_eq!(unchanged, expected);
    assert_eq!(token_version(&subject, &olga).await, 2, "after no change");

    // Every reader sees the same user, and the password hash is untouched.
    assert_eq!(
        store.get_user(&olga.id).await.unwrap(),
        Some(expected.clone())
    );
    let login = store.find_login("olga").await.unwrap().expect("login");
    assert_eq!(login.user, expected);
    assert_eq!(login.password_hash.as_phc(), fake_hash("first").as_phc());
    assert_eq!(
        store
            .authorization_state(&olga.id, "jti", "no-such-session")
            .await
            .unwrap(),
        AuthorizationState {
            user: Some(UserAuthState {
                role: Role::Customer,
                disabled: true,
                token_version: 2,
            }),
            jti_revoked: false,
            session_revoked: false,
        }
    );
    assert_eq!(
        store.list_users(10, None).await.unwrap().users,
        vec![expected]
    );
    if let Some(raw) = &subject.raw {
        let profile_item = raw.item(&format!("USER#{}", olga.id)).await.unwrap();
        let credential_item = raw.item("USERNAME#olga").await.unwrap();
        assert_eq!(number(&profile_item, "version"), 4, "one version per write");
        assert_eq!(
            number(&credential_item, "version"),
            4,
            "one version per write"
        );
    }
}

pub(super) async fn parallel_updates_of_one_user_lose_nothing(subject: Subject) {
    let pat = create(&subject, "pat").await;
    const UPDATERS: usize = 6;

    // A third of the racers promote, a third disable, a third rename: every change is
    // applied to items the others change too.
    let tasks: Vec<_> = (0..UPDATERS)
        .map(|i| {
            let store = Arc::clone(&subject.store);
            let id = pat.id.clone();
            tokio::spawn(async move {
                let changes = match i % 3 {
                    0 => UserChanges {
                        role: Some(Role::Admin),
                        ..UserChanges::default()
                    },
                    1 => UserChanges {
                        disabled: Some(true),
                        ..UserChanges::default()
                    },
                    _ => UserChanges {
                        name: Some(format!("pat racer-{i}")),
                        ..UserChanges::default()
                    },
                };
                store.update_user(&id, changes, Actor::Operator).await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("task finished")
            .expect("every update succeeds");
    }

    let profile = subject
        .store
        .get_user(&pat.id)
        .await
        .unwrap()
        .expect("user");
    let login = subject
        .store
        .find_login("pat")
        .await
        .unwrap()
        .expect("login record");
    assert_eq!(login.user, profile, "the two copies of the user agree");
    assert_eq!(profile.role, Role::Admin, "no promotion was lost");
    assert!(profile.disabled, "no disable was lost");
    assert!(
        ["pat racer-2", "pat racer-5"].contains(&profile.name.as_str()),
        "a rename was kept: {}",
        profile.name
    );
    assert_eq!(
        profile,
        User {
            name: profile.name.clone(),
            role: Role::Admin,
            disabled: true,
            ..pat.clone()
        }
    );
    // Of the racers that promote or disable, only the first of each changes anything; the
    // others set a value already stored and revoke nothing.
    assert_eq!(
        token_version(&subject, &pat).await,
        2,
        "one token version per real role or access change"
    );
    if let Some(raw) = &subject.raw {
        let profile_item = raw.item(&format!("USER#{}", pat.id)).await.unwrap();
        let credential_item = raw.item("USERNAME#pat").await.unwrap();
        assert_eq!(number(&profile_item, "version"), 1 + UPDATERS as u64);
        assert_eq!(number(&credential_item, "version"), 1 + UPDATERS as u64);
    }
}

pub(super) async fn revoke_all_tokens_bumps_the_token_version_seen_by_login_and_the_authorizer(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let ursula = create(&subject, "ursula").await;
    let other = create(&subject, "uma").await;

    store
        .revoke_all_tokens(&ursula.id, Actor::Operator)
        .await
        .expect("revoked");
    assert_eq!(token_version(&subject, &ursula).await, 1);
    store
        .revoke_all_tokens(&ursula.id, Actor::Operator)
        .await
        .expect("revoked");
    assert_eq!(token_version(&subject, &ursula).await, 2);

    // Nothing else changed, and nobody else's tokens.
    assert_eq!(
        store.get_user(&ursula.id).await.unwrap(),
        Some(ursula.clone())
    );
    let login = store.find_login("ursula").await.unwrap().expect("login");
    assert_eq!(login.user, ursula);
    assert_eq!(login.password_hash.as_phc(), fake_hash("first").as_phc());
    assert_eq!(token_version(&subject, &other).await, 0);

    // Later changes keep counting from there.
    store
        .set_disabled(&ursula.id, true, Actor::Operator)
        .await
        .expect("disabled");
    assert_eq!(token_version(&subject, &ursula).await, 3);
}

/// Items written before `token_version` existed have no such attribute: they read as
/// version 0, and the first revocation makes it 1 on both items.
#[tokio::test]
pub(super) async fn items_without_a_token_version_read_as_version_zero() {
    let subject = dynamo_subject().await;
    let raw = subject.raw.as_ref().expect("a DynamoDB subject");
    let pia = create(&subject, "pia").await;
    for pk in [format!("USER#{}", pia.id), "USERNAME#pia".to_string()] {
        raw.client
            .update_item()
            .table_name(&raw.table)
            .key("pk", AttributeValue::S(pk))
            .update_expression("REMOVE #token_version")
            .expression_attribute_names("#token_version", "token_version")
            .send()
            .await
            .expect("UpdateItem on DynamoDB Local");
    }
    assert!(
        !raw.item("USERNAME#pia")
            .await
            .unwrap()
            .contains_key("token_version")
    );

    let login = subject
        .store
        .find_login("pia")
        .await
        .unwrap()
        .expect("login");
    let state = subject
        .store
        .authorization_state(&pia.id, "jti", "no-such-session")
        .await
        .unwrap();

    assert_eq!(login.token_version, 0);
    assert_eq!(state.user.expect("user").token_version, 0);
    subject
        .store
        .revoke_all_tokens(&pia.id, Actor::Operator)
        .await
        .unwrap();
    assert_eq!(token_version(&subject, &pia).await, 1);
}

pub(super) async fn a_rehash_lands_only_over_the_hash_it_replaces_and_keeps_the_token_version(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let xena = create(&subject, "xena").await;
    let first = fake_hash("first");

    let (_, version) = store
        .set_password_hash(
            &xena.id,
            fake_hash("rehashed"),
            PasswordWrite::Rehash { previous: &first },
            Actor::Operator,
        )
        .await
        .expect("rehash over the hash it was computed from");
    assert_eq!(version, 0, "a rehash revokes nothing");
    assert_eq!(token_version(&subject, &xena).await, 0);

    // A concurrent reset got there first: the rehash (of the old password) must not undo it.
    store
        .set_password_hash(
            &xena.id,
            fake_hash("reset"),
            PasswordWrite::Reset,
            Actor::Operator,
        )
        .await
        .unwrap();
    let stale = store
        .set_password_hash(
            &xena.id,
            fake_hash("stale-rehash"),
            PasswordWrite::Rehash {
                previous: &fake_hash("rehashed"),
            },
            Actor::Operator,
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::PasswordChanged)),
        "{stale:?}"
    );
    let stored = store.find_login("xena").await.unwrap().unwrap();
    assert_eq!(stored.password_hash, fake_hash("reset"));
    assert_eq!(stored.token_version, 1);
}

pub(super) async fn a_password_change_lands_only_over_the_proven_hash_and_revokes_tokens(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let yuri = create(&subject, "yuri").await;

    let wrong = store
        .set_password_hash(
            &yuri.id,
            fake_hash("new"),
            PasswordWrite::Change {
                previous: &fake_hash("not-the-stored-one"),
            },
            Actor::Operator,
        )
        .await;
    assert!(
        matches!(wrong, Err(StoreError::PasswordChanged)),
        "{wrong:?}"
    );
    assert_eq!(
        store
            .find_login("yuri")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        fake_hash("first"),
        "nothing written"
    );
    assert_eq!(token_version(&subject, &yuri).await, 0);

    let (_, version) = store
        .set_password_hash(
            &yuri.id,
            fake_hash("new"),
            PasswordWrite::Change {
                previous: &fake_hash("first"),
            },
            Actor::Operator,
        )
        .await
        .expect("changed");
    assert_eq!(version, 1);
    assert_eq!(token_version(&subject, &yuri).await, 1);
    let stored = store.find_login("yuri").await.unwrap().unwrap();
    assert_eq!(stored.password_hash, fake_hash("new"));
    assert_eq!(stored.user, yuri, "nothing else changed");
}

pub(super) async fn a_reset_replaces_any_hash_and_revokes_tokens(subject: Subject) {
    let store = subject.store.as_ref();
    let zoe = create(&subject, "zoe").await;
    for (round, tag) in ["one", "two"].into_iter().enumerate() {
        let (_, version) = store
            .set_password_hash(
                &zoe.id,
                fake_hash(tag),
                PasswordWrite::Reset,
                Actor::Operator,
            )
            .await
            .expect("reset");
        assert_eq!(version, round as u64 + 1);
    }
    assert_eq!(token_version(&subject, &zoe).await, 2);
    assert_eq!(
        store
            .find_login("zoe")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        fake_hash("two")
    );
}

pub(super) async fn an_update_to_the_values_already_stored_keeps_the_token_version(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let abel = create(&subject, "abel").await;
    let same = UserChanges {
        role: Some(abel.role),
        disabled: Some(abel.disabled),
        ..UserChanges::default()
    };
    assert_eq!(
        store
            .update_user(&abel.id, same, Actor::Operator)
            .await
            .unwrap(),
        abel
    );
    assert_eq!(
        token_version(&subject, &abel).await,
        0,
        "nothing really changed"
    );

    let promoted = UserChanges {
        role: Some(Role::Admin),
        disabled: Some(false),
        ..UserChanges::default()
    };
    store
        .update_user(&abel.id, promoted, Actor::Operator)
        .await
        .unwrap();
    assert_eq!(token_version(&subject, &abel).await, 1, "the role changed");
}
