//! RS256 details (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3): for verifiers that take
//! RSA only, as API Gateway's HTTP API JWT authorizers do. Keys are 2048-bit with the
//! public exponent 65537, made and checked by aws-lc; a published key is refused unless it
//! is exactly that (RFC 7518 §3.3 asks for 2048 bits at least; a small exponent or modulus
//! is the setup of forgeries).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, RSAKeyType};
use zeroize::Zeroizing;

/// The modulus size of the keys we make and accept, in bytes.
pub const MODULUS_BYTES: usize = 256;
/// The one public exponent accepted: 65537, big-endian without leading zeros.
pub const PUBLIC_EXPONENT: [u8; 3] = [1, 0, 1];

/// A fresh 2048-bit key, as PKCS#8 DER (how the key set stores private keys).
pub fn generate_pkcs8() -> Zeroizing<Vec<u8>> {
    // Only fails when the OS has no entropy source: nothing is safe then.
    let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation");
    Zeroizing::new(
        pair.as_der()
            .expect("PKCS#8 encoding of a generated key")
            .as_ref()
            .to_vec(),
    )
}

/// The PKCS#1 `RSAPrivateKey` (what jsonwebtoken signs with) of a stored PKCS#8 key, once
/// aws-lc has parsed and checked the whole key: 2048 bits, exponent 65537. `None` for
/// anything else.
pub fn pkcs1_of(pkcs8: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let pair = KeyPair::from_pkcs8(pkcs8).ok()?;
    if pair.public_modulus_len() != MODULUS_BYTES {
        return None;
    }
    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, privateKeyAlgorithm
    //   AlgorithmIdentifier, privateKey OCTET STRING (the RSAPrivateKey), ... } (RFC 5208)
    let (info, _) = der_element(pkcs8, 0x30)?;
    let (_, after_version) = der_element(info, 0x02)?;
    let (_, after_algorithm) = der_element(after_version, 0x30)?;
    let (private, _) = der_element(after_algorithm, 0x04)?;
    // The inner key is the same key: parsed again, same public half.
    let inner = KeyPair::from_der(private).ok()?;
    if inner.public_key().as_ref() != pair.public_key().as_ref() {
        return None;
    }
    let public = inner.public_key().as_der().ok()?;
    let components = public_components(public.as_ref())?;
    (components.e == PUBLIC_EXPONENT).then(|| Zeroizing::new(private.to_vec()))
}

/// `n` and `e` of a JWK that is an acceptable RS256 public key, decoded.
pub fn jwk_components(jwk: &Jwk) -> Option<PublicKeyComponents<Vec<u8>>> {
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return None;
    };
    if rsa.key_type != RSAKeyType::RSA {
        return None;
    }
    let n = URL_SAFE_NO_PAD.decode(&rsa.n).ok()?;
    let e = URL_SAFE_NO_PAD.decode(&rsa.e).ok()?;
    (n.len() == MODULUS_BYTES && n[0] >= 0x80 && e == PUBLIC_EXPONENT)
        .then_some(PublicKeyComponents { n, e })
}

/// The signature check of an acceptable public key.
pub fn parsed_public_key(components: &PublicKeyComponents<Vec<u8>>) -> Option<ParsedPublicKey> {
    components
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .ok()
}

/// `n` and `e` from an X.509 `SubjectPublicKeyInfo` DER of an RSA key.
fn public_components(spki: &[u8]) -> Option<PublicKeyComponents<Vec<u8>>> {
    // SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey
    //   BIT STRING (RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }) }
    let (info, _) = der_element(spki, 0x30)?;
    let (_, after_algorithm) = der_element(info, 0x30)?;
    let (bits, _) = der_element(after_algorithm, 0x03)?;
    let (&unused_bits, key) = bits.split_first()?;
    if unused_bits != 0 {
        return None;
    }
    let (sequence, _) = der_element(key, 0x30)?;
    let (n, rest) = der_element(sequence, 0x02)?;
    let (e, _) = der_element(rest, 0x02)?;
    let unsigned = |int: &[u8]| int.strip_prefix(&[0]).unwrap_or(int).to_vec();
    Some(PublicKeyComponents {
        n: unsigned(n),
        e: unsigned(e),
    })
}

/// One DER element of tag `tag` at the start of `input`: its content and what follows.
/// Definite lengths only, up to four length bytes (every structure here is well under).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
        (length, rest)
    };
    (rest.len() >= length).then(|| rest.split_at(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_gives_its_pkcs1_and_a_public_key_we_accept() {
        let pkcs8 = generate_pkcs8();
        let pkcs1 = pkcs1_of(&pkcs8).expect("our own key");
        assert!(KeyPair::from_der(&pkcs1).is_ok());
        // Truncated, or with its outer tag changed: refused, no panic.
        assert!(pkcs1_of(&pkcs8[..pkcs8.len() - 1]).is_none());
        let mut retagged = pkcs8.to_vec();
        retagged[0] = 0x31;
        assert!(pkcs1_of(&retagged).is_none());
        assert!(pkcs1_of(&[]).is_none());
    }

    #[test]
    fn der_lengths_are_read_in_bounds() {
        assert_eq!(
            der_element(&[0x04, 0x01, 0xaa, 0xbb], 0x04),
            Some((&[0xaa][..], &[0xbb][..]))
        );
        assert_eq!(
            der_element(&[0x04, 0x81, 0x01, 0xaa], 0x04),
            Some((&[0xaa][..], &[][..]))
        );
        assert_eq!(der_element(&[0x04, 0x82, 0xff, 0xff, 0x00], 0x04), None);
        assert_eq!(der_element(&[0x04, 0x80], 0x04), None);
        assert_eq!(der_element(&[0x04, 0x85, 1, 1, 1, 1, 1], 0x04), None);
        assert_eq!(der_element(&[0x02, 0x00], 0x04), None);
    }
}
