//! Secrets at rest in the users table (a user's TOTP secret): AES-256-GCM, a random 96-bit
//! nonce per seal, and the owner's user id as associated data, so a sealed value copied onto
//! another user's item does not open there. The key never enters the table.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The format's version, first in every sealed value, so the key or algorithm can change
/// later without guessing what an old value is.
const VERSION: &str = "v1";

/// Seals and opens values of one purpose under one 256-bit key.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer under `key` (32 bytes).
    pub fn new(key: &[u8]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, key).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// `v1.<base64url(nonce ‖ ciphertext ‖ tag)>`, bound to `owner`.
    pub fn seal(&self, owner: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        crate::crypto::secret::fill_random(&mut nonce);
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_bytes()),
                &mut in_out,
            )
            .expect("AES-GCM seals any length a secret has");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&in_out);
        format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The plaintext, if `sealed` was sealed under this key for `owner` and is unaltered.
    pub fn open(&self, owner: &str, sealed: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let encoded = sealed.strip_prefix(VERSION)?.strip_prefix('.')?;
        if encoded.len() > 1024 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = zeroize::Zeroizing::new(ciphertext.to_vec());
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(owner.as_bytes()), &mut in_out[..])
            .ok()?
            .len();
        in_out.truncate(plain_len);
        Some(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_for_its_owner_under_its_key_only() {
        let sealed = sealer().seal("user-a", b"totp secret bytes");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("totp"));
        assert_eq!(
            sealer()
                .open("user-a", &sealed)
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"totp secret bytes"[..])
        );
        assert!(sealer().open("user-b", &sealed).is_none(), "another owner");
        assert!(
            Sealer::new(&[8u8; 32])
                .unwrap()
                .open("user-a", &sealed)
                .is_none(),
            "another key"
        );
        // Two seals of the same value differ (a fresh nonce each time).
        assert_ne!(sealed, sealer().seal("user-a", b"totp secret bytes"));
    }

    #[test]
    fn an_altered_truncated_or_foreign_value_does_not_open() {
        let sealed = sealer().seal("user-a", b"totp secret bytes");
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            flipped.as_str(),
            &sealed[..sealed.len() - 4],
            "v1.",
            "v2.AAAA",
            "",
            &format!("v1.{}", "A".repeat(2000)),
            sealed.trim_start_matches("v1."),
        ] {
            assert!(sealer().open("user-a", bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn only_256_bit_keys_and_debug_hides_the_key() {
        assert!(Sealer::new(&[1u8; 16]).is_none());
        assert!(Sealer::new(&[1u8; 33]).is_none());
        assert_eq!(format!("{:?}", sealer()), "Sealer(..)");
    }
}
