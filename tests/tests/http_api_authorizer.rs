//! The authorizer on HTTP APIs: REQUEST events in payload format 2.0 (as `sam local`
//! builds them: `events/authorizer-http-api*.json`), answered with an IAM policy or a
//! simple answer as the API's document says. Allowed, refused (missing, malformed, expired,
//! revoked), and the attacks on the cache: an answer that could be cached under something
//! other than the token, or a simple `true` that could be reused on another route.

use authorizer::{
    AuthorizerAnswer, AuthorizerError, AuthorizerEvent, HttpApiResponse, authorize_http_api,
};
use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use integration_tests::{EVENTS_PASSWORD, TestApp, event_text};
use jwt_auth_core::access::registry::{Permissions, StaticDocuments};
use jwt_auth_core::users::user::{DeclaredRoles, Role, User};
use serde_json::{Value, json};

/// The orders example's routes, answered simply (no `self` route: see the document rules).
const ORDERS_SIMPLE: &str = r#"{"version": 1, "http_api_answer": "simple", "routes": [
    {"route": "GET /health", "public": true},
    {"route": "POST /orders", "roles": "*"},
    {"route": "GET /orders", "roles": ["admin", "support"]}
]}"#;

fn event(file: &str) -> ApiGatewayV2CustomAuthorizerV2Request {
    serde_json::from_str(&event_text(file)).unwrap_or_else(|err| panic!("{file}: {err}"))
}

/// The committed event with `token` where API Gateway puts it: the header and the
/// identity source (`$request.header.Authorization`).
fn with_token(token: &str) -> ApiGatewayV2CustomAuthorizerV2Request {
    let mut event = event("authorizer-http-api.json");
    let value = format!("Bearer {token}");
    event
        .headers
        .insert("authorization", value.parse().unwrap());
    event.identity_source = Some(vec![value]);
    event
}

/// `with_token` asking `path` of the API `api` through its route `route_key` (e.g.
/// `GET /orders`, as API Gateway names the route), its cache keyed by token and route.
fn route_event(
    token: &str,
    api: &str,
    route_key: &str,
    path: &str,
) -> ApiGatewayV2CustomAuthorizerV2Request {
    let mut event = with_token(token);
    let method = route_key.split(' ').next().unwrap();
    let route_key = route_key.to_string();
    event.route_arn = Some(format!(
        "arn:aws:execute-api:us-east-1:123456789012:{api}/$default/{method}{path}"
    ));
    event.route_key = Some(route_key.clone());
    event.raw_path = Some(path.into());
    event.identity_source.as_mut().unwrap().push(route_key);
    event
}

async fn decide(app: &TestApp, event: &ApiGatewayV2CustomAuthorizerV2Request) -> Value {
    let answer = authorize_http_api(
        event,
        &app.verifier,
        &app.permissions,
        app.store.as_ref(),
        app.clock.now(),
    )
    .await
    .unwrap();
    serde_json::to_value(answer).unwrap()
}

fn is_deny_everything(answer: &Value) -> bool {
    let statement = &answer["policyDocument"]["Statement"][0];
    answer["principalId"] == "anonymous"
        && statement["Effect"] == "Deny"
        && statement["Resource"]
            == json!(["arn:aws:execute-api:us-east-1:123456789012:abc123/$default/*"])
        && answer.get("context").is_none()
}

async fn app_with(documents: &[(&str, &str)]) -> (TestApp, User, User) {
    let mut app = TestApp::in_memory();
    if !documents.is_empty() {
        app.permissions = Permissions::load(
            Box::new(StaticDocuments::new(
                documents
                    .iter()
                    .map(|(api, text)| (api.to_string(), text.to_string()))
                    .collect(),
            )),
            DeclaredRoles::parse_list("admin,customer,support").unwrap(),
            jwt_auth_core::access::second_factor::SecondFactorRule::none(),
            60,
            app.clock.now(),
        )
        .await
        .unwrap();
    }
    let alice = app.create_user("alice", Role::Admin, EVENTS_PASSWORD).await;
    let carol = app
        .create_user("carol", Role::Customer, EVENTS_PASSWORD)
        .await;
    (app, alice, carol)
}

#[tokio::test]
async fn a_valid_token_gets_the_same_policy_as_on_a_rest_api_and_the_context() {
    let (app, alice, carol) = app_with(&[]).await;
    let answer = decide(&app, &with_token(&app.token_for(&alice))).await;
    assert_eq!(answer["principalId"], alice.id.as_str());
    let statement = &answer["policyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Allow");
    let resources: Vec<&str> = statement["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let prefix = "arn:aws:execute-api:us-east-1:123456789012:abc123/$default";
    assert!(
        resources.contains(&format!("{prefix}/GET/users").as_str()),
        "{resources:?}"
    );
    assert!(resources.iter().all(|r| r.starts_with(prefix)));
    assert_eq!(answer["context"]["sub"], alice.id.as_str());
    assert_eq!(answer["context"]["role"], "admin");
    // A customer: only its own user, exactly.
    let answer = decide(&app, &with_token(&app.token_for(&carol))).await;
    let resources = answer["policyDocument"]["Statement"][0]["Resource"].to_string();
    assert!(
        resources.contains(&format!("GET/users/{}", carol.id)),
        "{resources}"
    );
    assert!(!resources.contains("GET/users\""), "{resources}");
}

#[tokio::test]
async fn missing_malformed_expired_and_revoked_tokens_get_a_deny_of_everything() {
    let (app, alice, _) = app_with(&[]).await;
    // No header at all (an API without the identity source would send this).
    let mut missing = event("authorizer-http-api.json");
    missing.headers.remove("authorization");
    missing.identity_source = Some(Vec::new());
    assert!(is_deny_everything(&decide(&app, &missing).await));
    // The committed events: a placeholder, and a token that expired long ago.
    assert!(is_deny_everything(
        &decide(&app, &event("authorizer-http-api.json")).await
    ));
    assert!(is_deny_everything(
        &decide(&app, &event("authorizer-http-api-expired.json")).await
    ));
    assert!(is_deny_everything(
        &decide(&app, &with_token("not.a.token")).await
    ));
    // Logged out everywhere: refused at once, as on a REST API.
    let token = app.token_for(&alice);
    app.store
        .revoke_all_tokens(&alice.id, jwt_auth_core::store::Actor::Operator)
        .await
        .unwrap();
    assert!(is_deny_everything(&decide(&app, &with_token(&token)).await));
}

#[tokio::test]
async fn an_answer_the_api_would_cache_under_something_other_than_the_token_is_refused() {
    let (app, alice, _) = app_with(&[]).await;
    // Identity sources without the Authorization header (say, only an API key header): the
    // Allow would be served to every token with that key. Refused.
    let mut event = with_token(&app.token_for(&alice));
    event.identity_source = Some(vec!["some-api-key".into()]);
    assert!(is_deny_everything(&decide(&app, &event).await));
}

#[tokio::test]
async fn simple_answers_decide_the_route_asked_and_only_when_the_cache_is_keyed_by_route() {
    let (app, alice, carol) = app_with(&[("orders1", ORDERS_SIMPLE)]).await;
    let admin = app.token_for(&alice);
    let customer = app.token_for(&carol);
    let allowed = decide(
        &app,
        &route_event(&admin, "orders1", "GET /orders", "/orders"),
    )
    .await;
    assert_eq!(allowed["isAuthorized"], true, "{allowed}");
    assert_eq!(allowed["context"]["sub"], alice.id.as_str());
    assert!(allowed.get("policyDocument").is_none());
    // A customer may place orders, not list them.
    let placed = decide(
        &app,
        &route_event(&customer, "orders1", "POST /orders", "/orders"),
    )
    .await;
    assert_eq!(placed["isAuthorized"], true, "{placed}");
    let refused = decide(
        &app,
        &route_event(&customer, "orders1", "GET /orders", "/orders"),
    )
    .await;
    assert_eq!(refused, json!({"isAuthorized": false}));
    // An unknown route, a refused token: false.
    let unknown = decide(
        &app,
        &route_event(&admin, "orders1", "DELETE /orders", "/orders"),
    )
    .await;
    assert_eq!(unknown["isAuthorized"], false);
    let bad = decide(
        &app,
        &route_event("not.a.token", "orders1", "GET /orders", "/orders"),
    )
    .await;
    assert_eq!(bad, json!({"isAuthorized": false}));

    // The attack: the API's cache not keyed by route ($context.routeKey missing). A `true`
    // for POST /orders would be served for GET /orders too. Refused even where allowed.
    let mut unkeyed = route_event(&customer, "orders1", "POST /orders", "/orders");
    unkeyed.identity_source.as_mut().unwrap().pop();
    assert_eq!(decide(&app, &unkeyed).await["isAuthorized"], false);
    // Keyed by a header the client controls, carrying the route key it wants cached:
    // indistinguishable from $context.routeKey by value, so refused too.
    let mut spoofed = route_event(&customer, "orders1", "POST /orders", "/orders");
    spoofed
        .headers
        .insert("x-route", "POST /orders".parse().unwrap());
    assert_eq!(decide(&app, &spoofed).await["isAuthorized"], false);

    // A route of the API wider than the document's: `ANY /{proxy+}` (or `$default`) in
    // front of routes the document tells apart. A `true` for POST /orders, cached under
    // that route key, would be reused for GET /orders: refused.
    for wide in ["ANY /{proxy+}", "$default"] {
        let mut proxied = route_event(&customer, "orders1", "POST /orders", "/orders");
        proxied.route_key = Some(wide.into());
        proxied.identity_source.as_mut().unwrap()[1] = wide.into();
        assert_eq!(
            decide(&app, &proxied).await["isAuthorized"],
            false,
            "{wide}"
        );
    }
}

#[tokio::test]
async fn an_api_without_a_document_is_denied_in_the_shape_it_cannot_misread() {
    let (app, alice, _) = app_with(&[("orders1", ORDERS_SIMPLE)]).await;
    let answer = decide(
        &app,
        &route_event(&app.token_for(&alice), "nodoc9", "GET /orders", "/orders"),
    )
    .await;
    let statement = &answer["policyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Deny");
    assert!(answer.get("isAuthorized").is_none());
}

#[tokio::test]
async fn a_bad_route_arn_is_an_error_never_an_allow() {
    let (app, alice, _) = app_with(&[]).await;
    let mut event = with_token(&app.token_for(&alice));
    event.route_arn = Some("arn:aws:s3:::bucket".into());
    let answer = authorize_http_api(
        &event,
        &app.verifier,
        &app.permissions,
        app.store.as_ref(),
        app.clock.now(),
    )
    .await;
    assert_eq!(
        answer.unwrap_err(),
        AuthorizerError::BadEvent("routeArn missing or malformed")
    );
}

#[tokio::test]
async fn the_handler_tells_the_two_event_shapes_apart_and_answers_each_in_its_own() {
    let (app, alice, _) = app_with(&[]).await;
    let token = app.token_for(&alice);
    let mut v2: Value = serde_json::from_str(&event_text("authorizer-http-api.json")).unwrap();
    v2["headers"]["authorization"] = format!("Bearer {token}").into();
    v2["identitySource"] = json!([format!("Bearer {token}")]);
    let mut v1: Value = serde_json::from_str(&event_text("authorizer-valid.json")).unwrap();
    v1["authorizationToken"] = format!("Bearer {token}").into();
    for (event, http_api) in [(v2, true), (v1, false)] {
        let parsed: AuthorizerEvent = serde_json::from_value(event).unwrap();
        assert_eq!(matches!(parsed, AuthorizerEvent::HttpApi(_)), http_api);
        let answer = authorizer::handle(
            lambda_runtime::LambdaEvent::new(parsed, lambda_runtime::Context::default()),
            &app.verifier,
            &app.permissions,
            app.store.as_ref(),
            &app.clock,
        )
        .await
        .unwrap();
        match answer {
            AuthorizerAnswer::HttpApi(HttpApiResponse::Allow(allow)) => {
                assert!(http_api);
                assert_eq!(allow.principal_id, alice.id);
            }
            AuthorizerAnswer::Token(allow) => {
                assert!(!http_api);
                assert_eq!(allow.principal_id, alice.id);
            }
            other => panic!("{other:?}"),
        }
    }
    // A TOKEN event's refusal stays the `Unauthorized` error API Gateway answers 401.
    let expired: AuthorizerEvent =
        serde_json::from_str(&event_text("authorizer-expired.json")).unwrap();
    let refused = authorizer::handle(
        lambda_runtime::LambdaEvent::new(expired, lambda_runtime::Context::default()),
        &app.verifier,
        &app.permissions,
        app.store.as_ref(),
        &app.clock,
    )
    .await;
    assert_eq!(refused.unwrap_err(), AuthorizerError::Unauthorized);
}

/// Where admins must use a second factor, an admin's token issued after its password alone
/// gets, on an HTTP API too, a policy of the enrolment routes and logout only.
#[tokio::test]
async fn an_admin_without_its_second_factor_gets_only_enrolment_and_logout() {
    let (mut app, alice, _) = app_with(&[]).await;
    app.permissions = Permissions::every_api(
        &jwt_auth_core::access::routes::THIS_API,
        Default::default(),
        jwt_auth_core::access::second_factor::SecondFactorRule::default(),
    );
    let answer = decide(&app, &with_token(&app.token_for(&alice))).await;
    let statement = &answer["policyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Allow");
    let prefix = "arn:aws:execute-api:us-east-1:123456789012:abc123/$default";
    let expected: Vec<String> = [
        "POST/logout",
        "POST/logout/all",
        "POST/mfa/totp",
        "POST/mfa/totp/confirm",
    ]
    .iter()
    .map(|resource| format!("{prefix}/{resource}"))
    .collect();
    assert_eq!(statement["Resource"], json!(expected));
    assert_eq!(answer["context"]["amr"], "pwd");
}
