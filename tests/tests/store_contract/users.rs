//! Users: create, read, list in pages, update, delete, passwords, token versions.

use super::*;

pub(super) async fn a_created_user_can_be_read_by_id_and_by_username_with_its_hash(
    subject: Subject,
) {
    let store = subject.store.as_ref();

    let created = store
        .create_user(
            NewUser {
                username: "alice@example.com".into(),
                name: "Alice Liddell".into(),
                role: Role::Admin,
                password_hash: fake_hash("alice"),
            },
            NOW,
            Actor::Operator,
        )
        .await
        .expect("user created");

    assert!(is_valid_user_id(&created.id), "{}", created.id);
    assert_eq!(
        created,
        User {
            id: created.id.clone(),
            username: "alice@example.com".into(),
            name: "Alice Liddell".into(),
            role: Role::Admin,
            disabled: false,
            created_at: NOW,
        }
    );
    assert_eq!(
        store.get_user(&created.id).await.unwrap(),
        Some(created.clone())
    );
    let login = store
        .find_login("alice@example.com")
        .await
        .unwrap()
        .expect("login record");
    assert_eq!(login.user, created);
    assert_eq!(login.password_hash.as_phc(), fake_hash("alice").as_phc());
}

pub(super) async fn a_duplicate_username_is_refused_and_the_stored_user_is_unchanged(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let original = create(&subject, "bob").await;

    let duplicate = NewUser {
        role: Role::Admin,
        ..new_user("bob", "second")
    };
    let result = store
        .create_user(duplicate, NOW + 60, Actor::Operator)
        .await;

    assert!(
        matches!(result, Err(StoreError::UsernameTaken)),
        "{result:?}"
    );
    let login = store
        .find_login("bob")
        .await
        .unwrap()
        .expect("login record");
    assert_eq!(login.user, original);
    assert_eq!(login.password_hash.as_phc(), fake_hash("first").as_phc());
    let page = store.list_users(10, None).await.unwrap();
    assert_eq!(page.users, vec![original]);
}

pub(super) async fn concurrent_creates_of_one_username_have_exactly_one_winner(subject: Subject) {
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = Arc::clone(&subject.store);
            tokio::spawn(async move {
                store
                    .create_user(
                        new_user("carol", &format!("racer-{i}")),
                        NOW,
                        Actor::Operator,
                    )
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task finished") {
            Ok(user) => winners.push(user),
            Err(StoreError::UsernameTaken) => {}
            Err(other) => panic!("a losing create must be UsernameTaken, not {other:?}"),
        }
    }

    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = &winners[0];
    let login = subject
        .store
        .find_login("carol")
        .await
        .unwrap()
        .expect("login record");
    assert_eq!(&login.user, winner);
    // The winner's own hash, not a loser's.
    assert_eq!(
        login.password_hash.as_phc(),
        fake_hash(winner.name.trim_start_matches("carol ")).as_phc()
    );
    // No loser left a half-created user behind.
    let page = subject.store.list_users(RACERS + 1, None).await.unwrap();
    assert_eq!(page.users, vec![winner.clone()]);
}

pub(super) async fn two_different_usernames_are_two_users_both_listed(subject: Subject) {
    let dave = create(&subject, "dave").await;
    let erin = create(&subject, "erin").await;

    assert_ne!(dave.id, erin.id);
    let page = subject.store.list_users(10, None).await.unwrap();
    assert_eq!(page.users, vec![dave, erin]);
    assert_eq!(page.next, None);
}

pub(super) async fn listing_pages_through_all_users_in_username_order_for_every_page_size(
    subject: Subject,
) {
    // Created out of order, so that username order is not creation order.
    let usernames = [
        "mallory", "alice", "trent", "bob", "peggy", "carol", "victor",
    ];
    let mut created = Vec::new();
    for username in usernames {
        created.push(create(&subject, username).await);
    }
    created.sort_by(|a, b| a.username.cmp(&b.username));
    let total = created.len();

    for page_size in [1, 2, 3, total, total + 1] {
        let pages = all_pages(subject.store.as_ref(), page_size).await;

        assert_eq!(
            pages.len(),
            total.div_ceil(page_size),
            "page size {page_size}: {pages:?}"
        );
        assert!(
            pages.iter().all(|page| !page.is_empty()),
            "page size {page_size}: an empty page"
        );
        let listed: Vec<User> = pages.into_iter().flatten().collect();
        assert_eq!(listed, created, "page size {page_size}");
    }
}

pub(super) async fn pages_of_large_users_are_full_even_past_one_query_megabyte(subject: Subject) {
    // A DynamoDB Query returns at most 1 MB, whatever its Limit: with ~300 KB per user a
    // page of 4 needs a second Query, which the store must make rather than answer short.
    let large_name = "n".repeat(300_000);
    let mut created = Vec::new();
    for username in ["user-1", "user-2", "user-3", "user-4", "user-5"] {
        let new_user = NewUser {
            name: large_name.clone(),
            ..new_user(username, "large")
        };
        created.push(
            subject
                .store
                .create_user(new_user, NOW, Actor::Operator)
                .await
                .expect("user created"),
        );
    }

    let pages = all_pages(subject.store.as_ref(), 4).await;

    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [4, 1]);
    assert_eq!(pages.into_iter().flatten().collect::<Vec<_>>(), created);
}

pub(super) async fn an_empty_store_lists_one_empty_last_page(subject: Subject) {
    let page = subject.store.list_users(5, None).await.unwrap();

    assert!(page.users.is_empty());
    assert_eq!(page.next, None);
}

pub(super) async fn an_unknown_id_or_username_is_none(subject: Subject) {
    let known = create(&subject, "frank").await;
    let unknown_id = "0123456789abcdef0123456789abcdef";
    assert_ne!(known.id, unknown_id);

    assert_eq!(subject.store.get_user(unknown_id).await.unwrap(), None);
    assert!(subject.store.find_login("grace").await.unwrap().is_none());
    // Keys are exact: another spelling of a username, or a username for an id, finds nothing.
    assert!(subject.store.find_login("frank ").await.unwrap().is_none());
    assert_eq!(subject.store.get_user("frank").await.unwrap(), None);
}

pub(super) async fn the_profile_read_by_get_user_never_carries_the_password_hash(subject: Subject) {
    let niaj = create(&subject, "niaj").await;
    let phc = fake_hash("first").as_phc().to_string();

    let profile = subject
        .store
        .get_user(&niaj.id)
        .await
        .unwrap()
        .expect("user");
    let listed = subject.store.list_users(10, None).await.unwrap().users;

    for json in [
        serde_json::to_string(&profile).unwrap(),
        serde_json::to_string(&listed).unwrap(),
    ] {
        assert!(!json.contains(&phc) && !json.contains("password"), "{json}");
    }
    if let Some(raw) = &subject.raw {
        let profile_item = raw
            .item(&format!("USER#{}", niaj.id))
            .await
            .expect("profile item");
        let credential_item = raw.item("USERNAME#niaj").await.expect("credential item");
        let index_items = raw.index_items().await;

        assert!(
            !profile_item.contains_key("password_hash"),
            "{profile_item:?}"
        );
        assert!(!format!("{profile_item:?}").contains(&phc));
        assert_eq!(
            credential_item.get("password_hash"),
            Some(&AttributeValue::S(phc.clone()))
        );
        // Only profile items carry `kind`, so only they are in the (sparse) by-kind index.
        assert_eq!(
            profile_item.get("kind"),
            Some(&AttributeValue::S("USER".into()))
        );
        assert!(!credential_item.contains_key("kind"), "{credential_item:?}");
        assert_eq!(index_items.len(), 1, "{index_items:?}");
        assert!(!format!("{index_items:?}").contains(&phc));
    }
}

pub(super) async fn deleting_a_user_frees_its_username_and_leaves_nothing_to_read(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let quinn = create(&subject, "quinn").await;
    let other = create(&subject, "rupert").await;

    store
        .delete_user(&quinn.id, Actor::Operator)
        .await
        .expect("deleted");

    assert_eq!(store.get_user(&quinn.id).await.unwrap(), None);
    assert!(store.find_login("quinn").await.unwrap().is_none());
    assert_eq!(
        store
            .authorization_state(&quinn.id, "jti", "no-such-session")
            .await
            .unwrap(),
        AuthorizationState {
            user: None,
            jti_revoked: false,
            session_revoked: false,
        }
    );
    assert_eq!(
        store.list_users(10, None).await.unwrap().users,
        vec![other.clone()]
    );
    if let Some(raw) = &subject.raw {
        assert_eq!(raw.item(&format!("USER#{}", quinn.id)).await, None);
        assert_eq!(raw.item("USERNAME#quinn").await, None);
        assert_eq!(raw.index_items().await.len(), 1);
    }

    // The username is free again, for a new user with a new id and fresh tokens.
    let again = store
        .create_user(new_user("quinn", "again"), NOW + 60, Actor::Operator)
        .await
        .expect("the username is free");
    assert_ne!(again.id, quinn.id);
    let login = store.find_login("quinn").await.unwrap().expect("login");
    assert_eq!(login.user, again);
    assert_eq!(login.password_hash.as_phc(), fake_hash("again").as_phc());
    assert_eq!(token_version(&subject, &again).await, 0);
    // The old id stays gone.
    assert_eq!(store.get_user(&quinn.id).await.unwrap(), None);
    assert_eq!(store.get_user(&other.id).await.unwrap(), Some(other));
}

pub(super) async fn deleting_an_unknown_id_is_not_found_and_deletes_nothing(subject: Subject) {
    let store = subject.store.as_ref();
    let sybil = create(&subject, "sybil").await;

    let unknown = store
        .delete_user("fedcba9876543210fedcba9876543210", Actor::Operator)
        .await;
    // A username is not an id.
    let by_username = store.delete_user("sybil", Actor::Operator).await;
    store
        .delete_user(&sybil.id, Actor::Operator)
        .await
        .expect("deleted");
    let twice = store.delete_user(&sybil.id, Actor::Operator).await;

    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    assert!(
        matches!(by_username, Err(StoreError::NotFound)),
        "{by_username:?}"
    );
    assert!(matches!(twice, Err(StoreError::NotFound)), "{twice:?}");
    assert!(store.list_users(10, None).await.unwrap().users.is_empty());
}

pub(super) async fn parallel_deletes_of_one_user_have_exactly_one_winner(subject: Subject) {
    let tom = create(&subject, "tom").await;

    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = Arc::clone(&subject.store);
            let id = tom.id.clone();
            tokio::spawn(async move { store.delete_user(&id, Actor::Operator).await })
        })
        .collect();
    let mut deleted = 0;
    for task in tasks {
        match task.await.expect("task finished") {
            Ok(()) => deleted += 1,
            Err(StoreError::NotFound) => {}
            Err(other) => panic!("a losing delete must be NotFound, not {other:?}"),
        }
    }

    assert_eq!(deleted, 1);
    assert!(subject.store.find_login("tom").await.unwrap().is_none());
    assert_eq!(subject.store.get_user(&tom.id).await.unwrap(), None);
}

pub(super) async fn authorization_state_reports_a_revoked_jti_and_not_another_one(
    subject: Subject,
) {
    let store = subject.store.as_ref();
    let victor = create(&subject, "victor").await;
    let unknown_id = "0123456789abcdef0123456789abcdef";

    store
        .revoke_access_token("jti-logged-out", NOW + 900)
        .await
        .expect("revoked");

    let user = Some(UserAuthState {
        role: Role::Customer,
        disabled: false,
        token_version: 0,
    });
    assert_eq!(
        store
            .authorization_state(&victor.id, "jti-logged-out", "no-such-session")
            .await
            .unwrap(),
        AuthorizationState {
            user: user.clone(),
            jti_revoked: true,
            session_revoked: false,
        }
    );
    assert_eq!(
        store
            .authorization_state(&victor.id, "jti-still-valid", "no-such-session")
            .await
            .unwrap(),
        AuthorizationState {
            user,
            jti_revoked: false,
            session_revoked: false,
        }
    );
    // Both halves are independent: a deny-listed jti of an unknown user.
    assert_eq!(
        store
            .authorization_state(unknown_id, "jti-logged-out", "no-such-session")
            .await
            .unwrap(),
        AuthorizationState {
            user: None,
            jti_revoked: true,
            session_revoked: false,
        }
    );
    // A jti is not a user id, nor the other way round.
    assert_eq!(
        store
            .authorization_state("jti-logged-out", &victor.id, "no-such-session")
            .await
            .unwrap(),
        AuthorizationState {
            user: None,
            jti_revoked: false,
            session_revoked: false,
        }
    );
    // Revoking again is harmless.
    store
        .revoke_access_token("jti-logged-out", NOW + 900)
        .await
        .expect("revoked again");
    assert!(
        store
            .authorization_state(&victor.id, "jti-logged-out", "no-such-session")
            .await
            .unwrap()
            .jti_revoked
    );
    if let Some(raw) = &subject.raw {
        let item = raw
            .item("REVOKED#jti-logged-out")
            .await
            .expect("deny-list item");
        assert_eq!(number(&item, "expires_at"), NOW + 900, "expires by TTL");
        assert!(!item.contains_key("kind"), "{item:?}");
    }
}

/// The local gateway and the admin command call `create_table` on every start.
#[tokio::test]
pub(super) async fn creating_an_existing_table_again_keeps_it_and_its_users() {
    let subject = dynamo_subject().await;
    let raw = subject.raw.as_ref().expect("a DynamoDB subject");
    let olivia = create(&subject, "olivia").await;

    jwt_auth_core::store::dynamodb::create_table(&raw.client, &raw.table)
        .await
        .expect("an existing table is accepted");

    assert_eq!(
        subject.store.get_user(&olivia.id).await.unwrap(),
        Some(olivia)
    );
}
