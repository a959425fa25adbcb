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
