//! Each function's handler, driven by the same `events/*.json` that `cargo lambda invoke`
//! and `sam local invoke` replay.

use authorizer::{AuthorizerError, authorize};
use integration_tests::{
    EVENTS_PASSWORD, TestApp, as_caller, authorizer_event, body_json, edit_context, http_event,
};
use jwt_auth_core::users::user::{Role, User};
use lambda_http::RequestExt;
use serde_json::json;
use std::collections::HashMap;

async fn app_with_alice() -> (TestApp, User) {
    let app = TestApp::in_memory();
    let alice = app.create_user("alice", Role::Admin, EVENTS_PASSWORD).await;
    (app, alice)
}

#[tokio::test]
async fn login_ok_event_answers_a_token_that_the_authorizer_accepts() {
    let (app, alice) = app_with_alice().await;
    let response = login::handle(http_event("login-ok.json"), &app.login)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = body_json(&response);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["id"], alice.id.as_str());
    assert_eq!(body["user"]["role"], "admin");
    assert!(body["user"].get("password_hash").is_none());
    assert!(!body.to_string().contains("argon2"));
    let token = body["access_token"].as_str().unwrap();
    let claims = app.verifier.verify(token, app.clock.now()).unwrap();
    assert_eq!(claims.sub, alice.id);
}

#[tokio::test]
async fn login_wrong_password_event_is_401_invalid_credentials() {
    let (app, _) = app_with_alice().await;
    let response = login::handle(http_event("login-wrong-password.json"), &app.login)
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        body_json(&response)["detail"],
        "Invalid username or password"
    );
}

#[tokio::test]
async fn login_malformed_body_event_is_400() {
    let (app, _) = app_with_alice().await;
    let response = login::handle(http_event("login-malformed-body.json"), &app.login)
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(body_json(&response)["status"], 400);
}

#[tokio::test]
async fn users_list_event_pages_through_every_user() {
    let (app, alice) = app_with_alice().await;
    for name in ["bob", "carol", "dave"] {
        app.create_user(name, Role::Customer, "password-123").await;
    }
    let first = users::handle(
        as_caller(http_event("users-list.json"), &alice, None),
        &app.users,
    )
    .await
    .unwrap();
    assert_eq!(first.status(), 200);
    let first = body_json(&first);
    let names: Vec<&str> = first["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"], "the event asks for limit=2");
    let cursor = first["next_cursor"].as_str().unwrap();

    let next = as_caller(http_event("users-list.json"), &alice, None).with_query_string_parameters(
        HashMap::from([
            ("limit".to_string(), "2".to_string()),
            ("cursor".to_string(), cursor.to_string()),
        ]),
    );
    let second = body_json(&users::handle(next, &app.users).await.unwrap());
    let names: Vec<&str> = second["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol", "dave"]);
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn users_get_event_lets_a_customer_read_itself() {
    let (app, _) = app_with_alice().await;
    let carol = app
        .create_user("carol", Role::Customer, "password-123")
        .await;
    let request = as_caller(http_event("users-get.json"), &carol, Some(&carol.id));
    let response = users::handle(request, &app.users).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = body_json(&response);
    assert_eq!(body["user"]["id"], carol.id.as_str());
    assert!(body["user"].get("password_hash").is_none());
}

#[tokio::test]
async fn users_get_event_as_is_is_forbidden_to_another_customer() {
    let (app, _) = app_with_alice().await;
    let dave = app
        .create_user("dave", Role::Customer, "password-123")
        .await;
    // The event asks for c1c1…, which is not dave.
    let request = as_caller(http_event("users-get.json"), &dave, None);
    assert_eq!(
        users::handle(request, &app.users).await.unwrap().status(),
        403
    );
}

#[tokio::test]
async fn users_forbidden_event_refuses_the_list_to_a_customer() {
    let (app, _) = app_with_alice().await;
    // The backend re-checks its caller against the store: the event's customer must exist.
    let erin = app
        .create_user("erin", Role::Customer, "password-123")
        .await;
    let response = users::handle(
        as_caller(http_event("users-forbidden.json"), &erin, None),
        &app.users,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn authorizer_valid_event_with_a_fresh_token_allows_every_admin_route() {
    let (app, alice) = app_with_alice().await;
    let response = app
        .authorize(Some(&format!("Bearer {}", app.token_for(&alice))))
        .await
        .unwrap();
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["principalId"], alice.id.as_str());
    assert_eq!(json["policyDocument"]["Statement"][0]["Effect"], "Allow");
    let resources = json["policyDocument"]["Statement"][0]["Resource"]
        .as_array()
        .unwrap();
    for route in [
        "GET/users",
        "GET/users/*",
        "POST/users",
        "PATCH/users/*",
        "DELETE/users/*",
        "POST/users/*/password",
        "POST/logout",
        "POST/password",
    ] {
        let arn = format!("arn:aws:execute-api:us-east-1:123456789012:abc123/prod/{route}");
        assert!(resources.contains(&json!(arn)), "{route}");
    }
    assert_eq!(
        json["context"],
        json!({
            "sub": alice.id, "role": "admin", "username": "alice", "jti": response.context.jti,
            "sid": response.context.sid, "exp": response.context.exp, "ver": "0", "amr": "pwd",
        })
    );
}

#[tokio::test]
async fn authorizer_valid_event_as_committed_holds_no_usable_token() {
    let app = TestApp::in_memory();
    let event = authorizer_event("authorizer-valid.json");
    assert_eq!(
        authorize(
            &event,
            &app.verifier,
            &app.permissions,
            app.store.as_ref(),
            app.clock.now()
        )
        .await,
        Err(AuthorizerError::Unauthorized)
    );
}

#[tokio::test]
async fn authorizer_expired_event_is_unauthorized() {
    let app = TestApp::in_memory();
    let event = authorizer_event("authorizer-expired.json");
    // Signed with the events key, so only its age makes it fail: at its own time it passes.
    let token = event
        .authorization_token
        .as_deref()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    assert!(app.verifier.verify(token, 1_700_000_100).is_ok());
    let error = authorize(
        &event,
        &app.verifier,
        &app.permissions,
        app.store.as_ref(),
        app.clock.now(),
    )
    .await
    .unwrap_err();
    assert_eq!(error, AuthorizerError::Unauthorized);
    let diagnostic: lambda_runtime::Diagnostic = error.into();
    assert_eq!(
        diagnostic.error_message, "Unauthorized",
        "API Gateway needs exactly this for 401"
    );
}

#[tokio::test]
async fn authorizer_malformed_and_missing_events_are_unauthorized() {
    let app = TestApp::in_memory();
    for name in ["authorizer-malformed.json", "authorizer-missing.json"] {
        let event = authorizer_event(name);
        assert_eq!(
            authorize(
                &event,
                &app.verifier,
                &app.permissions,
                app.store.as_ref(),
                app.clock.now()
            )
            .await,
            Err(AuthorizerError::Unauthorized),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_valid_token_with_an_unusable_method_arn_fails_without_allowing() {
    let (app, alice) = app_with_alice().await;
    let mut event = authorizer_event("authorizer-valid.json");
    event.authorization_token = Some(format!("Bearer {}", app.token_for(&alice)));
    event.method_arn = Some("arn:aws:lambda:us-east-1:1:function:x".into());
    let error = authorize(
        &event,
        &app.verifier,
        &app.permissions,
        app.store.as_ref(),
        app.clock.now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, AuthorizerError::BadEvent(_)));
    let diagnostic: lambda_runtime::Diagnostic = error.into();
    assert_ne!(diagnostic.error_message, "Unauthorized", "a 500, not a 401");
}

#[tokio::test]
async fn every_users_event_is_json_with_nosniff() {
    let (app, _) = app_with_alice().await;
    for name in ["users-list.json", "users-get.json", "users-forbidden.json"] {
        let response = users::handle(http_event(name), &app.users).await.unwrap();
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .ends_with("json"),
            "{name}"
        );
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{name}"
        );
        assert!(response.status().as_u16() < 500, "{name}");
    }
}

#[tokio::test]
async fn users_create_event_creates_a_user_without_exposing_its_hash() {
    let (app, alice) = app_with_alice().await;
    let request = as_caller(http_event("users-create.json"), &alice, None);
    let response = users::handle(request, &app.users).await.unwrap();
    assert_eq!(response.status(), 201);
    let body = body_json(&response);
    assert_eq!(body["user"]["username"], "dave");
    assert!(body["user"].get("password_hash").is_none());
    assert!(app.store.find_login("dave").await.unwrap().is_some());
}

#[tokio::test]
async fn users_update_and_delete_events_change_and_remove_a_user() {
    let (app, alice) = app_with_alice().await;
    let carol = app
        .create_user("carol", Role::Customer, "password-123")
        .await;
    let update = as_caller(http_event("users-update.json"), &alice, Some(&carol.id));
    let response = users::handle(update, &app.users).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body_json(&response)["user"]["role"], "admin");
    let delete = as_caller(http_event("users-delete.json"), &alice, Some(&carol.id));
    let response = users::handle(delete, &app.users).await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(app.store.get_user(&carol.id).await.unwrap().is_none());
}

#[tokio::test]
async fn users_reset_password_event_sets_the_password_and_ends_the_users_sessions() {
    let (app, alice) = app_with_alice().await;
    let carol = app
        .create_user("carol", Role::Customer, "password-123")
        .await;
    let before = app.store.find_login("carol").await.unwrap().unwrap();
    let reset = as_caller(
        http_event("users-reset-password.json"),
        &alice,
        Some(&carol.id),
    );
    let response = users::handle(reset, &app.users).await.unwrap();
    assert_eq!(response.status(), 204);
    let after = app.store.find_login("carol").await.unwrap().unwrap();
    assert_ne!(after.password_hash, before.password_hash);
    assert_eq!(after.token_version, before.token_version + 1);
}

#[tokio::test]
async fn password_change_event_answers_a_new_token_pair_and_retires_the_old_password() {
    let (app, alice) = app_with_alice().await;
    let request = as_caller(http_event("password-change.json"), &alice, None);
    let response = login::handle(request, &app.login).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = body_json(&response);
    assert_eq!(body["user"]["id"], alice.id.as_str());
    let token = body["access_token"].as_str().unwrap();
    assert!(app.verifier.verify(token, app.clock.now()).is_ok());
    assert_eq!(
        login::handle(http_event("login-ok.json"), &app.login)
            .await
            .unwrap()
            .status(),
        401,
        "the event's old password no longer logs in"
    );
}

#[tokio::test]
async fn mfa_totp_start_event_answers_a_secret_and_its_otpauth_uri() {
    let (app, alice) = app_with_alice().await;
    let request = as_caller(http_event("mfa-totp-start.json"), &alice, None);
    let response = login::handle(request, &app.login).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = body_json(&response);
    assert!(
        body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/"),
        "{body}"
    );
    assert!(body["qr_code_svg"].as_str().unwrap().contains("<svg"));
}

#[tokio::test]
async fn users_write_events_are_forbidden_to_a_customer() {
    let (app, _) = app_with_alice().await;
    let carol = app
        .create_user("carol", Role::Customer, "password-123")
        .await;
    for (name, id) in [
        ("users-create.json", None),
        ("users-update.json", Some(&carol.id)),
        ("users-delete.json", Some(&carol.id)),
        ("users-reset-password.json", Some(&carol.id)),
    ] {
        let request = as_caller(http_event(name), &carol, id.map(String::as_str));
        assert_eq!(
            users::handle(request, &app.users).await.unwrap().status(),
            403,
            "{name}"
        );
    }
}

#[tokio::test]
async fn token_refresh_event_rotates_a_real_refresh_token_and_refuses_the_placeholder() {
    let (app, _) = app_with_alice().await;
    let as_committed = login::handle(http_event("token-refresh.json"), &app.login)
        .await
        .unwrap();
    assert_eq!(as_committed.status(), 401);
    let login = login::handle(http_event("login-ok.json"), &app.login)
        .await
        .unwrap();
    let refresh_token = body_json(&login)["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut request = http_event("token-refresh.json");
    *request.body_mut() =
        lambda_http::Body::Text(json!({ "refresh_token": refresh_token }).to_string());
    let response = login::handle(request, &app.login).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(
        body_json(&response)["refresh_token"],
        refresh_token.as_str()
    );
}

#[tokio::test]
async fn logout_events_answer_204_and_revoke() {
    let (app, _) = app_with_alice().await;
    let carol = app
        .create_user("carol", Role::Customer, "password-123")
        .await;
    let response = login::handle(
        as_caller(http_event("logout.json"), &carol, None),
        &app.login,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    let state = app
        .store
        .authorization_state(
            &carol.id,
            "kY3dZ0q1Zb6vQm9YV8w2Xg",
            "Ym9ndXMtc2Vzc2lvbi1pZA",
        )
        .await
        .unwrap();
    assert!(state.jti_revoked, "the event's jti is on the deny-list");
    assert!(state.session_revoked, "the event's session is revoked");
    // The logged-out token is refused from now on; another session of carol logs out
    // everywhere.
    let refused = login::handle(
        as_caller(http_event("logout-all.json"), &carol, None),
        &app.login,
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 401);
    let other_session = edit_context(
        as_caller(http_event("logout-all.json"), &carol, None),
        |context| {
            let fields = &mut context.authorizer.fields;
            fields.insert("jti".into(), "another-jti".into());
            fields.insert("sid".into(), "another-session".into());
        },
    );
    let response = login::handle(other_session, &app.login).await.unwrap();
    assert_eq!(response.status(), 204);
    let state = app
        .store
        .authorization_state(&carol.id, "other", "another-session")
        .await
        .unwrap();
    assert_eq!(state.user.unwrap().token_version, 1);
}

#[tokio::test]
async fn jwks_event_answers_the_public_key_set_cacheably() {
    let app = TestApp::in_memory();
    let response = login::handle(http_event("jwks.json"), &app.login)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    assert_eq!(response.headers()["content-type"], "application/json");
    // The test app signs HS256, whose key is secret: nothing to publish.
    assert_eq!(body_json(&response), json!({"keys": []}));
}

/// Where admins must use a second factor, the backends hold an admin whose context says it
/// signed in with its password alone to enrolment and logout themselves, whatever the
/// gateway let through (an answer cached before the rule, another API's authorizer).
#[tokio::test]
async fn the_backends_hold_an_admin_without_its_second_factor_to_enrolment_and_logout() {
    let (mut app, alice) = app_with_alice().await;
    let rule = jwt_auth_core::access::second_factor::SecondFactorRule::default();
    app.users.second_factor_rule = rule.clone();
    app.login.second_factor_rule = rule;
    let with_amr = |event: &str, amr: &'static str| {
        edit_context(as_caller(http_event(event), &alice, None), move |context| {
            context.authorizer.fields.insert("amr".into(), amr.into());
        })
    };
    for amr in ["pwd", ""] {
        let listed = users::handle(with_amr("users-list.json", amr), &app.users)
            .await
            .unwrap();
        assert_eq!(listed.status(), 403, "amr {amr:?}");
        assert!(
            body_json(&listed)["detail"]
                .as_str()
                .unwrap()
                .contains("second factor"),
            "{}",
            body_json(&listed)
        );
        let password = login::handle(with_amr("password-change.json", amr), &app.login)
            .await
            .unwrap();
        assert_eq!(password.status(), 403, "amr {amr:?}");
    }
    let listed = users::handle(with_amr("users-list.json", "pwd otp"), &app.users)
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let logout = login::handle(with_amr("logout.json", "pwd"), &app.login)
        .await
        .unwrap();
    assert_eq!(logout.status(), 204, "leaving is always open");
}
