//! OIDC discovery and issuer changes over HTTP through the local gateway, with the
//! authorizer's cache on (SECURITY.md row 67): the document names exactly the `iss` of our
//! tokens and the JWK Set that verifies them (checked with jsonwebtoken's `from_jwk`, not
//! our key ring); an issuer that is not a URL gets a 404 that says why; after an issuer
//! change the previous `iss` is accepted only when named, and no other issuer ever is, even
//! on a token signed with our own key.

use integration_tests::running_api::{RunningApi, start_with};
use integration_tests::workspace_root;
use jwt_auth_core::crypto::keys::{KeyRing, KeySetDocument};
use jwt_auth_core::crypto::token::{Claims, Session, TokenIssuer, TokenSettings};
use jwt_auth_core::users::user::{Role, User};
use local_gateway::app::StoreChoice;
use std::sync::Arc;

const ISSUER: &str = "https://auth.example.test/prod";

async fn api_with(overrides: &[(&str, &str)]) -> RunningApi {
    start_with(
        StoreChoice::Memory,
        workspace_root().join("template.yaml"),
        overrides,
    )
    .await
}

/// A token for `user` signed with the running API's own current key, claiming `issuer`.
fn signed_with_our_key(api: &RunningApi, user: &User, issuer: &str) -> String {
    let document = KeySetDocument::from_json(&api.key_secret.current().unwrap().unwrap()).unwrap();
    let settings = TokenSettings {
        issuer: issuer.into(),
        ..TokenSettings::default()
    };
    TokenIssuer::new(
        Arc::new(KeyRing::from_document(&document).unwrap()),
        settings,
    )
    .issue(user, &Session::start(0), api.clock.now())
    .unwrap()
    .token
}

#[tokio::test]
async fn the_document_names_the_issuer_of_our_tokens_and_the_keys_that_verify_them() {
    let api = api_with(&[("TokenIssuer", ISSUER)]).await;
    let admin = api.create_user("admin", Role::Admin).await;
    let answer = api
        .call("GET", "/.well-known/openid-configuration", None, None)
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        answer.headers["cache-control"].to_str().unwrap(),
        "public, max-age=300"
    );
    let document = answer.body;
    // OIDC Discovery §3 and RFC 8414 §2: the required members, the issuer exactly.
    for member in [
        "issuer",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(document.get(member).is_some(), "{member} in {document}");
    }
    assert_eq!(document["issuer"], ISSUER);
    assert_eq!(
        document["jwks_uri"],
        format!("{ISSUER}/.well-known/jwks.json")
    );
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );

    // A verifier that starts from the document: our token's iss is its issuer, and the
    // set at its jwks_uri (here, the same route of this API) verifies the token.
    let token = api.login("admin").await;
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(
        api.call("GET", "/.well-known/jwks.json", None, None)
            .await
            .body,
    )
    .unwrap();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[document["issuer"].as_str().unwrap()]);
    validation.set_audience(&[TokenSettings::default().audience]);
    let claims = jsonwebtoken::decode::<Claims>(&token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims.sub, admin.id);
}

#[tokio::test]
async fn an_issuer_that_is_not_a_url_has_no_document_and_says_why() {
    let api = api_with(&[]).await;
    let answer = api
        .call("GET", "/.well-known/openid-configuration", None, None)
        .await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("TokenIssuer"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn after_an_issuer_change_only_the_named_previous_issuer_is_still_accepted() {
    const OLD: &str = "lambda-jwt-auth";
    let api = api_with(&[("TokenIssuer", ISSUER), ("PreviousTokenIssuer", OLD)]).await;
    let admin = api.create_user("admin", Role::Admin).await;
    let path = format!("/users/{}", admin.id);
    // New tokens carry the new issuer.
    let fresh = api.login("admin").await;
    let fresh_claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            fresh.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(fresh_claims["iss"], ISSUER);
    assert_eq!(api.call("GET", &path, Some(&fresh), None).await.status, 200);
    // A token of the previous setting lives out its lifetime.
    let before_change = signed_with_our_key(&api, &admin, OLD);
    assert_eq!(
        api.call("GET", &path, Some(&before_change), None)
            .await
            .status,
        200
    );
    // Any other issuer, on a token signed with our own key: refused (a cached Allow for
    // another token of the same user does not carry over: the cache is per token).
    for other in ["https://auth.example.test/staging", "", "lambda-jwt-auth "] {
        let foreign = signed_with_our_key(&api, &admin, other);
        assert_eq!(
            api.call("GET", &path, Some(&foreign), None).await.status,
            401,
            "iss {other:?}"
        );
    }
    // Without the previous issuer named, the old tokens are refused too.
    let strict = api_with(&[("TokenIssuer", ISSUER)]).await;
    let admin = strict.create_user("admin", Role::Admin).await;
    let old = signed_with_our_key(&strict, &admin, OLD);
    assert_eq!(
        strict
            .call("GET", &format!("/users/{}", admin.id), Some(&old), None)
            .await
            .status,
        401
    );
}

use integration_tests::claims_of;

/// `TokenIssuer` left to the template's default: the API's own URL. Locally that is the
/// address `jwt-auth serve` listens on; discovery then works from it, and no other issuer
/// is accepted (not even the earlier releases' `lambda-jwt-auth`, unless named as
/// `PreviousTokenIssuer`).
#[tokio::test]
async fn left_to_its_default_the_issuer_is_the_apis_own_url_and_discovery_starts_there() {
    let api = integration_tests::running_api::start_local(local_gateway::app::LocalOptions {
        address: Some(([127, 0, 0, 1], 0).into()),
        other_apis: Vec::new(),
        template: workspace_root().join("template.yaml"),
        store: StoreChoice::Memory,
        secret: None,
        parameter_overrides: integration_tests::running_api::unthrottled_with(&[]),
        seed_demo_users: false,
        clock: jwt_auth_core::startup::clock::Clock::system(),
        signing_algorithm: jwt_auth_core::crypto::keys::SigningAlgorithm::Es256,
        key_file: None,
        key_refresh_secs: jwt_auth_core::crypto::keys::live::SIGNER_REFRESH_SECS,
    })
    .await;
    let admin = api.create_user("admin", Role::Admin).await;
    let token = api.login("admin").await;
    assert_eq!(claims_of(&token)["iss"], api.base.as_str());
    let document = api
        .call("GET", "/.well-known/openid-configuration", None, None)
        .await;
    assert_eq!(document.status, 200, "{}", document.body);
    assert_eq!(document.body["issuer"], api.base.as_str());
    assert_eq!(
        document.body["jwks_uri"],
        format!("{}/.well-known/jwks.json", api.base)
    );
    let path = format!("/users/{}", admin.id);
    assert_eq!(api.call("GET", &path, Some(&token), None).await.status, 200);
    let earlier_default = signed_with_our_key(&api, &admin, "lambda-jwt-auth");
    assert_eq!(
        api.call("GET", &path, Some(&earlier_default), None)
            .await
            .status,
        401
    );
}

/// Deployed, the default issuer is read at cold start from the SSM parameter the stack
/// writes (moto stands in for SSM). A missing or unusable parameter stops the start
/// rather than guessing an issuer; naming both an issuer and a parameter is refused.
#[tokio::test]
async fn deployed_the_default_issuer_is_read_from_its_parameter_and_never_guessed() {
    use integration_tests::moto;
    use jwt_auth_core::startup::cold_start::ColdStart;
    use jwt_auth_core::startup::config::{Config, ConfigError};
    let config = |vars: &[(&str, &str)]| {
        let vars: std::collections::HashMap<String, String> = [("USERS_TABLE", "users")]
            .iter()
            .chain(vars)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    };
    let name = moto::fresh_parameter_path().replace("/permissions", "/token-issuer");
    let ssm = aws_sdk_ssm::Client::new(&moto::sdk_config());
    let settings_with = |config: Config| async {
        ColdStart::new(config, moto::sdk_config())
            .token_settings()
            .await
    };
    // Not there yet (a function started during the stack's first deploy): no start.
    let missing = settings_with(config(&[("JWT_ISSUER_PARAMETER", &name)]).unwrap()).await;
    assert!(
        matches!(missing, Err(ConfigError::IssuerParameter { .. })),
        "{missing:?}"
    );
    moto::put_parameter(&ssm, &name, ISSUER).await;
    let settings = settings_with(config(&[("JWT_ISSUER_PARAMETER", &name)]).unwrap())
        .await
        .unwrap();
    assert_eq!(settings.issuer, ISSUER);
    assert_eq!(settings.audience, TokenSettings::default().audience);
    // Without a parameter the environment's issuer stands, and SSM is not called.
    let fixed = settings_with(config(&[("JWT_ISSUER", "fixed-issuer")]).unwrap())
        .await
        .unwrap();
    assert_eq!(fixed.issuer, "fixed-issuer");
    let too_long = format!("https://{}", "a".repeat(1024));
    for unusable in ["https://auth.example.test/ prod", too_long.as_str()] {
        moto::put_parameter(&ssm, &name, unusable).await;
        let refused = settings_with(config(&[("JWT_ISSUER_PARAMETER", &name)]).unwrap()).await;
        assert!(refused.is_err(), "{unusable:?}");
    }
    assert!(
        config(&[("JWT_ISSUER_PARAMETER", &name), ("JWT_ISSUER", ISSUER)]).is_err(),
        "both an issuer and its parameter"
    );
    assert!(config(&[("JWT_ISSUER_PARAMETER", "token-issuer")]).is_err());
}
