//! The `UserStore` and `SessionStore` contract: one suite, run against both stores.
//!
//! Every case is written once, as a function of a [`Subject`], and instantiated twice by
//! `store_contract!`: `memory::<case>` on a fresh `MemoryUserStore` and `dynamo::<case>` on
//! a fresh DynamoDB Local table (so the DynamoDB cases run in parallel). The DynamoDB cases
//! also look at the raw items, where the contract is about what is stored.
//!
//! Needs `DYNAMODB_ENDPOINT` (set by `make test`); without it the `dynamo::` cases fail.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::dynamo_local::fresh_table;
use jwt_auth_core::password::StoredHash;
use jwt_auth_core::store::Actor;
use jwt_auth_core::store::dynamodb::{BY_KIND_INDEX, DynamoUserStore};
use jwt_auth_core::store::memory::MemoryUserStore;
use jwt_auth_core::store::{
    AuthorizationState, LoginFailures, NewRefreshToken, NewUser, PageKey, PasswordWrite, Rotation,
    StandingCaller, Store, StoreError, UserAuthState, UserChanges, UserStore,
};
use jwt_auth_core::user::{Role, User, is_valid_user_id};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

type Item = HashMap<String, AttributeValue>;

/// "Now" for every created user: the stores take time as an argument.
const NOW: u64 = 1_767_225_600;
/// Tasks racing on one username or one user in the concurrency cases.
const RACERS: usize = 8;
/// The failed-login window used by the lockout cases.
const WINDOW: u64 = 900;

/// A store under test, and for DynamoDB a way to read the raw table.
struct Subject {
    store: Arc<dyn Store>,
    raw: Option<RawTable>,
}

/// Direct access to the DynamoDB table behind a `DynamoUserStore`.
struct RawTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl RawTable {
    async fn item(&self, pk: &str) -> Option<Item> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_string()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem on DynamoDB Local")
            .item
    }

    async fn index_items(&self) -> Vec<Item> {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(BY_KIND_INDEX)
            .key_condition_expression("#kind = :kind")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":kind", AttributeValue::S("USER".into()))
            .send()
            .await
            .expect("Query on DynamoDB Local")
            .items
            .unwrap_or_default()
    }
}

fn number(item: &Item, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().expect("a number attribute"),
        other => panic!("{name} is not a number attribute: {other:?}"),
    }
}

async fn memory_subject() -> Subject {
    Subject {
        store: Arc::new(MemoryUserStore::new()),
        raw: None,
    }
}

async fn dynamo_subject() -> Subject {
    let (client, table) = fresh_table().await;
    Subject {
        store: Arc::new(DynamoUserStore::new(client.clone(), table.clone())),
        raw: Some(RawTable { client, table }),
    }
}

/// A PHC-shaped string that no real hash equals; the stores never look inside.
fn fake_hash(tag: &str) -> StoredHash {
    StoredHash::from_phc(format!(
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$fake-{tag}"
    ))
}

fn new_user(username: &str, tag: &str) -> NewUser {
    NewUser {
        username: username.to_string(),
        name: format!("{username} {tag}"),
        role: Role::Customer,
        password_hash: fake_hash(tag),
    }
}

async fn create(subject: &Subject, username: &str) -> User {
    subject
        .store
        .create_user(new_user(username, "first"), NOW, Actor::Operator)
        .await
        .expect("user created")
}

/// The token version as login sees it (`find_login`) and as the authorizer sees it
/// (`authorization_state`); they must agree.
async fn token_version(subject: &Subject, user: &User) -> u64 {
    let login = subject
        .store
        .find_login(&user.username)
        .await
        .unwrap()
        .expect("login record");
    let state = subject
        .store
        .authorization_state(&user.id, "no-such-jti", "no-such-session")
        .await
        .unwrap()
        .user
        .expect("authorization state of an existing user");
    assert_eq!(
        login.token_version, state.token_version,
        "login and the authorizer see one token version"
    );
    if let Some(raw) = &subject.raw {
        let profile_item = raw.item(&format!("USER#{}", user.id)).await.unwrap();
        let credential_item = raw
            .item(&format!("USERNAME#{}", user.username))
            .await
            .unwrap();
        assert_eq!(number(&profile_item, "token_version"), login.token_version);
        assert_eq!(
            number(&credential_item, "token_version"),
            login.token_version
        );
    }
    login.token_version
}

/// A refresh token of `family` whose hash is derived from `tag`.
fn refresh_token(tag: &str, family: &str, expires_at: u64) -> NewRefreshToken {
    NewRefreshToken {
        hash: format!("{tag:0>64}"),
        user_id: "0123456789abcdef0123456789abcdef".into(),
        family_id: family.into(),
        token_version: 3,
        session_started_at: NOW - 60,
        created_at: NOW,
        expires_at,
    }
}

/// Every user, page by page, asserting the page invariants on the way.
async fn all_pages(store: &dyn UserStore, page_size: usize) -> Vec<Vec<User>> {
    let mut pages = Vec::new();
    let mut after: Option<PageKey> = None;
    loop {
        let page = store
            .list_users(page_size, after.as_ref())
            .await
            .expect("page listed");
        assert!(
            page.users.len() <= page_size,
            "page of {page_size} has {} users",
            page.users.len()
        );
        match page.next {
            Some(next) => {
                assert_eq!(
                    page.users.len(),
                    page_size,
                    "only the last page may be short"
                );
                assert_eq!(Some(&next), page.users.last().map(PageKey::after).as_ref());
                after = Some(next);
                pages.push(page.users);
            }
            None => {
                pages.push(page.users);
                return pages;
            }
        }
    }
}

/// An admin as a signed-in caller of a write: its session `sid`, its token `jti`.
fn standing<'a>(user: &'a User, jti: &'a str, sid: &'a str) -> StandingCaller<'a> {
    StandingCaller {
        id: &user.id,
        role: user.role,
        token_version: 0,
        jti,
        sid,
    }
}

async fn admin(subject: &Subject, username: &str) -> User {
    let mut new = new_user(username, "admin");
    new.role = Role::Admin;
    subject
        .store
        .create_user(new, NOW, Actor::Operator)
        .await
        .expect("admin created")
}

fn is_caller_revoked<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::CallerRevoked))
}

async fn a_revoked_caller_learns_nothing_of_a_taken_username(subject: Subject) {
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

async fn every_write_lands_only_while_its_caller_stands(subject: Subject) {
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

async fn a_caller_changing_itself_is_checked_on_what_the_write_replaces(subject: Subject) {
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

async fn ending_a_session_revokes_its_token_and_session_once(subject: Subject) {
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

async fn a_lease_has_one_holder_until_it_ends_or_is_released(subject: Subject) {
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

macro_rules! store_contract {
    ($( #[$test:meta] $case:ident ),* $(,)?) => {
        mod memory {
            $( #[$test] async fn $case() { super::$case(super::memory_subject().await).await; } )*
        }
        mod dynamo {
            $( #[$test] async fn $case() { super::$case(super::dynamo_subject().await).await; } )*
        }
    };
}

store_contract! {
    #[tokio::test] a_created_user_can_be_read_by_id_and_by_username_with_its_hash,
    #[tokio::test] a_duplicate_username_is_refused_and_the_stored_user_is_unchanged,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    concurrent_creates_of_one_username_have_exactly_one_winner,
    #[tokio::test] two_different_usernames_are_two_users_both_listed,
    #[tokio::test] listing_pages_through_all_users_in_username_order_for_every_page_size,
    #[tokio::test] an_empty_store_lists_one_empty_last_page,
    #[tokio::test] pages_of_large_users_are_full_even_past_one_query_megabyte,
    #[tokio::test] an_unknown_id_or_username_is_none,
    #[tokio::test] set_disabled_changes_what_get_user_and_find_login_see,
    #[tokio::test] changing_an_unknown_id_is_not_found,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    concurrent_changes_to_one_user_lose_nothing,
    #[tokio::test] set_password_hash_replaces_the_hash_seen_by_find_login,
    #[tokio::test] the_profile_read_by_get_user_never_carries_the_password_hash,
    #[tokio::test]
    update_user_applies_name_role_and_disabled_and_bumps_the_token_version_only_for_role_or_disabled,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    parallel_updates_of_one_user_lose_nothing,
    #[tokio::test] deleting_a_user_frees_its_username_and_leaves_nothing_to_read,
    #[tokio::test] deleting_an_unknown_id_is_not_found_and_deletes_nothing,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    parallel_deletes_of_one_user_have_exactly_one_winner,
    #[tokio::test] revoke_all_tokens_bumps_the_token_version_seen_by_login_and_the_authorizer,
    #[tokio::test] authorization_state_reports_a_revoked_jti_and_not_another_one,
    #[tokio::test] authorization_state_reports_a_revoked_session_and_not_another_one,
    #[tokio::test] a_rehash_lands_only_over_the_hash_it_replaces_and_keeps_the_token_version,
    #[tokio::test] a_password_change_lands_only_over_the_proven_hash_and_revokes_tokens,
    #[tokio::test] a_reset_replaces_any_hash_and_revokes_tokens,
    #[tokio::test] an_update_to_the_values_already_stored_keeps_the_token_version,
    #[tokio::test] uncounting_takes_one_attempt_off_its_own_counter_and_never_below_zero,
    #[tokio::test] a_refusal_is_written_on_its_counter_and_brings_back_no_cleared_one,
    #[tokio::test] a_refresh_token_round_trips_through_create_and_find,
    #[tokio::test] rotating_retires_the_old_token_at_now_and_stores_the_successor,
    #[tokio::test] rotating_a_retired_token_is_refused_and_writes_nothing,
    #[tokio::test] rotating_an_expired_token_is_refused_and_writes_nothing,
    #[tokio::test] rotating_a_token_of_a_revoked_family_is_refused_and_find_shows_the_family_revoked,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    parallel_rotations_of_one_token_have_exactly_one_winner,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    parallel_login_failures_are_all_counted,
    #[tokio::test] a_login_failure_after_the_window_starts_the_count_again_from_one,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    parallel_login_failures_after_the_window_restart_the_count_once,
    #[tokio::test] clearing_login_failures_resets_the_count_to_zero,
    #[tokio::test] login_failures_are_counted_per_username,
    #[tokio::test] a_login_lock_is_set_once_holds_and_then_allows_the_next_level,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    parallel_lock_attempts_have_exactly_one_winner,
    #[tokio::test] a_stale_count_restarts_unlocked_and_clearing_removes_the_lock,
    #[tokio::test] every_write_lands_only_while_its_caller_stands,
    #[tokio::test] a_revoked_caller_learns_nothing_of_a_taken_username,
    #[tokio::test] a_caller_changing_itself_is_checked_on_what_the_write_replaces,
    #[tokio::test] ending_a_session_revokes_its_token_and_session_once,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_lease_has_one_holder_until_it_ends_or_is_released,
}

async fn a_created_user_can_be_read_by_id_and_by_username_with_its_hash(subject: Subject) {
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

async fn a_duplicate_username_is_refused_and_the_stored_user_is_unchanged(subject: Subject) {
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

async fn concurrent_creates_of_one_username_have_exactly_one_winner(subject: Subject) {
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

async fn two_different_usernames_are_two_users_both_listed(subject: Subject) {
    let dave = create(&subject, "dave").await;
    let erin = create(&subject, "erin").await;

    assert_ne!(dave.id, erin.id);
    let page = subject.store.list_users(10, None).await.unwrap();
    assert_eq!(page.users, vec![dave, erin]);
    assert_eq!(page.next, None);
}

async fn listing_pages_through_all_users_in_username_order_for_every_page_size(subject: Subject) {
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

async fn pages_of_large_users_are_full_even_past_one_query_megabyte(subject: Subject) {
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

async fn an_empty_store_lists_one_empty_last_page(subject: Subject) {
    let page = subject.store.list_users(5, None).await.unwrap();

    assert!(page.users.is_empty());
    assert_eq!(page.next, None);
}

async fn an_unknown_id_or_username_is_none(subject: Subject) {
    let known = create(&subject, "frank").await;
    let unknown_id = "0123456789abcdef0123456789abcdef";
    assert_ne!(known.id, unknown_id);

    assert_eq!(subject.store.get_user(unknown_id).await.unwrap(), None);
    assert!(subject.store.find_login("grace").await.unwrap().is_none());
    // Keys are exact: another spelling of a username, or a username for an id, finds nothing.
    assert!(subject.store.find_login("frank ").await.unwrap().is_none());
    assert_eq!(subject.store.get_user("frank").await.unwrap(), None);
}

async fn set_disabled_changes_what_get_user_and_find_login_see(subject: Subject) {
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

async fn changing_an_unknown_id_is_not_found(subject: Subject) {
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

async fn concurrent_changes_to_one_user_lose_nothing(subject: Subject) {
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

async fn set_password_hash_replaces_the_hash_seen_by_find_login(subject: Subject) {
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

async fn the_profile_read_by_get_user_never_carries_the_password_hash(subject: Subject) {
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

async fn update_user_applies_name_role_and_disabled_and_bumps_the_token_version_only_for_role_or_disabled(
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

async fn parallel_updates_of_one_user_lose_nothing(subject: Subject) {
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

async fn deleting_a_user_frees_its_username_and_leaves_nothing_to_read(subject: Subject) {
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

async fn deleting_an_unknown_id_is_not_found_and_deletes_nothing(subject: Subject) {
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

async fn parallel_deletes_of_one_user_have_exactly_one_winner(subject: Subject) {
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

async fn revoke_all_tokens_bumps_the_token_version_seen_by_login_and_the_authorizer(
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

async fn authorization_state_reports_a_revoked_jti_and_not_another_one(subject: Subject) {
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

async fn a_refresh_token_round_trips_through_create_and_find(subject: Subject) {
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

async fn rotating_retires_the_old_token_at_now_and_stores_the_successor(subject: Subject) {
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

async fn rotating_a_retired_token_is_refused_and_writes_nothing(subject: Subject) {
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

async fn rotating_an_expired_token_is_refused_and_writes_nothing(subject: Subject) {
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

async fn rotating_a_token_of_a_revoked_family_is_refused_and_find_shows_the_family_revoked(
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

async fn parallel_rotations_of_one_token_have_exactly_one_winner(subject: Subject) {
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

async fn parallel_login_failures_are_all_counted(subject: Subject) {
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

async fn a_login_failure_after_the_window_starts_the_count_again_from_one(subject: Subject) {
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

async fn parallel_login_failures_after_the_window_restart_the_count_once(subject: Subject) {
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

async fn clearing_login_failures_resets_the_count_to_zero(subject: Subject) {
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

async fn login_failures_are_counted_per_username(subject: Subject) {
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

/// The local gateway and the admin command call `create_table` on every start.
#[tokio::test]
async fn creating_an_existing_table_again_keeps_it_and_its_users() {
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

/// Items written before `token_version` existed have no such attribute: they read as
/// version 0, and the first revocation makes it 1 on both items.
#[tokio::test]
async fn items_without_a_token_version_read_as_version_zero() {
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

async fn a_login_lock_is_set_once_holds_and_then_allows_the_next_level(subject: Subject) {
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

async fn parallel_lock_attempts_have_exactly_one_winner(subject: Subject) {
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

async fn a_stale_count_restarts_unlocked_and_clearing_removes_the_lock(subject: Subject) {
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

async fn authorization_state_reports_a_revoked_session_and_not_another_one(subject: Subject) {
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

async fn a_rehash_lands_only_over_the_hash_it_replaces_and_keeps_the_token_version(
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

async fn a_password_change_lands_only_over_the_proven_hash_and_revokes_tokens(subject: Subject) {
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

async fn a_reset_replaces_any_hash_and_revokes_tokens(subject: Subject) {
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

async fn an_update_to_the_values_already_stored_keeps_the_token_version(subject: Subject) {
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

async fn a_refusal_is_written_on_its_counter_and_brings_back_no_cleared_one(subject: Subject) {
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
            ..LoginFailures::default()
        },
        "the count is not changed: it was taken when the attempt began"
    );
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
            NOW + 1
        );
        assert!(raw.item("FAILURES#sam").await.is_none());
        assert!(raw.item("FAILURES#nobody").await.is_none());
    }
}

async fn uncounting_takes_one_attempt_off_its_own_counter_and_never_below_zero(subject: Subject) {
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
