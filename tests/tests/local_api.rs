//! The whole API through the local gateway: real TCP, a real HTTP client, the template's
//! routes and authorizer settings, the real authorizer and functions, and an in-memory or
//! DynamoDB Local store.

use bytes::Bytes;
use http_body_util::Full;
use integration_tests::running_api::{
    PASSWORD, RunningApi, dynamo_store, dynamo_store_at, start, start_with,
};
use integration_tests::workspace_root;
use jwt_auth_core::users::user::Role;
use local_gateway::app::StoreChoice;
use local_gateway::gateway::AuthorizationTrace;
use serde_json::json;

/// Login, then every page of the user list as admin, then a customer reading itself and
/// refused the list, then bad tokens: the same story on either store.
async fn the_whole_story(api: RunningApi) {
    let admin = api.create_user("admin", Role::Admin).await;
    let carol = api.create_user("carol", Role::Customer).await;
    for name in ["dave", "erin", "frank", "grace"] {
        api.create_user(name, Role::Customer).await;
    }

    // Admin logs in, the authorizer allows, and the list comes in pages of 2.
    let admin_token = api.login("admin").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/users?limit=2&cursor={cursor}"),
            None => "/users?limit=2".to_string(),
        };
        let page = api.call("GET", &path, Some(&admin_token), None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for user in page.body["users"].as_array().unwrap() {
            assert!(user.get("password_hash").is_none());
            seen.push(user["username"].as_str().unwrap().to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["admin", "carol", "dave", "erin", "frank", "grace"]);
    let other = api
        .call(
            "GET",
            &format!("/users/{}", carol.id),
            Some(&admin_token),
            None,
        )
        .await;
    assert_eq!(
        (other.status, other.body["user"]["username"].as_str()),
        (200, Some("carol"))
    );

    // A customer reads itself but not the list, nor anyone else.
    let carol_token = api.login("carol").await;
    let own = api
        .call(
            "GET",
            &format!("/users/{}", carol.id),
            Some(&carol_token),
            None,
        )
        .await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["user"]["id"], carol.id.as_str());
    let list = api.call("GET", "/users", Some(&carol_token), None).await;
    assert_eq!(list.status, 403);
    assert_eq!(
        list.body["message"],
        "User is not authorized to access this resource"
    );
    let someone_else = api
        .call(
            "GET",
            &format!("/users/{}", admin.id),
            Some(&carol_token),
            None,
        )
        .await;
    assert_eq!(someone_else.status, 403);

    // No token, a tampered token, an expired token: 401 from the gateway.
    let no_token = api.call("GET", "/users", None, None).await;
    assert_eq!(
        (no_token.status, &no_token.body),
        (401, &json!({"message": "Unauthorized"}))
    );
    assert_eq!(
        no_token.headers["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let mut tampered = admin_token.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        api.call("GET", "/users", Some(&tampered), None)
            .await
            .status,
        401
    );
    let expired = api
        .issuer
        .issue(
            &admin,
            &jwt_auth_core::crypto::token::Session::start(0),
            jwt_auth_core::startup::clock::unix_now() - 3600,
        )
        .unwrap()
        .token;
    assert_eq!(
        api.call("GET", "/users", Some(&expired), None).await.status,
        401
    );
    let wrong = api
        .call(
            "POST",
            "/login",
            None,
            Some(json!({"username": "admin", "password": "wrong-password"})),
        )
        .await;
    assert_eq!(wrong.status, 401);
}

#[tokio::test]
async fn the_whole_api_works_over_http_with_the_in_memory_store() {
    the_whole_story(start(StoreChoice::Memory).await).await;
}

#[tokio::test]
async fn the_whole_api_works_over_http_against_dynamodb_local() {
    the_whole_story(start(dynamo_store().await).await).await;
}

#[tokio::test]
async fn a_cached_policy_gives_each_route_the_answer_api_gateway_would() {
    let api = start(StoreChoice::Memory).await;
    let admin = api.create_user("admin", Role::Admin).await;
    let carol = api.create_user("carol", Role::Customer).await;
    let admin_token = format!("Bearer {}", api.login("admin").await);
    let carol_token = format!("Bearer {}", api.login("carol").await);
    let own = format!("/users/{}", carol.id);
    let other = format!("/users/{}", admin.id);

    // Admin: allowed on both routes, whichever comes first; the second is a cache hit.
    assert_eq!(
        api.trace("GET", "/users", &admin_token).await,
        (200, AuthorizationTrace::CacheMiss)
    );
    assert_eq!(
        api.trace("GET", &own, &admin_token).await,
        (200, AuthorizationTrace::CacheHit)
    );

    // Customer: the allowed route first, then the refused one, from the same cached policy.
    assert_eq!(
        api.trace("GET", &own, &carol_token).await,
        (200, AuthorizationTrace::CacheMiss)
    );
    assert_eq!(
        api.trace("GET", "/users", &carol_token).await,
        (403, AuthorizationTrace::CacheHit)
    );
    assert_eq!(
        api.trace("GET", &other, &carol_token).await,
        (403, AuthorizationTrace::CacheHit)
    );

    // And the reverse order with a second customer token.
    let carol_again = format!("Bearer {}", api.login("carol").await);
    assert_eq!(
        api.trace("GET", "/users", &carol_again).await,
        (403, AuthorizationTrace::CacheMiss)
    );
    assert_eq!(
        api.trace("GET", &own, &carol_again).await,
        (200, AuthorizationTrace::CacheHit)
    );
}

#[tokio::test]
async fn the_gateway_refuses_some_requests_without_calling_the_authorizer() {
    let api = start(StoreChoice::Memory).await;
    // Fails the template's ValidationExpression: 401, authorizer not invoked.
    assert_eq!(
        api.trace("GET", "/users", "Bearer not-a-jwt").await,
        (401, AuthorizationTrace::NotCalled)
    );
    assert_eq!(
        api.trace("GET", "/users", "").await,
        (401, AuthorizationTrace::NotCalled)
    );
    // Passes the expression but not the authorizer: 401 after a (missed) call.
    assert_eq!(
        api.trace("GET", "/users", "Bearer a.b.c").await,
        (401, AuthorizationTrace::CacheMiss)
    );
}

#[tokio::test]
async fn unknown_routes_and_missing_stages_get_missing_authentication_token() {
    let api = start(StoreChoice::Memory).await;
    for (method, path) in [
        ("GET", "/nope"),
        ("DELETE", "/users"),
        ("GET", "/users/"),
        ("PUT", "/users"),
    ] {
        let answer = api.call(method, path, None, None).await;
        assert_eq!(answer.status, 403, "{method} {path}");
        assert_eq!(
            answer.body,
            json!({"message": "Missing Authentication Token"}),
            "{method} {path}"
        );
        assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    }
    let without_stage = api
        .client
        .request(
            hyper::Request::get(api.base.replace("/prod", "/users"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(without_stage.status(), 403);
}

#[tokio::test]
async fn bad_login_input_over_http_is_4xx() {
    let api = start(StoreChoice::Memory).await;
    api.create_user("admin", Role::Admin).await;
    let huge = "x".repeat(1024 * 1024);
    for (body, status) in [
        (json!({"username": [], "password": "x"}), 400),
        (json!({"username": "admin"}), 400),
        (json!({"username": "admin", "password": huge}), 413),
    ] {
        assert_eq!(
            api.call("POST", "/login", None, Some(body)).await.status,
            status
        );
    }
}

#[tokio::test]
async fn parameter_overrides_change_the_stage_and_turn_the_cache_off() {
    let api = start_with(
        StoreChoice::Memory,
        workspace_root().join("template.yaml"),
        &[("StageName", "dev"), ("AuthorizerCacheTtlSeconds", "0")],
    )
    .await;
    assert!(api.base.ends_with("/dev"));
    api.create_user("admin", Role::Admin).await;
    let token = format!("Bearer {}", api.login("admin").await);
    assert_eq!(
        api.trace("GET", "/users", &token).await,
        (200, AuthorizationTrace::CacheMiss)
    );
    assert_eq!(
        api.trace("GET", "/users", &token).await,
        (200, AuthorizationTrace::CacheMiss)
    );
}

#[tokio::test]
async fn a_change_in_template_yaml_changes_local_behaviour() {
    // Open GET /users/{id} to the public in a copy of the real template: the gateway stops
    // asking for a token and the function itself refuses the context-less call.
    let template = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let opened = template.replacen(
        "            Path: /users/{id}\n            Method: get\n",
        "            Path: /users/{id}\n            Method: get\n            Auth:\n              Authorizer: NONE\n",
        1,
    );
    assert_ne!(
        opened, template,
        "the template's GetUser event moved; update this test"
    );
    let path = std::env::temp_dir().join(format!("template-{}.yaml", std::process::id()));
    std::fs::write(&path, opened).unwrap();
    let api = start_with(StoreChoice::Memory, path.clone(), &[]).await;
    std::fs::remove_file(&path).unwrap();
    let user = api.create_user("carol", Role::Customer).await;
    let answer = api
        .call("GET", &format!("/users/{}", user.id), None, None)
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.headers["content-type"], "application/problem+json",
        "answered by the function"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_command_rotates_and_revokes_the_key_set_of_a_running_local_deployment() {
    use clap::Parser;
    use jwt_auth_cli::commands::keys::{KeysArgs, run};
    let (store, endpoint, table) = dynamo_store_at().await;
    let key_file = std::env::temp_dir().join(format!("keys-{table}.json"));
    // Re-read on every request, and no cache: what the command changes shows at once.
    let api = integration_tests::running_api::start_local(local_gateway::app::LocalOptions {
        other_apis: Vec::new(),
        address: None,
        template: workspace_root().join("template.yaml"),
        store,
        secret: None,
        parameter_overrides: [("AuthorizerCacheTtlSeconds".to_string(), "0".to_string())].into(),
        seed_demo_users: false,
        clock: jwt_auth_core::startup::clock::Clock::system(),
        signing_algorithm: jwt_auth_core::crypto::keys::SigningAlgorithm::EdDsa,
        key_file: Some(key_file.clone()),
        key_refresh_secs: 0,
    })
    .await;
    let keys = |args: &[&str]| {
        let mut argv = vec![
            "keys",
            "--key-file",
            key_file.to_str().unwrap(),
            "--table",
            &table,
            "--dynamodb-endpoint",
            &endpoint,
        ];
        argv.extend_from_slice(args);
        let parsed = KeysArgs::try_parse_from(argv).unwrap();
        async move { run(parsed).await }
    };
    let user = api.create_user("kim", Role::Customer).await;
    let old = api.login("kim").await;
    let old_kid = jsonwebtoken::decode_header(&old).unwrap().kid.unwrap();
    assert!(keys(&["list"]).await.unwrap().contains(&old_kid));

    let rotated = keys(&["rotate", "--algorithm", "ES256"]).await.unwrap();
    assert!(
        rotated.contains("ES256") && rotated.contains(&old_kid),
        "{rotated}"
    );
    let jwks = api
        .call("GET", "/.well-known/jwks.json", None, None)
        .await
        .body;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "the new key is published: {jwks}");
    let path = format!("/users/{}", user.id);
    assert_eq!(api.call("GET", &path, Some(&old), None).await.status, 200);

    // A leaked key, removed: its tokens are refused on the next read of the set.
    let revoked = keys(&["revoke", &old_kid]).await.unwrap();
    assert!(!revoked.contains(&format!("{old_kid} ")), "{revoked}");
    assert_eq!(api.call("GET", &path, Some(&old), None).await.status, 401);
    let fresh = api.login("kim").await;
    assert_ne!(
        jsonwebtoken::decode_header(&fresh).unwrap().kid.unwrap(),
        old_kid
    );
    assert_eq!(api.call("GET", &path, Some(&fresh), None).await.status, 200);
    let _ = std::fs::remove_file(&key_file);
}

#[tokio::test]
async fn the_admin_command_seeds_the_demo_users_once_in_dynamodb_local() {
    use clap::Parser;
    use jwt_auth_cli::commands::users::{UsersArgs, run};
    let (store, endpoint, table) = dynamo_store_at().await;
    let demo = || {
        let argv = [
            "users",
            "--table",
            &table,
            "--dynamodb-endpoint",
            &endpoint,
            "demo",
        ];
        let parsed = UsersArgs::try_parse_from(argv).unwrap();
        async move { run(parsed, &mut std::io::empty()).await }
    };
    demo().await.unwrap();
    demo().await.unwrap();
    // The API does not seed them itself (seed_demo_users: false): they are the command's.
    let api = start_with(store, workspace_root().join("template.yaml"), &[]).await;
    let mut admin_token = String::new();
    for (username, role, password) in local_gateway::app::DEMO_USERS {
        let answer = api
            .call(
                "POST",
                "/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(answer.status, 200, "{username}");
        assert_eq!(answer.body["user"]["role"], role.as_str());
        if *username == "admin" {
            admin_token = answer.body["access_token"].as_str().unwrap().to_string();
        }
    }
    let listed = api
        .call("GET", "/users?limit=10", Some(&admin_token), None)
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.body["users"].as_array().unwrap().len(),
        3,
        "seeded once"
    );
}

#[tokio::test]
async fn the_admin_command_creates_lists_and_disables_users_in_dynamodb_local() {
    use clap::Parser;
    use jwt_auth_cli::commands::users::{UsersArgs, run};
    let (store, endpoint, table) = dynamo_store_at().await;
    let admin = |args: &[&str], stdin: &str| {
        let mut argv = vec!["users", "--table", &table, "--dynamodb-endpoint", &endpoint];
        argv.extend_from_slice(args);
        let parsed = UsersArgs::try_parse_from(argv).unwrap();
        let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
        async move { run(parsed, &mut input).await }
    };

    let created = admin(
        &[
            "create",
            "--username",
            "Olga",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    )
    .await
    .unwrap();
    assert!(created.starts_with("created olga (admin)"), "{created}");
    let duplicate = admin(
        &[
            "create",
            "--username",
            "olga",
            "--role",
            "customer",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(duplicate.unwrap_err().contains("already taken"));
    let weak = admin(
        &[
            "create",
            "--username",
            "weak",
            "--role",
            "customer",
            "--password-stdin",
        ],
        "short\n",
    )
    .await;
    assert!(weak.is_err(), "the password policy applies");
    let listed = admin(&["list"], "").await.unwrap();
    assert!(
        listed.contains("olga") && listed.contains("active"),
        "{listed}"
    );

    // No authorizer cache, so that revocations show at once.
    let api = start_with(
        store,
        workspace_root().join("template.yaml"),
        &[("AuthorizerCacheTtlSeconds", "0")],
    )
    .await;
    api.login("olga").await;
    assert!(
        admin(&["disable", "--username", "olga"], "")
            .await
            .unwrap()
            .contains("disabled")
    );
    let refused = api
        .call(
            "POST",
            "/login",
            None,
            Some(json!({"username": "olga", "password": PASSWORD})),
        )
        .await;
    assert_eq!(refused.status, 401, "a disabled user can no longer log in");
    admin(&["enable", "--username", "olga"], "").await.unwrap();
    admin(
        &["reset-password", "--username", "olga", "--password-stdin"],
        "another-long-password\n",
    )
    .await
    .unwrap();
    let answer = api
        .call(
            "POST",
            "/login",
            None,
            Some(json!({"username": "olga", "password": "another-long-password"})),
        )
        .await;
    assert_eq!(answer.status, 200);
    let token = answer.body;
    let old_token = token["access_token"].as_str().unwrap();
    assert_eq!(
        api.call("GET", "/users", Some(old_token), None)
            .await
            .status,
        200,
        "olga is an admin"
    );
    let reported = admin(
        &["set-role", "--username", "olga", "--role", "customer"],
        "",
    )
    .await
    .unwrap();
    assert!(reported.contains("is now customer"), "{reported}");
    assert_eq!(
        api.call("GET", "/users", Some(old_token), None)
            .await
            .status,
        401,
        "role change revokes"
    );
    admin(&["revoke-tokens", "--username", "olga"], "")
        .await
        .unwrap();
    admin(&["delete", "--username", "olga"], "").await.unwrap();
    let gone = api
        .call(
            "POST",
            "/login",
            None,
            Some(json!({"username": "olga", "password": "another-long-password"})),
        )
        .await;
    assert_eq!(gone.status, 401);
    let unknown = admin(&["disable", "--username", "nobody"], "").await;
    assert!(unknown.unwrap_err().contains("no user named"));
}

/// The template's throttling, emulated: a burst over `POST /login`'s limit gets API
/// Gateway's 429 without invoking the function, and the stage default throttles every
/// other method on its own bucket, before the authorizer.
#[tokio::test]
async fn a_burst_over_the_limit_is_throttled_by_the_gateway_without_invoking_anything() {
    let api = start_with(
        StoreChoice::Memory,
        workspace_root().join("template.yaml"),
        &[
            // A refill of one token per 100 s: nothing refills during the test.
            ("LoginThrottlingBurstLimit", "2"),
            ("LoginThrottlingRateLimit", "0.01"),
            ("ApiThrottlingBurstLimit", "1"),
            ("ApiThrottlingRateLimit", "0.01"),
        ],
    )
    .await;
    let guess = json!({"username": "nobody", "password": "a wrong guess"});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let answer = api.call("POST", "/login", None, Some(guess.clone())).await;
        if answer.status == 429 {
            assert_eq!(answer.body, json!({"message": "Too Many Requests"}));
            assert_eq!(answer.headers["retry-after"], "1");
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [401, 401, 429]);
    assert_eq!(
        api.store.login_failures("nobody").await.unwrap().count,
        2,
        "the throttled login never reached the function"
    );

    // Each method has its own bucket: GET /users has one token, GET /users/{id} another.
    let token = "Bearer a.b.c";
    assert_eq!(api.trace("GET", "/users", token).await.0, 401);
    assert_eq!(
        api.trace("GET", "/users", token).await,
        (429, AuthorizationTrace::NotCalled),
        "throttled before the authorizer"
    );
    assert_eq!(api.trace("GET", "/users/abc", token).await.0, 401);
    // The refresh route has limits of its own (the template's, here: not exhausted).
    let refresh = api
        .call(
            "POST",
            "/token/refresh",
            None,
            Some(json!({"refresh_token": "x"})),
        )
        .await;
    assert_eq!(refresh.status, 401);
}

/// `make run` signs ES256 with a `kid` and publishes the public key: a token from login
/// verifies with nothing but the JWK Set fetched over HTTP, through jsonwebtoken's own
/// `from_jwk` (another service's way to check our tokens).
#[tokio::test]
async fn login_tokens_verify_with_the_published_jwks_alone() {
    let api = start(StoreChoice::Memory).await;
    api.create_user("alice", Role::Customer).await;
    let token = api.login("alice").await;
    let jwks = api.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.headers["cache-control"], "public, max-age=300");
    assert!(!jwks.body.to_string().contains("\"d\""));
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.body).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("the token's key is published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["lambda-jwt-auth-api"]);
    validation.set_issuer(&["lambda-jwt-auth"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["username"], "alice");
}
