//! Device tokens (OWASP "Slow Down Online Guessing Attacks with Device Cookies").
//!
//! A successful login answers a device token: an opaque value naming a random device id,
//! bound to the username and to this deployment, valid [`DEVICE_TOKEN_TTL_SECS`]. A client
//! that sends it back with a login for the same username is a *known device*: its attempts
//! are counted on the device's own counter, not the username's, so an attacker who keeps a
//! username locked (from clients without a token) never locks out the user's known devices.
//! A device that fails its own threshold is locked by itself. Without a valid token
//! (none, forged, expired, another username's, another deployment's) a login is an
//! untrusted client and shares the username's lockout; which of these it was is never told.
//!
//! A device token belongs to one user as it stands: its username, its id (a deleted and
//! re-created "alice" is someone else) and its token version, so a password change or
//! reset, "log out everywhere", a role change or disabling ends every device token of the
//! user too: someone who once knew the old password cannot keep device counters (each
//! worth a few guesses) for after a reset.
//!
//! Format: `base64url(json {"d": device id, "exp": seconds}) "." base64url(HMAC-SHA256)`,
//! the MAC over the owner and the payload with a key derived from the signing secret under
//! its own label (so it is never a valid token signature or cursor MAC). The owner is in
//! the MAC, not in the token: a leaked token does not name its user.

use crate::crypto::secret::SigningSecret;
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// How long a device token is valid: 90 days from its last successful login.
pub const DEVICE_TOKEN_TTL_SECS: u64 = 90 * 24 * 3600;
/// Longest device token accepted (ours are about 110 characters).
pub const MAX_DEVICE_TOKEN_BYTES: usize = 256;

#[derive(Serialize, Deserialize)]
struct Payload {
    /// The device id: 128 random bits, base64url.
    d: String,
    exp: u64,
}

/// Whom a device token belongs to.
#[derive(Debug, Clone, Copy)]
pub struct DeviceOwner<'a> {
    pub username: &'a str,
    pub user_id: &'a str,
    pub token_version: u64,
}

impl<'a> DeviceOwner<'a> {
    /// The owner a login record describes.
    pub fn of(record: &'a crate::store::LoginRecord) -> Self {
        Self {
            username: &record.user.username,
            user_id: &record.user.id,
            token_version: record.token_version,
        }
    }
}

/// Issues and checks device tokens. Build once at cold start.
pub struct DeviceTokens {
    key: hmac::Key,
}

impl DeviceTokens {
    pub fn new(secret: &SigningSecret) -> Self {
        let derived = secret.derive("lambda-jwt-auth/device-token/v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.expose()),
        }
    }

    /// A token for `device_id` (a new device when `None`) of `owner`, valid from `now`.
    pub fn issue(&self, owner: &DeviceOwner<'_>, device_id: Option<&str>, now: u64) -> String {
        let payload = Payload {
            d: device_id.map_or_else(new_device_id, str::to_owned),
            exp: now.saturating_add(DEVICE_TOKEN_TTL_SECS),
        };
        // Serialising a string and a number cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap_or_default());
        let tag = hmac::sign(&self.key, &signed_bytes(owner, &payload));
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The device id of `token` if it is one of ours, for `owner` as it stands, unexpired
    /// at `now`; `None` for anything else, without saying why.
    pub fn verify(&self, token: &str, owner: &DeviceOwner<'_>, now: u64) -> Option<String> {
        if token.len() > MAX_DEVICE_TOKEN_BYTES {
            return None;
        }
        let (payload, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, &signed_bytes(owner, payload), &tag).ok()?;
        let payload: Payload =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (payload.exp > now && is_device_id(&payload.d)).then_some(payload.d)
    }
}

/// The lockout counter of a known device (usernames cannot contain `#`, so it never shares
/// a counter with a username).
pub fn device_counter(device_id: &str) -> String {
    format!("device#{device_id}")
}

fn signed_bytes(owner: &DeviceOwner<'_>, payload: &str) -> Vec<u8> {
    // Usernames are [a-z0-9._@-], ids hex, the payload base64url: no separator confusion.
    format!(
        "{}\n{}\n{}\n{payload}",
        owner.username, owner.user_id, owner.token_version
    )
    .into_bytes()
}

fn new_device_id() -> String {
    let mut bytes = [0u8; 16];
    crate::crypto::secret::fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn is_device_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_900_000_000;

    fn tokens() -> DeviceTokens {
        DeviceTokens::new(&SigningSecret::generate())
    }

    const ALICE: DeviceOwner<'static> = DeviceOwner {
        username: "alice",
        user_id: "0123456789abcdef0123456789abcdef",
        token_version: 0,
    };

    #[test]
    fn a_device_token_names_its_device_for_its_username_until_it_expires() {
        let devices = tokens();
        let token = devices.issue(&ALICE, None, NOW);
        let id = devices.verify(&token, &ALICE, NOW).expect("valid");
        assert!(is_device_id(&id));
        let renewed = devices.issue(&ALICE, Some(&id), NOW + 10);
        assert_eq!(devices.verify(&renewed, &ALICE, NOW + 10), Some(id));
        assert!(
            devices
                .verify(&token, &ALICE, NOW + DEVICE_TOKEN_TTL_SECS)
                .is_none(),
            "expired"
        );
        assert!(!token.contains("alice"), "the token does not name its user");
    }

    #[test]
    fn forged_foreign_and_mangled_device_tokens_are_treated_as_absent() {
        let devices = tokens();
        let token = devices.issue(&ALICE, None, NOW);
        let (payload, tag) = token.split_once('.').unwrap();
        let other_deployment = tokens().issue(&ALICE, None, NOW);
        let longer_life = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Payload {
                d: "AAAAAAAAAAAAAAAAAAAAAA".into(),
                exp: u64::MAX,
            })
            .unwrap(),
        );
        let bob = DeviceOwner {
            username: "bob",
            ..ALICE
        };
        let recreated_alice = DeviceOwner {
            user_id: "fedcba9876543210fedcba9876543210",
            ..ALICE
        };
        let after_a_reset = DeviceOwner {
            token_version: 1,
            ..ALICE
        };
        for forged in [
            devices.issue(&bob, None, NOW),
            devices.issue(&recreated_alice, None, NOW),
            devices.issue(&after_a_reset, None, NOW),
            other_deployment,
            format!("{longer_life}.{tag}"),
            format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            format!("{payload}."),
            payload.to_string(),
            String::new(),
            "x".repeat(MAX_DEVICE_TOKEN_BYTES + 1),
        ] {
            assert_eq!(devices.verify(&forged, &ALICE, NOW), None, "{forged}");
        }
    }
}
