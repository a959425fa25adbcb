//! Every token rule of SECURITY.md rows 2-23 and 40 that applies to HS256, as
//! tests of the verifier the authorizer uses. Attack tokens are forged byte by byte (the
//! way JWT attack tools build them), not through the library under test.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use jwt_auth_core::crypto::secret::SigningSecret;
use jwt_auth_core::crypto::token::TokenSettings;
use jwt_auth_core::crypto::token::{
    CLOCK_LEEWAY_SECS, Claims, MAX_TOKEN_BYTES, Session, TokenError, TokenIssuer, TokenKeys,
    TokenVerifier,
};
use jwt_auth_core::users::user::{Role, User};
use serde_json::{Value, json};
use std::sync::Arc;

const NOW: u64 = 1_800_000_000;
const SECRET: &[u8] = b"test-secret-0123456789-abcdefghijklmnop";
const USER_ID: &str = "0123456789abcdef0123456789abcdef";

struct Fixture {
    issuer: TokenIssuer,
    verifier: TokenVerifier,
}

fn fixture() -> Fixture {
    let keys = Arc::new(TokenKeys::hs256(
        &SigningSecret::new(SECRET.to_vec()).unwrap(),
    ));
    let settings = TokenSettings::default();
    Fixture {
        issuer: TokenIssuer::new(Arc::clone(&keys), settings.clone()),
        verifier: TokenVerifier::new(keys, &settings),
    }
}

fn customer() -> User {
    User {
        id: USER_ID.into(),
        username: "carol".into(),
        name: "Carol".into(),
        role: Role::Customer,
        disabled: false,
        created_at: NOW,
    }
}

/// The `kid` of our HS256 key (derived from the secret).
fn kid() -> String {
    TokenKeys::hs256(&SigningSecret::new(SECRET.to_vec()).unwrap())
        .current_kid()
        .to_string()
}

fn header() -> Value {
    json!({"alg": "HS256", "typ": "JWT", "kid": kid()})
}

fn claims() -> Value {
    let settings = TokenSettings::default();
    json!({
        "sub": USER_ID, "role": "customer", "username": "carol",
        "iss": settings.issuer, "aud": settings.audience,
        "iat": NOW, "nbf": NOW, "exp": NOW + 900, "jti": "AAAAAAAAAAAAAAAAAAAAAA",
        "sid": "BBBBBBBBBBBBBBBBBBBBBB", "ver": 0,
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS with an HMAC-SHA256 signature over exactly these header and payload bytes.
fn forge_raw(header: &[u8], payload: &[u8], key: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(payload));
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", b64(tag.as_ref()))
}

fn forge(header: &Value, claims: &Value, key: &[u8]) -> String {
    forge_raw(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        key,
    )
}

fn verify(token: &str) -> Result<Claims, TokenError> {
    fixture().verifier.verify(token, NOW)
}

fn with_claim(name: &str, value: Value) -> Value {
    let mut claims = claims();
    claims[name] = value;
    claims
}

fn without_claim(name: &str) -> Value {
    let mut claims = claims();
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn with_header(name: &str, value: Value) -> Value {
    let mut header = header();
    header[name] = value;
    header
}

#[test]
fn row_1_a_correctly_forged_token_with_our_key_verifies() {
    // The forging helper itself is right: otherwise every rejection below proves nothing.
    let claims = verify(&forge(&header(), &claims(), SECRET)).unwrap();
    assert_eq!(claims.sub, USER_ID);
    assert_eq!(claims.role, Role::Customer);
}

#[test]
fn row_1_an_issued_token_round_trips_through_the_crypto_backend() {
    let fixture = fixture();
    let issued = fixture
        .issuer
        .issue(&customer(), &Session::start(0), NOW)
        .unwrap();
    let claims = fixture.verifier.verify(&issued.token, NOW).unwrap();
    assert_eq!(claims, issued.claims);
}

#[test]
fn row_2_an_altered_signature_is_refused() {
    let token = forge(&header(), &claims(), SECRET);
    assert!(verify(&token[..token.len() - 4]).is_err());
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        verify(std::str::from_utf8(&flipped).unwrap()),
        Err(TokenError::Invalid)
    );
}

#[test]
fn row_3_an_empty_signature_is_refused() {
    let token = forge(&header(), &claims(), SECRET);
    let unsigned = &token[..token.rfind('.').unwrap() + 1];
    assert_eq!(verify(unsigned), Err(TokenError::Malformed));
}

#[test]
fn row_4_alg_none_in_every_spelling_is_refused() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = with_header("alg", json!(alg));
        let h = b64(header.to_string().as_bytes());
        let p = b64(claims().to_string().as_bytes());
        assert!(
            verify(&format!("{h}.{p}.")).is_err(),
            "{alg} with empty signature"
        );
        assert!(
            verify(&forge(&header, &claims(), SECRET)).is_err(),
            "{alg} with a signature"
        );
    }
}

#[test]
fn row_5_algorithms_off_the_allow_list_are_refused() {
    for alg in [
        "HS384", "HS512", "RS256", "ES256", "EdDSA", "PS256", "hs256", "",
    ] {
        let token = forge(&with_header("alg", json!(alg)), &claims(), SECRET);
        assert!(verify(&token).is_err(), "{alg}");
    }
    // A real HS512 token made with our secret is still refused: one key, one algorithm.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512);
    header.typ = Some("JWT".into());
    header.kid = Some(kid());
    let hs512 = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(verify(&hs512), Err(TokenError::Header));
}

#[test]
fn row_7_a_token_macd_with_an_empty_key_is_refused() {
    assert_eq!(
        verify(&forge(&header(), &claims(), b"")),
        Err(TokenError::Invalid)
    );
}

#[test]
fn row_8_a_token_macd_with_a_dictionary_secret_is_refused() {
    for guess in [
        &b"secret"[..],
        b"your-256-bit-secret",
        b"password",
        b"changeme",
        b"jwt",
    ] {
        assert_eq!(
            verify(&forge(&header(), &claims(), guess)),
            Err(TokenError::Invalid)
        );
    }
}

#[test]
fn row_9_an_embedded_jwk_is_never_trusted() {
    let attacker_key = b"attacker-chosen-symmetric-key-0123456789";
    let jwk = json!({"kty": "oct", "k": b64(attacker_key)});
    let header = with_header("jwk", jwk);
    assert!(verify(&forge(&header, &claims(), attacker_key)).is_err());
    // Even signed with our own key, a token carrying a jwk header is not one we issued.
    assert!(verify(&forge(&header, &claims(), SECRET)).is_err());
}

#[test]
fn row_10_jku_and_x5u_headers_are_refused_without_fetching() {
    // The verifier has no HTTP client at all, so nothing can be fetched; these must fail.
    for (name, url) in [
        ("jku", "http://127.0.0.1:9/jwks.json"),
        ("x5u", "http://127.0.0.1:9/c.pem"),
    ] {
        let header = with_header(name, json!(url));
        assert!(
            verify(&forge(&header, &claims(), SECRET)).is_err(),
            "{name}"
        );
        assert!(
            verify(&forge(&header, &claims(), b"attacker")).is_err(),
            "{name}"
        );
    }
}

#[test]
fn row_11_kid_injection_payloads_are_inert() {
    for kid in [
        "../../../../dev/null",
        "' OR '1'='1",
        "|sleep 10",
        "",
        "/proc/self/environ",
        "0",
    ] {
        let header = with_header("kid", json!(kid));
        let started = std::time::Instant::now();
        // /dev/null as the key means an empty key; a blank kid invites a blank key.
        assert!(verify(&forge(&header, &claims(), b"")).is_err(), "{kid:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{kid:?} delayed"
        );
    }
}

#[test]
fn row_12_any_crit_header_is_refused() {
    let token = forge(
        &with_header("crit", json!(["x-unknown"])),
        &claims(),
        SECRET,
    );
    assert_eq!(verify(&token), Err(TokenError::Header));
    let token = forge(&with_header("crit", json!([])), &claims(), SECRET);
    assert!(verify(&token).is_err());
    // Present is refused, even as `null` (RFC 7515 allows `crit` only as a non-empty list).
    for member in ["crit", "jku", "x5u", "jwk", "x5c"] {
        let token = forge(&with_header(member, Value::Null), &claims(), SECRET);
        assert_eq!(verify(&token), Err(TokenError::Header), "{member}: null");
    }
}

#[test]
fn row_13_a_typ_other_than_jwt_is_refused() {
    for typ in [
        json!("at+jwt"),
        json!("secevent+jwt"),
        json!("jwt"),
        json!(1),
        Value::Null,
    ] {
        let token = forge(&with_header("typ", typ.clone()), &claims(), SECRET);
        assert!(verify(&token).is_err(), "{typ}");
    }
    let mut no_typ = header();
    no_typ.as_object_mut().unwrap().remove("typ");
    assert!(verify(&forge(&no_typ, &claims(), SECRET)).is_err());
}

#[test]
fn row_14_exp_just_past_the_leeway_is_refused() {
    let exp = NOW - (CLOCK_LEEWAY_SECS + 1);
    let token = forge(&header(), &with_claim("exp", json!(exp)), SECRET);
    assert_eq!(verify(&token), Err(TokenError::Expired));
}

#[test]
fn row_14_exp_in_past_but_in_leeway_is_accepted() {
    let exp = NOW - (CLOCK_LEEWAY_SECS - 1);
    let token = forge(&header(), &with_claim("exp", json!(exp)), SECRET);
    assert!(verify(&token).is_ok());
}

#[test]
fn row_15_a_token_without_exp_is_refused() {
    assert!(verify(&forge(&header(), &without_claim("exp"), SECRET)).is_err());
}

#[test]
fn row_16_times_given_as_strings_are_refused() {
    for claim in ["exp", "nbf", "iat"] {
        let token = forge(&header(), &with_claim(claim, json!("9999999999")), SECRET);
        assert!(verify(&token).is_err(), "{claim}");
    }
    for claim in ["exp", "nbf", "iat"] {
        let token = forge(
            &header(),
            &with_claim(claim, json!(1.8e9_f64 + 0.5)),
            SECRET,
        );
        assert!(verify(&token).is_err(), "{claim} as a float");
    }
}

#[test]
fn row_17_nbf_in_the_future_is_refused() {
    let token = forge(&header(), &with_claim("nbf", json!(NOW + 3600)), SECRET);
    assert_eq!(verify(&token), Err(TokenError::NotYetValid));
    let token = forge(&header(), &with_claim("iat", json!(NOW + 3600)), SECRET);
    assert_eq!(verify(&token), Err(TokenError::NotYetValid));
    assert!(verify(&forge(&header(), &without_claim("nbf"), SECRET)).is_err());
    assert!(verify(&forge(&header(), &without_claim("iat"), SECRET)).is_err());
}

#[test]
fn row_18_iss_missing_wrong_or_mistyped_is_refused() {
    assert!(verify(&forge(&header(), &without_claim("iss"), SECRET)).is_err());
    for iss in [
        json!("someone-else"),
        json!(7),
        json!(["lambda-jwt-auth"]),
        Value::Null,
    ] {
        assert!(
            verify(&forge(&header(), &with_claim("iss", iss.clone()), SECRET)).is_err(),
            "{iss}"
        );
    }
}

#[test]
fn row_19_aud_missing_wrong_or_an_array_is_refused() {
    assert!(verify(&forge(&header(), &without_claim("aud"), SECRET)).is_err());
    for aud in [
        json!("other-api"),
        json!(["other-api"]),
        json!(7),
        Value::Null,
    ] {
        assert!(
            verify(&forge(&header(), &with_claim("aud", aud.clone()), SECRET)).is_err(),
            "{aud}"
        );
    }
    // We issue a single string; an array, even one naming us, is not a token we issued.
    let ours = TokenSettings::default().audience;
    assert!(verify(&forge(&header(), &with_claim("aud", json!([ours])), SECRET)).is_err());
}

#[test]
fn missing_sub_role_username_or_jti_is_refused() {
    for claim in ["sub", "role", "username", "jti", "sid", "ver"] {
        assert!(
            verify(&forge(&header(), &without_claim(claim), SECRET)).is_err(),
            "{claim}"
        );
    }
    // A role is any declared name, so a well-formed but undeclared one ("root") verifies
    // and then gets no route (the authorizer's policy; tests/tests/roles_http.rs); a value
    // that is no role name at all is refused here.
    assert!(
        verify(&forge(
            &header(),
            &with_claim("role", json!("root*")),
            SECRET
        ))
        .is_err()
    );
    assert!(verify(&forge(&header(), &with_claim("sub", json!("*")), SECRET)).is_err());
}

#[test]
fn row_21_a_role_changed_without_re_signing_is_refused() {
    let fixture = fixture();
    let issued = fixture
        .issuer
        .issue(&customer(), &Session::start(0), NOW)
        .unwrap();
    let mut parts: Vec<String> = issued.token.split('.').map(str::to_owned).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["role"] = json!("admin");
    parts[1] = b64(payload.to_string().as_bytes());
    assert_eq!(
        fixture.verifier.verify(&parts.join("."), NOW),
        Err(TokenError::Invalid)
    );
}

#[test]
fn row_22_duplicate_claim_or_header_names_are_refused() {
    let payload = claims().to_string();
    let duplicated = payload.replacen(
        "\"role\":\"customer\"",
        "\"role\":\"customer\",\"role\":\"admin\"",
        1,
    );
    assert_ne!(payload, duplicated);
    assert!(
        verify(&forge_raw(
            header().to_string().as_bytes(),
            duplicated.as_bytes(),
            SECRET
        ))
        .is_err()
    );
    // Our key's kid, so only the duplicated `alg` can be what refuses it.
    let duplicated_header = format!(
        r#"{{"alg":"HS256","typ":"JWT","kid":"{}","alg":"none"}}"#,
        kid()
    );
    assert!(
        verify(&forge_raw(
            duplicated_header.as_bytes(),
            payload.as_bytes(),
            SECRET
        ))
        .is_err()
    );
    // A second `kid` naming no key: whichever a reader took, the token is refused.
    let duplicated_kid = format!(
        r#"{{"alg":"HS256","typ":"JWT","kid":"{}","kid":"elsewhere"}}"#,
        kid()
    );
    assert!(
        verify(&forge_raw(
            duplicated_kid.as_bytes(),
            payload.as_bytes(),
            SECRET
        ))
        .is_err()
    );
}

/// Base64url is read strictly: a signature whose last character differs only in bits the
/// decoding drops is another token, and refused (a lenient decoder would let anyone mint
/// look-alike tokens from a valid one).
#[test]
fn a_signature_with_other_trailing_bits_is_refused() {
    let token = forge(&header(), &claims(), SECRET);
    assert!(verify(&token).is_ok());
    // 32 bytes are 43 characters; the last one carries 4 bits and 2 unused ones.
    let (rest, last) = token.split_at(token.len() - 1);
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).unwrap();
    let sibling = &alphabet[(index ^ 1)..(index ^ 1) + 1];
    assert_eq!(
        verify(&format!("{rest}{sibling}")),
        Err(TokenError::Invalid)
    );
}

#[test]
fn row_23_malformed_tokens_are_refused() {
    let good = forge(&header(), &claims(), SECRET);
    let parts: Vec<&str> = good.split('.').collect();
    let cases = vec![
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.{}", parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            URL_SAFE.encode(b"{\"alg\":\"HS256\",\"typ\":\"JWT\"}xx"),
            parts[1],
            parts[2]
        ),
        format!("{}.{}+/.{}", parts[0], parts[1], parts[2]),
        "..".to_string(),
        "a.b.c".to_string(),
        String::new(),
        good.replace('.', " "),
    ];
    for token in &cases {
        assert!(verify(token).is_err(), "{token}");
    }
    for payload in [
        &b"not json"[..],
        b"[1,2,3]",
        b"\"a string\"",
        b"\xff\xfe\xfd",
        b"{}",
    ] {
        let token = forge_raw(header().to_string().as_bytes(), payload, SECRET);
        assert!(verify(&token).is_err(), "{payload:?}");
    }
    for header in [&b"not json"[..], b"[]", b"\xff\xfe"] {
        let token = forge_raw(header, claims().to_string().as_bytes(), SECRET);
        assert!(verify(&token).is_err(), "{header:?}");
    }
}

#[test]
fn row_23_a_token_over_the_size_cap_is_refused_before_decoding() {
    let padding = "x".repeat(MAX_TOKEN_BYTES);
    let token = forge(&header(), &with_claim("pad", json!(padding)), SECRET);
    assert_eq!(verify(&token), Err(TokenError::TooLong));
    let huge = "a".repeat(100 * 1024);
    assert_eq!(
        fixture()
            .verifier
            .verify_authorization(Some(&format!("Bearer {huge}")), NOW),
        Err(TokenError::TooLong)
    );
}

#[test]
fn the_authorization_value_must_be_exactly_one_bearer_token() {
    let fixture = fixture();
    let token = fixture
        .issuer
        .issue(&customer(), &Session::start(0), NOW)
        .unwrap()
        .token;
    let check = |value: Option<&str>| fixture.verifier.verify_authorization(value, NOW);
    assert!(check(Some(&format!("Bearer {token}"))).is_ok());
    assert!(
        check(Some(&format!("bearer {token}"))).is_ok(),
        "the scheme is case-insensitive"
    );
    assert_eq!(check(None), Err(TokenError::Missing));
    for bad in [
        token.clone(),
        format!("Basic {token}"),
        "Bearer".into(),
        "Bearer ".into(),
        format!("Bearer  {token}"),
        format!("Bearer {token} {token}"),
        format!("Bearer {token}, Bearer {token}"),
        format!("Bearer {token}\n"),
        "Bearer garbage".into(),
    ] {
        assert!(check(Some(&bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn row_40_issued_tokens_carry_the_required_claims_and_header() {
    let fixture = fixture();
    let issued = fixture
        .issuer
        .issue(&customer(), &Session::start(0), NOW)
        .unwrap();
    let header = jsonwebtoken::decode_header(&issued.token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let claims = issued.claims;
    let settings = TokenSettings::default();
    assert_eq!(claims.sub, USER_ID);
    assert_eq!(claims.role, Role::Customer);
    assert_eq!(claims.iss, settings.issuer);
    assert_eq!(claims.aud, settings.audience);
    assert_eq!((claims.iat, claims.nbf), (NOW, NOW));
    assert!(claims.exp - claims.iat <= 15 * 60);
    let jti = URL_SAFE_NO_PAD.decode(&claims.jti).unwrap();
    assert!(jti.len() * 8 >= 128);
    let other = fixture
        .issuer
        .issue(&customer(), &Session::start(0), NOW)
        .unwrap();
    assert_ne!(other.claims.jti, claims.jti);
}

#[test]
fn a_token_from_another_issuer_configuration_is_refused() {
    let keys = Arc::new(TokenKeys::hs256(
        &SigningSecret::new(SECRET.to_vec()).unwrap(),
    ));
    let other = TokenSettings {
        audience: "another-api".into(),
        ..TokenSettings::default()
    };
    let token = TokenIssuer::new(Arc::clone(&keys), other)
        .issue(&customer(), &Session::start(0), NOW)
        .unwrap()
        .token;
    assert!(
        TokenVerifier::new(keys, &TokenSettings::default())
            .verify(&token, NOW)
            .is_err()
    );
}

#[test]
fn issued_tokens_never_print_in_debug_output() {
    let issued = fixture()
        .issuer
        .issue(&customer(), &Session::start(0), NOW)
        .unwrap();
    assert!(!format!("{issued:?}").contains(&issued.token));
}
