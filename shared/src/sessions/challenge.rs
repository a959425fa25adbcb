//! Sign-in challenges: what the first step of a two-step sign-in answers instead of tokens
//! when the password was right and the user has a second factor. The second step sends it
//! back with a code.
//!
//! A challenge names the user as it stood at the first step (id, username, token version:
//! a password reset or "log out everywhere" in between ends it), the known device the first
//! step came from (so the second step counts and renews that device), a random id that the
//! second step spends once it succeeds (single use), and an expiry
//! [`CHALLENGE_TTL_SECS`] later.
//!
//! Format: `base64url(json) "." base64url(HMAC-SHA256)`, with a key derived from the HMAC
//! secret under its own label (never a device token, cursor or token signature). Unlike a
//! device token it names its user: the second step has nothing else to go on. It is a bearer
//! credential for [`CHALLENGE_TTL_SECS`] that is worth nothing without the second factor.

use crate::crypto::secret::SigningSecret;
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// How long the second step may follow the first.
pub const CHALLENGE_TTL_SECS: u64 = 300;
/// Longest challenge accepted (ours are about 250 characters).
pub const MAX_CHALLENGE_BYTES: usize = 512;

/// What a valid challenge says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// 128 random bits, base64url: spent by the successful second step.
    #[serde(rename = "c")]
    pub id: String,
    #[serde(rename = "u")]
    pub user_id: String,
    #[serde(rename = "n")]
    pub username: String,
    #[serde(rename = "v")]
    pub token_version: u64,
    /// The known device the first step came from.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub exp: u64,
}

/// Issues and checks challenges. Build once at cold start.
pub struct ChallengeTokens {
    key: hmac::Key,
}

impl ChallengeTokens {
    pub fn new(secret: &SigningSecret) -> Self {
        let derived = secret.derive("lambda-jwt-auth/mfa-challenge/v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.expose()),
        }
    }

    /// A challenge for the user of `record`, from `device`, valid from `now`.
    pub fn issue(
        &self,
        record: &crate::store::LoginRecord,
        device: Option<&str>,
        now: u64,
    ) -> (String, Challenge) {
        let mut id = [0u8; 16];
        crate::crypto::secret::fill_random(&mut id);
        let challenge = Challenge {
            id: URL_SAFE_NO_PAD.encode(id),
            user_id: record.user.id.clone(),
            username: record.user.username.clone(),
            token_version: record.token_version,
            device: device.map(str::to_owned),
            exp: now.saturating_add(CHALLENGE_TTL_SECS),
        };
        // Serialising strings and numbers cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&challenge).unwrap_or_default());
        let tag = hmac::sign(&self.key, payload.as_bytes());
        (
            format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
            challenge,
        )
    }

    /// What `token` says, if it is one of ours and unexpired at `now`; `None` otherwise,
    /// without saying why.
    pub fn verify(&self, token: &str, now: u64) -> Option<Challenge> {
        if token.len() > MAX_CHALLENGE_BYTES {
            return None;
        }
        let (payload, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        let challenge: Challenge =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (challenge.exp > now).then_some(challenge)
    }
}

/// The lockout counter of second-factor codes for user `id`: its own, so that guessing
/// codes neither uses up nor is reset by the password's counter (usernames cannot contain
/// `#`, so it never shares a counter with a login).
pub fn code_counter(user_id: &str) -> String {
    format!("mfa#{user_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LoginRecord;
    use crate::users::user::{Role, User};

    const NOW: u64 = 1_900_000_000;

    fn alice() -> LoginRecord {
        LoginRecord {
            user: User {
                id: "0123456789abcdef0123456789abcdef".into(),
                username: "alice".into(),
                name: "Alice".into(),
                role: Role::Customer,
                disabled: false,
                created_at: 0,
            },
            password_hash: crate::crypto::password::StoredHash::from_phc("$argon2id$fake".into()),
            token_version: 3,
        }
    }

    #[test]
    fn a_challenge_names_its_user_and_device_until_it_expires() {
        let tokens = ChallengeTokens::new(&SigningSecret::generate());
        let (token, issued) = tokens.issue(&alice(), Some("device-1"), NOW);
        let read = tokens.verify(&token, NOW + CHALLENGE_TTL_SECS - 1).unwrap();
        assert_eq!(read, issued);
        assert_eq!(read.user_id, alice().user.id);
        assert_eq!(read.token_version, 3);
        assert_eq!(read.device.as_deref(), Some("device-1"));
        assert!(tokens.verify(&token, NOW + CHALLENGE_TTL_SECS).is_none());
        let (other, _) = tokens.issue(&alice(), None, NOW);
        assert_ne!(tokens.verify(&other, NOW).unwrap().id, issued.id);
    }

    #[test]
    fn forged_foreign_and_mangled_challenges_say_nothing() {
        let tokens = ChallengeTokens::new(&SigningSecret::generate());
        let (token, issued) = tokens.issue(&alice(), None, NOW);
        let (payload, tag) = token.split_once('.').unwrap();
        let longer = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Challenge {
                exp: u64::MAX,
                ..issued.clone()
            })
            .unwrap(),
        );
        let (other_deployment, _) =
            ChallengeTokens::new(&SigningSecret::generate()).issue(&alice(), None, NOW);
        for forged in [
            format!("{longer}.{tag}"),
            format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            other_deployment,
            payload.to_string(),
            String::new(),
            "x".repeat(MAX_CHALLENGE_BYTES + 1),
        ] {
            assert!(tokens.verify(&forged, NOW).is_none(), "{forged}");
        }
    }
}
