//! CORS over HTTP through the local gateway, as the template sets it up
//! (`-P CorsAllowOrigin=...`): the preflight on every path, the functions' answers, and
//! every kind of answer the gateway makes itself (401, 403, 429, 5xx, a missing route), so a
//! browser can read why it was refused. Off by default: nothing grants an origin then.

use integration_tests::running_api::{RunningApi, start_with};
use integration_tests::workspace_root;
use jwt_auth_core::users::user::Role;
use local_gateway::app::StoreChoice;
use serde_json::json;

const ORIGIN: &str = "http://127.0.0.1:3001";

async fn api(origin: &str, extra: &[(&str, &str)]) -> RunningApi {
    let mut overrides = vec![("CorsAllowOrigin", origin)];
    overrides.extend_from_slice(extra);
    start_with(
        StoreChoice::Memory,
        workspace_root().join("template.yaml"),
        &overrides,
    )
    .await
}

fn header<'a>(answer: &'a integration_tests::running_api::Answer, name: &str) -> Option<&'a str> {
    answer
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// The CORS headers every answer to a browser must carry for a named origin.
fn assert_cors(answer: &integration_tests::running_api::Answer, what: &str) {
    assert_eq!(
        header(answer, "access-control-allow-origin"),
        Some(ORIGIN),
        "{what}: {} {:?}",
        answer.status,
        answer.headers
    );
    assert!(
        header(answer, "vary").is_some_and(|vary| vary.contains("Origin")),
        "{what}: Vary: Origin"
    );
    assert!(
        header(answer, "access-control-expose-headers")
            .is_some_and(|exposed| exposed.contains("Retry-After")),
        "{what}: Retry-After readable"
    );
}

#[tokio::test]
async fn a_preflight_on_every_path_answers_methods_headers_and_max_age_without_a_token() {
    let api = api(ORIGIN, &[]).await;
    for (path, methods) in [
        ("/login", "OPTIONS,POST"),
        ("/users", "GET,OPTIONS,POST"),
        (
            "/users/0123456789abcdef0123456789abcdef",
            "DELETE,GET,OPTIONS,PATCH",
        ),
        ("/.well-known/jwks.json", "GET,OPTIONS"),
    ] {
        let answer = api.call("OPTIONS", path, None, None).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(header(&answer, "access-control-allow-origin"), Some(ORIGIN));
        assert_eq!(
            header(&answer, "access-control-allow-methods"),
            Some(methods),
            "{path}"
        );
        let allowed = header(&answer, "access-control-allow-headers").unwrap();
        assert!(allowed.contains("Authorization") && allowed.contains("Content-Type"));
        assert_eq!(header(&answer, "access-control-max-age"), Some("600"));
    }
    // A path the API does not have has no OPTIONS method either.
    let missing = api.call("OPTIONS", "/nope", None, None).await;
    assert_eq!(missing.status, 403);
    assert_cors(&missing, "missing route");
}

#[tokio::test]
async fn function_answers_and_every_gateway_answer_carry_cors() {
    let api = api(ORIGIN, &[]).await;
    let admin = api.create_user("ada", Role::Admin).await;
    let customer = api.create_user("cyd", Role::Customer).await;
    let _ = admin;

    // The functions' own answers: success and failure.
    let login = api.login_session("cyd").await;
    let token = login["access_token"].as_str().unwrap().to_string();
    let ok = api
        .call(
            "GET",
            &format!("/users/{}", customer.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_cors(&ok, "function 200");
    let bad = api
        .call("POST", "/login", None, Some(json!({"username": "cyd"})))
        .await;
    assert_eq!(bad.status, 400);
    assert_cors(&bad, "function 400");

    // The gateway's own: 401 (no token), 403 (not in the cached policy), a missing route.
    let unauthorized = api.call("GET", "/users", None, None).await;
    assert_eq!(unauthorized.status, 401);
    assert_cors(&unauthorized, "gateway 401");
    let denied = api.call("GET", "/users", Some(&token), None).await;
    assert_eq!(denied.status, 403);
    assert_cors(&denied, "gateway 403");
    let missing = api.call("GET", "/nope", None, None).await;
    assert_eq!(missing.status, 403);
    assert_cors(&missing, "gateway missing route");

    // Every gateway response of the template, 5xx included, as the gateway answers it.
    for (kind, status) in [
        ("AUTHORIZER_FAILURE", 503),
        ("AUTHORIZER_CONFIGURATION_ERROR", 500),
        ("THROTTLED", 429),
        ("DEFAULT_5XX", 502),
        ("DEFAULT_4XX", 413),
    ] {
        let response = api.gateway.gateway_error(kind, status, "x");
        let origin = response
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("access-control-allow-origin"))
            .map(|(_, value)| value.as_str());
        assert_eq!(origin, Some(ORIGIN), "{kind}");
    }
}

#[tokio::test]
async fn a_throttled_request_carries_cors() {
    let api = api(
        ORIGIN,
        &[
            ("ApiThrottlingRateLimit", "1"),
            ("ApiThrottlingBurstLimit", "1"),
        ],
    )
    .await;
    let mut throttled = None;
    for _ in 0..5 {
        let answer = api.call("GET", "/.well-known/jwks.json", None, None).await;
        if answer.status == 429 {
            throttled = Some(answer);
            break;
        }
    }
    let throttled = throttled.expect("a burst past the limit is throttled");
    assert_cors(&throttled, "gateway 429");
}

#[tokio::test]
async fn star_allows_any_origin_without_vary_and_off_grants_nothing() {
    let star = api("*", &[]).await;
    let answer = star.call("GET", "/users", None, None).await;
    assert_eq!(header(&answer, "access-control-allow-origin"), Some("*"));
    assert!(header(&answer, "vary").is_none());
    let jwks = star.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(header(&jwks, "access-control-allow-origin"), Some("*"));

    let off = start_with(
        StoreChoice::Memory,
        workspace_root().join("template.yaml"),
        &[],
    )
    .await;
    for (method, path) in [
        ("OPTIONS", "/users"),
        ("GET", "/users"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/nope"),
    ] {
        let answer = off.call(method, path, None, None).await;
        assert!(
            header(&answer, "access-control-allow-origin").is_none(),
            "{method} {path}: {:?}",
            answer.headers
        );
    }
}
