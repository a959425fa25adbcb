//! Security events (SECURITY.md rows 41-42): a login and an authorizer decision each write
//! one JSON line that is valid CloudWatch Embedded Metric Format (the `_aws` envelope, and
//! every declared metric and dimension present as a member) and carries the audit shape
//! (event, outcome, request id, source IP, user id), and no line of any outcome holds a
//! password, a token or a hash.

use integration_tests::{TestApp, http_event};
use jwt_auth_core::audit::{RequestMeta, SecurityEvent, capture, line};
use jwt_auth_core::users::user::Role;
use lambda_http::Body;
use serde_json::Value;

/// The captured lines are one list for the process: the tests that read it take turns.
static CAPTURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Checks the EMF envelope of `line` and answers it parsed.
fn emf(line: &str) -> Value {
    let value: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    let aws = &value["_aws"];
    assert!(
        aws["Timestamp"]
            .as_u64()
            .is_some_and(|ms| ms > 1_600_000_000_000),
        "{line}"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert!(!directives.is_empty());
    for directive in directives {
        assert!(
            directive["Namespace"]
                .as_str()
                .is_some_and(|ns| !ns.is_empty())
        );
        for set in directive["Dimensions"].as_array().unwrap() {
            for dimension in set.as_array().unwrap() {
                let name = dimension.as_str().unwrap();
                assert!(value[name].is_string(), "dimension {name} missing: {line}");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(value[name].is_number(), "metric {name} missing: {line}");
            assert_eq!(metric["Unit"], "Count");
        }
    }
    for member in ["event", "outcome", "request_id", "source_ip", "user_id"] {
        assert!(value.get(member).is_some(), "{member} missing: {line}");
    }
    value
}

#[tokio::test]
async fn logins_and_authorizer_decisions_are_emf_audit_lines_without_secrets() {
    let _turn = CAPTURING.lock().await;
    let lines = capture();
    lines.lock().unwrap().clear();
    let app = TestApp::in_memory();
    let password = "a-distinctive-password-5519";
    let alice = app.create_user("alice", Role::Admin, password).await;
    for attempt in [password, "a-distinctive-wrong-guess-6620"] {
        let mut request = http_event("login-ok.json");
        *request.body_mut() =
            Body::Text(format!(r#"{{"username":"alice","password":"{attempt}"}}"#));
        login::handle(request, &app.login).await.unwrap();
    }
    let token = app.token_for(&alice);
    app.authorize(Some(&format!("Bearer {token}")))
        .await
        .unwrap();
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert!(
        app.authorize(Some(&format!("Bearer {forged}")))
            .await
            .is_err()
    );

    let recorded = lines.lock().unwrap().clone();
    let parsed: Vec<Value> = recorded.iter().map(|line| emf(line)).collect();
    let find = |event: &str, outcome: &str| {
        parsed
            .iter()
            .find(|value| value["event"] == event && value["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {event}/{outcome} line in {recorded:?}"))
    };
    let succeeded = find("login", "succeeded");
    assert_eq!(succeeded["LoginSucceeded"], 1);
    assert_eq!(succeeded["user_id"], alice.id.as_str());
    // From the API Gateway event the login ran with.
    assert_eq!(
        succeeded["request_id"],
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    );
    assert_eq!(succeeded["source_ip"], "203.0.113.10");
    let failed = find("login", "failed");
    assert_eq!(failed["LoginFailed"], 1);
    assert_eq!(failed["user_id"], alice.id.as_str());
    assert_eq!(find("authorize", "allow")["user_id"], alice.id.as_str());
    assert!(
        find("authorize", "deny")["user_id"].is_null(),
        "a forged token names no one"
    );

    let all = recorded.join("\n");
    for secret in [
        password,
        "a-distinctive-wrong-guess-6620",
        &token,
        &forged,
        "argon2id",
    ] {
        assert!(!all.contains(secret), "audit line holds {secret}");
    }
    assert!(!all.contains("alice"), "no username either: ids only");
}

#[test]
fn every_outcome_has_one_audit_shape_and_no_room_for_a_secret() {
    let meta = RequestMeta {
        request_id: "r-1".into(),
        source_ip: "2001:db8::1".into(),
    };
    for event in SecurityEvent::ALL {
        let text = line(
            event,
            &meta,
            Some("u-1"),
            Some("u-2"),
            "NS",
            "users",
            1_700_000_000_000,
        );
        let value = emf(&text);
        let mut members: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        members.sort_unstable();
        let metric = event.parts().2;
        let mut expected = vec![
            "Function",
            "_aws",
            "audit",
            "event",
            "outcome",
            "request_id",
            "source_ip",
            "subject_id",
            "user_id",
            metric,
        ];
        expected.sort_unstable();
        assert_eq!(members, expected, "{event:?}");
    }
}

#[tokio::test]
async fn the_events_the_alarms_watch_are_recorded_with_their_user_and_request() {
    use jwt_auth_core::sessions::lockout::LOCK_THRESHOLD;
    use jwt_auth_core::sessions::login::{LoginRequest, REFRESH_REUSE_GRACE_SECS, RefreshRequest};
    use secrecy::SecretString;
    let _turn = CAPTURING.lock().await;
    let lines = capture();
    lines.lock().unwrap().clear();
    let app = TestApp::in_memory();
    let password = "a-distinctive-password-7731";
    let carol = app.create_user("carol", Role::Customer, password).await;
    let dave = app.create_user("dave", Role::Customer, password).await;
    let login = |username: &str, password: &str| LoginRequest {
        username: username.into(),
        password: SecretString::from(password.to_string()),
        device_token: None,
    };
    let now = app.clock.now();

    // A guessed username locks: the refusal without a password check names the account.
    for _ in 0..=LOCK_THRESHOLD {
        let _ = app
            .login
            .login(login("carol", "wrong-guess-0001"), "198.51.100.9", now)
            .await;
    }
    // A copied refresh token comes back after its rotation: the session is revoked.
    let session = app
        .login
        .login(login("dave", password), "198.51.100.9", now)
        .await
        .unwrap()
        .tokens()
        .unwrap();
    let refresh = |token: &str| RefreshRequest {
        refresh_token: SecretString::from(token.to_string()),
    };
    app.login
        .refresh(refresh(&session.refresh_token), now)
        .await
        .unwrap();
    app.clock.advance(REFRESH_REUSE_GRACE_SECS + 1);
    assert!(
        app.login
            .refresh(refresh(&session.refresh_token), app.clock.now())
            .await
            .is_err()
    );
    // The authorizer's lines carry the invocation's request id.
    let token = app.token_for(&dave);
    let mut event = integration_tests::authorizer_event("authorizer-valid.json");
    event.authorization_token = Some(format!("Bearer {token}"));
    let mut context = lambda_runtime::Context::default();
    context.request_id = "lambda-request-42".into();
    let _ = authorizer::handle(
        lambda_runtime::LambdaEvent::new(authorizer::AuthorizerEvent::Token(event), context),
        &app.verifier,
        &app.permissions,
        app.store.as_ref(),
        &app.clock,
    )
    .await;

    let recorded: Vec<Value> = lines.lock().unwrap().iter().map(|line| emf(line)).collect();
    let has = |event: &str, outcome: &str, user: &str| {
        recorded
            .iter()
            .any(|v| v["event"] == event && v["outcome"] == outcome && v["user_id"] == user)
    };
    assert!(has("login", "locked", &carol.id), "LoginLocked names carol");
    assert!(has("refresh", "rotated", &dave.id));
    assert!(
        has("refresh", "reuse_detected", &dave.id),
        "RefreshReuseDetected"
    );
    assert!(
        recorded
            .iter()
            .any(|v| v["event"] == "refresh" && v["outcome"] == "refused")
    );
    // (`handle` runs at the wall clock, before the test clock's token is valid: a deny.)
    assert!(
        recorded
            .iter()
            .any(|v| v["event"] == "authorize" && v["request_id"] == "lambda-request-42")
    );
    let all = lines.lock().unwrap().join("\n");
    for secret in [
        password,
        "wrong-guess-0001",
        &session.refresh_token,
        &session.access_token,
        &token,
    ] {
        assert!(!all.contains(secret), "audit line holds a secret");
    }
}
