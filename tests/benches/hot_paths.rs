//! `make bench`: medians of the hot paths, each next to a baseline measured in the same run
//! so the figures compare across machines as ratios:
//! - token verification against a bare `jsonwebtoken::decode` of the same token with the
//!   same key and rules (the library's own cost) and against one HMAC-SHA256 over the same
//!   signing input (the cryptographic floor); the authorizer handler (TOKEN event JSON in,
//!   response JSON out) against both; for ES256, EdDSA and RS256, against the bare aws-lc verify of
//!   the same signature;
//! - the login handler on the in-memory store, against one argon2id verify with the same
//!   parameters (the deliberate cost) and one with freshly allocated memory.

use authorizer::authorize;
use aws_lc_rs::hmac;
use integration_tests::{EVENTS_PASSWORD, TestApp, event_text};
use jwt_auth_core::access::second_factor::Reach;
use jwt_auth_core::crypto::keys::{KeyRing, KeySetDocument, SigningAlgorithm};
use jwt_auth_core::crypto::password::HASH_PARAMS;
use jwt_auth_core::crypto::token::{Session, TokenIssuer, TokenVerifier};
use jwt_auth_core::users::user::Role;
use secrecy::SecretString;
use std::hint::black_box;
use std::time::Instant;

/// Median nanoseconds per call over `samples` batches of `batch` calls.
fn median_ns(samples: usize, batch: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..batch {
        f(); // warm caches and allocators
    }
    let mut per_call: Vec<f64> = (0..samples)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..batch {
                f();
            }
            started.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    per_call.sort_by(|a, b| a.total_cmp(b));
    per_call[samples / 2]
}

fn main() {
    // First, before anything else of this process draws random bytes: what seeding
    // AWS-LC's generator costs (paid once per process, so once per cold start).
    let started = Instant::now();
    let mut seed_probe = [0u8; 16];
    aws_lc_rs::rand::fill(&mut seed_probe).unwrap();
    let first_random_ns = started.elapsed().as_nanos() as f64;
    let started = Instant::now();
    aws_lc_rs::rand::fill(&mut seed_probe).unwrap();
    let next_random_ns = started.elapsed().as_nanos() as f64;
    // The handlers' audit lines are built (their cost counts) but not printed.
    jwt_auth_core::audit::quiet();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = TestApp::in_memory();
    let alice = runtime.block_on(app.create_user("alice", Role::Admin, EVENTS_PASSWORD));
    let token = app.token_for(&alice);
    let now = app.clock.now();

    // Baseline: the HMAC alone over the token's signing input.
    let signing_input = &token[..token.rfind('.').unwrap()];
    let key = hmac::Key::new(hmac::HMAC_SHA256, integration_tests::EVENTS_SIGNING_SECRET);
    let hmac_ns = median_ns(51, 20_000, || {
        black_box(hmac::sign(&key, black_box(signing_input.as_bytes())));
    });

    // Baseline: jsonwebtoken's `decode` with the same key and the rules our verifier
    // applies (algorithm, iss, aud, required claims; times checked by the caller).
    let decoding_key =
        jsonwebtoken::DecodingKey::from_secret(integration_tests::EVENTS_SIGNING_SECRET);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_required_spec_claims(&["sub", "iss", "aud", "exp", "nbf", "iat"]);
    let settings = jwt_auth_core::crypto::token::TokenSettings::default();
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    validation.validate_exp = false;
    let decode_ns = median_ns(51, 20_000, || {
        black_box(
            jsonwebtoken::decode::<jwt_auth_core::crypto::token::Claims>(
                black_box(&token),
                &decoding_key,
                &validation,
            )
            .unwrap(),
        );
    });

    let verify_ns = median_ns(51, 20_000, || {
        black_box(app.verifier.verify(black_box(&token), now).unwrap());
    });

    let template_event: serde_json::Value =
        serde_json::from_str(&event_text("authorizer-valid.json")).unwrap();
    let mut event = template_event.clone();
    event["authorizationToken"] = format!("Bearer {token}").into();
    let event_json = event.to_string();
    // With the in-memory store: the figure is the handler's own cost, not DynamoDB's, nor
    // a multi-threaded runtime's hand-offs (lambda_runtime polls the handler in place).
    let local = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handler_ns = median_ns(51, 10_000, || {
        let event = serde_json::from_str(black_box(&event_json)).unwrap();
        let response = local
            .block_on(authorize(
                &event,
                &app.verifier,
                &app.permissions,
                app.store.as_ref(),
                now,
            ))
            .unwrap();
        black_box(serde_json::to_vec(&response).unwrap());
    });
    // Where the handler's time goes: the event's parse, `authorize` alone (verify, the
    // store read, the policy, the audit line), and the answer's serialization.
    let parsed: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequest =
        serde_json::from_str(&event_json).unwrap();
    // As the Lambda handler parses it: either event shape (TOKEN or payload 2.0).
    let parse_any_ns = median_ns(51, 10_000, || {
        black_box(
            serde_json::from_str::<authorizer::AuthorizerEvent>(black_box(&event_json)).unwrap(),
        );
    });
    let parse_ns = median_ns(51, 10_000, || {
        black_box(
            serde_json::from_str::<aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequest>(
                black_box(&event_json),
            )
            .unwrap(),
        );
    });
    let authorize_ns = median_ns(51, 10_000, || {
        black_box(
            local
                .block_on(authorize(
                    &parsed,
                    &app.verifier,
                    &app.permissions,
                    app.store.as_ref(),
                    now,
                ))
                .unwrap(),
        );
    });
    let claims = app.verifier.verify(&token, now).unwrap();
    let store_ns = median_ns(51, 10_000, || {
        black_box(
            local
                .block_on(
                    app.store
                        .authorization_state(&claims.sub, &claims.jti, &claims.sid),
                )
                .unwrap(),
        );
    });
    let method_arn =
        jwt_auth_core::access::policy::MethodArn::parse(parsed.method_arn.as_deref().unwrap())
            .unwrap();
    // The API's compiled document looked up, then the policy made from it.
    let policy_ns = median_ns(51, 10_000, || {
        let compiled = local
            .block_on(app.permissions.for_api(black_box(method_arn.api_id), now))
            .unwrap();
        black_box(compiled.policy_for(
            claims.role,
            Reach::Full,
            black_box(&claims.sub),
            &method_arn,
        ));
    });
    // The same step when the authorizer holds a registry at its limit (every document
    // SSM may hold for it; this API's among them): what a lookup by API id costs among them.
    let registry = registry_at_limit(&local, method_arn.api_id, now);
    let registry_policy_ns = median_ns(51, 10_000, || {
        let compiled = local
            .block_on(registry.for_api(black_box(method_arn.api_id), now))
            .unwrap();
        black_box(compiled.policy_for(
            claims.role,
            Reach::Full,
            black_box(&claims.sub),
            &method_arn,
        ));
    });
    let registry_authorize_ns = median_ns(51, 10_000, || {
        black_box(
            local
                .block_on(authorize(
                    &parsed,
                    &app.verifier,
                    &registry,
                    app.store.as_ref(),
                    now,
                ))
                .unwrap(),
        );
    });
    let audit_ns = median_ns(51, 10_000, || {
        jwt_auth_core::audit::record(
            jwt_auth_core::audit::SecurityEvent::AuthorizerAllow,
            Some(black_box(&claims.sub)),
            None,
        );
    });
    let response = local
        .block_on(authorize(
            &parsed,
            &app.verifier,
            &app.permissions,
            app.store.as_ref(),
            now,
        ))
        .unwrap();
    let serialize_ns = median_ns(51, 10_000, || {
        black_box(serde_json::to_vec(black_box(&response)).unwrap());
    });

    // Login: whole handler vs the argon2 verify it is built around.
    let password = SecretString::from(EVENTS_PASSWORD.to_string());
    let stored = integration_tests::hasher().hash(&password).unwrap();
    let argon2_pooled_ns = median_ns(15, 10, || {
        black_box(integration_tests::hasher().verify(&password, &stored));
    });
    let (m, t, p) = HASH_PARAMS;
    let raw = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(m, t, p, Some(32)).unwrap(),
    );
    let argon2_fresh_ns = median_ns(15, 10, || {
        let mut out = [0u8; 32];
        raw.hash_password_into(EVENTS_PASSWORD.as_bytes(), b"sixteen byte salt", &mut out)
            .unwrap();
        black_box(out);
    });
    let login_ns = median_ns(15, 10, || {
        let request = integration_tests::http_event("login-ok.json");
        let response = runtime
            .block_on(login::handle(request, &app.login))
            .unwrap();
        assert_eq!(response.status(), 200);
        black_box(response);
    });
    // Failure paths: clear the failure counts (the username's and the event's source's)
    // each time so that neither lockout kicks in.
    let source = jwt_auth_core::sessions::lockout::source_counter("203.0.113.10", now);
    let failing_login = |username: &'static str, password: &'static str| {
        let mut request = integration_tests::http_event("login-ok.json");
        *request.body_mut() = lambda_http::Body::Text(format!(
            r#"{{"username":"{username}","password":"{password}"}}"#
        ));
        let response = runtime.block_on(async {
            app.store.clear_login_failures(username).await.unwrap();
            app.store.clear_login_failures(&source).await.unwrap();
            login::handle(request, &app.login).await.unwrap()
        });
        assert_eq!(response.status(), 401);
        black_box(response);
    };
    let wrong_password_ns = median_ns(15, 10, || failing_login("alice", "not-the-password"));
    let unknown_ns = median_ns(15, 10, || failing_login("nobody", EVENTS_PASSWORD));
    println!("hot paths (medians; ratios against baselines measured in this run)");
    println!(
        "  first random bytes of the process (RNG seeding) {:>7.2} ms   the next ones {:.2} µs",
        first_random_ns / 1e6,
        next_random_ns / 1e3
    );
    println!(
        "  HMAC-SHA256 of the signing input (baseline)   {:>9.2} µs/op",
        hmac_ns / 1e3
    );
    println!(
        "  jsonwebtoken::decode, same key and rules      {:>9.2} µs/op   {:>5.1}x HMAC",
        decode_ns / 1e3,
        decode_ns / hmac_ns
    );
    println!(
        "  token verify                                  {:>9.2} µs/op   {:>5.1}x HMAC   {:>4.2}x decode",
        verify_ns / 1e3,
        verify_ns / hmac_ns,
        verify_ns / decode_ns
    );
    println!(
        "  authorizer handler (event JSON -> JSON)       {:>9.2} µs/op   {:>5.1}x HMAC   {:>4.2}x decode",
        handler_ns / 1e3,
        handler_ns / hmac_ns,
        handler_ns / decode_ns
    );
    println!(
        "    event parse telling TOKEN from payload 2.0 (the Lambda handler's): {:.2} µs ({:.2}x the TOKEN type alone)",
        parse_any_ns / 1e3,
        parse_any_ns / parse_ns
    );
    println!(
        "    of which: event parse {:.2} µs, authorize {:.2} µs, answer to JSON {:.2} µs",
        parse_ns / 1e3,
        authorize_ns / 1e3,
        serialize_ns / 1e3
    );
    println!(
        "    authorize: verify {:.2} µs, store read {:.2} µs, policy {:.2} µs, audit line {:.2} µs",
        verify_ns / 1e3,
        store_ns / 1e3,
        policy_ns / 1e3,
        audit_ns / 1e3
    );
    println!(
        "    with {} registered APIs: policy {:.2} µs ({:.2}x built-in), authorize {:.2} µs ({:.2}x built-in)",
        jwt_auth_core::startup::permissions::MAX_DOCUMENTS,
        registry_policy_ns / 1e3,
        registry_policy_ns / policy_ns,
        registry_authorize_ns / 1e3,
        registry_authorize_ns / authorize_ns
    );
    for alg in [
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Rs256,
    ] {
        asymmetric(alg, &app, &alice, &template_event, now);
    }
    println!(
        "  argon2id verify, fresh 19 MiB (baseline)      {:>9.2} ms/op",
        argon2_fresh_ns / 1e6
    );
    println!(
        "  argon2id verify, reused memory                {:>9.2} ms/op   {:>5.2}x fresh",
        argon2_pooled_ns / 1e6,
        argon2_pooled_ns / argon2_fresh_ns
    );
    println!(
        "  login handler, in-memory store                {:>9.2} ms/op   {:>5.2}x fresh argon2",
        login_ns / 1e6,
        login_ns / argon2_fresh_ns
    );
    println!(
        "  login handler, wrong password                 {:>9.2} ms/op   {:>5.2}x successful login",
        wrong_password_ns / 1e6,
        wrong_password_ns / login_ns
    );
    println!(
        "  login handler, unknown user                   {:>9.2} ms/op   {:>5.2}x wrong password",
        unknown_ns / 1e6,
        unknown_ns / wrong_password_ns
    );
}

/// ES256, EdDSA or RS256: token verify and the authorizer handler, each against the bare
/// aws-lc signature verify of the same signature (the floor), all in this run.
fn asymmetric(
    alg: SigningAlgorithm,
    app: &TestApp,
    user: &jwt_auth_core::users::user::User,
    event: &serde_json::Value,
    now: u64,
) {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
        RsaPublicKeyComponents,
    };
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let document = KeySetDocument::generate(alg, now);
    let ring = std::sync::Arc::new(KeyRing::from_document(&document).unwrap());
    let settings = jwt_auth_core::crypto::token::TokenSettings::default();
    let issuer = TokenIssuer::new(std::sync::Arc::clone(&ring), settings.clone());
    let verifier = TokenVerifier::new(ring, &settings);
    let token = issuer.issue(user, &Session::start(0), now).unwrap().token;

    // The floor: aws-lc's verify with the public key parsed once, as our verifier holds it.
    let jwk = serde_json::to_value(document.public_jwks(0).unwrap()).unwrap()["keys"][0].clone();
    let member = |name: &str| b64.decode(jwk[name].as_str().unwrap()).unwrap();
    let public_key: ParsedPublicKey = match alg {
        SigningAlgorithm::Es256 => ParsedPublicKey::new(
            &ECDSA_P256_SHA256_FIXED,
            [vec![4u8], member("x"), member("y")].concat(),
        )
        .unwrap(),
        SigningAlgorithm::Rs256 => RsaPublicKeyComponents {
            n: member("n"),
            e: member("e"),
        }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .unwrap(),
        _ => ParsedPublicKey::new(&ED25519, member("x")).unwrap(),
    };
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = b64.decode(signature).unwrap();
    let floor_ns = median_ns(31, 2_000, || {
        public_key
            .verify_sig(black_box(signing_input.as_bytes()), black_box(&signature))
            .unwrap();
    });
    let verify_ns = median_ns(31, 2_000, || {
        black_box(verifier.verify(black_box(&token), now).unwrap());
    });
    let mut event = event.clone();
    event["authorizationToken"] = format!("Bearer {token}").into();
    let event_json = event.to_string();
    let local = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handler_ns = median_ns(31, 2_000, || {
        let event = serde_json::from_str(black_box(&event_json)).unwrap();
        let response = local
            .block_on(authorize(
                &event,
                &verifier,
                &app.permissions,
                app.store.as_ref(),
                now,
            ))
            .unwrap();
        black_box(serde_json::to_vec(&response).unwrap());
    });
    println!(
        "  {:<5} signature verify, bare aws-lc (floor)  {:>9.2} µs/op",
        alg.as_str(),
        floor_ns / 1e3
    );
    println!(
        "  {:<5} token verify                            {:>9.2} µs/op   {:>5.2}x floor",
        alg.as_str(),
        verify_ns / 1e3,
        verify_ns / floor_ns
    );
    println!(
        "  {:<5} authorizer handler                      {:>9.2} µs/op   {:>5.2}x floor",
        alg.as_str(),
        handler_ns / 1e3,
        handler_ns / floor_ns
    );
    // Signing, which login and refresh pay once per token.
    let issue_ns = median_ns(11, 100, || {
        black_box(issuer.issue(user, &Session::start(0), now).unwrap());
    });
    println!(
        "  {:<5} token issue                             {:>9.2} µs/op   {:>5.2}x verify",
        alg.as_str(),
        issue_ns / 1e3,
        issue_ns / verify_ns
    );
}

/// A registry holding as many documents as the authorizer reads (`MAX_DOCUMENTS`): this
/// API's own under `api_id`, the orders example's under every other id.
fn registry_at_limit(
    runtime: &tokio::runtime::Runtime,
    api_id: &str,
    now: u64,
) -> jwt_auth_core::access::registry::Permissions {
    use jwt_auth_core::access::registry::{Permissions, StaticDocuments};
    let orders = std::fs::read_to_string(
        integration_tests::workspace_root().join("examples/orders/permissions.json"),
    )
    .unwrap();
    let documents: Vec<(String, String)> = (1..jwt_auth_core::startup::permissions::MAX_DOCUMENTS)
        .map(|n| (format!("api{n:07}"), orders.clone()))
        .chain([(
            api_id.to_string(),
            jwt_auth_core::access::routes::THIS_API_DOCUMENT.to_string(),
        )])
        .collect();
    let declared =
        jwt_auth_core::users::user::DeclaredRoles::parse_list("admin,customer,support").unwrap();
    runtime
        .block_on(Permissions::load(
            Box::new(StaticDocuments::new(documents)),
            declared,
            jwt_auth_core::access::second_factor::SecondFactorRule::none(),
            u64::MAX / 2,
            now,
        ))
        .unwrap()
}
