//! One ES256 token, one string: ECDSA signatures are malleable (for a valid `(r, s)`,
//! `(r, n - s)` is valid too), so each token would have a twin that verifies. RFC 8725 does
//! not ask to refuse it, but a second string per token is a second key in API Gateway's
//! authorizer cache and in any "seen this token" list. So signers write the low-S form
//! (`s <= n / 2`, as Bitcoin's BIP 62 and Ethereum's EIP-2 require) and verifiers refuse
//! the other one.

/// `(n - 1) / 2`, the largest low `s`, for the order `n` of the P-256 group, big-endian.
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// The order `n` of the P-256 group, big-endian.
const ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// Whether a JOSE ES256 signature (`r || s`, 32 bytes each) has a low `s`. Any other
/// length is not low-S (and not a valid signature either).
pub fn is_low_s(signature: &[u8]) -> bool {
    signature.len() == 64 && signature[32..] <= HALF_ORDER[..]
}

/// Rewrites a high `s` as `n - s` in place: the same signature, in its low-S form.
pub fn normalize(signature: &mut [u8; 64]) {
    if !is_low_s(signature) {
        negate_s(signature);
    }
}

/// `s` becomes `n - s`: a signature becomes its twin (big-endian subtraction with borrow;
/// `0 < s < n` for any signature, so it never wraps).
pub fn negate_s(signature: &mut [u8; 64]) {
    let mut borrow = 0u16;
    for at in (0..32).rev() {
        let subtrahend = u16::from(signature[32 + at]) + borrow;
        let minuend = u16::from(ORDER[at]);
        let (digit, next_borrow) = if minuend >= subtrahend {
            (minuend - subtrahend, 0)
        } else {
            (minuend + 256 - subtrahend, 1)
        };
        signature[32 + at] = digit as u8;
        borrow = next_borrow;
    }
}

/// A compact ES256 JWS with its signature in the low-S form.
pub fn with_low_s(token: String) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return token;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(signature) else {
        return token;
    };
    let Ok(mut fixed) = <[u8; 64]>::try_from(bytes.as_slice()) else {
        return token;
    };
    if is_low_s(&fixed) {
        return token;
    }
    normalize(&mut fixed);
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(fixed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    };

    #[test]
    fn the_half_order_is_the_order_halved() {
        // 2 * HALF_ORDER + 1 == ORDER, computed byte by byte.
        let mut carry = 1u16;
        let mut doubled = [0u8; 32];
        for at in (0..32).rev() {
            let value = u16::from(HALF_ORDER[at]) * 2 + carry;
            doubled[at] = value as u8;
            carry = value >> 8;
        }
        assert_eq!(carry, 0);
        assert_eq!(doubled, ORDER);
    }

    #[test]
    fn a_normalized_signature_is_low_s_and_still_verifies_and_its_twin_is_high_s() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref());
        let (mut low, mut high) = (0, 0);
        for round in 0..64u8 {
            let message = [round; 16];
            let signed = pair.sign(&rng, &message).unwrap();
            let mut signature: [u8; 64] = signed.as_ref().try_into().unwrap();
            if is_low_s(&signature) {
                low += 1;
            } else {
                high += 1;
            }
            normalize(&mut signature);
            assert!(is_low_s(&signature));
            assert!(public.verify(&message, &signature).is_ok());
            // The twin (r, n - s) verifies too, which is why the verifier refuses it.
            let mut twin = signature;
            negate_s(&mut twin);
            assert!(!is_low_s(&twin));
            assert!(public.verify(&message, &twin).is_ok());
        }
        // Half of the signatures come out high-S: the signer does normalize.
        assert!(low > 0 && high > 0, "{low} low, {high} high");
    }
}
