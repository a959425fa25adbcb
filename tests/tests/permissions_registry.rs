//! Permissions documents registered as SSM parameters (moto stands in for SSM), read by
//! the authorizer's registry: every API under the path by its id, paged; nothing outside
//! the path; an API with no document or a broken one denied every route; a change seen
//! within the refresh interval. Then the authorizer itself, answering two APIs from their
//! own documents and a third from none.

use aws_lambda_events::iam::IamPolicyEffect;
use integration_tests::{TestApp, authorizer_event, moto};
use jwt_auth_core::access::registry::Permissions;
use jwt_auth_core::startup::aws::ssm_client;
use jwt_auth_core::startup::permissions::SsmDocuments;
use jwt_auth_core::users::user::{DeclaredRoles, Role};

const ORDERS: &str = r#"{"version": 1, "routes": [
    {"route": "GET /orders", "roles": ["support", "admin"]},
    {"route": "POST /orders", "roles": "*"},
    {"route": "GET /customers/{customerId}/orders", "roles": ["support"], "self": "customerId"}
]}"#;

fn ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&moto::sdk_config())
}

fn declared() -> DeclaredRoles {
    DeclaredRoles::parse_list("admin,customer,support").unwrap()
}

#[tokio::test]
async fn every_api_under_the_path_is_read_by_its_id_and_nothing_else() {
    let client = ssm();
    let path = moto::fresh_parameter_path();
    // More than one page of GetParametersByPath (10 per page).
    for i in 0..13 {
        moto::put_parameter(&client, &format!("{path}/api{i:02}"), ORDERS).await;
    }
    moto::put_parameter(
        &client,
        &format!("{path}/broken"),
        r#"{"version": 1, "routes": [{"route": "GET /*", "roles": "*"}]}"#,
    )
    .await;
    // Beside and below the path: not documents of this registry.
    moto::put_parameter(&client, &format!("{path}-other/evil"), ORDERS).await;
    moto::put_parameter(&client, &format!("{path}/nested/evil"), ORDERS).await;

    let source = SsmDocuments::new(ssm_client(&moto::sdk_config()), &path);
    let permissions = Permissions::load(
        Box::new(source),
        declared(),
        jwt_auth_core::access::second_factor::SecondFactorRule::none(),
        60,
        1_000,
    )
    .await
    .expect("documents read");
    for i in 0..13 {
        assert!(
            permissions
                .for_api(&format!("api{i:02}"), 1_001)
                .await
                .is_some(),
            "api{i:02}"
        );
    }
    for denied in ["broken", "evil", "nested", "other"] {
        assert!(
            permissions.for_api(denied, 1_001).await.is_none(),
            "{denied}"
        );
    }

    // A document changed in SSM: seen at the next read, not before.
    moto::put_parameter(
        &client,
        &format!("{path}/api00"),
        r#"{"version": 1, "routes": [{"route": "GET /orders", "roles": ["admin"]}]}"#,
    )
    .await;
    let arn = "arn:aws:execute-api:us-east-1:123456789012:api00/prod/GET/orders";
    let method_arn = jwt_auth_core::access::policy::MethodArn::parse(arn).unwrap();
    let support_can_list =
        |compiled: std::sync::Arc<jwt_auth_core::access::policy::CompiledPolicy>| {
            let policy = compiled.policy_for(
                Role::parse("support").unwrap(),
                jwt_auth_core::access::second_factor::Reach::Full,
                "0".repeat(32).as_str(),
                &method_arn,
            );
            policy.statement[0].effect == IamPolicyEffect::Allow
                && policy.statement[0]
                    .resource
                    .iter()
                    .any(|r| r.ends_with("/GET/orders"))
        };
    assert!(support_can_list(
        permissions.for_api("api00", 1_059).await.unwrap()
    ));
    assert!(!support_can_list(
        permissions.for_api("api00", 1_060).await.unwrap()
    ));
}

#[tokio::test]
async fn an_unreachable_registry_stops_the_cold_start() {
    let unreachable = jwt_auth_core::startup::aws::sdk_config_from_env(|name| {
        match name {
            "AWS_REGION" => Some("us-east-1"),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("local"),
            // Nothing listens on port 9 (discard) here.
            "AWS_ENDPOINT_URL_SSM" => Some("http://127.0.0.1:9"),
            _ => None,
        }
        .map(String::from)
    });
    let source = SsmDocuments::new(ssm_client(&unreachable), "/nowhere/permissions");
    assert!(
        Permissions::load(
            Box::new(source),
            declared(),
            jwt_auth_core::access::second_factor::SecondFactorRule::none(),
            60,
            0
        )
        .await
        .is_err()
    );
}

/// The authorizer answers each API from that API's document, whichever API the first
/// request came from, and denies an API that registered none.
#[tokio::test]
async fn the_authorizer_answers_each_api_from_its_own_document() {
    let client = ssm();
    let path = moto::fresh_parameter_path();
    moto::put_parameter(
        &client,
        &format!("{path}/abc123"),
        jwt_auth_core::access::routes::THIS_API_DOCUMENT,
    )
    .await;
    moto::put_parameter(&client, &format!("{path}/orders1"), ORDERS).await;
    let mut app = TestApp::in_memory();
    app.permissions = Permissions::load(
        Box::new(SsmDocuments::new(ssm_client(&moto::sdk_config()), &path)),
        declared(),
        jwt_auth_core::access::second_factor::SecondFactorRule::none(),
        60,
        app.clock.now(),
    )
    .await
    .unwrap();
    let sam = app
        .create_user("sam", Role::parse("support").unwrap(), "pw-unused-here-0")
        .await;
    let token = format!("Bearer {}", app.token_for(&sam));

    let answer_for = |api: &str| {
        let mut event = authorizer_event("authorizer-valid.json");
        event.authorization_token = Some(token.clone());
        event.method_arn = Some(format!(
            "arn:aws:execute-api:us-east-1:123456789012:{api}/prod/GET/orders"
        ));
        event
    };
    let resources = |response: &jwt_auth_core::access::policy::AuthorizerResponse| {
        let statement = &response.policy_document.statement[0];
        (
            statement.effect.clone(),
            statement
                .resource
                .iter()
                .map(|r| r.split_once("/prod/").unwrap().1.to_string())
                .collect::<Vec<_>>(),
        )
    };
    let now = app.clock.now();
    let authorize_on = |api: &'static str| {
        let event = answer_for(api);
        let app = &app;
        async move {
            authorizer::authorize(
                &event,
                &app.verifier,
                &app.permissions,
                app.store.as_ref(),
                now,
            )
            .await
            .unwrap()
        }
    };
    let orders = authorize_on("orders1").await;
    assert_eq!(
        resources(&orders),
        (
            IamPolicyEffect::Allow,
            vec![
                "GET/orders".to_string(),
                "POST/orders".to_string(),
                "GET/customers/*/orders".to_string()
            ]
        )
    );
    let own = authorize_on("abc123").await;
    assert_eq!(
        resources(&own).1,
        [
            "POST/logout".to_string(),
            "POST/logout/all".to_string(),
            "POST/password".to_string(),
            "POST/mfa/totp".to_string(),
            "POST/mfa/totp/confirm".to_string(),
            "POST/mfa/totp/disable".to_string(),
            format!("GET/users/{}", sam.id)
        ]
    );
    let unregistered = authorize_on("nobody9").await;
    assert_eq!(
        resources(&unregistered),
        (IamPolicyEffect::Deny, vec!["*".to_string()])
    );
    // The context still names the caller: a consumer's function reads sub and role there.
    assert_eq!(orders.context.sub, sam.id);
    assert_eq!(orders.context.role, "support");
}
