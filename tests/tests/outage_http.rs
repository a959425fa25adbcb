//! DynamoDB unreachable or throttled (SECURITY.md row 56), over HTTP through the local
//! gateway with the default authorizer cache: every route answers 503 with `Retry-After`
//! (never a 500 or a panic, never an Allow), and once DynamoDB is back everything works
//! and nothing acknowledged before was lost.

use integration_tests::dynamo_local::{ENDPOINT_VAR, fresh_table};
use integration_tests::outage::{FlakyDynamo, Outage};
use integration_tests::running_api::{Answer, PASSWORD, RunningApi, start_with};
use integration_tests::workspace_root;
use jwt_auth_core::user::Role;
use local_gateway::app::StoreChoice;
use serde_json::json;

async fn api_behind(proxy: &FlakyDynamo) -> RunningApi {
    let (_, table) = fresh_table().await;
    start_with(
        StoreChoice::Dynamo {
            endpoint: Some(proxy.endpoint.clone()),
            table,
        },
        workspace_root().join("template.yaml"),
        &[],
    )
    .await
}

fn assert_unavailable(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 503, "{what}: {}", answer.body);
    let retry_after: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After is whole seconds"));
    assert!(retry_after >= 1, "{what}");
    let text = answer.body.to_string();
    assert!(
        !text.contains("Throughput") && !text.contains("dispatch") && !text.contains("connect"),
        "{what}: the cause is not answered: {text}"
    );
}

async fn every_route_answers_503_while_dynamodb_is(outage: Outage) {
    let proxy = FlakyDynamo::start(&std::env::var(ENDPOINT_VAR).expect("make test")).await;
    let api = api_behind(&proxy).await;
    let admin = api.create_user("root", Role::Admin).await;
    api.create_user("alice", Role::Customer).await;
    let admin_token = api.login("root").await;
    let alice = api.login_session("alice").await;
    let refresh_token = alice["refresh_token"].as_str().unwrap().to_string();
    // Cached Allow for the admin; a second admin token the authorizer has not seen yet.
    assert_eq!(
        api.call("GET", "/users", Some(&admin_token), None)
            .await
            .status,
        200
    );
    let fresh_token = api.login("root").await;

    proxy.set(outage);
    let login = api.try_login("root", PASSWORD).await;
    assert_unavailable(&login, "login");
    assert_eq!(login.headers["content-type"], "application/problem+json");
    let refresh = api.refresh(&refresh_token).await;
    assert_unavailable(&refresh, "refresh");
    assert_unavailable(
        &api.call("GET", "/users", Some(&admin_token), None).await,
        "a cached Allow, re-checked by the backend",
    );
    assert_unavailable(
        &api.call("GET", "/users", Some(&fresh_token), None).await,
        "the authorizer, failing closed",
    );
    assert_unavailable(
        &api.call(
            "POST",
            "/users",
            Some(&admin_token),
            Some(json!({"username": "dave", "role": "customer", "password": PASSWORD})),
        )
        .await,
        "create",
    );

    proxy.set(Outage::Up);
    // Nothing acknowledged before the outage was lost, and nothing half-done during it
    // got in the way: the refresh token was not spent, the users are all there.
    let renewed = api.refresh(&refresh_token).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert_eq!(
        api.call("GET", "/users", Some(&fresh_token), None)
            .await
            .status,
        200
    );
    let created = api
        .call(
            "POST",
            "/users",
            Some(&admin_token),
            Some(json!({"username": "dave", "role": "customer", "password": PASSWORD})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let listed = api.call("GET", "/users", Some(&admin_token), None).await;
    let names: Vec<&str> = listed.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "dave", "root"]);
    // api.login asserts a 200.
    api.login("root").await;
    assert!(api.store.get_user(&admin.id).await.unwrap().is_some());
}

#[tokio::test]
async fn every_route_answers_503_while_dynamodb_is_unreachable() {
    every_route_answers_503_while_dynamodb_is(Outage::Down).await;
}

#[tokio::test]
async fn every_route_answers_503_while_dynamodb_throttles() {
    every_route_answers_503_while_dynamodb_is(Outage::Throttled).await;
}

/// A DynamoDB that accepts connections and never answers: the SDK's timeouts end each call,
/// so the request is answered 503 rather than held until the Lambda timeout (a 502).
#[tokio::test]
async fn a_dynamodb_that_never_answers_is_a_503_not_a_timeout() {
    let proxy = FlakyDynamo::start(&std::env::var(ENDPOINT_VAR).expect("make test")).await;
    let api = api_behind(&proxy).await;
    api.create_user("root", Role::Admin).await;
    let token = api.login("root").await;
    assert_eq!(
        api.call("GET", "/users", Some(&token), None).await.status,
        200
    );

    proxy.set(Outage::Hang);
    let started = std::time::Instant::now();
    assert_unavailable(
        &api.call("GET", "/users", Some(&token), None).await,
        "a cached Allow, re-checked by the backend",
    );
    // Well inside the template's 10 s function timeout (DynamoDB Local's client allows 6 s).
    assert!(started.elapsed() < std::time::Duration::from_secs(9));

    proxy.set(Outage::Up);
    assert_eq!(
        api.call("GET", "/users", Some(&token), None).await.status,
        200
    );
}

/// One write failing after the password verified (the username's counter cannot be
/// cleared): the login answers 503, and the counts are taken back once, not twice. Were
/// the source's count taken back again, an attacker with one valid account could lower
/// their address's spraying count during an outage by logging in.
#[tokio::test]
async fn a_login_whose_clear_fails_takes_the_source_count_back_once() {
    use integration_tests::round_trips;
    use jwt_auth_core::store::SessionStore as _;
    use jwt_auth_core::store::dynamodb::{DynamoUserStore, local_client};

    let (proxy, calls) =
        round_trips::start_proxy(&std::env::var(ENDPOINT_VAR).expect("make test")).await;
    let (_, table) = fresh_table().await;
    let store = std::sync::Arc::new(DynamoUserStore::new(
        local_client(&format!("http://{proxy}")),
        table,
    ));
    let app = integration_tests::TestApp::new(store.clone());
    app.create_user("alice", Role::Customer, integration_tests::EVENTS_PASSWORD)
        .await;
    let login = |username: &str, password: &str| {
        let mut request = integration_tests::http_event("login-ok.json");
        *request.body_mut() = lambda_http::Body::Text(
            json!({"username": username, "password": password}).to_string(),
        );
        login::handle(request, &app.login)
    };
    // Two failures from the event's address: its count is 2.
    for _ in 0..2 {
        let refused = login("nobody", "not-the-password").await.unwrap();
        assert_eq!(refused.status(), 401);
    }
    let source = jwt_auth_core::lockout::source_counter("203.0.113.10", app.clock.now());
    let source_count = || async { store.login_failures(&source).await.unwrap().count };
    assert_eq!(source_count().await, 2);

    calls.throttle(Some("DeleteItem"));
    let before = std::time::Instant::now();
    let answer = login("alice", integration_tests::EVENTS_PASSWORD)
        .await
        .unwrap();
    calls.throttle(None);
    assert_eq!(answer.status(), 503);
    assert!(
        calls
            .between(before, std::time::Instant::now())
            .iter()
            .any(|call| call.operation == "DeleteItem"),
        "the clear was tried"
    );
    assert_eq!(source_count().await, 2, "counted once, taken back once");
    // And with DynamoDB whole again, alice signs in.
    let signed_in = login("alice", integration_tests::EVENTS_PASSWORD)
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
}
