//! The token lifecycle and user administration seen from the outside: HTTP through the
//! local gateway (with its authorizer cache) against DynamoDB Local.

use integration_tests::running_api::{PASSWORD, RunningApi, dynamo_store, start_with};
use integration_tests::workspace_root;
use jwt_auth_core::sessions::lockout::LOCK_THRESHOLD;
use jwt_auth_core::sessions::login::REFRESH_REUSE_GRACE_SECS;
use jwt_auth_core::users::user::Role;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The API on DynamoDB Local, with the authorizer cache set to `cache_ttl` seconds.
async fn api(cache_ttl: &str) -> RunningApi {
    start_with(
        dynamo_store().await,
        workspace_root().join("template.yaml"),
        &[("AuthorizerCacheTtlSeconds", cache_ttl)],
    )
    .await
}

fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
        .to_string()
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_revokes_the_session() {
    let api = api("0").await;
    api.create_user("alice", Role::Customer).await;
    let login = api.login_session("alice").await;
    let old = text(&login, "refresh_token");
    let rotated = api
        .call(
            "POST",
            "/token/refresh",
            None,
            Some(json!({"refresh_token": old})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = text(&rotated.body, "refresh_token");
    assert!(rotated.body["user"].get("password_hash").is_none());
    // A retry within the grace window is refused, and the session survives it.
    let retry = api
        .call(
            "POST",
            "/token/refresh",
            None,
            Some(json!({"refresh_token": old})),
        )
        .await;
    assert_eq!(retry.status, 401);
    let newer = api
        .call(
            "POST",
            "/token/refresh",
            None,
            Some(json!({"refresh_token": new})),
        )
        .await;
    assert_eq!(newer.status, 200);
    let newest = text(&newer.body, "refresh_token");
    // After the grace window a replay means theft: the whole session is revoked.
    tokio::time::sleep(Duration::from_secs(REFRESH_REUSE_GRACE_SECS + 1)).await;
    let replay = api
        .call(
            "POST",
            "/token/refresh",
            None,
            Some(json!({"refresh_token": new})),
        )
        .await;
    assert_eq!(replay.status, 401);
    assert_eq!(replay.headers["content-type"], "application/problem+json");
    let victim = api
        .call(
            "POST",
            "/token/refresh",
            None,
            Some(json!({"refresh_token": newest})),
        )
        .await;
    assert_eq!(
        victim.status, 401,
        "the legitimate holder must log in again"
    );
}

#[tokio::test]
async fn parallel_refreshes_over_http_let_exactly_one_through() {
    let api = Arc::new(api("0").await);
    api.create_user("alice", Role::Customer).await;
    let token = text(&api.login_session("alice").await, "refresh_token");
    let attempts: Vec<_> = (0..6)
        .map(|_| {
            let api = Arc::clone(&api);
            let token = token.clone();
            tokio::spawn(async move {
                api.call(
                    "POST",
                    "/token/refresh",
                    None,
                    Some(json!({"refresh_token": token})),
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn logout_takes_effect_on_the_next_request_although_the_allow_is_cached() {
    // The backend re-checks the caller, so the cached Allow does not keep a revoked token
    // alive (revocation_http.rs tests this for every kind of revocation, on both stores).
    let api = api("300").await;
    let alice = api.create_user("alice", Role::Customer).await;
    let session = api.login_session("alice").await;
    let access = text(&session, "access_token");
    let own = format!("/users/{}", alice.id);
    assert_eq!(api.call("GET", &own, Some(&access), None).await.status, 200);
    let logout = api.call("POST", "/logout", Some(&access), None).await;
    assert_eq!(logout.status, 204);
    let (status, trace) = api.trace("GET", &own, &format!("Bearer {access}")).await;
    assert_eq!(
        (status, trace),
        (401, local_gateway::gateway::AuthorizationTrace::CacheHit)
    );
    let refresh = text(&session, "refresh_token");
    let refreshed = api
        .call(
            "POST",
            "/token/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(refreshed.status, 401);
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_of_the_user() {
    let api = api("0").await;
    let alice = api.create_user("alice", Role::Customer).await;
    let one = api.login_session("alice").await;
    let two = api.login_session("alice").await;
    let own = format!("/users/{}", alice.id);
    assert_eq!(
        api.call(
            "POST",
            "/logout/all",
            Some(&text(&one, "access_token")),
            None
        )
        .await
        .status,
        204
    );
    for session in [&one, &two] {
        assert_eq!(
            api.call("GET", &own, Some(&text(session, "access_token")), None)
                .await
                .status,
            401
        );
        let refresh = json!({"refresh_token": text(session, "refresh_token")});
        assert_eq!(
            api.call("POST", "/token/refresh", None, Some(refresh))
                .await
                .status,
            401
        );
    }
    let again = api.login("alice").await;
    assert_eq!(api.call("GET", &own, Some(&again), None).await.status, 200);
}

#[tokio::test]
async fn admins_create_change_disable_and_delete_users_over_the_api() {
    let api = api("0").await;
    let admin = api.create_user("root", Role::Admin).await;
    let admin_token = api.login("root").await;
    let customer = api.create_user("carol", Role::Customer).await;
    let carol_token = api.login("carol").await;

    // Create: 201; the username is unique; the password policy applies.
    let created = api
        .call(
            "POST",
            "/users",
            Some(&admin_token),
            Some(json!({"username": "Dave", "role": "customer", "password": PASSWORD})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["user"]["username"], "dave");
    assert!(created.body["user"].get("password_hash").is_none());
    let dave_id = text(&created.body["user"], "id");
    for (body, status) in [
        (
            json!({"username": "dave", "role": "customer", "password": "another long password"}),
            409,
        ),
        (
            json!({"username": "erin", "role": "customer", "password": "x".repeat(129)}),
            400,
        ),
        (
            json!({"username": "erin", "role": "customer", "password": "short"}),
            400,
        ),
        (
            json!({"username": "erin", "role": "customer", "password": "erin-is-my-password"}),
            400,
        ),
        (
            json!({"username": "erin", "role": "customer", "password": "password123"}),
            400,
        ),
        (
            json!({"username": "erin", "role": "root", "password": "a long enough password"}),
            400,
        ),
        (json!({"username": "erin", "role": "customer"}), 400),
        (
            json!({"username": "erin", "role": "customer", "password": "x".repeat(64)}),
            201,
        ),
    ] {
        let answer = api
            .call("POST", "/users", Some(&admin_token), Some(body.clone()))
            .await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
    }
    let refused = api
        .call("POST", "/users", Some(&carol_token), Some(json!({"username": "mallory", "role": "admin", "password": "a long enough password"})))
        .await;
    assert_eq!(refused.status, 403, "customers cannot create users");

    // A role change revokes the user's tokens.
    let promoted = api
        .call(
            "PATCH",
            &format!("/users/{}", customer.id),
            Some(&admin_token),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(
        (promoted.status, promoted.body["user"]["role"].as_str()),
        (200, Some("admin"))
    );
    assert_eq!(
        api.call(
            "GET",
            &format!("/users/{}", customer.id),
            Some(&carol_token),
            None
        )
        .await
        .status,
        401
    );
    let carol_admin = api.login("carol").await;
    assert_eq!(
        api.call("GET", "/users", Some(&carol_admin), None)
            .await
            .status,
        200
    );

    // Disabling revokes tokens and blocks login.
    let disabled = api
        .call(
            "PATCH",
            &format!("/users/{}", customer.id),
            Some(&admin_token),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.status, 200);
    assert_eq!(
        api.call("GET", "/users", Some(&carol_admin), None)
            .await
            .status,
        401
    );
    let login = api
        .call(
            "POST",
            "/login",
            None,
            Some(json!({"username": "carol", "password": PASSWORD})),
        )
        .await;
    assert_eq!(login.status, 401);

    // An admin cannot demote, disable or delete itself.
    let own = format!("/users/{}", admin.id);
    for body in [json!({"role": "customer"}), json!({"disabled": true})] {
        assert_eq!(
            api.call("PATCH", &own, Some(&admin_token), Some(body))
                .await
                .status,
            409
        );
    }
    assert_eq!(
        api.call("DELETE", &own, Some(&admin_token), None)
            .await
            .status,
        409
    );
    for (body, status) in [
        (json!({}), 400),
        (json!({"role": "owner"}), 400),
        (json!({"disabled": "yes"}), 400),
    ] {
        let answer = api
            .call(
                "PATCH",
                &format!("/users/{dave_id}"),
                Some(&admin_token),
                Some(body),
            )
            .await;
        assert_eq!(answer.status, status);
    }

    // Delete: the user's tokens stop working and the id is gone.
    let dave_token = api.login("dave").await;
    let dave = format!("/users/{dave_id}");
    assert_eq!(
        api.call("DELETE", &dave, Some(&admin_token), None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.call("GET", &dave, Some(&dave_token), None).await.status,
        401
    );
    assert_eq!(
        api.call("GET", &dave, Some(&admin_token), None)
            .await
            .status,
        404
    );
    assert_eq!(
        api.call("DELETE", &dave, Some(&admin_token), None)
            .await
            .status,
        404
    );
    assert_eq!(
        api.call(
            "PATCH",
            "/users/00000000000000000000000000000000",
            Some(&admin_token),
            Some(json!({"name": "x"}))
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn parallel_updates_of_one_user_over_http_lose_nothing() {
    let api = Arc::new(api("0").await);
    api.create_user("root", Role::Admin).await;
    let admin_token = api.login("root").await;
    let target = api.create_user("carol", Role::Customer).await;
    let path = format!("/users/{}", target.id);
    let changes = [
        json!({"name": "Carol C."}),
        json!({"role": "admin"}),
        json!({"disabled": true}),
    ];
    let updates: Vec<_> = changes
        .into_iter()
        .map(|body| {
            let (api, token, path) = (Arc::clone(&api), admin_token.clone(), path.clone());
            tokio::spawn(async move {
                api.call("PATCH", &path, Some(&token), Some(body))
                    .await
                    .status
            })
        })
        .collect();
    for update in updates {
        assert_eq!(update.await.unwrap(), 200);
    }
    let user = api.call("GET", &path, Some(&admin_token), None).await.body;
    assert_eq!(user["user"]["name"], "Carol C.");
    assert_eq!(user["user"]["role"], "admin");
    assert_eq!(user["user"]["disabled"], true);
}

#[tokio::test]
async fn repeated_failures_lock_known_and_unknown_usernames_alike() {
    let api = api("0").await;
    api.create_user("alice", Role::Customer).await;
    for username in ["alice", "nobody"] {
        for _ in 0..LOCK_THRESHOLD {
            let wrong = api
                .call(
                    "POST",
                    "/login",
                    None,
                    Some(json!({"username": username, "password": "wrong-password"})),
                )
                .await;
            assert_eq!(wrong.status, 401);
        }
    }
    let alice = api
        .call(
            "POST",
            "/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    let nobody = api
        .call(
            "POST",
            "/login",
            None,
            Some(json!({"username": "nobody", "password": PASSWORD})),
        )
        .await;
    assert_eq!(alice.status, 429, "the right password is held back too");
    let retry_after: u64 = alice.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!((nobody.status, &nobody.body), (alice.status, &alice.body));
    assert!(nobody.headers.contains_key("retry-after"));
}
