//! Keys with `kid`, in each algorithm (SECURITY.md rows 6, 57, 58): tokens name their key,
//! verify with the published JWK Set through jsonwebtoken's own `from_jwk` (an
//! implementation other than our key ring), and are refused for an unknown or retired
//! `kid` and for every key/algorithm confusion.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_auth_core::crypto::keys::{KeyRing, KeySetDocument, SigningAlgorithm, generate_key};
use jwt_auth_core::crypto::token::TokenSettings;
use jwt_auth_core::crypto::token::{Claims, Session, TokenError, TokenIssuer, TokenVerifier};
use jwt_auth_core::users::user::{Role, User};
use serde_json::{Value, json};
use std::sync::Arc;

const NOW: u64 = 1_800_000_000;

fn alice() -> User {
    User {
        id: "0123456789abcdef0123456789abcdef".into(),
        username: "alice".into(),
        name: "Alice".into(),
        role: Role::Admin,
        disabled: false,
        created_at: NOW,
    }
}

struct Deployment {
    document: KeySetDocument,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
}

fn deployment(document: KeySetDocument) -> Deployment {
    let ring = Arc::new(KeyRing::from_document(&document).unwrap());
    let settings = TokenSettings::default();
    Deployment {
        document,
        issuer: TokenIssuer::new(Arc::clone(&ring), settings.clone()),
        verifier: TokenVerifier::new(ring, &settings),
    }
}

fn token_of(deployment: &Deployment) -> String {
    deployment
        .issuer
        .issue(&alice(), &Session::start(0), NOW)
        .unwrap()
        .token
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut segments = token.split('.');
    let mut json = || {
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(segments.next().unwrap()).unwrap())
            .unwrap()
    };
    let header = json();
    let claims = json();
    (header, claims, segments.next().unwrap().to_string())
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// An HS256 token over these header and claims, MACed with `key`.
fn hmac_token(header: &Value, claims: &Value, key: &[u8]) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[test]
fn issued_tokens_name_their_key_and_verify_with_the_published_jwks_alone() {
    for alg in [
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Rs256,
    ] {
        let deployment = deployment(KeySetDocument::generate(alg, NOW));
        let token = token_of(&deployment);
        let (header, _, _) = parts(&token);
        assert_eq!(header["kid"], deployment.document.current.as_str(), "{alg}");
        assert_eq!(header["alg"], alg.as_str());

        // Another implementation: jsonwebtoken straight from the published JWK Set.
        let jwks = deployment.document.public_jwks(0).unwrap();
        let published = serde_json::to_string(&jwks).unwrap();
        assert!(!published.contains("\"d\""), "{published}");
        let jwk = jwks
            .find(header["kid"].as_str().unwrap())
            .expect("published");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(alg.jwt());
        validation.set_audience(&[TokenSettings::default().audience]);
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(&token, &key, &validation)
            .unwrap_or_else(|err| panic!("{alg}: {err}"));
        assert_eq!(data.claims.sub, alice().id);

        assert!(deployment.verifier.verify(&token, NOW).is_ok(), "{alg}");
        // And our verifier holding the published keys only, as the authorizer does.
        let public_only = TokenVerifier::new(
            Arc::new(KeyRing::from_published(&deployment.document.published().unwrap()).unwrap()),
            &TokenSettings::default(),
        );
        assert!(public_only.verify(&token, NOW).is_ok(), "{alg}");
    }
}

#[test]
fn the_hs256_algorithm_publishes_an_empty_set() {
    let document = KeySetDocument::generate(SigningAlgorithm::Hs256, NOW);
    assert!(document.public_jwks(0).unwrap().keys.is_empty());
    let deployment = deployment(document);
    assert!(
        deployment
            .verifier
            .verify(&token_of(&deployment), NOW)
            .is_ok()
    );
}

#[test]
fn the_basic_rules_hold_for_every_algorithm() {
    for alg in SigningAlgorithm::ALL {
        let deployment = deployment(KeySetDocument::generate(alg, NOW));
        let token = token_of(&deployment);
        let (header, claims, signature) = parts(&token);
        let verify = |token: &str| deployment.verifier.verify(token, NOW);
        let altered = format!("{}AAAA", &token[..token.len() - 4]);
        let unsigned = format!("{}.{}.", b64_json(&header), b64_json(&claims));
        let none = format!(
            "{}.{}.",
            b64_json(&json!({"alg": "none", "typ": "JWT", "kid": header["kid"]})),
            b64_json(&claims)
        );
        let mut expired_claims = claims.clone();
        expired_claims["exp"] = json!(NOW - 3600);
        let re_signed_claims = format!(
            "{}.{}.{signature}",
            b64_json(&header),
            b64_json(&expired_claims)
        );
        for (name, bad) in [
            ("altered signature", altered),
            ("empty signature", unsigned),
            ("alg none", none),
            ("claims changed under the old signature", re_signed_claims),
        ] {
            assert!(verify(&bad).is_err(), "{alg}: {name}");
        }
        assert!(
            matches!(
                deployment.verifier.verify(&token, NOW + 3600),
                Err(TokenError::Expired)
            ),
            "{alg}: expired"
        );
    }
}

#[test]
fn an_unknown_kid_or_a_token_without_one_is_refused() {
    let deployment = deployment(KeySetDocument::generate(SigningAlgorithm::Es256, NOW));
    let token = token_of(&deployment);
    let (mut header, claims, signature) = parts(&token);
    for kid in [json!("es256-unknown"), json!(""), json!(null), json!(7)] {
        header["kid"] = kid.clone();
        let forged = format!("{}.{}.{signature}", b64_json(&header), b64_json(&claims));
        // Refused for the kid itself, before any signature check.
        let err = deployment.verifier.verify(&forged, NOW).unwrap_err();
        assert!(
            matches!(err, TokenError::UnknownKey | TokenError::Header),
            "{kid}: {err:?}"
        );
    }
    // A key from another deployment with the same algorithm is unknown here.
    let other = self::deployment(KeySetDocument::generate(SigningAlgorithm::Es256, NOW));
    assert_eq!(
        deployment
            .verifier
            .verify(&token_of(&other), NOW)
            .unwrap_err(),
        TokenError::UnknownKey
    );
}

#[test]
fn a_rotated_key_signs_after_its_lead_and_the_retired_one_verifies_until_its_retirement() {
    use jwt_auth_core::crypto::keys::SIGNING_LEAD_SECS;
    use jwt_auth_core::crypto::keys::rotation::rotate;
    const RETENTION: u64 = 2_000;
    let first = KeySetDocument::generate(SigningAlgorithm::Es256, NOW - 86_400);
    let old_token = token_of(&deployment(first.clone()));
    let rotated = rotate(
        Some(&first),
        SigningAlgorithm::Es256,
        NOW,
        RETENTION,
        SIGNING_LEAD_SECS,
    );
    let during = deployment(rotated.clone());
    let kid_at = |at: u64| {
        let issued = during
            .issuer
            .issue(&alice(), &Session::start(0), at)
            .unwrap();
        parts(&issued.token).0["kid"].as_str().unwrap().to_string()
    };
    // Published but not yet used: verifiers get the lead, counted from the latest the
    // rotation publishes, to learn the new key.
    let signs_at =
        NOW + jwt_auth_core::crypto::keys::rotation::PUBLICATION_DELAY_SECS + SIGNING_LEAD_SECS;
    assert_eq!(kid_at(signs_at - 1), first.current);
    assert_eq!(kid_at(signs_at), rotated.current, "new tokens, new kid");
    // The old key's tokens verify until its retirement; the public set lists it until then.
    assert!(during.verifier.verify(&old_token, NOW + 600).is_ok());
    let published_kids = |at: u64| -> Vec<String> {
        rotated
            .public_jwks(at)
            .unwrap()
            .keys
            .into_iter()
            .filter_map(|jwk| jwk.common.key_id)
            .collect()
    };
    assert!(published_kids(NOW + RETENTION - 1).contains(&first.current));
    // A token of the old key with a lifetime past the retirement (only a forger could hold
    // one: real tokens expire first) is refused once the key retired.
    let long_lived = {
        let issuer = TokenIssuer::new(
            Arc::new(KeyRing::from_document(&first).unwrap()),
            TokenSettings::default(),
        );
        issuer
            .issue_with_lifetime(&alice(), &Session::start(0), NOW, 3 * RETENTION)
            .unwrap()
            .token
    };
    assert!(
        during
            .verifier
            .verify(&long_lived, NOW + RETENTION - 1)
            .is_ok()
    );
    assert_eq!(
        during
            .verifier
            .verify(&long_lived, NOW + RETENTION)
            .unwrap_err(),
        TokenError::UnknownKey
    );
    assert!(!published_kids(NOW + RETENTION).contains(&first.current));
    // The next rotation after the retirement drops it from the stored set too.
    let later = rotate(
        Some(&rotated),
        SigningAlgorithm::Es256,
        NOW + RETENTION,
        RETENTION,
        SIGNING_LEAD_SECS,
    );
    assert!(later.keys.iter().all(|key| key.kid != first.current));
    // Removed from the set (emergency revocation): its tokens die at once.
    let mut removed = rotated.clone();
    removed.keys.retain(|key| key.kid != first.current);
    assert_eq!(
        deployment(removed)
            .verifier
            .verify(&old_token, NOW)
            .unwrap_err(),
        TokenError::UnknownKey
    );
}

#[test]
fn key_and_algorithm_confusion_is_refused() {
    // One set holding an ES256, an EdDSA and an HS256 key.
    let mut document = KeySetDocument::generate(SigningAlgorithm::Es256, NOW);
    let ed = generate_key(SigningAlgorithm::EdDsa, NOW);
    let hs = generate_key(SigningAlgorithm::Hs256, NOW);
    document.keys.push(ed.clone());
    document.keys.push(hs.clone());
    let deployment = deployment(document.clone());
    let token = token_of(&deployment);
    let (header, claims, signature) = parts(&token);
    let verify = |token: &str| deployment.verifier.verify(token, NOW);

    // An ES256 signature presented under the HS key's or the Ed25519 key's kid.
    for kid in [&hs.kid, &ed.kid] {
        let mut renamed = header.clone();
        renamed["kid"] = json!(kid);
        let forged = format!("{}.{}.{signature}", b64_json(&renamed), b64_json(&claims));
        let err = verify(&forged).unwrap_err();
        if *kid == hs.kid {
            // Refused by the HS key's pinned algorithm before any MAC is computed: an
            // ES256 header never selects HMAC verification.
            assert_eq!(err, TokenError::Header, "ES256 token under {kid}");
        } else {
            // An Ed25519 key cannot check an ECDSA signature in any case.
            assert!(
                matches!(err, TokenError::Header | TokenError::Invalid),
                "{kid}: {err:?}"
            );
        }
    }

    // HS256 tokens naming the ES256 key, MACed with what an attacker can see of it: the
    // published JWK's coordinates, the JWK JSON itself, or the raw public point.
    let jwks = serde_json::to_value(document.public_jwks(0).unwrap()).unwrap();
    let es_jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|jwk| jwk["kid"] == document.current.as_str())
        .unwrap()
        .clone();
    let x = URL_SAFE_NO_PAD
        .decode(es_jwk["x"].as_str().unwrap())
        .unwrap();
    let y = URL_SAFE_NO_PAD
        .decode(es_jwk["y"].as_str().unwrap())
        .unwrap();
    let point: Vec<u8> = [vec![4u8], x.clone(), y].concat();
    let hs_header = json!({"alg": "HS256", "typ": "JWT", "kid": document.current});
    for public_key_as_secret in [point, x, es_jwk.to_string().into_bytes()] {
        let forged = hmac_token(&hs_header, &claims, &public_key_as_secret);
        assert!(
            verify(&forged).is_err(),
            "public key used as an HMAC secret"
        );
    }

    // The reverse: a token really MACed with the HS key verifies only under the HS kid and
    // HS256, never with its alg switched to ES256.
    let secret = URL_SAFE_NO_PAD.decode(&hs.private).unwrap();
    let genuine = hmac_token(
        &json!({"alg": "HS256", "typ": "JWT", "kid": hs.kid}),
        &claims,
        &secret,
    );
    assert!(verify(&genuine).is_ok(), "the HS key is a key of the set");
    let switched = hmac_token(
        &json!({"alg": "ES256", "typ": "JWT", "kid": hs.kid}),
        &claims,
        &secret,
    );
    assert!(verify(&switched).is_err(), "alg switched under the HS kid");
}

/// A signer's source: `document` while `up`, failing while not.
struct SwitchedSource {
    document: KeySetDocument,
    up: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl jwt_auth_core::crypto::keys::live::KeySetSource for SwitchedSource {
    async fn read(
        &self,
    ) -> Result<Option<KeyRing>, jwt_auth_core::crypto::keys::live::KeySourceError> {
        if self.up.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(Some(KeyRing::from_document(&self.document).unwrap()))
        } else {
            Err(jwt_auth_core::crypto::keys::live::KeySourceError::Unavailable("throttled".into()))
        }
    }
}

/// A signer that starts (cold start, first read) at `at`, over `document`.
async fn signer_started_at(
    document: &KeySetDocument,
    at: u64,
) -> (
    TokenIssuer,
    jwt_auth_core::startup::clock::Clock,
    Arc<SwitchedSource>,
) {
    let clock = jwt_auth_core::startup::clock::Clock::manual(at);
    let source = Arc::new(SwitchedSource {
        document: document.clone(),
        up: true.into(),
    });
    struct Shared(Arc<SwitchedSource>);
    #[async_trait::async_trait]
    impl jwt_auth_core::crypto::keys::live::KeySetSource for Shared {
        async fn read(
            &self,
        ) -> Result<Option<KeyRing>, jwt_auth_core::crypto::keys::live::KeySourceError> {
            self.0.read().await
        }
    }
    let live = jwt_auth_core::crypto::keys::live::LiveKeys::load(
        Box::new(Shared(Arc::clone(&source))),
        clock.clone(),
        jwt_auth_core::crypto::keys::live::SIGNER_REFRESH_SECS,
    )
    .await
    .unwrap();
    (
        TokenIssuer::new(live, TokenSettings::default()),
        clock,
        source,
    )
}

#[tokio::test]
async fn a_signer_started_after_a_rotation_never_signs_with_a_key_retiring_before_its_token_expires()
 {
    use jwt_auth_core::crypto::keys::rotation::{retention_secs, rotate};
    use jwt_auth_core::crypto::keys::{DEFAULT_PUBLISH_LEAD_SECS, SIGNING_LEAD_SECS};
    use jwt_auth_core::crypto::token::CLOCK_LEEWAY_SECS;
    let settings = TokenSettings::default();
    let first = KeySetDocument::generate(SigningAlgorithm::Es256, NOW - 86_400);
    for lead in [SIGNING_LEAD_SECS, DEFAULT_PUBLISH_LEAD_SECS] {
        let retention = retention_secs(settings.ttl_secs, 300, lead);
        let rotated = rotate(Some(&first), SigningAlgorithm::Es256, NOW, retention, lead);
        let old_retires = NOW + retention;
        // Every start from the rotation to the old key's retirement, a minute apart.
        for start in (NOW..old_retires).step_by(60) {
            let (issuer, _, _) = signer_started_at(&rotated, start).await;
            let issued = issuer.issue(&alice(), &Session::start(0), start).unwrap();
            let kid = parts(&issued.token).0["kid"].as_str().unwrap().to_string();
            if kid == first.current {
                assert!(
                    issued.claims.exp + CLOCK_LEEWAY_SECS < old_retires,
                    "a signer started at T+{} signs with a key that retires before its token expires",
                    start - NOW
                );
            } else {
                assert_eq!(kid, rotated.current);
                assert!(start >= NOW + lead, "the new key signed inside its lead");
            }
        }
    }
    // Early on, the new key waits its lead from the signer's first sight.
    let rotated = rotate(
        Some(&first),
        SigningAlgorithm::Es256,
        NOW,
        retention_secs(settings.ttl_secs, 300, SIGNING_LEAD_SECS),
        SIGNING_LEAD_SECS,
    );
    let (early, _, _) = signer_started_at(&rotated, NOW + 100).await;
    let token = early
        .issue(&alice(), &Session::start(0), NOW + 100)
        .unwrap()
        .token;
    assert_eq!(parts(&token).0["kid"], first.current.as_str());
}

#[tokio::test]
async fn a_signer_whose_source_keeps_failing_stops_signing_at_the_bound() {
    use jwt_auth_core::crypto::keys::live::{MAX_SIGNING_RING_AGE_SECS, UNAVAILABLE_RETRY_SECS};
    use jwt_auth_core::crypto::token::IssueError;
    let document = KeySetDocument::generate(SigningAlgorithm::Es256, NOW - 86_400);
    let (issuer, clock, source) = signer_started_at(&document, NOW).await;
    source.up.store(false, std::sync::atomic::Ordering::SeqCst);
    let keys = issuer.keys();
    // It keeps trying (soon after each failure) and signs with what it has until the bound.
    let mut at = NOW;
    while at < NOW + MAX_SIGNING_RING_AGE_SECS {
        at += UNAVAILABLE_RETRY_SECS;
        clock.set(at.min(NOW + MAX_SIGNING_RING_AGE_SECS));
        keys.refresh_if_due().await;
        assert!(
            issuer
                .issue(&alice(), &Session::start(0), clock.now())
                .is_ok()
        );
    }
    clock.set(NOW + MAX_SIGNING_RING_AGE_SECS + 1);
    keys.refresh_if_due().await;
    assert!(matches!(
        issuer.issue(&alice(), &Session::start(0), clock.now()),
        Err(IssueError::NoKeys)
    ));
    // The source is back: the next read (due within the retry interval) signs again.
    source.up.store(true, std::sync::atomic::Ordering::SeqCst);
    clock.advance(UNAVAILABLE_RETRY_SECS);
    keys.refresh_if_due().await;
    assert!(
        issuer
            .issue(&alice(), &Session::start(0), clock.now())
            .is_ok()
    );
}

#[tokio::test]
async fn a_signer_reports_its_current_keys_age_at_each_read() {
    use jwt_auth_core::crypto::keys::live::KEY_SET_AGE_METRIC;
    let lines = jwt_auth_core::audit::capture();
    let document = KeySetDocument::generate(SigningAlgorithm::Es256, NOW - 86_400 * 7);
    let (issuer, clock, _) = signer_started_at(&document, NOW).await;
    clock.advance(jwt_auth_core::crypto::keys::live::SIGNER_REFRESH_SECS);
    issuer.keys().refresh_if_due().await;
    let ages: Vec<u64> = lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|value| value[KEY_SET_AGE_METRIC].as_u64())
        .filter(|age| *age >= 86_400 * 7 && *age <= 86_400 * 7 + 600)
        .collect();
    assert_eq!(
        ages,
        vec![
            86_400 * 7,
            86_400 * 7 + jwt_auth_core::crypto::keys::live::SIGNER_REFRESH_SECS
        ]
    );
}

#[test]
fn es256_tokens_are_issued_low_s_and_their_high_s_twin_is_refused() {
    use jwt_auth_core::crypto::keys::es256::{is_low_s, negate_s};
    let deployment = deployment(KeySetDocument::generate(
        SigningAlgorithm::Es256,
        NOW - 3_600,
    ));
    for _ in 0..32 {
        let token = token_of(&deployment);
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut bytes: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap()
            .try_into()
            .unwrap();
        assert!(is_low_s(&bytes), "issued with a high s");
        assert!(deployment.verifier.verify(&token, NOW).is_ok());
        negate_s(&mut bytes);
        let twin = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(
            deployment.verifier.verify(&twin, NOW).unwrap_err(),
            TokenError::Invalid,
            "the same token as a second string"
        );
    }
}
