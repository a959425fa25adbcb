//! Writes in flight while their caller is revoked, on both stores: the request has passed
//! its re-check (`current_caller`) and waits at the store's door ([`HeldStore`]) while
//! another request disables, demotes or logs out its caller; then it is let through. The
//! write must land only if its caller still stands at that moment: 401, nothing written.
//! Also: an admin cannot change its own role or disabled state, and two admins demoting
//! each other at once leave one admin.

use integration_tests::TestApp;
use integration_tests::held_store::HeldStore;
use jwt_auth_core::ApiError;
use jwt_auth_core::sessions::login::{ChangePasswordRequest, LoginRequest, TokenResponse};
use jwt_auth_core::sessions::revocation::current_caller;
use jwt_auth_core::store::memory::MemoryUserStore;
use jwt_auth_core::store::{Actor, Store, UserChanges};
use jwt_auth_core::users::admin::{
    CreateUserRequest, ResetPasswordRequest, UpdateUserRequest, create_user, delete_user,
    reset_password, update_user,
};
use jwt_auth_core::users::user::{Role, User};
use jwt_auth_core::web::request::Caller;
use secrecy::SecretString;
use std::future::Future;
use std::sync::Arc;

const PASSWORD: &str = "a-long-test-password";
const T0: u64 = 1_900_000_000;
const SOURCE_IP: &str = "198.51.100.30";

/// The app over a [`HeldStore`] in front of `inner`.
fn held_app(inner: Arc<dyn Store>) -> (TestApp, Arc<HeldStore>) {
    let held = HeldStore::new(inner);
    (TestApp::new(Arc::clone(&held) as Arc<dyn Store>), held)
}

async fn login(app: &TestApp, username: &str, password: &str) -> TokenResponse {
    let request = LoginRequest {
        username: username.into(),
        password: SecretString::from(password.to_string()),
        device_token: None,
    };
    app.login
        .login(request, SOURCE_IP, T0)
        .await
        .expect("login works")
        .tokens()
        .expect("no second factor")
}

/// The caller behind this access token, re-checked as every backend route does.
async fn checked_caller(app: &TestApp, session: &TokenResponse) -> Caller {
    current_caller(
        app.store.as_ref(),
        app.caller(&session.access_token, T0),
        T0,
    )
    .await
    .expect("the caller stands when its request starts")
}

/// Runs `write` until it waits at the door, then `meanwhile`, then lets it through.
async fn race<T: Send + 'static>(
    held: &HeldStore,
    write: impl Future<Output = T> + Send + 'static,
    meanwhile: impl Future<Output = ()>,
) -> T {
    held.hold_next_write();
    let in_flight = tokio::spawn(write);
    held.held().await;
    meanwhile.await;
    held.release();
    in_flight.await.expect("the write's task ran")
}

/// `admin` disabled by the other admin, through the same use case.
async fn disable(app: &TestApp, by: &Caller, admin: &User) {
    let request = UpdateUserRequest {
        name: None,
        role: None,
        disabled: Some(true),
    };
    update_user(app.store.as_ref(), &app.users.roles, by, &admin.id, request)
        .await
        .expect("the other admin disables it");
}

fn new_admin_request() -> CreateUserRequest {
    CreateUserRequest {
        username: "eve".into(),
        name: None,
        role: Role::Admin,
        password: SecretString::from(PASSWORD.to_string()),
    }
}

async fn an_admin_create_in_flight_when_its_caller_is_disabled_creates_nobody(
    inner: Arc<dyn Store>,
) {
    let (app, held) = held_app(inner);
    let app = Arc::new(app);
    let mallory = app.create_user("mallory", Role::Admin, PASSWORD).await;
    app.create_user("alice", Role::Admin, PASSWORD).await;
    let mallory_caller = checked_caller(&app, &login(&app, "mallory", PASSWORD).await).await;
    let alice_caller = checked_caller(&app, &login(&app, "alice", PASSWORD).await).await;

    let create = {
        let app = Arc::clone(&app);
        async move {
            create_user(
                app.store.as_ref(),
                &app.users.hasher,
                &app.users.roles,
                &mallory_caller,
                new_admin_request(),
                T0,
            )
            .await
        }
    };
    let result = race(&held, create, disable(&app, &alice_caller, &mallory)).await;

    assert!(matches!(result, Err(ApiError::Unauthorized)), "{result:?}");
    assert!(app.store.find_login("eve").await.unwrap().is_none());
}

async fn an_admin_create_in_flight_when_its_token_logs_out_creates_nobody(inner: Arc<dyn Store>) {
    let (app, held) = held_app(inner);
    let app = Arc::new(app);
    app.create_user("mallory", Role::Admin, PASSWORD).await;
    let mallory_caller = checked_caller(&app, &login(&app, "mallory", PASSWORD).await).await;

    let create = {
        let app = Arc::clone(&app);
        let caller = mallory_caller.clone();
        async move {
            create_user(
                app.store.as_ref(),
                &app.users.hasher,
                &app.users.roles,
                &caller,
                new_admin_request(),
                T0,
            )
            .await
        }
    };
    let logout = async {
        app.login
            .logout(&mallory_caller, T0)
            .await
            .expect("logout of the very token");
    };
    let result = race(&held, create, logout).await;

    assert!(matches!(result, Err(ApiError::Unauthorized)), "{result:?}");
    assert!(app.store.find_login("eve").await.unwrap().is_none());
}

async fn a_reset_and_a_delete_in_flight_when_their_caller_is_demoted_change_nothing(
    inner: Arc<dyn Store>,
) {
    let (app, held) = held_app(inner);
    let app = Arc::new(app);
    let mallory = app.create_user("mallory", Role::Admin, PASSWORD).await;
    app.create_user("alice", Role::Admin, PASSWORD).await;
    let bob = app.create_user("bob", Role::Customer, PASSWORD).await;
    let mallory_caller = checked_caller(&app, &login(&app, "mallory", PASSWORD).await).await;
    let alice_caller = checked_caller(&app, &login(&app, "alice", PASSWORD).await).await;
    let demote = || async {
        let request = UpdateUserRequest {
            name: None,
            role: Some(Role::Customer),
            disabled: None,
        };
        update_user(
            app.store.as_ref(),
            &app.users.roles,
            &alice_caller,
            &mallory.id,
            request,
        )
        .await
        .expect("alice demotes mallory");
    };

    let reset = {
        let (app, caller, bob) = (Arc::clone(&app), mallory_caller.clone(), bob.id.clone());
        async move {
            let request = ResetPasswordRequest {
                new_password: SecretString::from("taken-over-password".to_string()),
            };
            reset_password(
                app.store.as_ref(),
                &app.users.hasher,
                &caller,
                &bob,
                request,
            )
            .await
        }
    };
    let result = race(&held, reset, demote()).await;
    assert!(matches!(result, Err(ApiError::Unauthorized)), "{result:?}");
    login(&app, "bob", PASSWORD).await;

    // Mallory again with the same (stale) standing: the delete is refused at the door.
    let delete = {
        let (app, caller, bob) = (Arc::clone(&app), mallory_caller.clone(), bob.id.clone());
        async move { delete_user(app.store.as_ref(), &caller, &bob).await }
    };
    let result = race(&held, delete, async {}).await;
    assert!(matches!(result, Err(ApiError::Unauthorized)), "{result:?}");
    assert!(app.store.get_user(&bob.id).await.unwrap().is_some());
}

async fn a_password_change_in_flight_when_its_session_logs_out_changes_nothing(
    inner: Arc<dyn Store>,
) {
    let (app, held) = held_app(inner);
    let app = Arc::new(app);
    app.create_user("alice", Role::Customer, PASSWORD).await;
    let session = login(&app, "alice", PASSWORD).await;
    let caller = checked_caller(&app, &session).await;

    let change = {
        let (app, caller) = (Arc::clone(&app), caller.clone());
        async move {
            let request = ChangePasswordRequest {
                current_password: SecretString::from(PASSWORD.to_string()),
                new_password: SecretString::from("a-brand-new-password".to_string()),
            };
            app.login.change_password(&caller, request, T0).await
        }
    };
    let logout = async {
        app.login.logout(&caller, T0).await.expect("logout");
    };
    let result = race(&held, change, logout).await;

    assert!(matches!(result, Err(ApiError::Unauthorized)), "{result:?}");
    login(&app, "alice", PASSWORD).await;
}

async fn an_admin_cannot_re_enable_re_promote_or_demote_itself(inner: Arc<dyn Store>) {
    let (app, _) = held_app(inner);
    let mallory = app.create_user("mallory", Role::Admin, PASSWORD).await;
    let caller = checked_caller(&app, &login(&app, "mallory", PASSWORD).await).await;
    for (role, disabled) in [
        (None, Some(false)),
        (Some(Role::Admin), None),
        (None, Some(true)),
        (Some(Role::Customer), None),
    ] {
        let request = UpdateUserRequest {
            name: None,
            role,
            disabled,
        };
        let result = update_user(
            app.store.as_ref(),
            &app.users.roles,
            &caller,
            &mallory.id,
            request,
        )
        .await;
        assert!(
            matches!(result, Err(ApiError::Conflict(_))),
            "{role:?} {disabled:?}: {result:?}"
        );
    }
    // Its own name is its to change.
    let request = UpdateUserRequest {
        name: Some("Mallory M.".into()),
        role: None,
        disabled: None,
    };
    let renamed = update_user(
        app.store.as_ref(),
        &app.users.roles,
        &caller,
        &mallory.id,
        request,
    )
    .await
    .expect("renaming oneself works");
    assert_eq!(renamed.user.name, "Mallory M.");
}

async fn two_admins_demoting_each_other_leave_one_admin(inner: Arc<dyn Store>) {
    let (app, held) = held_app(inner);
    let app = Arc::new(app);
    let alice = app.create_user("alice", Role::Admin, PASSWORD).await;
    let bob = app.create_user("bob", Role::Admin, PASSWORD).await;
    let alice_caller = checked_caller(&app, &login(&app, "alice", PASSWORD).await).await;
    let bob_caller = checked_caller(&app, &login(&app, "bob", PASSWORD).await).await;
    let demote = |by: Caller, whom: String| {
        let app = Arc::clone(&app);
        async move {
            let request = UpdateUserRequest {
                name: None,
                role: Some(Role::Customer),
                disabled: None,
            };
            update_user(app.store.as_ref(), &app.users.roles, &by, &whom, request).await
        }
    };

    // Alice's demotion of bob waits at the door while bob's of alice lands.
    let bob_demotes_alice = async {
        demote(bob_caller.clone(), alice.id.clone())
            .await
            .expect("bob's demotion lands first");
    };
    let result = race(
        &held,
        demote(alice_caller.clone(), bob.id.clone()),
        bob_demotes_alice,
    )
    .await;
    assert!(matches!(result, Err(ApiError::Unauthorized)), "{result:?}");
    assert_eq!(admins(&app).await, vec!["bob".to_string()]);

    // And truly at once, many times over: never no admin.
    for round in 0..10 {
        let (alice, bob) = (
            app.create_user(&format!("alice{round}"), Role::Admin, PASSWORD)
                .await,
            app.create_user(&format!("bob{round}"), Role::Admin, PASSWORD)
                .await,
        );
        let a = checked_caller(&app, &login(&app, &alice.username, PASSWORD).await).await;
        let b = checked_caller(&app, &login(&app, &bob.username, PASSWORD).await).await;
        let (first, second) = tokio::join!(
            tokio::spawn(demote(a, bob.id.clone())),
            tokio::spawn(demote(b, alice.id.clone()))
        );
        let landed = [first.unwrap(), second.unwrap()]
            .iter()
            .filter(|result| result.is_ok())
            .count();
        assert!(landed <= 1, "round {round}: both demotions landed");
        let stored: Vec<_> = [
            app.store.get_user(&alice.id).await.unwrap().unwrap().role,
            app.store.get_user(&bob.id).await.unwrap().unwrap().role,
        ]
        .into_iter()
        .filter(|role| *role == Role::Admin)
        .collect();
        assert!(
            !stored.is_empty(),
            "round {round}: no admin left of the two"
        );
    }
}

/// The usernames of every enabled admin.
async fn admins(app: &TestApp) -> Vec<String> {
    let page = app.store.list_users(100, None).await.unwrap();
    page.users
        .into_iter()
        .filter(|user| user.role == Role::Admin && !user.disabled)
        .map(|user| user.username)
        .collect()
}

/// An operator's write (the CLI) is not a caller's: it needs no token.
async fn an_operator_write_needs_no_caller(inner: Arc<dyn Store>) {
    let (app, _) = held_app(inner);
    let user = app.create_user("carol", Role::Customer, PASSWORD).await;
    let changes = UserChanges {
        role: Some(Role::Admin),
        ..UserChanges::default()
    };
    let updated = app
        .store
        .update_user(&user.id, changes, Actor::Operator)
        .await
        .unwrap();
    assert_eq!(updated.role, Role::Admin);
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(std::sync::Arc::new(super::MemoryUserStore::new())).await;
                }
            )*
        }
        mod dynamo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (client, table) = integration_tests::dynamo_local::fresh_table().await;
                    let store = jwt_auth_core::store::dynamodb::DynamoUserStore::new(client, table);
                    super::$case(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

on_both_stores!(
    an_admin_create_in_flight_when_its_caller_is_disabled_creates_nobody,
    an_admin_create_in_flight_when_its_token_logs_out_creates_nobody,
    a_reset_and_a_delete_in_flight_when_their_caller_is_demoted_change_nothing,
    a_password_change_in_flight_when_its_session_logs_out_changes_nothing,
    an_admin_cannot_re_enable_re_promote_or_demote_itself,
    two_admins_demoting_each_other_leave_one_admin,
    an_operator_write_needs_no_caller,
);

/// Ten password changes at once with one token: one takes the user's lease and does the
/// argon2 work; the others are refused before any (409), so a few accounts cannot hold the
/// login function's executions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_password_changes_with_one_token_run_one_argon2_verification() {
    let (mut app, held) = held_app(Arc::new(MemoryUserStore::new()));
    // A hasher of its own: the shared one counts other tests' work too.
    let hasher = Arc::new(jwt_auth_core::crypto::password::PasswordHasher::new());
    app.login.hasher = Arc::clone(&hasher);
    let app = Arc::new(app);
    app.create_user("alice", Role::Customer, PASSWORD).await;
    let caller = checked_caller(&app, &login(&app, "alice", PASSWORD).await).await;
    let change = |n: usize| {
        let (app, caller) = (Arc::clone(&app), caller.clone());
        async move {
            let request = ChangePasswordRequest {
                current_password: SecretString::from(PASSWORD.to_string()),
                new_password: SecretString::from(format!("a brand new password {n}")),
            };
            app.login.change_password(&caller, request, T0).await
        }
    };
    let before = hasher.computations();

    // The first holds the lease (its verify and hash done) at the store's door...
    let others = async {
        let attempts: Vec<_> = (1..10).map(|n| tokio::spawn(change(n))).collect();
        for attempt in attempts {
            let refused = attempt.await.unwrap();
            assert!(
                matches!(refused, Err(ApiError::Conflict(_))),
                "{:?}",
                refused.map(|_| ())
            );
        }
    };
    // ...while the nine others run.
    let first = race(&held, change(0), others).await;
    assert!(first.is_ok(), "{:?}", first.map(|_| ()));
    assert_eq!(
        hasher.computations() - before,
        1,
        "one argon2 verification in all"
    );

    // A new password equal to the current one: 400, before any work.
    let session = login(&app, "alice", "a brand new password 0").await;
    let caller = checked_caller(&app, &session).await;
    let request = ChangePasswordRequest {
        current_password: SecretString::from("a brand new password 0".to_string()),
        new_password: SecretString::from("a brand new password 0".to_string()),
    };
    let computed = hasher.computations();
    let same = app.login.change_password(&caller, request, T0).await;
    assert!(matches!(same, Err(ApiError::BadRequest(_))));
    assert_eq!(hasher.computations(), computed);
}

/// DynamoDB: a write to the caller's own user item (an admin renaming itself) cannot carry
/// a condition check on that item, so the store checks the caller in what it read and the
/// transaction is conditioned on that read. Held at the wire between the read and the
/// transaction while the caller is disabled, it is let through: 401, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_write_whose_caller_is_disabled_between_its_read_and_its_transaction_lands_nothing()
{
    use jwt_auth_core::startup::aws::local_dynamodb_client;
    use jwt_auth_core::store::UserStore as _;
    use jwt_auth_core::store::dynamodb::DynamoUserStore;
    let (proxy, calls) = integration_tests::round_trips::start_proxy(
        &std::env::var(integration_tests::dynamo_local::ENDPOINT_VAR).expect("make test"),
    )
    .await;
    let (client, table) = integration_tests::dynamo_local::fresh_table().await;
    let direct = DynamoUserStore::new(client, table.clone());
    let app = Arc::new(TestApp::new(Arc::new(DynamoUserStore::new(
        local_dynamodb_client(&format!("http://{proxy}")),
        table,
    ))));
    let mallory = app.create_user("mallory", Role::Admin, PASSWORD).await;
    let session = login(&app, "mallory", PASSWORD).await;
    let caller = checked_caller(&app, &session).await;

    let hold = calls.hold_next("TransactWriteItems");
    let rename = {
        let (app, id) = (Arc::clone(&app), mallory.id.clone());
        tokio::spawn(async move {
            let request = UpdateUserRequest {
                name: Some("Mallory M.".into()),
                role: None,
                disabled: None,
            };
            update_user(app.store.as_ref(), &app.users.roles, &caller, &id, request).await
        })
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), hold.arrived())
        .await
        .expect("the rename's transaction reached the wire");
    direct
        .set_disabled(&mallory.id, true, Actor::Operator)
        .await
        .expect("an operator disables mallory");
    hold.release();
    let result = rename.await.expect("the rename's task ran");

    assert!(matches!(result, Err(ApiError::Unauthorized)), "{result:?}");
    let stored = direct
        .get_user(&mallory.id)
        .await
        .unwrap()
        .expect("mallory");
    assert_eq!(stored.name, mallory.name, "the rename did not land");
    assert!(stored.disabled);
}
