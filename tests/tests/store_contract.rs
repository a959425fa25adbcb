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
use jwt_auth_core::store::dynamodb::{BY_KIND_INDEX, DynamoUserStore};
use jwt_auth_core::store::memory::MemoryUserStore;
use jwt_auth_core::store::{
    AuthorizationState, LoginFailures, NewRefreshToken, NewUser, PageKey, Rotation, Store,
    StoreError, UserAuthState, UserChanges, UserStore,
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
        .create_user(new_user(username, "first"), NOW)
        .await
        .expect("user created")
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
    let result = store.create_user(duplicate, NOW + 60).await;

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
                    .create_user(new_user("carol", &format!("racer-{i}")), NOW)
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
                .create_user(new_user, NOW)
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

    let disabled = store.set_disabled(&heidi.id, true).await.expect("disabled");

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
        .set_disabled(&heidi.id, false)
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

    let disabled = subject.store.set_disabled(unknown_id, true).await;
    let rehashed = subject
        .store
        .set_password_hash(unknown_id, fake_hash("new"))
        .await;

    assert!(
        matches!(disabled, Err(StoreError::NotFound)),
        "{disabled:?}"
    );
    assert!(
        matches!(rehashed, Err(StoreError::NotFound)),
        "{rehashed:?}"
    );
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
                    let user = store.set_disabled(&id, i % 4 == 0).await?;
                    assert_eq!(user.disabled, i % 4 == 0);
                    Ok(())
                } else {
                    store
                        .set_password_hash(&id, fake_hash(&format!("racer-{i}")))
                        .await
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
        assert_eq!(
            number(&profile_item, "version"),
            1 + disables,
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
        .set_password_hash(&mike.id, fake_hash("rehashed"))
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
