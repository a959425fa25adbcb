//! The store contract (`UserStore`, `SessionStore`, `LoginFailureStore`, `SecondFactorStore`): one suite, run
//! against both stores, a file per aggregate.
//!
//! Every case is written once, as a function of a [`Subject`], and instantiated twice by
//! `store_contract!`: `memory::<case>` on a fresh `MemoryUserStore` and `dynamo::<case>` on
//! a fresh DynamoDB Local table (so the DynamoDB cases run in parallel). The DynamoDB cases
//! also look at the raw items, where the contract is about what is stored.
//!
//! Needs `DYNAMODB_ENDPOINT` (set by `make test`); without it the `dynamo::` cases fail.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::dynamo_local::fresh_table;
use jwt_auth_core::crypto::password::StoredHash;
use jwt_auth_core::store::Actor;
use jwt_auth_core::store::dynamodb::{BY_KIND_INDEX, DynamoUserStore};
use jwt_auth_core::store::memory::MemoryUserStore;
use jwt_auth_core::store::{
    AuthorizationState, LoginFailures, NewRefreshToken, NewUser, PageKey, PasswordWrite, Rotation,
    StandingCaller, Store, StoreError, UserAuthState, UserChanges, UserStore,
};
use jwt_auth_core::users::user::{Role, User, is_valid_user_id};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

mod callers;
mod factors;
mod failures;
mod sessions;
mod user_changes;
mod users;

use callers::*;
use factors::*;
use failures::*;
use sessions::*;
use user_changes::*;
use users::*;

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
        // Not the default, so that reading it back shows it was stored.
        second_factor: true,
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
    #[tokio::test] an_enrolment_is_pending_until_confirmed_and_lapses_unconfirmed,
    #[tokio::test] a_step_is_spent_once_and_never_an_earlier_one,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    parallel_spends_of_one_step_or_one_code_have_exactly_one_winner,
    #[tokio::test] recovery_codes_are_spent_one_by_one_until_none_is_left,
    #[tokio::test] a_removed_factor_is_gone_and_enrolment_starts_afresh,
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_challenge_is_spent_once_with_its_proof,
    #[tokio::test] factor_writes_land_only_while_their_caller_stands,
}
