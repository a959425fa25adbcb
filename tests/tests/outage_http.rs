//! DynamoDB unreachable or throttled (SECURITY.md row 56), over HTTP through the local
//! gateway with the default authorizer cache: every route answers 503 with `Retry-After`
//! (never a 500 or a panic, never an Allow), and once DynamoDB is back everything works
//! and nothing acknowledged before was lost.

use integration_tests::dynamo_local::{ENDPOINT_VAR, fresh_table};
use integration_tests::outage::{FlakyDynamo, Outage};
use integration_tests::running_api::{Answer, PASSWORD, RunningApi, start_with};
use integration_tests::workspace_root;
use jwt_auth_core::users::user::Role;
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

/// A store behind the recording proxy, an app on it with alice, and her login as the
/// sample event sends it (from `203.0.113.10`).
struct ProxiedLogin {
    store: std::sync::Arc<jwt_auth_core::store::dynamodb::DynamoUserStore>,
    app: integration_tests::TestApp,
    calls: integration_tests::round_trips::CallLog,
}

impl ProxiedLogin {
    async fn start() -> Self {
        use jwt_auth_core::startup::aws::local_dynamodb_client;
        use jwt_auth_core::store::dynamodb::DynamoUserStore;
        let (proxy, calls) = integration_tests::round_trips::start_proxy(
            &std::env::var(ENDPOINT_VAR).expect("make test"),
        )
        .await;
        let (_, table) = fresh_table().await;
        let store = std::sync::Arc::new(DynamoUserStore::new(
            local_dynamodb_client(&format!("http://{proxy}")),
            table,
        ));
        let app = integration_tests::TestApp::new(store.clone());
        app.create_user("alice", Role::Customer, integration_tests::EVENTS_PASSWORD)
            .await;
        Self { store, app, calls }
    }

    async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> lambda_http::Response<lambda_http::Body> {
        let mut request = integration_tests::http_event("login-ok.json");
        *request.body_mut() = lambda_http::Body::Text(
            json!({"username": username, "password": password}).to_string(),
        );
        login::handle(request, &self.app.login).await.unwrap()
    }
}

/// One write failing after the password verified (the username's counter cannot be
/// cleared): the login answers 503, and the counts are taken back once, not twice. Were
/// the source's count taken back again, an attacker with one valid account could lower
/// their address's spraying count during an outage by logging in.
#[tokio::test]
async fn a_login_whose_clear_fails_takes_the_source_count_back_once() {
    use jwt_auth_core::store::LoginFailureStore as _;

    let subject = ProxiedLogin::start().await;
    let (store, app, calls) = (&subject.store, &subject.app, &subject.calls);
    // Two failures from the event's address: its count is 2.
    for _ in 0..2 {
        let refused = subject.login("nobody", "not-the-password").await;
        assert_eq!(refused.status(), 401);
    }
    let source = jwt_auth_core::sessions::lockout::source_counter("203.0.113.10", app.clock.now());
    let source_count = || async { store.login_failures(&source).await.unwrap().count };
    assert_eq!(source_count().await, 2);

    calls.throttle(Some("DeleteItem"));
    let before = std::time::Instant::now();
    let answer = subject
        .login("alice", integration_tests::EVENTS_PASSWORD)
        .await;
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
    let signed_in = subject
        .login("alice", integration_tests::EVENTS_PASSWORD)
        .await;
    assert_eq!(signed_in.status(), 200);
}

/// DynamoDB starts throttling once a login's attempt is counted (its read and its two
/// counts got through): a right and a wrong password get the same answer, 503, after the
/// same round trips (the second-factor read every attempt makes), so an attacker guessing
/// during an outage cannot tell which guess was right; both stay counted. Once DynamoDB is
/// whole the same two logins answer 200 and 401.
#[tokio::test]
async fn while_dynamodb_throttles_a_right_and_a_wrong_password_get_the_same_answer() {
    let subject = ProxiedLogin::start().await;
    let mut answers = Vec::new();
    for password in [integration_tests::EVENTS_PASSWORD, "not-the-password"] {
        // The read of alice and the source's count (one round trip), then her count.
        subject.calls.throttle_after(Some(3));
        let before = std::time::Instant::now();
        let answer = subject.login("alice", password).await;
        subject.calls.throttle_after(None);
        let calls = subject.calls.between(before, std::time::Instant::now());
        let mut counted: Vec<&str> = calls[..3]
            .iter()
            .map(|call| call.operation.as_str())
            .collect();
        counted.sort_unstable();
        assert_eq!(
            counted,
            ["GetItem", "UpdateItem", "UpdateItem"],
            "{password}"
        );
        // Beside the password check, every attempt reads the user's second factor (the
        // SDK's own retries, at most 3 attempts): it fails, and that is the answer, for
        // either password, with nothing written or taken back after it: no extra round trip
        // that would make one password's 503 slower than the other's.
        let after_count: Vec<&str> = calls[3..]
            .iter()
            .map(|call| call.operation.as_str())
            .collect();
        assert!(
            !after_count.is_empty()
                && after_count.len() <= 3
                && after_count.iter().all(|op| *op == "GetItem"),
            "{password}: {after_count:?}"
        );
        answers.push(seen_by_client(answer));
    }
    assert_eq!(answers[0].0, 503, "{answers:?}");
    assert_eq!(
        answers[0], answers[1],
        "right and wrong password answered alike"
    );

    let signed_in = subject
        .login("alice", integration_tests::EVENTS_PASSWORD)
        .await;
    assert_eq!(signed_in.status(), 200);
    let refused = subject.login("alice", "not-the-password").await;
    assert_eq!(refused.status(), 401);
}

/// The same for `POST /password` with a stolen access token: once the change's attempt is
/// counted and alice's credentials read, DynamoDB throttles; the right and a wrong current
/// password both answer 503.
#[tokio::test]
async fn while_dynamodb_throttles_a_password_change_answers_alike_for_either_current_password() {
    let subject = ProxiedLogin::start().await;
    use jwt_auth_core::store::UserStore as _;
    let alice = subject
        .store
        .find_login("alice")
        .await
        .unwrap()
        .expect("alice")
        .user;
    let change = |current: &str| {
        let mut request = integration_tests::as_caller(
            integration_tests::http_event("password-change.json"),
            &alice,
            None,
        );
        *request.body_mut() = lambda_http::Body::Text(
            json!({"current_password": current, "new_password": "a brand new passphrase"})
                .to_string(),
        );
        login::handle(request, &subject.app.login)
    };
    // Unthrottled, a refused change shows which calls come before the password is checked:
    // everything up to the read of the credentials (the last GetItem).
    let before = std::time::Instant::now();
    assert_eq!(change("not-the-password").await.unwrap().status(), 403);
    let calls = subject.calls.between(before, std::time::Instant::now());
    let before_verdict = 1 + calls
        .iter()
        .rposition(|call| call.operation == "GetItem")
        .expect("the credentials are read");
    assert!(before_verdict < calls.len(), "{calls:?}");

    let mut answers = Vec::new();
    for current in ["not-the-password", integration_tests::EVENTS_PASSWORD] {
        subject.calls.throttle_after(Some(before_verdict));
        let answer = change(current).await.unwrap();
        subject.calls.throttle_after(None);
        answers.push(seen_by_client(answer));
        // The throttled release leaves the change's lease to run out.
        subject
            .app
            .clock
            .advance(jwt_auth_core::sessions::login::PASSWORD_CHANGE_LEASE_SECS + 1);
    }
    assert_eq!(answers[0].0, 503, "{answers:?}");
    assert_eq!(
        answers[0], answers[1],
        "right and wrong password answered alike"
    );
    // Nothing changed: the old password still signs in.
    let signed_in = subject
        .login("alice", integration_tests::EVENTS_PASSWORD)
        .await;
    assert_eq!(signed_in.status(), 200);
}

/// What a client sees of an answer: its status, `Retry-After` and body.
fn seen_by_client(
    answer: lambda_http::Response<lambda_http::Body>,
) -> (
    lambda_http::http::StatusCode,
    Option<lambda_http::http::HeaderValue>,
    String,
) {
    let retry_after = answer.headers().get("retry-after").cloned();
    let body = String::from_utf8(answer.body().to_vec()).unwrap();
    (answer.status(), retry_after, body)
}
