//! Bad input never gets a 5xx, never panics and never changes stored data: each case gets a
//! clear problem+json 4xx (or `Unauthorized` from the authorizer).

use authorizer::AuthorizerError;
use integration_tests::{EVENTS_PASSWORD, TestApp, as_caller, body_json, edit_context, http_event};
use jwt_auth_core::store::Actor;
use jwt_auth_core::store::UserStore;
use jwt_auth_core::users::user::{Role, User};
use lambda_http::http::{HeaderValue, Method};
use lambda_http::{Body, Request, RequestExt, Response};
use std::collections::HashMap;

fn login_request(body: Body, content_type: Option<&str>) -> Request {
    let mut request = http_event("login-ok.json");
    *request.body_mut() = body;
    request.headers_mut().remove("content-type");
    if let Some(content_type) = content_type {
        request
            .headers_mut()
            .insert("content-type", HeaderValue::from_str(content_type).unwrap());
    }
    request
}

fn text(body: &str) -> Body {
    Body::Text(body.to_string())
}

fn assert_problem(response: &Response<Body>, status: u16, case: &str) {
    assert_eq!(
        response.status().as_u16(),
        status,
        "{case}: {:?}",
        response.body()
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{case}"
    );
    assert_eq!(
        response.headers()["x-content-type-options"],
        "nosniff",
        "{case}"
    );
    let body = body_json(response);
    assert_eq!(body["status"], status, "{case}");
    assert!(body["detail"].is_string(), "{case}");
}

/// Everything a store holds, to show that bad requests changed none of it.
async fn snapshot(store: &dyn UserStore) -> Vec<(User, String)> {
    let page = store.list_users(100, None).await.unwrap();
    let mut all = Vec::new();
    for user in page.users {
        let hash = store
            .find_login(&user.username)
            .await
            .unwrap()
            .unwrap()
            .password_hash;
        all.push((user, hash.as_phc().to_string()));
    }
    all
}

#[tokio::test]
async fn bad_login_bodies_get_clear_4xx_answers_and_change_nothing() {
    let app = TestApp::in_memory();
    app.create_user("alice", Role::Admin, EVENTS_PASSWORD).await;
    let before = snapshot(app.store.as_ref()).await;
    let json = Some("application/json");
    let cases: Vec<(&str, Body, Option<&str>, u16)> = vec![
        (
            "non-JSON body",
            text("username=alice&password=x"),
            json,
            400,
        ),
        ("truncated JSON", text(r#"{"username": "alice""#), json, 400),
        (
            "wrong content type",
            text(r#"{"username":"alice","password":"x"}"#),
            Some("text/plain"),
            415,
        ),
        (
            "form content type",
            text(r#"{"username":"alice","password":"x"}"#),
            Some("application/x-www-form-urlencoded"),
            415,
        ),
        (
            "no content type",
            text(r#"{"username":"alice","password":"x"}"#),
            None,
            415,
        ),
        (
            "missing password",
            text(r#"{"username":"alice"}"#),
            json,
            400,
        ),
        ("missing username", text(r#"{"password":"x"}"#), json, 400),
        (
            "extra field",
            text(r#"{"username":"alice","password":"x","role":"admin"}"#),
            json,
            400,
        ),
        (
            "username is an array",
            text(r#"{"username":[],"password":"x"}"#),
            json,
            400,
        ),
        (
            "username is a number",
            text(r#"{"username":42,"password":"x"}"#),
            json,
            400,
        ),
        (
            "password is null",
            text(r#"{"username":"alice","password":null}"#),
            json,
            400,
        ),
        (
            "empty strings",
            text(r#"{"username":"","password":""}"#),
            json,
            400,
        ),
        (
            "blank username",
            text(r#"{"username":"   ","password":"x"}"#),
            json,
            400,
        ),
        ("JSON array", text(r#"["alice","x"]"#), json, 400),
        ("JSON null", text("null"), json, 400),
        ("empty body", Body::Empty, json, 400),
        (
            "invalid UTF-8",
            Body::Binary(vec![b'{', 0xff, 0xfe, b'}']),
            json,
            400,
        ),
        (
            "10 KB body",
            text(&format!(
                r#"{{"username":"alice","password":"{}"}}"#,
                "x".repeat(10 * 1024)
            )),
            json,
            413,
        ),
        ("1 MB body", text(&"x".repeat(1024 * 1024)), json, 413),
        (
            "password over 128 characters",
            text(&format!(
                r#"{{"username":"alice","password":"{}"}}"#,
                "x".repeat(129)
            )),
            json,
            400,
        ),
        (
            "username with spaces",
            text(r#"{"username":"alice smith","password":"x"}"#),
            json,
            400,
        ),
        (
            "duplicate keys",
            text(r#"{"username":"bob","username":"alice","password":"x"}"#),
            json,
            400,
        ),
    ];
    for (case, body, content_type, status) in cases {
        let response = login::handle(login_request(body, content_type), &app.login)
            .await
            .unwrap();
        assert_problem(&response, status, case);
        let detail = body_json(&response)["detail"].as_str().unwrap().to_string();
        assert!(
            !detail.contains("serde") && !detail.contains("line "),
            "{case}: parser text leaked: {detail}"
        );
    }
    assert_eq!(snapshot(app.store.as_ref()).await, before);
}

#[tokio::test]
async fn a_content_type_with_a_charset_is_still_json() {
    let app = TestApp::in_memory();
    app.create_user("alice", Role::Admin, EVENTS_PASSWORD).await;
    let body = text(&format!(
        r#"{{"username":"alice","password":"{EVENTS_PASSWORD}"}}"#
    ));
    let response = login::handle(
        login_request(body, Some("application/json; charset=utf-8")),
        &app.login,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn login_with_another_method_is_405() {
    let app = TestApp::in_memory();
    let mut request = http_event("login-ok.json");
    *request.method_mut() = Method::GET;
    assert_problem(
        &login::handle(request, &app.login).await.unwrap(),
        405,
        "GET /login",
    );
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_user_get_the_identical_answer() {
    let app = TestApp::in_memory();
    app.create_user("alice", Role::Admin, EVENTS_PASSWORD).await;
    let disabled = app
        .create_user("dora", Role::Customer, EVENTS_PASSWORD)
        .await;
    app.store
        .set_disabled(&disabled.id, true, Actor::Operator)
        .await
        .unwrap();
    let attempt = |username: &str, password: &str| {
        login_request(
            text(&format!(
                r#"{{"username":"{username}","password":"{password}"}}"#
            )),
            Some("application/json"),
        )
    };
    let wrong_password = login::handle(attempt("alice", "wrong-password"), &app.login)
        .await
        .unwrap();
    let unknown_user = login::handle(attempt("nobody", "wrong-password"), &app.login)
        .await
        .unwrap();
    let disabled_user = login::handle(attempt("dora", EVENTS_PASSWORD), &app.login)
        .await
        .unwrap();
    for (case, response) in [
        ("unknown user", &unknown_user),
        ("disabled user", &disabled_user),
    ] {
        assert_eq!(response.status(), wrong_password.status(), "{case}");
        assert_eq!(response.headers(), wrong_password.headers(), "{case}");
        assert_eq!(body_json(response), body_json(&wrong_password), "{case}");
    }
    assert_eq!(wrong_password.status(), 401);
    assert_eq!(wrong_password.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn usernames_are_matched_case_insensitively() {
    let app = TestApp::in_memory();
    app.create_user("alice", Role::Admin, EVENTS_PASSWORD).await;
    let body = text(&format!(
        r#"{{"username":"ALICE","password":"{EVENTS_PASSWORD}"}}"#
    ));
    let response = login::handle(login_request(body, Some("application/json")), &app.login)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn users_request(caller: &User, path: &str, query: &[(&str, &str)]) -> Request {
    let (resource, id) = match path.strip_prefix("/users/") {
        Some(id) => ("/users/{id}", Some(id)),
        None => (path, None),
    };
    let mut request = as_caller(http_event("users-list.json"), caller, id);
    request = edit_context(request, |context| {
        context.resource_path = Some(resource.to_string())
    });
    *request.uri_mut() = path.parse().unwrap();
    let query: HashMap<String, String> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    request
        .with_raw_http_path(path)
        .with_query_string_parameters(query)
}

#[tokio::test]
async fn bad_users_queries_get_clear_4xx_answers() {
    let app = TestApp::in_memory();
    let admin = app.create_user("alice", Role::Admin, "password-123").await;
    let customer = app
        .create_user("carol", Role::Customer, "password-123")
        .await;
    let forged = {
        // A cursor this deployment issued, with its payload swapped for another page key.
        let page = app
            .users
            .cursors
            .encode(&jwt_auth_core::store::PageKey::after(&admin));
        let (_, tag) = page.split_once('.').unwrap();
        format!("eyJ1IjoiYSIsImkiOiJiIn0.{tag}")
    };
    let unknown_id = "00000000000000000000000000000000";
    let cases: Vec<(&str, Request, u16)> = vec![
        (
            "limit=0",
            users_request(&admin, "/users", &[("limit", "0")]),
            400,
        ),
        (
            "limit=101",
            users_request(&admin, "/users", &[("limit", "101")]),
            400,
        ),
        (
            "limit=abc",
            users_request(&admin, "/users", &[("limit", "abc")]),
            400,
        ),
        (
            "limit empty",
            users_request(&admin, "/users", &[("limit", "")]),
            400,
        ),
        (
            "forged cursor",
            users_request(&admin, "/users", &[("cursor", &forged)]),
            400,
        ),
        (
            "garbage cursor",
            users_request(&admin, "/users", &[("cursor", "!!!")]),
            400,
        ),
        (
            "unknown user id (admin)",
            users_request(&admin, &format!("/users/{unknown_id}"), &[]),
            404,
        ),
        (
            "malformed user id (admin)",
            users_request(&admin, "/users/..%2F..%2Fetc", &[]),
            404,
        ),
        (
            "unknown user id (customer)",
            users_request(&customer, &format!("/users/{unknown_id}"), &[]),
            403,
        ),
        (
            "another existing user (customer)",
            users_request(&customer, &format!("/users/{}", admin.id), &[]),
            403,
        ),
        (
            "list as customer",
            users_request(&customer, "/users", &[]),
            403,
        ),
    ];
    for (case, request, status) in cases {
        assert_problem(
            &users::handle(request, &app.users).await.unwrap(),
            status,
            case,
        );
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_on_the_users_function_are_4xx() {
    let app = TestApp::in_memory();
    let admin = app.create_user("alice", Role::Admin, "password-123").await;

    let mut request = users_request(&admin, "/users", &[]);
    *request.method_mut() = Method::DELETE;
    request = edit_context(request, |context| context.resource_path = None);
    assert_problem(
        &users::handle(request, &app.users).await.unwrap(),
        405,
        "DELETE /users",
    );

    let mut request = users_request(&admin, "/nope", &[]);
    request = edit_context(request, |context| context.resource_path = None);
    assert_problem(
        &users::handle(request, &app.users).await.unwrap(),
        404,
        "GET /nope",
    );
}

#[tokio::test]
async fn the_users_function_trusts_only_the_authorizer_context() {
    let app = TestApp::in_memory();
    let customer = app
        .create_user("carol", Role::Customer, "password-123")
        .await;
    let mut request = users_request(&customer, "/users", &[]);
    request
        .headers_mut()
        .insert("x-user-role", HeaderValue::from_static("admin"));
    request
        .headers_mut()
        .insert("x-amzn-authorizer-role", HeaderValue::from_static("admin"));
    assert_problem(
        &users::handle(request, &app.users).await.unwrap(),
        403,
        "role header ignored",
    );

    // No authorizer context at all (the authorizer was bypassed): 401, not data.
    let mut request = users_request(&customer, "/users", &[]);
    request = edit_context(request, |context| context.authorizer.fields.clear());
    assert_problem(
        &users::handle(request, &app.users).await.unwrap(),
        401,
        "no context",
    );
}

#[tokio::test]
async fn bad_authorization_values_are_unauthorized_never_a_failure() {
    let app = TestApp::in_memory();
    let alice = app.create_user("alice", Role::Admin, "password-123").await;
    let token = app.token_for(&alice);
    let (head, rest) = token.split_at(token.len() / 2);
    let tampered = format!(
        "{head}{}{}",
        if rest.starts_with('A') { 'B' } else { 'A' },
        &rest[1..]
    );
    let huge = "a".repeat(100 * 1024);
    let cases = [
        "Bearer garbage".to_string(),
        format!("Bearer {token} {token}"),
        format!("Bearer {token},Bearer {token}"),
        format!("Bearer {tampered}"),
        format!("Bearer {huge}"),
        format!("Bearer {huge}.{huge}.{huge}"),
        token.clone(),
        "Bearer".into(),
        String::new(),
        "Basic YWxpY2U6cGFzc3dvcmQ=".into(),
        "Bearer \u{0000}.\u{0000}.\u{0000}".into(),
    ];
    for value in cases {
        let result = app.authorize(Some(&value)).await;
        assert_eq!(
            result,
            Err(AuthorizerError::Unauthorized),
            "{}",
            &value[..value.len().min(60)]
        );
    }
    assert_eq!(
        app.authorize(None).await,
        Err(AuthorizerError::Unauthorized)
    );
}
