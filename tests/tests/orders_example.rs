//! Another stack's API behind this stack's authorizer: the example orders service
//! (`examples/orders`) served beside this API by the local gateway, with the real
//! authorizer, each API's own registered permissions document and the cache on. Each role
//! reaches what the orders document grants it, the "self" rule admits a customer to its
//! own orders only, and a disabled user is refused at once where the orders function
//! re-checks callers, or keeps a cached answer only for the orders API's cache TTL where
//! it does not.

use integration_tests::running_api::{RunningApi, start_with_orders};
use integration_tests::workspace_root;
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::users::user::Role;
use local_gateway::app::StoreChoice;
use serde_json::json;

const ROLES: (&str, &str) = ("Roles", "admin,customer,support");

async fn orders_api(recheck: bool) -> RunningApi {
    start_with_orders(StoreChoice::Memory, &[ROLES], recheck, Clock::system()).await
}

#[tokio::test]
async fn each_role_reaches_what_the_orders_document_grants_and_customers_only_their_own() {
    let api = orders_api(true).await;
    api.create_user("admin", Role::Admin).await;
    let sam = api
        .create_user("sam", Role::parse("support").unwrap())
        .await;
    let alice = api.create_user("alice", Role::Customer).await;
    let bob = api.create_user("bob", Role::Customer).await;
    let (admin, sam_token, alice_token, bob_token) = (
        api.login("admin").await,
        api.login("sam").await,
        api.login("alice").await,
        api.login("bob").await,
    );

    // Public: no token, no authorizer.
    let health = api.call_other(0, "GET", "/health", None, None).await;
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (200, Some("ok"))
    );
    // Protected: no token is the gateway's 401.
    assert_eq!(
        api.call_other(0, "GET", "/orders", None, None).await.status,
        401
    );

    // Any signed-in role orders for itself (the caller comes from the authorizer context).
    let placed = api
        .call_other(
            0,
            "POST",
            "/orders",
            Some(&alice_token),
            Some(json!({"item": "tea", "quantity": 2})),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    assert_eq!(placed.body["order"]["customer_id"], alice.id.as_str());
    let placed = api
        .call_other(
            0,
            "POST",
            "/orders",
            Some(&bob_token),
            Some(json!({"item": "cake", "quantity": 1})),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.body);

    // Alice: her own orders, nobody else's, not the whole list (the cached policy, 403).
    let own = api
        .call_other(
            0,
            "GET",
            &format!("/customers/{}/orders", alice.id),
            Some(&alice_token),
            None,
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["orders"].as_array().unwrap().len(), 1);
    for path in [
        format!("/customers/{}/orders", bob.id),
        "/orders".to_string(),
    ] {
        let refused = api
            .call_other(0, "GET", &path, Some(&alice_token), None)
            .await;
        assert_eq!(refused.status, 403, "{path}");
    }

    // Support and admin: every order, and any customer's.
    for token in [&sam_token, &admin] {
        let all = api.call_other(0, "GET", "/orders", Some(token), None).await;
        assert_eq!(all.status, 200, "{}", all.body);
        assert_eq!(all.body["orders"].as_array().unwrap().len(), 2);
        let bobs = api
            .call_other(
                0,
                "GET",
                &format!("/customers/{}/orders", bob.id),
                Some(token),
                None,
            )
            .await;
        assert_eq!(bobs.body["orders"][0]["item"], "cake");
    }
    // On this stack's own API, support is what the own document makes it: no user list.
    assert_eq!(
        api.call("GET", "/users", Some(&sam_token), None)
            .await
            .status,
        403
    );
    let sams = api
        .call("GET", &format!("/users/{}", sam.id), Some(&sam_token), None)
        .await;
    assert_eq!(sams.status, 200);
    // Bad input to the consumer's function is still a clear 400.
    let bad = api
        .call_other(
            0,
            "POST",
            "/orders",
            Some(&bob_token),
            Some(json!({"item": "", "quantity": 0})),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}

/// Disables alice on this API while she holds a cached Allow on the orders API.
async fn disable_alice_after_a_cached_allow(api: &RunningApi) -> (String, String) {
    api.create_user("admin", Role::Admin).await;
    let alice = api.create_user("alice", Role::Customer).await;
    let admin = api.login("admin").await;
    let alice_token = api.login("alice").await;
    let path = format!("/customers/{}/orders", alice.id);
    let before = api
        .call_other(0, "GET", &path, Some(&alice_token), None)
        .await;
    assert_eq!(before.status, 200, "{}", before.body);
    let disabled = api
        .call(
            "PATCH",
            &format!("/users/{}", alice.id),
            Some(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    (alice_token, path)
}

#[tokio::test]
async fn with_the_re_check_a_disabled_user_is_refused_at_once() {
    let api = orders_api(true).await;
    let (token, path) = disable_alice_after_a_cached_allow(&api).await;
    let after = api.call_other(0, "GET", &path, Some(&token), None).await;
    assert_eq!(after.status, 401, "{}", after.body);
}

#[tokio::test]
async fn without_the_re_check_a_disabled_user_keeps_only_the_cached_answer() {
    let api = orders_api(false).await;
    let (token, path) = disable_alice_after_a_cached_allow(&api).await;
    // The stated bound: the cached Allow still answers on the orders API (for at most its
    // ReauthorizeEvery)...
    let cached = api.call_other(0, "GET", &path, Some(&token), None).await;
    assert_eq!(cached.status, 200, "{}", cached.body);
    // ...and on this stack's own API, which re-checks, the same token is refused at once;
    // she cannot sign in again for a new token.
    let own = api.call("POST", "/logout", Some(&token), None).await;
    assert_eq!(own.status, 401, "{}", own.body);
    assert_eq!(
        api.try_login("alice", integration_tests::running_api::PASSWORD)
            .await
            .status,
        401
    );
}

#[test]
fn the_orders_template_registers_its_document_and_imports_what_it_needs() {
    let text =
        std::fs::read_to_string(workspace_root().join("examples/orders/template.yaml")).unwrap();
    let model = local_gateway::template::ApiModel::from_yaml(&text, &Default::default()).unwrap();
    let registered: serde_json::Value =
        serde_json::from_str(model.permissions_document.as_deref().unwrap()).unwrap();
    let built_in: serde_json::Value =
        serde_json::from_str(orders_example::PERMISSIONS_DOCUMENT).unwrap();
    assert_eq!(registered, built_in);
    // The HTTP API registers the same document under its own id.
    let example: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let http_api_document: serde_json::Value = serde_json::from_str(
        example["Resources"]["OrdersHttpApiPermissions"]["Properties"]["Value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(http_api_document, built_in);
    // The document covers the template's routes exactly, for the roles the tests declare.
    jwt_auth_cli::commands::permissions::check(
        orders_example::PERMISSIONS_DOCUMENT,
        Some(&text),
        &jwt_auth_core::users::user::DeclaredRoles::parse_list(ROLES.1).unwrap(),
    )
    .unwrap();
    // Every import names an export of this stack's template.
    let auth: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap(),
    )
    .unwrap();
    let exports: Vec<String> = auth["Outputs"]
        .as_mapping()
        .unwrap()
        .values()
        .filter_map(|output| match &output["Export"]["Name"] {
            serde_yaml::Value::Tagged(tagged) => tagged.value.as_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    let imports: Vec<&str> = text
        .lines()
        .filter_map(|line| {
            line.split("Fn::ImportValue: !Sub \"${AuthStackName}")
                .nth(1)
        })
        .map(|rest| rest.trim_end_matches('"'))
        .collect();
    let mut distinct = imports.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "{imports:?}");
    for import in imports {
        assert!(
            exports.contains(&format!("${{AWS::StackName}}{import}")),
            "{import} is not exported by template.yaml ({exports:?})"
        );
    }
}

/// The example's committed events (what `make sam-local` invokes with `sam local invoke`),
/// through its handler in-process: each answers what the event is for.
#[tokio::test]
async fn the_orders_events_answer_what_they_are_for() {
    let service = orders_example::OrdersService {
        orders: std::sync::Arc::new(orders_example::MemoryOrders::default()),
        revocation: None,
        clock: Clock::system(),
        second_factor_rule: Default::default(),
    };
    for (event, status) in [
        ("health.json", 200),
        ("orders-list.json", 403),
        ("orders-of-another-customer.json", 403),
        ("orders-place-bad-body.json", 400),
        // The same request through the HTTP API (payload 2.0, context under `lambda`).
        ("http-api-orders-of-another-customer.json", 403),
        // And behind API Gateway's JWT authorizer (the verified token's claims).
        ("jwt-api-orders-of-another-customer.json", 403),
    ] {
        let text =
            std::fs::read_to_string(workspace_root().join("examples/orders/events").join(event))
                .unwrap();
        let request = lambda_http::request::from_str(&text).unwrap();
        let response = orders_example::handle(request, &service).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{event}");
    }
}

/// Behind API Gateway's JWT authorizer, which verifies the token but knows nothing of
/// `amr`, the orders function itself refuses an admin who signed in without the second
/// factor admins must use (the claim arrives as API Gateway flattens arrays, `[pwd]`).
#[tokio::test]
async fn behind_the_jwt_authorizer_an_admin_without_its_second_factor_is_refused() {
    let service = orders_example::OrdersService {
        orders: std::sync::Arc::new(orders_example::MemoryOrders::default()),
        revocation: None,
        clock: Clock::system(),
        second_factor_rule: orders_example::OrdersService::second_factor_rule_from(None).unwrap(),
    };
    let text = std::fs::read_to_string(
        workspace_root().join("examples/orders/events/jwt-api-orders-of-another-customer.json"),
    )
    .unwrap();
    for (amr, status) in [(None, 403), (Some("[pwd]"), 403), (Some("[pwd otp]"), 200)] {
        let mut event: serde_json::Value = serde_json::from_str(&text).unwrap();
        let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
        claims["role"] = json!("admin");
        if let Some(amr) = amr {
            claims["amr"] = json!(amr);
        }
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = orders_example::handle(request, &service).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "amr {amr:?}");
    }
}

/// Where admins must use a second factor, an admin signed in with its password alone gets
/// nothing on another stack's API: the authorizer's policy there lists none of its
/// routes (the gateway's own 403, not the function's), first call and cached alike,
/// while a customer's token reaches what the orders document grants.
#[tokio::test]
async fn an_admin_without_its_second_factor_gets_no_route_of_another_api() {
    let api = start_with_orders(
        StoreChoice::Memory,
        &[ROLES, ("MfaRequiredRoles", "admin")],
        true,
        Clock::system(),
    )
    .await;
    api.create_user("root", Role::Admin).await;
    let alice = api.create_user("alice", Role::Customer).await;
    let held = api.login_session("root").await;
    assert_eq!(held["second_factor_enrolment_required"], true);
    let token = held["access_token"].as_str().unwrap();
    for _ in 0..2 {
        for (method, path) in [
            ("GET", "/orders".to_string()),
            ("GET", format!("/customers/{}/orders", alice.id)),
            ("POST", "/orders".to_string()),
        ] {
            let answer = api
                .call_other(
                    0,
                    method,
                    &path,
                    Some(token),
                    Some(json!({"item": "tea", "quantity": 1})),
                )
                .await;
            assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
            assert!(
                answer.body.get("message").is_some() && answer.body.get("detail").is_none(),
                "the gateway's refusal, not the function's: {}",
                answer.body
            );
        }
    }
    let customer = api.login("alice").await;
    let own = api
        .call_other(
            0,
            "GET",
            &format!("/customers/{}/orders", alice.id),
            Some(&customer),
            None,
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
}
