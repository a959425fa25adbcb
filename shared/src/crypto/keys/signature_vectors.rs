//! Project Wycheproof's vectors (`shared/tests/data/wycheproof`) through the verifier's
//! signature check, which calls aws-lc directly ([`SignatureCheck`]): every `valid` vector
//! verifies, every `invalid` one fails. Truncated HMAC tags are `valid` for Wycheproof but
//! not for JWS (HS256 is the whole 32-byte tag, RFC 7518 §3.2): they must fail. Valid
//! ES256 signatures with a high `s` are refused too: one token, one string
//! ([`super::es256`]). RS256 keys other than 2048 bits with exponent 65537 make no check
//! ([`super::rs256`]).

use super::{SignatureCheck, SigningAlgorithm};
use jsonwebtoken::DecodingKey;
use serde_json::Value;

fn vectors(file: &str) -> Value {
    let path = format!(
        "{}/tests/data/wycheproof/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("vector file")).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

/// Runs each test of each group with the check `check_of` makes for it (`None`: a key
/// the check refuses); `expect` says whether a test must verify. Answers how many ran, and
/// fails listing every test whose verdict differs.
fn run(
    file: &str,
    check_of: impl Fn(&Value, &Value) -> Option<SignatureCheck>,
    signature_field: &str,
    expect: impl Fn(&Value, &Value) -> bool,
) -> usize {
    let vectors = vectors(file);
    let mut ran = 0;
    let mut wrong = Vec::new();
    for group in vectors["testGroups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            ran += 1;
            let check = check_of(group, test);
            let verified = check.as_ref().is_some_and(|check| {
                check.verify(
                    &hex(test["msg"].as_str().unwrap()),
                    &hex(test[signature_field].as_str().unwrap()),
                )
            });
            if verified != expect(group, test) {
                wrong.push(format!(
                    "tcId {} ({}, {}): verified = {verified}",
                    test["tcId"], test["result"], test["comment"]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{file}: {wrong:#?}");
    ran
}

fn is_valid(test: &Value) -> bool {
    test["result"] == "valid"
}

#[test]
fn es256_signatures_in_the_jose_form() {
    let ran = run(
        "ecdsa_secp256r1_sha256_p1363_test.json",
        |group, _| {
            let point = hex(group["publicKey"]["uncompressed"].as_str().unwrap());
            SignatureCheck::new(SigningAlgorithm::Es256, &DecodingKey::from_ec_der(&point)).ok()
        },
        "sig",
        |_, test| {
            let signature = hex(test["sig"].as_str().unwrap());
            is_valid(test) && super::es256::is_low_s(&signature)
        },
    );
    assert_eq!(ran, 262);
}

#[test]
fn ed25519_signatures() {
    let ran = run(
        "ed25519_test.json",
        |group, _| {
            let key = hex(group["publicKey"]["pk"].as_str().unwrap());
            SignatureCheck::new(SigningAlgorithm::EdDsa, &DecodingKey::from_ed_der(&key)).ok()
        },
        "sig",
        |_, test| is_valid(test),
    );
    assert_eq!(ran, 151);
}

#[test]
fn hs256_tags_whole_and_truncated() {
    let ran = run(
        "hmac_sha256_test.json",
        |_, test| {
            let key = hex(test["key"].as_str().unwrap());
            SignatureCheck::new(SigningAlgorithm::Hs256, &DecodingKey::from_secret(&key)).ok()
        },
        "tag",
        |group, test| group["tagSize"] == 256 && is_valid(test),
    );
    assert_eq!(ran, 174);
}

/// RSASSA-PKCS1-v1_5 with SHA-256 (RS256). Every key we accept is 2048 bits with the
/// exponent 65537; Wycheproof's groups with the exponent 3 are refused before any
/// signature is checked, so their `valid` vectors must fail too.
#[test]
fn rs256_signatures_pkcs1_v1_5_2048() {
    let ran = run(
        "rsa_signature_2048_sha256_test.json",
        |group, _| {
            let unsigned = |field: &str| {
                let bytes = hex(group["publicKey"][field].as_str().unwrap());
                bytes.strip_prefix(&[0]).unwrap_or(&bytes).to_vec()
            };
            let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(
                &unsigned("modulus"),
                &unsigned("publicExponent"),
            );
            SignatureCheck::new(SigningAlgorithm::Rs256, &key).ok()
        },
        "sig",
        |group, test| is_valid(test) && group["publicKey"]["publicExponent"] == "010001",
    );
    assert_eq!(ran, 259);
}

/// An EC point offered as an HMAC key (or a secret as an EC key) is refused before any
/// signature is checked: the setup of algorithm confusion.
#[test]
fn a_key_of_another_family_makes_no_check() {
    let vectors = vectors("ecdsa_secp256r1_sha256_p1363_test.json");
    let point = hex(vectors["testGroups"][0]["publicKey"]["uncompressed"]
        .as_str()
        .unwrap());
    let ec_key = DecodingKey::from_ec_der(&point);
    assert!(SignatureCheck::new(SigningAlgorithm::Es256, &ec_key).is_ok());
    assert!(SignatureCheck::new(SigningAlgorithm::Hs256, &ec_key).is_err());
    assert!(SignatureCheck::new(SigningAlgorithm::EdDsa, &ec_key).is_err());
    let secret = DecodingKey::from_secret(&point);
    assert!(SignatureCheck::new(SigningAlgorithm::Es256, &secret).is_err());
}
