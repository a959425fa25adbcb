//! Opaque, tamper-evident pagination cursors.
//!
//! A cursor is `base64url(json(PageKey)) "." base64url(HMAC-SHA256)`. Clients cannot read
//! meaning into it or forge one: a changed byte fails the MAC and is answered 400. The key
//! is derived from the signing secret with its own label, so a cursor MAC is never a valid
//! token signature.

use crate::crypto::secret::SigningSecret;
use crate::store::PageKey;
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Longest cursor accepted (a page key is two short strings; 512 bytes is generous).
pub const MAX_CURSOR_BYTES: usize = 512;

pub struct CursorCodec {
    key: hmac::Key,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl CursorCodec {
    pub fn new(secret: &SigningSecret) -> Self {
        let derived = secret.derive("lambda-jwt-auth/pagination-cursor/v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.expose()),
        }
    }

    pub fn encode(&self, page_key: &PageKey) -> String {
        // Serialising two strings cannot fail.
        let payload = serde_json::to_vec(page_key).unwrap_or_default();
        let tag = hmac::sign(&self.key, &payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    pub fn decode(&self, cursor: &str) -> Result<PageKey, InvalidCursor> {
        if cursor.len() > MAX_CURSOR_BYTES {
            return Err(InvalidCursor);
        }
        let (payload, tag) = cursor.split_once('.').ok_or(InvalidCursor)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| InvalidCursor)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| InvalidCursor)?;
        hmac::verify(&self.key, &payload, &tag).map_err(|_| InvalidCursor)?;
        serde_json::from_slice(&payload).map_err(|_| InvalidCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PageKey {
        PageKey {
            username: "alice".into(),
            id: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    #[test]
    fn a_cursor_round_trips() {
        let codec = CursorCodec::new(&SigningSecret::generate());
        assert_eq!(codec.decode(&codec.encode(&key())), Ok(key()));
    }

    #[test]
    fn a_cursor_with_a_changed_payload_is_refused() {
        let codec = CursorCodec::new(&SigningSecret::generate());
        let cursor = codec.encode(&key());
        let (_, tag) = cursor.split_once('.').unwrap();
        let forged_payload =
            URL_SAFE_NO_PAD.encode(br#"{"u":"zzz","i":"0123456789abcdef0123456789abcdef"}"#);
        assert_eq!(
            codec.decode(&format!("{forged_payload}.{tag}")),
            Err(InvalidCursor)
        );
    }

    #[test]
    fn a_cursor_from_another_deployment_is_refused() {
        let ours = CursorCodec::new(&SigningSecret::generate());
        let theirs = CursorCodec::new(&SigningSecret::generate());
        assert_eq!(ours.decode(&theirs.encode(&key())), Err(InvalidCursor));
    }

    #[test]
    fn garbage_cursors_are_refused() {
        let codec = CursorCodec::new(&SigningSecret::generate());
        for bad in [
            "",
            ".",
            "abc",
            "a.b",
            "!!!.???",
            &"a".repeat(MAX_CURSOR_BYTES + 1),
        ] {
            assert_eq!(codec.decode(bad), Err(InvalidCursor), "{bad}");
        }
    }
}
