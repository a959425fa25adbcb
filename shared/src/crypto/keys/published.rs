//! The public half of a key set as verifiers read it: its own file, so that the store
//! (which keeps it) and the key sources (which read it from the store) both import it
//! without importing each other.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The public half of a key set as published for verifiers (a table item, written by
/// rotation): the JWK Set and when each replaced key retires.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PublishedKeys {
    pub jwks: JwkSet,
    /// kid -> retirement time (seconds since the epoch) of each replaced key.
    #[serde(default)]
    pub retires_at: BTreeMap<String, u64>,
}

impl PublishedKeys {
    /// The same keys with no retirement times but those of `kept`: what `setSecret`
    /// publishes, so that a rotation that stalls before `finishSecret` retires nothing
    /// (signers keep the old key until the new set is current).
    pub fn retiring_only_as_in(mut self, kept: &BTreeMap<String, u64>) -> Self {
        self.retires_at.retain(|kid, at| kept.get(kid) == Some(at));
        self
    }
}

impl PublishedKeys {
    /// The RFC 7517 JWK Set of the keys still verifying at `now`.
    pub fn jwks_at(&self, now: u64) -> JwkSet {
        let live = |jwk: &&Jwk| {
            jwk.common
                .key_id
                .as_ref()
                .and_then(|kid| self.retires_at.get(kid))
                .is_none_or(|at| *at > now)
        };
        JwkSet {
            keys: self.jwks.keys.iter().filter(live).cloned().collect(),
        }
    }
}
