//! Where other verifiers find our keys from the issuer alone: OpenID Provider Metadata at
//! `{iss}/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4; RFC 8414 §3),
//! naming the JWK Set our login function serves. API Gateway's JWT authorizers, and JOSE
//! libraries configured with an issuer, start there.
//!
//! We issue access tokens and sign them; we run no authorization endpoint, so the document
//! has none (a full OpenID Provider's would). It holds what a verifier needs, `issuer`
//! (exactly the `iss` of our tokens) and `jwks_uri`, with the other members a token issuer
//! of this kind publishes (as Firebase's, which API Gateway's JWT authorizers accept).

use super::keys::SigningAlgorithm;
use serde::Serialize;

/// The discovery document's path under the issuer.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The JWK Set's path under the issuer (the login function's route).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// OpenID Provider Metadata of a token issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    /// Read by validators that expect it; there is no authorization endpoint behind it.
    pub response_types_supported: Vec<&'static str>,
    /// `sub` is the user's id, the same for every audience.
    pub subject_types_supported: Vec<&'static str>,
    /// The algorithms of the keys in the JWK Set.
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
}

/// Why an issuer has no discovery document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotDiscoverable {
    #[error(
        "the token issuer is not a URL: discovery needs TokenIssuer set to this API's https URL"
    )]
    NotAUrl,
    #[error("HS256 keys have no public half: there is nothing to discover")]
    NoPublicKeys,
}

/// Whether `issuer` is a URL a verifier can discover from: `https`, a host, no user info,
/// query or fragment (OIDC Discovery §3, RFC 8414 §2); `http` only for a loopback host
/// (a local run).
pub fn is_discoverable_issuer(issuer: &str) -> bool {
    if issuer.contains(['#', '?', '@']) || issuer.chars().any(char::is_whitespace) {
        return false;
    }
    let Ok(uri) = issuer.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host().filter(|host| !host.is_empty()) else {
        return false;
    };
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        _ => false,
    }
}

/// The metadata of `issuer`, whose JWK Set holds keys of `algorithms`.
pub fn provider_metadata(
    issuer: &str,
    algorithms: impl IntoIterator<Item = SigningAlgorithm>,
) -> Result<ProviderMetadata, NotDiscoverable> {
    if !is_discoverable_issuer(issuer) {
        return Err(NotDiscoverable::NotAUrl);
    }
    let mut algs: Vec<&'static str> = Vec::new();
    for alg in algorithms {
        if alg != SigningAlgorithm::Hs256 && !algs.contains(&alg.as_str()) {
            algs.push(alg.as_str());
        }
    }
    if algs.is_empty() {
        return Err(NotDiscoverable::NoPublicKeys);
    }
    Ok(ProviderMetadata {
        issuer: issuer.to_string(),
        // "Any terminating / MUST be removed before appending" (OIDC Discovery §4).
        jwks_uri: format!("{}{JWKS_PATH}", issuer.trim_end_matches('/')),
        response_types_supported: vec!["id_token"],
        subject_types_supported: vec!["public"],
        id_token_signing_alg_values_supported: algs,
        claims_supported: vec![
            "sub", "iss", "aud", "exp", "nbf", "iat", "jti", "role", "username", "amr",
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_without_query_fragment_or_user_info_are_discoverable() {
        for good in [
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
            "https://auth.example.com",
            "https://auth.example.com:8443/tenant",
            "http://127.0.0.1:3000",
            "http://localhost:3000",
        ] {
            assert!(is_discoverable_issuer(good), "{good}");
        }
        for bad in [
            "lambda-jwt-auth",
            "",
            "https://",
            "http://auth.example.com",
            "https://auth.example.com/?tenant=1",
            "https://auth.example.com/#x",
            "https://user@auth.example.com",
            "https://auth.example.com/a b",
            "ftp://auth.example.com",
            "//auth.example.com",
        ] {
            assert!(!is_discoverable_issuer(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_metadata_names_the_issuer_exactly_and_the_jwks_under_it() {
        let metadata = provider_metadata(
            "https://auth.example.com/prod/",
            [SigningAlgorithm::Es256, SigningAlgorithm::Es256],
        )
        .unwrap();
        assert_eq!(metadata.issuer, "https://auth.example.com/prod/");
        assert_eq!(
            metadata.jwks_uri,
            "https://auth.example.com/prod/.well-known/jwks.json"
        );
        assert_eq!(metadata.id_token_signing_alg_values_supported, ["ES256"]);
        assert_eq!(
            provider_metadata("lambda-jwt-auth", [SigningAlgorithm::Es256]),
            Err(NotDiscoverable::NotAUrl)
        );
        assert_eq!(
            provider_metadata("https://auth.example.com", [SigningAlgorithm::Hs256]),
            Err(NotDiscoverable::NoPublicKeys)
        );
    }
}
