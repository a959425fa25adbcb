//! Unit tests of key sets and rings.

use super::*;

#[test]
fn a_generated_set_of_each_algorithm_is_usable_and_names_its_current_key() {
    for alg in SigningAlgorithm::ALL {
        let document = KeySetDocument::generate(alg, 1_900_000_000);
        let reparsed = KeySetDocument::from_json(&document.to_json())
            .unwrap_or_else(|err| panic!("{alg}: {err}"));
        let ring = KeyRing::from_document(&reparsed).unwrap();
        assert_eq!(ring.current_kid(), document.current);
        assert_eq!(ring.current_algorithm(), Some(alg));
    }
}

#[test]
fn the_public_set_holds_public_halves_of_asymmetric_keys_only() {
    let mut document = KeySetDocument::generate(SigningAlgorithm::Es256, 0);
    document.keys.push(generate_key(SigningAlgorithm::EdDsa, 0));
    document.keys.push(generate_key(SigningAlgorithm::Hs256, 0));
    let jwks = serde_json::to_value(document.public_jwks(0).unwrap()).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{jwks}");
    for key in keys {
        assert!(key.get("d").is_none() && key.get("k").is_none(), "{key}");
        assert_eq!(key["use"], "sig");
        assert!(key["kid"].is_string() && key["alg"].is_string() && key["x"].is_string());
    }
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    assert!(keys[0]["y"].is_string());
    assert_eq!(keys[1]["kty"], "OKP");
    assert_eq!(keys[1]["crv"], "Ed25519");
}

#[test]
fn bad_key_sets_are_refused() {
    let good = KeySetDocument::generate(SigningAlgorithm::Es256, 0);
    let mut no_current = good.clone();
    no_current.current = "missing".into();
    let mut duplicate = good.clone();
    duplicate.keys.push(good.keys[0].clone());
    let mut wrong_alg = good.clone();
    wrong_alg.keys[0].alg = "EdDSA".into();
    let mut short_hmac = KeySetDocument::generate(SigningAlgorithm::Hs256, 0);
    short_hmac.keys[0].private = URL_SAFE_NO_PAD.encode([1u8; 16]);
    let mut injected_kid = good.clone();
    injected_kid.keys[0].kid = "../../etc/passwd".into();
    injected_kid.current = injected_kid.keys[0].kid.clone();
    for document in [no_current, duplicate, wrong_alg, short_hmac, injected_kid] {
        assert!(
            KeySetDocument::from_json(&document.to_json()).is_err(),
            "{document:?}"
        );
    }
    assert!(KeySetDocument::from_json("{\"current\": 1}").is_err());
}

#[test]
fn debug_output_of_a_key_set_never_shows_key_material() {
    let document = KeySetDocument::generate(SigningAlgorithm::EdDsa, 0);
    let debug = format!("{document:?}");
    assert!(!debug.contains(&document.keys[0].private), "{debug}");
    assert!(debug.contains(&document.current));
}

#[test]
fn the_hs256_ring_of_a_secret_names_its_key_alike_everywhere() {
    let secret = SigningSecret::generate();
    assert_eq!(
        KeyRing::hs256(&secret).current_kid(),
        KeyRing::hs256(&secret.duplicate()).current_kid()
    );
    assert_ne!(
        KeyRing::hs256(&secret).current_kid(),
        KeyRing::hs256(&SigningSecret::generate()).current_kid()
    );
}

/// An RS256 key is published as `n` and `e`, never a private member, and only a 2048-bit
/// key with the exponent 65537 is accepted back: a published key with a small exponent or
/// a short modulus (the setup of forgeries) stops the whole set from loading.
#[test]
fn rs256_keys_are_published_as_n_and_e_and_only_2048_bits_with_65537_come_back() {
    let document = KeySetDocument::generate(SigningAlgorithm::Rs256, 0);
    let published = document.published().unwrap();
    let jwk = serde_json::to_value(&published.jwks.keys[0]).unwrap();
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["e"], "AQAB");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(jwk.get(private).is_none(), "{private} in {jwk}");
    }
    assert!(KeyRing::from_published(&published).is_ok());

    let tampered = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut jwks = serde_json::to_value(&published.jwks).unwrap();
        edit(&mut jwks["keys"][0]);
        let mut bad = published.clone();
        bad.jwks = serde_json::from_value(jwks).unwrap();
        KeyRing::from_published(&bad)
    };
    assert!(
        tampered(&|key| key["e"] = "Aw".into()).is_err(),
        "exponent 3"
    );
    let short = URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
    assert!(
        tampered(&|key| key["n"] = short.clone().into()).is_err(),
        "1024 bits"
    );
    assert!(
        tampered(&|key| key["alg"] = "ES256".into()).is_err(),
        "an RSA key named ES256"
    );
}
