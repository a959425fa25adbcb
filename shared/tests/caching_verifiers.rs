//! Verifiers that hold our public keys for a long time and never re-fetch on an unknown
//! `kid` (SECURITY.md row 66): API Gateway's JWT authorizers keep an issuer's keys for up
//! to two hours; a JOSE library honouring our JWKS `max-age` keeps them 300 s. Across two
//! rotations (simulated clock, a minute apart each step), every token a signer issues must
//! verify, until its `exp`, with whatever set such a verifier fetched within its cache time
//! before the token was presented. Checked with jsonwebtoken's own `from_jwk` (not our key
//! ring), and shown to fail with the least lead, which is what rotation gave before.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use jwt_auth_core::crypto::keys::rotation::{
    PUBLICATION_DELAY_SECS, ROTATION_WINDOW_SECS, retention_secs, rotate,
};
use jwt_auth_core::crypto::keys::{
    DEFAULT_PUBLISH_LEAD_SECS, KeyRing, KeySetDocument, SIGNING_LEAD_SECS, SigningAlgorithm,
};
use jwt_auth_core::crypto::token::{
    CLOCK_LEEWAY_SECS, Claims, Session, TokenIssuer, TokenSettings,
};
use jwt_auth_core::sessions::login::JWKS_REFRESH_SECS;
use jwt_auth_core::users::user::{Role, User};
use std::collections::BTreeMap;
use std::sync::Arc;

const START: u64 = 1_800_000_000;

// The delay rotation adds to the lead is the one this file simulates.
const _: () = assert!(PUBLICATION_DELAY_SECS == ROTATION_WINDOW_SECS + JWKS_REFRESH_SECS);
const MINUTE: u64 = 60;
/// What API Gateway's JWT authorizers may keep, and our JWKS route's `max-age`.
const CACHE_TIMES: [u64; 2] = [2 * 3600, 300];

fn alice() -> User {
    User {
        id: "0123456789abcdef0123456789abcdef".into(),
        username: "alice".into(),
        name: "Alice".into(),
        role: Role::Admin,
        disabled: false,
        created_at: START,
    }
}

/// The stored set over time: a first set, then a rotation at `first` and one at `second`.
struct Timeline {
    sets: Vec<(u64, KeySetDocument)>,
}

impl Timeline {
    fn new(lead: u64, first: u64, second: u64) -> Self {
        let settings = TokenSettings::default();
        let retention = retention_secs(settings.ttl_secs, 300, lead);
        let initial = rotate(None, SigningAlgorithm::Es256, START, retention, lead);
        let rotated = rotate(
            Some(&initial),
            SigningAlgorithm::Es256,
            first,
            retention,
            lead,
        );
        let again = rotate(
            Some(&rotated),
            SigningAlgorithm::Es256,
            second,
            retention,
            lead,
        );
        Self {
            sets: vec![(START, initial), (first, rotated), (second, again)],
        }
    }

    fn set_at(&self, at: u64) -> &KeySetDocument {
        &self
            .sets
            .iter()
            .rev()
            .find(|(from, _)| *from <= at)
            .expect("after the first set")
            .1
    }

    /// What `GET /.well-known/jwks.json` may answer at `at`, at the latest a rotation
    /// publishes: `setSecret` up to the rotation's window after its start, and the route's
    /// copy up to its re-read interval older.
    fn jwks_at(&self, at: u64) -> JwkSet {
        let read_at = at
            .saturating_sub(ROTATION_WINDOW_SECS + JWKS_REFRESH_SECS)
            .max(START);
        self.set_at(read_at)
            .public_jwks(at.saturating_sub(JWKS_REFRESH_SECS))
            .unwrap()
    }
}

/// Every place a token goes wrong for a verifier caching for `cache_secs`: (signed at,
/// presented at, fetched at, kid).
fn refusals(timeline: &Timeline, until: u64, cache_secs: u64) -> Vec<(u64, u64, u64, String)> {
    let settings = TokenSettings::default();
    let jwks: BTreeMap<u64, JwkSet> = (START..=until + settings.ttl_secs)
        .step_by(MINUTE as usize)
        .map(|at| (at, timeline.jwks_at(at)))
        .collect();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    validation.validate_exp = false;
    validation.validate_nbf = false;

    let mut refused = Vec::new();
    // Each signer reads the set as it is at that moment (the earliest any signer can use a
    // new key: the hardest case for a verifier).
    for signed_at in (START..=until).step_by(MINUTE as usize) {
        let ring = Arc::new(KeyRing::from_document(timeline.set_at(signed_at)).unwrap());
        let issued = TokenIssuer::new(ring, settings.clone())
            .issue(&alice(), &Session::start(0), signed_at)
            .unwrap();
        let kid = jsonwebtoken::decode_header(&issued.token)
            .unwrap()
            .kid
            .unwrap();
        let expires = issued.claims.exp + CLOCK_LEEWAY_SECS;
        for presented_at in
            (signed_at..expires.min(until + settings.ttl_secs)).step_by(MINUTE as usize)
        {
            let oldest_fetch = presented_at.saturating_sub(cache_secs).max(START);
            for (fetched_at, set) in jwks.range(oldest_fetch..=presented_at) {
                let Some(jwk) = set.find(&kid) else {
                    refused.push((signed_at, presented_at, *fetched_at, kid.clone()));
                    continue;
                };
                // Known: a full verification by another implementation, once per token and
                // fetch (the membership above is what changes between presentations).
                if presented_at == signed_at {
                    let key = DecodingKey::from_jwk(jwk).unwrap();
                    let verified = jsonwebtoken::decode::<Claims>(&issued.token, &key, &validation);
                    assert!(
                        verified.is_ok(),
                        "{kid} in the set but refused: {verified:?}"
                    );
                }
            }
        }
    }
    refused
}

#[test]
fn a_verifier_holding_keys_for_two_hours_or_for_max_age_accepts_every_token_across_rotations() {
    let first = START + 6 * 3600;
    let second = first + 5 * 3600;
    let until = second + 4 * 3600;
    let timeline = Timeline::new(DEFAULT_PUBLISH_LEAD_SECS, first, second);
    for cache_secs in CACHE_TIMES {
        let refused = refusals(&timeline, until, cache_secs);
        assert!(
            refused.is_empty(),
            "cache {cache_secs} s: {} refusals, first {:?}",
            refused.len(),
            refused.first()
        );
    }
    // The new keys did sign (not a timeline that never switched).
    let settings = TokenSettings::default();
    let last = KeyRing::from_document(timeline.set_at(until)).unwrap();
    assert_eq!(
        last.signing_kid(until, until + settings.ttl_secs),
        Some(timeline.set_at(until).current.as_str())
    );
}

#[test]
fn with_the_least_lead_a_two_hour_cache_refuses_new_tokens_after_a_rotation() {
    let first = START + 6 * 3600;
    let second = first + 5 * 3600;
    let timeline = Timeline::new(SIGNING_LEAD_SECS, first, second);
    let refused = refusals(&timeline, first + 3 * 3600, 2 * 3600);
    assert!(
        refused
            .iter()
            .any(|(signed_at, ..)| *signed_at >= first + SIGNING_LEAD_SECS),
        "a 60 s lead should leave a two-hour cache without the new key"
    );
}
