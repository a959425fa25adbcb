//! Recovery codes: single-use codes that stand in for a TOTP code when the phone is lost.
//! They are shown once, at enrolment, and stored only as SHA-256 hashes.
//!
//! A plain hash is enough: each code is 80 random bits (16 base32 characters), so a leaked
//! table gives no code back by guessing, and a slow hash would only slow sign-in (a
//! password's argon2 is there because people choose passwords; nobody chooses these).

use aws_lc_rs::{constant_time, digest};

/// Codes made at enrolment.
pub const CODES_PER_USER: usize = 10;
/// Characters of a code, without its separators: 16 × 5 bits = 80 bits.
pub const CODE_CHARS: usize = 16;

/// Lower-case base32 without the letters people misread (RFC 4648's alphabet has no 0, 1 or 8).
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A stored recovery code: the SHA-256 of its normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryCodeHash(pub [u8; 32]);

/// Codes to show once, and the hashes to store.
pub struct NewRecoveryCodes {
    pub shown: Vec<String>,
    pub stored: Vec<RecoveryCodeHash>,
}

impl std::fmt::Debug for NewRecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRecoveryCodes")
            .field("count", &self.shown.len())
            .finish_non_exhaustive()
    }
}

impl NewRecoveryCodes {
    pub fn generate() -> Self {
        let mut shown = Vec::with_capacity(CODES_PER_USER);
        let mut stored = Vec::with_capacity(CODES_PER_USER);
        for _ in 0..CODES_PER_USER {
            let mut random = [0u8; CODE_CHARS];
            crate::crypto::secret::fill_random(&mut random);
            let plain: String = random
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 0x1f)]))
                .collect();
            stored.push(hash_of(&plain));
            // Groups of four, as people copy them: `abcd-efgh-ijkl-mnop`.
            let grouped = plain
                .as_bytes()
                .chunks(4)
                .map(|group| std::str::from_utf8(group).expect("ASCII"))
                .collect::<Vec<_>>()
                .join("-");
            shown.push(grouped);
        }
        Self { shown, stored }
    }
}

/// A code as typed, with separators, spaces and case ignored; `None` if it cannot be one.
fn normalise(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let plain: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (plain.len() == CODE_CHARS && plain.bytes().all(|b| ALPHABET.contains(&b))).then_some(plain)
}

fn hash_of(plain: &str) -> RecoveryCodeHash {
    let digest = digest::digest(&digest::SHA256, plain.as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    RecoveryCodeHash(hash)
}

/// Which of `stored` the typed code is, if any (its index, to spend it). Every stored hash
/// is compared, in constant time.
pub fn matching(typed: &str, stored: &[RecoveryCodeHash]) -> Option<usize> {
    let candidate = hash_of(&normalise(typed)?);
    let mut found = None;
    for (index, hash) in stored.iter().enumerate() {
        if constant_time::verify_slices_are_equal(&hash.0, &candidate.0).is_ok() && found.is_none()
        {
            found = Some(index);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_each_matching_its_own_hash_only() {
        let codes = NewRecoveryCodes::generate();
        assert_eq!(codes.shown.len(), CODES_PER_USER);
        assert_eq!(codes.stored.len(), CODES_PER_USER);
        for (index, code) in codes.shown.iter().enumerate() {
            assert_eq!(code.len(), CODE_CHARS + 3, "{code}");
            assert_eq!(matching(code, &codes.stored), Some(index));
        }
        let mut unique = codes.shown.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), CODES_PER_USER);
        assert!(!format!("{codes:?}").contains(&codes.shown[0]));
    }

    #[test]
    fn typed_loosely_it_still_matches_and_anything_else_does_not() {
        let codes = NewRecoveryCodes::generate();
        let code = &codes.shown[3];
        let loose = code.replace('-', " ").to_uppercase();
        assert_eq!(matching(&loose, &codes.stored), Some(3));
        assert_eq!(matching(&code.replace('-', ""), &codes.stored), Some(3));
        let other = NewRecoveryCodes::generate();
        assert_eq!(matching(&other.shown[0], &codes.stored), None);
        let long = "a".repeat(200);
        let longer = format!("{code}a");
        for malformed in [
            "",
            "abcd",
            long.as_str(),
            longer.as_str(),
            "0000-0000-0000-0000",
        ] {
            assert_eq!(matching(malformed, &codes.stored), None, "{malformed:?}");
        }
    }
}
