//! Sessions end when they should even under API Gateway's policy cache (SECURITY.md rows
//! 49-53): HTTP through the local gateway with the template's default cache (300 s), on
//! both stores, with the functions' clock under the test's control. Each case first makes
//! sure the caller's Allow is cached, then checks that the backend refuses it anyway; the
//! trace proves the refusal came from behind a cache hit.

use integration_tests::running_api::{PASSWORD, RunningApi, dynamo_store_at, start_at};
use integration_tests::workspace_root;
use jwt_auth_core::crypto::token::CLOCK_LEEWAY_SECS;
use jwt_auth_core::crypto::token::DEFAULT_TOKEN_TTL_SECS;
use jwt_auth_core::sessions::lockout::{LOCK_THRESHOLD, lock_secs};
use jwt_auth_core::sessions::login::REFRESH_REUSE_GRACE_SECS;
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::users::user::Role;
use local_gateway::app::StoreChoice;
use local_gateway::gateway::AuthorizationTrace;
use serde_json::{Value, json};

/// The functions' "now" when each test starts.
const T0: u64 = 1_900_000_000;
/// The template's default `AuthorizerCacheTtlSeconds`.
const CACHE_TTL: &str = "300";

async fn api_on(store: StoreChoice, overrides: &[(&str, &str)]) -> RunningApi {
    let mut overrides = overrides.to_vec();
    if !overrides
        .iter()
        .any(|(name, _)| *name == "AuthorizerCacheTtlSeconds")
    {
        overrides.push(("AuthorizerCacheTtlSeconds", CACHE_TTL));
    }
    start_at(
        store,
        workspace_root().join("template.yaml"),
        &overrides,
        Clock::manual(T0),
    )
    .await
}

fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
        .to_string()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Calls `path` with `token` and asserts the authorizer's answer came from the cache.
async fn cached_call(api: &RunningApi, method: &str, path: &str, token: &str) -> u16 {
    let (status, trace) = api.trace(method, path, &bearer(token)).await;
    assert_eq!(
        trace,
        AuthorizationTrace::CacheHit,
        "{method} {path}: the Allow must come from the cache for this test to mean anything"
    );
    status
}

async fn refresh(api: &RunningApi, refresh_token: &str) -> (u16, Value) {
    let answer = api.refresh(refresh_token).await;
    (answer.status, answer.body)
}

async fn login_with(api: &RunningApi, username: &str, password: &str) -> (u16, Value) {
    let answer = api.try_login(username, password).await;
    (answer.status, answer.body)
}

/// 1. Admins demoted, disabled or deleted while their Allow is cached cannot create an
///    admin (or anyone), nor list users.
async fn a_revoked_admin_cannot_act_behind_its_cached_allow(store: StoreChoice) {
    let api = api_on(store, &[]).await;
    api.create_user("root", Role::Admin).await;
    let root = api.login("root").await;
    let mut revoked = Vec::new();
    for (name, change) in [
        ("demoted", Some(json!({"role": "customer"}))),
        ("disabled", Some(json!({"disabled": true}))),
        ("deleted", None),
    ] {
        let admin = api.create_user(name, Role::Admin).await;
        let token = api.login(name).await;
        let listed = api.call("GET", "/users", Some(&token), None).await;
        assert_eq!(listed.status, 200, "{name}: the Allow is now cached");
        let path = format!("/users/{}", admin.id);
        let answer = match &change {
            Some(change) => {
                api.call("PATCH", &path, Some(&root), Some(change.clone()))
                    .await
            }
            None => api.call("DELETE", &path, Some(&root), None).await,
        };
        assert!(
            matches!(answer.status, 200 | 204),
            "{name}: {}",
            answer.body
        );
        revoked.push((name, token));
    }

    for (name, token) in &revoked {
        let minted = format!("minted-by-{name}");
        let create = api
            .call(
                "POST",
                "/users",
                Some(token),
                Some(json!({"username": minted, "role": "admin", "password": PASSWORD})),
            )
            .await;
        assert_eq!(create.status, 401, "{name}: {}", create.body);
        assert_eq!(create.headers["content-type"], "application/problem+json");
        assert_eq!(
            create.headers["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        assert!(
            api.store.find_login(&minted).await.unwrap().is_none(),
            "{name}: no user was created"
        );
        assert_eq!(
            cached_call(&api, "POST", "/users", token).await,
            401,
            "{name}"
        );
        assert_eq!(
            cached_call(&api, "GET", "/users", token).await,
            401,
            "{name}"
        );
    }
    // The root admin, untouched, still works.
    assert_eq!(
        api.call("GET", "/users", Some(&root), None).await.status,
        200
    );
}

/// 2. Logout ends every access token of the session, also one issued by refresh and
///    already cached.
async fn logout_ends_every_access_token_of_the_session(store: StoreChoice) {
    let api = api_on(store, &[]).await;
    let alice = api.create_user("alice", Role::Customer).await;
    let own = format!("/users/{}", alice.id);
    let first = api.login_session("alice").await;
    let (status, second) = refresh(&api, &text(&first, "refresh_token")).await;
    assert_eq!(status, 200);
    let a2 = text(&second, "access_token");
    assert_eq!(api.call("GET", &own, Some(&a2), None).await.status, 200);

    let a1 = text(&first, "access_token");
    assert_eq!(
        api.call("POST", "/logout", Some(&a1), None).await.status,
        204
    );

    assert_eq!(cached_call(&api, "GET", &own, &a2).await, 401);
    assert_eq!(refresh(&api, &text(&second, "refresh_token")).await.0, 401);
    // A new login is a new session.
    let again = api.login("alice").await;
    assert_eq!(api.call("GET", &own, Some(&again), None).await.status, 200);
}

/// 2b. A thief who redeemed a stolen refresh token first loses the access token it got
///     once the victim's replay reveals the theft.
async fn reuse_detection_ends_the_thiefs_cached_access_token(store: StoreChoice) {
    let api = api_on(store, &[]).await;
    let alice = api.create_user("alice", Role::Customer).await;
    let own = format!("/users/{}", alice.id);
    let victim = api.login_session("alice").await;
    let stolen = text(&victim, "refresh_token");
    let (status, thief) = refresh(&api, &stolen).await;
    assert_eq!(status, 200);
    let thief_access = text(&thief, "access_token");
    assert_eq!(
        api.call("GET", &own, Some(&thief_access), None)
            .await
            .status,
        200
    );

    api.clock.advance(REFRESH_REUSE_GRACE_SECS + 1);
    assert_eq!(refresh(&api, &stolen).await.0, 401, "the victim's replay");

    assert_eq!(cached_call(&api, "GET", &own, &thief_access).await, 401);
    assert_eq!(refresh(&api, &text(&thief, "refresh_token")).await.0, 401);
}

/// 3. A token past its `exp` (plus the verifier's leeway) is refused although its Allow is
///    still cached.
async fn a_token_past_its_exp_is_refused_on_a_cached_route(store: StoreChoice) {
    let api = api_on(store, &[]).await;
    let alice = api.create_user("alice", Role::Customer).await;
    let own = format!("/users/{}", alice.id);
    let token = api.login("alice").await;
    assert_eq!(api.call("GET", &own, Some(&token), None).await.status, 200);

    api.clock
        .advance(DEFAULT_TOKEN_TTL_SECS + CLOCK_LEEWAY_SECS - 1);
    assert_eq!(
        cached_call(&api, "GET", &own, &token).await,
        200,
        "inside the leeway"
    );
    api.clock.advance(1);
    let expired = api.call("GET", &own, Some(&token), None).await;
    assert_eq!(expired.status, 401, "{}", expired.body);
    assert!(
        text(&expired.body, "detail").contains("Session expired"),
        "{}",
        expired.body
    );
    assert_eq!(cached_call(&api, "GET", &own, &token).await, 401);
    assert_eq!(cached_call(&api, "POST", "/logout", &token).await, 401);
}

/// 4. After `POST /password` the old access token (cached), the old refresh token and the
///    old password fail; the new ones work.
async fn a_password_change_ends_every_earlier_token(store: StoreChoice) {
    let api = api_on(store, &[]).await;
    let alice = api.create_user("alice", Role::Customer).await;
    let own = format!("/users/{}", alice.id);
    let old = api.login_session("alice").await;
    let old_access = text(&old, "access_token");
    let other_device = api.login_session("alice").await;
    let other_access = text(&other_device, "access_token");
    for access in [&old_access, &other_access] {
        assert_eq!(api.call("GET", &own, Some(access), None).await.status, 200);
    }
    let new_password = "a brand new passphrase";

    let wrong = api
        .call(
            "POST",
            "/password",
            Some(&old_access),
            Some(json!({"current_password": "not it at all", "new_password": new_password})),
        )
        .await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert_eq!(wrong.headers["content-type"], "application/problem+json");
    let weak = api
        .call(
            "POST",
            "/password",
            Some(&old_access),
            Some(json!({"current_password": PASSWORD, "new_password": "password123"})),
        )
        .await;
    assert_eq!(weak.status, 400, "{}", weak.body);

    let changed = api
        .call(
            "POST",
            "/password",
            Some(&old_access),
            Some(json!({"current_password": PASSWORD, "new_password": new_password})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["user"]["id"], alice.id.as_str());

    for access in [&old_access, &other_access] {
        assert_eq!(cached_call(&api, "GET", &own, access).await, 401);
        assert_eq!(cached_call(&api, "POST", "/logout/all", access).await, 401);
    }
    let again = api
        .call(
            "POST",
            "/password",
            Some(&old_access),
            Some(
                json!({"current_password": new_password, "new_password": "yet another passphrase"}),
            ),
        )
        .await;
    assert_eq!(
        again.status, 401,
        "the old token cannot change the password again"
    );
    for session in [&old, &other_device] {
        assert_eq!(refresh(&api, &text(session, "refresh_token")).await.0, 401);
    }
    assert_eq!(login_with(&api, "alice", PASSWORD).await.0, 401);

    let new_access = text(&changed.body, "access_token");
    assert_eq!(
        api.call("GET", &own, Some(&new_access), None).await.status,
        200
    );
    assert_eq!(
        refresh(&api, &text(&changed.body, "refresh_token")).await.0,
        200
    );
    assert_eq!(login_with(&api, "alice", new_password).await.0, 200);
}

/// 4b. An admin's reset ends the user's sessions (an attacker's included) at once.
async fn an_admin_reset_ends_every_session_of_the_user(store: StoreChoice) {
    let api = api_on(store, &[]).await;
    let root = api.create_user("root", Role::Admin).await;
    let root_token = api.login("root").await;
    let alice = api.create_user("alice", Role::Customer).await;
    let own = format!("/users/{}", alice.id);
    let attacker = api.login_session("alice").await;
    let attacker_access = text(&attacker, "access_token");
    assert_eq!(
        api.call("GET", &own, Some(&attacker_access), None)
            .await
            .status,
        200
    );
    let reset_path = format!("/users/{}/password", alice.id);
    let new_password = json!({"new_password": "reset by the help desk"});

    let by_customer = api
        .call(
            "POST",
            &reset_path,
            Some(&attacker_access),
            Some(new_password.clone()),
        )
        .await;
    assert_eq!(by_customer.status, 403, "{}", by_customer.body);
    let own_reset = api
        .call(
            "POST",
            &format!("/users/{}/password", root.id),
            Some(&root_token),
            Some(new_password.clone()),
        )
        .await;
    assert_eq!(
        own_reset.status, 409,
        "admins change their own with POST /password"
    );

    let reset = api
        .call("POST", &reset_path, Some(&root_token), Some(new_password))
        .await;
    assert_eq!(reset.status, 204, "{}", reset.body);
    assert_eq!(cached_call(&api, "GET", &own, &attacker_access).await, 401);
    assert_eq!(
        refresh(&api, &text(&attacker, "refresh_token")).await.0,
        401
    );
    assert_eq!(login_with(&api, "alice", PASSWORD).await.0, 401);
    assert_eq!(
        login_with(&api, "alice", "reset by the help desk").await.0,
        200
    );
}

/// 5. A session ends `SessionMaxSeconds` after its login, however often it was refreshed.
async fn a_refresh_past_the_session_lifetime_fails(store: StoreChoice) {
    let api = api_on(store, &[("SessionMaxSeconds", "7200")]).await;
    api.create_user("alice", Role::Customer).await;
    let login = api.login_session("alice").await;
    assert_eq!(
        login["refresh_expires_in"], 7200,
        "capped at the session's end"
    );

    api.clock.advance(3600);
    let (status, renewed) = refresh(&api, &text(&login, "refresh_token")).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(
        renewed["refresh_expires_in"], 3600,
        "never past the session's end"
    );

    // Just before the end: the access token answered does not outlive the session either.
    api.clock.advance(3600 - 100);
    let (status, last) = refresh(&api, &text(&renewed, "refresh_token")).await;
    assert_eq!(status, 200, "{last}");
    assert_eq!(last["expires_in"], 100, "{last}");
    assert_eq!(last["refresh_expires_in"], 100, "{last}");
    let own = format!("/users/{}", text(&last["user"], "id"));
    let access = text(&last, "access_token");
    assert_eq!(api.call("GET", &own, Some(&access), None).await.status, 200);

    api.clock.advance(100);
    let (status, ended) = refresh(&api, &text(&last, "refresh_token")).await;
    assert_eq!(status, 401, "{ended}");
    assert_eq!(ended["detail"], "session expired; log in again");
    api.clock.advance(CLOCK_LEEWAY_SECS);
    assert_eq!(cached_call(&api, "GET", &own, &access).await, 401);
    assert_eq!(login_with(&api, "alice", PASSWORD).await.0, 200);
}

/// Guesses at the current password with a stolen access token are throttled like logins,
/// on a counter of their own: hammering `/login` for the username does not hold the
/// signed-in user's password change shut.
async fn password_change_guesses_are_throttled_on_their_own_counter(store: StoreChoice) {
    let api = api_on(store, &[]).await;
    api.create_user("alice", Role::Customer).await;
    let token = api.login("alice").await;
    for _ in 0..=LOCK_THRESHOLD {
        login_with(&api, "alice", "an attacker's guess").await;
    }
    assert_eq!(
        login_with(&api, "alice", PASSWORD).await.0,
        429,
        "the username is locked for untrusted logins"
    );

    let change = |current: &'static str| {
        let token = token.clone();
        let api = &api;
        async move {
            api.call(
                "POST",
                "/password",
                Some(&token),
                Some(
                    json!({"current_password": current, "new_password": "a brand new passphrase"}),
                ),
            )
            .await
        }
    };
    for _ in 0..LOCK_THRESHOLD {
        assert_eq!(change("a thief's guess").await.status, 403);
    }
    let locked = change(PASSWORD).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.headers.contains_key("retry-after"));
    api.clock.advance(lock_secs(1));
    assert_eq!(
        change(PASSWORD).await.status,
        200,
        "the lock ends by itself"
    );
}

/// 6. An admin behind its cached Allow cannot keep itself in: re-enabling or re-promoting
///    itself is refused whatever the value, and once another admin has demoted it, its
///    cached Allow does not let it demote that admin back (one admin is always left).
async fn a_demoted_admin_behind_its_cached_allow_cannot_undo_or_return_it(store: StoreChoice) {
    let api = api_on(store, &[]).await;
    let alice = api.create_user("alice", Role::Admin).await;
    let bob = api.create_user("bob", Role::Admin).await;
    let alice_token = api.login("alice").await;
    let bob_token = api.login("bob").await;
    let own = format!("/users/{}", bob.id);
    for change in [
        json!({"disabled": false}),
        json!({"role": "admin"}),
        json!({"role": "customer"}),
    ] {
        let answer = api
            .call("PATCH", &own, Some(&bob_token), Some(change.clone()))
            .await;
        assert_eq!(answer.status, 409, "{change}: {}", answer.body);
    }
    // Bob's Allow is cached; alice demotes him.
    assert_eq!(cached_call(&api, "GET", "/users", &bob_token).await, 200);
    let demoted = api
        .call(
            "PATCH",
            &own,
            Some(&alice_token),
            Some(json!({"role": "customer"})),
        )
        .await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    let (status, trace) = api
        .trace_call(
            "PATCH",
            &format!("/users/{}", alice.id),
            &bearer(&bob_token),
            json!({"role": "customer"}),
        )
        .await;
    assert_eq!(trace, AuthorizationTrace::CacheHit);
    assert_eq!(status, 401);
    let admins: Vec<_> = api
        .call("GET", "/users", Some(&alice_token), None)
        .await
        .body["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|user| user["role"] == "admin")
        .map(|user| text(user, "username"))
        .collect();
    assert_eq!(admins, vec!["alice".to_string()]);
}

/// 7. Parallel password changes with one token: at most one lands; the others are refused
///    (409 while it runs, or 401 once it ended the token) without holding the function.
async fn parallel_password_changes_with_one_token_land_once(store: StoreChoice) {
    let api = api_on(store, &[]).await;
    api.create_user("alice", Role::Customer).await;
    let token = api.login("alice").await;
    let api = std::sync::Arc::new(api);
    let changes: Vec<_> = (0..10)
        .map(|n| {
            let (api, token) = (std::sync::Arc::clone(&api), token.clone());
            tokio::spawn(async move {
                api.call(
                    "POST",
                    "/password",
                    Some(&token),
                    Some(json!({
                        "current_password": PASSWORD,
                        "new_password": format!("a brand new passphrase {n}"),
                    })),
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for change in changes {
        statuses.push(change.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|status| **status == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|status| matches!(status, 200 | 409 | 401)),
        "{statuses:?}"
    );
    // The same password again is a client mistake, answered before any work.
    api.create_user("carol", Role::Customer).await;
    let carol = api.login("carol").await;
    let same = api
        .call(
            "POST",
            "/password",
            Some(&carol),
            Some(json!({"current_password": PASSWORD, "new_password": PASSWORD})),
        )
        .await;
    assert_eq!(same.status, 400, "{}", same.body);
}

/// 5b. Re-sending a role or disabled flag the user already has changes nothing and logs
///     no one out.
async fn an_update_that_changes_nothing_keeps_the_users_sessions(store: StoreChoice) {
    let api = api_on(store, &[]).await;
    api.create_user("root", Role::Admin).await;
    let root = api.login("root").await;
    let alice = api.create_user("alice", Role::Customer).await;
    let own = format!("/users/{}", alice.id);
    let token = api.login("alice").await;
    let same = api
        .call(
            "PATCH",
            &own,
            Some(&root),
            Some(json!({"role": "customer", "disabled": false})),
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(api.call("GET", &own, Some(&token), None).await.status, 200);
}

integration_tests::on_both_local_apis!(
    a_demoted_admin_behind_its_cached_allow_cannot_undo_or_return_it,
    parallel_password_changes_with_one_token_land_once,
    a_revoked_admin_cannot_act_behind_its_cached_allow,
    logout_ends_every_access_token_of_the_session,
    reuse_detection_ends_the_thiefs_cached_access_token,
    a_token_past_its_exp_is_refused_on_a_cached_route,
    a_password_change_ends_every_earlier_token,
    an_admin_reset_ends_every_session_of_the_user,
    a_refresh_past_the_session_lifetime_fails,
    password_change_guesses_are_throttled_on_their_own_counter,
    an_update_that_changes_nothing_keeps_the_users_sessions,
);

/// A logged-out `jti` stays on the deny-list as long as the verifier accepts the token:
/// its `exp` plus the leeway (DynamoDB's TTL would otherwise drop it up to 30 s early).
#[tokio::test]
async fn a_logged_out_jti_is_kept_until_exp_plus_the_leeway() {
    let (store, endpoint, table) = dynamo_store_at().await;
    let api = api_on(store, &[]).await;
    api.create_user("alice", Role::Customer).await;
    let token = api.login("alice").await;
    assert_eq!(
        api.call("POST", "/logout", Some(&token), None).await.status,
        204
    );

    // Our own token, just issued: its claims are read without verifying.
    let payload = token.split('.').nth(1).unwrap();
    let payload: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    let item = jwt_auth_core::startup::aws::local_dynamodb_client(&endpoint)
        .get_item()
        .table_name(table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "REVOKED#{}",
                text(&payload, "jti")
            )),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the deny-list item");
    let expires_at: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    assert_eq!(
        expires_at,
        payload["exp"].as_u64().unwrap() + CLOCK_LEEWAY_SECS
    );
}
