//! Security events (SECURITY.md rows 41-42): a login and an authorizer decision each write
//! one JSON line that is valid CloudWatch Embedded Metric Format (the `_aws` envelope, and
//! every declared metric and dimension present as a member) and carries the audit shape
//! (event, outcome, request id, source IP, user id), and no line of any outcome holds a
//! password, a token or a hash.

use integration_tests::{TestApp, http_event};
use jwt_auth_core::audit::{RequestMeta, SecurityEvent, capture, line};
use jwt_auth_core::user::Role;
use lambda_http::Body;
use serde_json::Value;

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
    let lines = capture();
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
