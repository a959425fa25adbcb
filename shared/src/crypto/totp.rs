//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP) with the parameters every
//! authenticator app accepts: HMAC-SHA-1, 6 digits, 30-second steps. A code is accepted for
//! the current step and one step either side (clock skew), and only for a step later than
//! the last one the user spent (a code seen once is never accepted again).
//!
//! HMAC-SHA-1 is what the apps implement; its collision weakness does not reach HMAC, and a
//! 160-bit secret is RFC 4226's recommendation (§4, R6).

use aws_lc_rs::{constant_time, hmac};
use std::fmt;

/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Seconds per time step (RFC 6238's X).
pub const STEP_SECS: u64 = 30;
/// Steps accepted either side of the current one.
pub const SKEW_STEPS: u64 = 1;
/// Bytes of a generated secret (160 bits).
pub const SECRET_BYTES: usize = 20;

/// A user's TOTP secret. `Debug` never prints it.
pub struct TotpSecret {
    bytes: zeroize::Zeroizing<Vec<u8>>,
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// The time step of `now` (Unix seconds).
pub fn step_of(now: u64) -> u64 {
    now / STEP_SECS
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        crate::crypto::secret::fill_random(&mut bytes);
        Self::from_bytes(bytes).expect("a secret of SECRET_BYTES")
    }

    /// A secret from its bytes: at least 128 bits (RFC 4226 §4, R6), at most 64 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (16..=64).contains(&bytes.len()).then(|| Self {
            bytes: zeroize::Zeroizing::new(bytes),
        })
    }

    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The secret as an authenticator app takes it: base32 (RFC 4648), without padding.
    pub fn base32(&self) -> String {
        base32(&self.bytes)
    }

    /// RFC 4226's HOTP value of `counter` (here the time step), `digits` long, zero-padded.
    pub fn code_with_digits(&self, counter: u64, digits: u32) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.bytes);
        let mac = hmac::sign(&key, &counter.to_be_bytes());
        let mac = mac.as_ref();
        // Dynamic truncation (RFC 4226 §5.3).
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let binary = u32::from_be_bytes([
            mac[offset],
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]) & 0x7fff_ffff;
        let value = u64::from(binary) % 10u64.pow(digits);
        format!("{value:0width$}", width = digits as usize)
    }

    /// The 6-digit code of `step`.
    pub fn code_at(&self, step: u64) -> String {
        self.code_with_digits(step, DIGITS)
    }

    /// The step `code` belongs to, if it is the code of the current step or one either side,
    /// and that step is later than `spent` (the last step this user's code was accepted
    /// for). Every candidate is compared, in constant time, so the time taken does not
    /// say which one matched.
    pub fn verify(&self, code: &str, now: u64, spent: Option<u64>) -> Option<u64> {
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = step_of(now);
        let mut matched = None;
        for step in current.saturating_sub(SKEW_STEPS)..=current.saturating_add(SKEW_STEPS) {
            let expected = self.code_at(step);
            let equal =
                constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes())
                    .is_ok();
            if equal && spent.is_none_or(|spent| step > spent) && matched.is_none() {
                matched = Some(step);
            }
        }
        matched
    }
}

/// The Key Uri Format authenticator apps read from a QR code:
/// `otpauth://totp/{issuer}:{account}?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer_escaped = escape(issuer);
    format!(
        "otpauth://totp/{issuer_escaped}:{}?secret={}&issuer={issuer_escaped}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        escape(account),
        secret.base32(),
    )
}

/// `text` (an otpauth URI) as a QR code, in SVG, for a page to show as it is; `None` if
/// it is too long for one.
pub fn qr_code_svg(text: &str) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
    )
}

/// Percent-encodes all but RFC 3986's unreserved characters (a `:` in an issuer or account
/// name would otherwise split the label).
fn escape(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, ESCAPED).to_string()
}

const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, without padding (what authenticator apps expect in `secret=`).
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let bits = block.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let symbols = (chunk.len() * 8).div_ceil(5);
        for i in 0..symbols {
            let index = (bits >> (35 - 5 * i)) & 0x1f;
            out.push(char::from(BASE32_ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    /// RFC 6238 Appendix B, the SHA-1 rows (8 digits), through our generator.
    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        let secret = rfc_secret();
        for (time, expected) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(
                secret.code_with_digits(step_of(time), 8),
                expected,
                "T={time}"
            );
            // Six digits are the last six of the same value.
            assert_eq!(secret.code_at(step_of(time)), expected[2..], "T={time}");
        }
    }

    /// RFC 4226 Appendix D: HOTP values of counters 0..9 for the same secret.
    #[test]
    fn rfc_4226_appendix_d_hotp_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        let secret = rfc_secret();
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(secret.code_at(counter as u64), *code, "counter {counter}");
        }
    }

    #[test]
    fn one_step_of_skew_either_side_and_no_more() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015;
        let current = step_of(now);
        for step in [current - 1, current, current + 1] {
            assert_eq!(secret.verify(&secret.code_at(step), now, None), Some(step));
        }
        for step in [current - 2, current + 2] {
            assert_eq!(secret.verify(&secret.code_at(step), now, None), None);
        }
    }

    #[test]
    fn a_spent_step_and_any_earlier_one_are_refused() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015;
        let current = step_of(now);
        let code = secret.code_at(current);
        assert_eq!(secret.verify(&code, now, Some(current - 1)), Some(current));
        assert_eq!(secret.verify(&code, now, Some(current)), None, "replayed");
        // The previous step's code, once a later step was spent: refused too.
        let earlier = secret.code_at(current - 1);
        assert_eq!(secret.verify(&earlier, now, Some(current)), None);
    }

    #[test]
    fn anything_but_six_digits_is_refused() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015;
        let code = secret.code_at(step_of(now));
        for malformed in [
            String::new(),
            code[..5].to_string(),
            format!("{code}0"),
            format!(" {}", &code[1..]),
            format!("{}\u{0660}", &code[..5]),
            "abcdef".to_string(),
        ] {
            assert_eq!(secret.verify(&malformed, now, None), None, "{malformed:?}");
        }
    }

    #[test]
    fn short_or_huge_secrets_are_refused_and_debug_hides_the_secret() {
        assert!(TotpSecret::from_bytes(vec![1; 15]).is_none());
        assert!(TotpSecret::from_bytes(vec![1; 65]).is_none());
        let secret = TotpSecret::from_bytes(vec![0xab; 20]).unwrap();
        assert_eq!(format!("{secret:?}"), "TotpSecret(..)");
    }

    /// RFC 4648 §10's base32 vectors (without padding).
    #[test]
    fn base32_matches_rfc_4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn the_qr_code_is_an_svg_document() {
        let svg = qr_code_svg(&otpauth_uri(&rfc_secret(), "auth.example.com", "alice")).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(qr_code_svg(&"x".repeat(5000)).is_none());
    }

    #[test]
    fn the_uri_names_issuer_and_account_escaped_and_the_parameters() {
        let secret = rfc_secret();
        let uri = otpauth_uri(&secret, "Acme: API", "alice@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%3A%20API:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%3A%20API&algorithm=SHA1&digits=6&period=30"
        );
    }
}
