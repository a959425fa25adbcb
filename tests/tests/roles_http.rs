//! Roles are data: a deployment declares them (`Roles`), admins give users any declared
//! one over the API, each reaches what the permissions document grants it, and a role that
//! is not (or no longer) declared gets no route. Over HTTP through the local gateway, with
//! the authorizer cache on.

use integration_tests::running_api::{RunningApi, start_with};
use integration_tests::workspace_root;
use jwt_auth_core::users::user::Role;
use local_gateway::app::StoreChoice;
use serde_json::json;

async fn api_declaring(roles: &str) -> RunningApi {
    start_with(
        StoreChoice::Memory,
        workspace_root().join("template.yaml"),
        &[("Roles", roles), ("AuthorizerCacheTtlSeconds", "300")],
    )
    .await
}

fn support() -> Role {
    Role::parse("support").unwrap()
}

#[tokio::test]
async fn an_admin_gives_a_declared_role_and_it_reaches_only_what_the_document_grants() {
    let api = api_declaring("admin,customer,support").await;
    let admin = api.create_user("admin", Role::Admin).await;
    let admin_token = api.login("admin").await;

    let created = api
        .call(
            "POST",
            "/users",
            Some(&admin_token),
            Some(json!({"username": "sam", "role": "support", "password": "correct-horse-battery-9"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["user"]["role"], "support");
    let sam_id = created.body["user"]["id"].as_str().unwrap().to_string();

    // Sam signs in and holds a support token: this API's document grants support what it
    // grants every signed-in role (its own user, logging out), not the admin routes.
    let sam = api.try_login("sam", "correct-horse-battery-9").await;
    assert_eq!(sam.status, 200, "{}", sam.body);
    assert_eq!(sam.body["user"]["role"], "support");
    let sam_token = sam.body["access_token"].as_str().unwrap().to_string();
    let own = api
        .call("GET", &format!("/users/{sam_id}"), Some(&sam_token), None)
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
    // Cached now: the same policy answers the routes below.
    let list = api.call("GET", "/users", Some(&sam_token), None).await;
    assert_eq!(list.status, 403);
    let other = api
        .call(
            "GET",
            &format!("/users/{}", admin.id),
            Some(&sam_token),
            None,
        )
        .await;
    assert_eq!(other.status, 403);
    let create = api
        .call(
            "POST",
            "/users",
            Some(&sam_token),
            Some(json!({"username": "eve", "role": "admin", "password": "staple-orbit-lantern-4"})),
        )
        .await;
    assert_eq!(create.status, 403);
}

#[tokio::test]
async fn a_role_the_deployment_does_not_declare_cannot_be_given() {
    let api = api_declaring("admin,customer,support").await;
    api.create_user("admin", Role::Admin).await;
    let bob = api.create_user("bob", Role::Customer).await;
    let admin_token = api.login("admin").await;
    for (method, path, body) in [
        (
            "POST",
            "/users".to_string(),
            json!({"username": "ann", "role": "auditor", "password": "staple-orbit-lantern-5"}),
        ),
        (
            "PATCH",
            format!("/users/{}", bob.id),
            json!({"role": "auditor"}),
        ),
    ] {
        let refused = api
            .call(method, &path, Some(&admin_token), Some(body))
            .await;
        assert_eq!(refused.status, 400, "{method} {path}: {}", refused.body);
        assert_eq!(
            refused.body["detail"],
            "role must be one of: admin, customer, support"
        );
    }
    // Not a role name at all: refused by its shape, whatever is declared.
    let refused = api
        .call(
            "PATCH",
            &format!("/users/{}", bob.id),
            Some(&admin_token),
            Some(json!({"role": "*"})),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let bob_now = api.store.get_user(&bob.id).await.unwrap().unwrap();
    assert_eq!(bob_now.role, Role::Customer);
}

#[tokio::test]
async fn a_role_no_longer_declared_gets_no_route_even_on_routes_every_role_has() {
    // Sam was made support while the deployment declared it; it no longer does.
    let api = api_declaring("admin,customer").await;
    let sam = api.create_user("sam", support()).await;
    let token = api.login("sam").await;
    for (method, path) in [
        ("GET", format!("/users/{}", sam.id)),
        ("POST", "/password".to_string()),
        ("POST", "/logout".to_string()),
    ] {
        let answer = api.call(method, &path, Some(&token), Some(json!({}))).await;
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
    }
}
