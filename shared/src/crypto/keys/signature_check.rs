//! The signature check of one verifying key, made ready once per key ring.

use super::{SigningAlgorithm, es256, rs256};
use jsonwebtoken::DecodingKey;

/// A verifying key made ready once per ring, so that verifying a token costs the signature
/// check alone: `jsonwebtoken::decode` builds its verifier again on every call (an HMAC key
/// schedule; for ES256 and EdDSA, parsing and validating the public point). The checks are
/// the ones jsonwebtoken's aws-lc provider makes: HMAC-SHA256 compared in constant time,
/// P-256 with the fixed-width `r || s` signature of JWS (RFC 7518 §3.4), Ed25519.
pub(crate) enum SignatureCheck {
    // Boxed: an HMAC key (its precomputed pads) is ~1.2 KB, a parsed public key a pointer.
    Hmac(Box<aws_lc_rs::hmac::Key>),
    /// ECDSA P-256, low-S signatures only ([`es256::is_low_s`]).
    Es256(aws_lc_rs::signature::ParsedPublicKey),
    Public(aws_lc_rs::signature::ParsedPublicKey),
}

impl SignatureCheck {
    pub(crate) fn new(alg: SigningAlgorithm, key: &DecodingKey) -> Result<Self, &'static str> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey};
        // A key of another family (an EC point keying HMAC) is the setup of algorithm
        // confusion: refused here as jsonwebtoken's own verifiers refuse it.
        if key.family() != alg.jwt().family() {
            return Err("not a key of its algorithm");
        }
        if alg == SigningAlgorithm::Rs256 {
            // An RSA key comes from its JWK's `n` and `e`, checked as a published one is.
            let jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, e } = key.kind() else {
                return Err("an RSA key is given by its modulus and exponent");
            };
            let components = aws_lc_rs::rsa::PublicKeyComponents {
                n: n.clone(),
                e: e.clone(),
            };
            if n.len() != rs256::MODULUS_BYTES || n[0] < 0x80 || *e != rs256::PUBLIC_EXPONENT {
                return Err("an RS256 key is 2048 bits with exponent 65537");
            }
            return rs256::parsed_public_key(&components)
                .map(Self::Public)
                .ok_or("not a valid public key");
        }
        let bytes = key.try_get_as_bytes().map_err(|_| "not a usable key")?;
        let public = |algorithm| {
            ParsedPublicKey::new(algorithm, bytes).map_err(|_| "not a valid public key")
        };
        match alg {
            SigningAlgorithm::Hs256 => Ok(Self::Hmac(Box::new(aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                bytes,
            )))),
            SigningAlgorithm::Es256 => public(&ECDSA_P256_SHA256_FIXED).map(Self::Es256),
            SigningAlgorithm::EdDsa => public(&ED25519).map(Self::Public),
            SigningAlgorithm::Rs256 => Err("an RSA key is given by its modulus and exponent"),
        }
    }

    /// Whether `signature` is this key's over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Hmac(key) => aws_lc_rs::hmac::verify(key, message, signature).is_ok(),
            Self::Es256(key) => {
                es256::is_low_s(signature) && key.verify_sig(message, signature).is_ok()
            }
            Self::Public(key) => key.verify_sig(message, signature).is_ok(),
        }
    }
}
