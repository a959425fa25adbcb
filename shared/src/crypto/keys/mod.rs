//! Token signing keys: a key set of named keys (`kid`), one of them current, in one of three
//! algorithms, and its public half as an RFC 7517 JWK Set.
//!
//! - **Algorithms.** `ES256` (ECDSA P-256), `EdDSA` (Ed25519) and `HS256`. Every key has
//!   exactly one algorithm, and a token is verified only with the algorithm of the key its
//!   `kid` names (RFC 8725 §3.1 "one key, one algorithm"): an HS256 token naming an ES256
//!   key is refused, so a public key can never be used as an HMAC secret.
//! - **Lookup.** A verifier finds a key by exact `kid` in its own map of known keys, never
//!   from the token's `jwk`/`jku`/`x5u` (RFC 8725 §3.10); an unknown `kid` is refused.
//! - **The stored set** ([`KeySetDocument`], JSON) holds the current key and the previous
//!   ones, each with its `kid`, algorithm, creation time and private material (PKCS#8 DER
//!   for ES256 and EdDSA, the secret for HS256), base64url. It never appears in `Debug`.
//! - **The public set** ([`KeySetDocument::public_jwks`]) holds `kty`, `crv`, `x`, (`y`),
//!   `kid`, `alg`, `use: "sig"` of every asymmetric key, never `d`; HS256 keys have no public
//!   half and are left out.

use crate::crypto::secret::{SigningSecret, fill_random};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use zeroize::{Zeroize, Zeroizing};

pub mod algorithm;
pub mod es256;
pub mod live;
pub mod local;
pub mod published;
pub mod rotation;
pub mod rs256;
mod signature_check;

pub(crate) use signature_check::SignatureCheck;

pub use algorithm::SigningAlgorithm;
pub use published::PublishedKeys;

/// The `typ` header we issue and demand (RFC 8725 §3.11).
pub const TOKEN_TYPE: &str = "JWT";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key set has no key named by `current`")]
    NoCurrentKey,
    #[error("the key set names one kid twice")]
    DuplicateKid,
    #[error("key {kid}: {reason}")]
    BadKey { kid: String, reason: &'static str },
    #[error("the key set is not valid JSON of the expected shape")]
    Shape,
}

/// How long a new key is published before any signer uses it: longer than the least time
/// between two re-reads of a verifier that meets an unknown `kid`
/// ([`live::UNKNOWN_KID_REREAD_SECS`]), so every verifier can learn a key before it sees a
/// token signed with it. The least lead: rotation gives a new key a longer one
/// ([`StoredKey::signs_from`]) for verifiers that hold keys for hours and never re-read on
/// an unknown `kid`; a signer also waits this long from when it first saw a key.
pub const SIGNING_LEAD_SECS: u64 = 60;

/// The publication lead rotation gives a new key by default (`KEY_PUBLISH_LEAD_SECONDS`):
/// API Gateway's JWT authorizers keep an issuer's public keys for up to two hours, and
/// our JWKS route serves what it read up to 30 s before; five minutes more for clock skew
/// and a verifier's own re-fetch.
pub const DEFAULT_PUBLISH_LEAD_SECS: u64 = 2 * 3600 + 300;

/// One key of a stored key set.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// No token is signed with this key before this time (seconds since the epoch): its
    /// publication lead, set by rotation (`created_at` + the lead). Unset, the key signs
    /// [`SIGNING_LEAD_SECS`] after its creation (a first set, an emergency replacement,
    /// and sets written before leads were stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signs_from: Option<u64>,
    /// When a replaced key stops verifying and leaves the public set (seconds since the
    /// epoch); unset while the key is current. Set by rotation to outlast every token it
    /// signed ([`rotation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retires_at: Option<u64>,
    /// base64url: PKCS#8 DER of the private key (ES256, EdDSA), or the HMAC secret (HS256).
    pub private: String,
}

// Private material is wiped when its last copy goes (jsonwebtoken's `EncodingKey` and
// aws-lc's key pairs wipe their own): a memory dump or a reused allocation holds no key.
impl Drop for StoredKey {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl StoredKey {
    /// When a signer may first use this key.
    pub fn signs_from(&self) -> u64 {
        self.signs_from
            .unwrap_or_else(|| self.created_at.saturating_add(SIGNING_LEAD_SECS))
    }
}

/// The key set as stored (in Secrets Manager, as JSON).
#[derive(Clone, Serialize, Deserialize)]
pub struct KeySetDocument {
    /// The newest key, which new tokens are signed with once it has been published for
    /// its lead ([`StoredKey::signs_from`]).
    pub current: String,
    pub keys: Vec<StoredKey>,
}

impl std::fmt::Debug for KeySetDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|key| key.kid.as_str()).collect();
        f.debug_struct("KeySetDocument")
            .field("current", &self.current)
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

impl KeySetDocument {
    /// A new set with one fresh key of `alg`, current.
    pub fn generate(alg: SigningAlgorithm, now: u64) -> Self {
        let key = generate_key(alg, now);
        Self {
            current: key.kid.clone(),
            keys: vec![key],
        }
    }

    /// Parses the stored JSON and checks it: a current key, unique kids, every key usable.
    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        let document: Self = serde_json::from_str(json).map_err(|_| KeyError::Shape)?;
        KeyRing::from_document(&document)?;
        Ok(document)
    }

    pub fn to_json(&self) -> String {
        // Plain strings and numbers: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn current_key(&self) -> Option<&StoredKey> {
        self.keys.iter().find(|key| key.kid == self.current)
    }

    /// The public half of every asymmetric key, as an RFC 7517 JWK Set, with the
    /// retirement time of each replaced key: what rotation publishes for the verifiers.
    pub fn published(&self) -> Result<PublishedKeys, KeyError> {
        let mut keys = Vec::new();
        let mut retires_at = BTreeMap::new();
        for key in &self.keys {
            let alg = algorithm_of(key)?;
            let key_algorithm = match alg {
                SigningAlgorithm::Es256 => KeyAlgorithm::ES256,
                SigningAlgorithm::EdDsa => KeyAlgorithm::EdDSA,
                SigningAlgorithm::Rs256 => KeyAlgorithm::RS256,
                // An HMAC key has no public half: its JWK would be the secret itself.
                SigningAlgorithm::Hs256 => continue,
            };
            let mut jwk = Jwk::from_encoding_key(&encoding_key(key, alg)?, alg.jwt())
                .map_err(|_| bad(key, "no public key"))?;
            if !is_public_point(&jwk, alg) {
                // Never publish anything but a public key of the algorithm.
                return Err(bad(key, "not a public key"));
            }
            jwk.common.key_id = Some(key.kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_algorithm = Some(key_algorithm);
            keys.push(jwk);
            if let Some(at) = key.retires_at {
                retires_at.insert(key.kid.clone(), at);
            }
        }
        Ok(PublishedKeys {
            jwks: JwkSet { keys },
            retires_at,
        })
    }

    /// The public JWK Set of the keys still verifying at `now`.
    pub fn public_jwks(&self, now: u64) -> Result<JwkSet, KeyError> {
        Ok(self.published()?.jwks_at(now))
    }
}

/// A key a signer may use.
struct SigningKey {
    kid: String,
    alg: SigningAlgorithm,
    created_at: u64,
    /// [`StoredKey::signs_from`], or [`SIGNING_LEAD_SECS`] after `created_at`.
    signs_from: u64,
    retires_at: Option<u64>,
    key: EncodingKey,
    header: Header,
}

/// A key a verifier accepts, with the one algorithm it may be used with.
struct VerifyingKey {
    alg: SigningAlgorithm,
    check: SignatureCheck,
    retires_at: Option<u64>,
}

/// The key set ready to sign and verify with, built once per version of the set.
pub struct KeyRing {
    /// The current key first, then the others, newest first.
    signing: Vec<SigningKey>,
    verifying: HashMap<String, VerifyingKey>,
    published: PublishedKeys,
}

impl KeyRing {
    /// A ring that signs and verifies: the private key set (the login function; an HS256
    /// authorizer).
    pub fn from_document(document: &KeySetDocument) -> Result<Self, KeyError> {
        let mut verifying = HashMap::new();
        let mut signing = Vec::new();
        for key in &document.keys {
            let alg = algorithm_of(key)?;
            if !is_kid(&key.kid) {
                return Err(bad(key, "a kid is 1 to 64 characters of [A-Za-z0-9._-]"));
            }
            let encoding = encoding_key(key, alg)?;
            let decoding = decoding_key(key, alg, &encoding)?;
            let verifying_key = VerifyingKey {
                alg,
                check: SignatureCheck::new(alg, &decoding).map_err(|reason| bad(key, reason))?,
                retires_at: key.retires_at,
            };
            if verifying.insert(key.kid.clone(), verifying_key).is_some() {
                return Err(KeyError::DuplicateKid);
            }
            signing.push(SigningKey {
                header: header_for(&key.kid, alg),
                kid: key.kid.clone(),
                alg,
                created_at: key.created_at,
                signs_from: key.signs_from(),
                retires_at: key.retires_at,
                key: encoding,
            });
        }
        if !signing.iter().any(|key| key.kid == document.current) {
            return Err(KeyError::NoCurrentKey);
        }
        // Current first, then the newest of the rest.
        signing.sort_by_key(|key| (key.kid != document.current, u64::MAX - key.created_at));
        Ok(Self {
            signing,
            verifying,
            published: document.published()?,
        })
    }

    /// A ring that only verifies: the public keys published by rotation (the authorizer
    /// of an ES256 or EdDSA deployment, which never sees a private key).
    pub fn from_published(published: &PublishedKeys) -> Result<Self, KeyError> {
        let mut verifying = HashMap::new();
        for jwk in &published.jwks.keys {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            let refuse = |reason| KeyError::BadKey {
                kid: kid.clone(),
                reason,
            };
            if !is_kid(&kid) {
                return Err(refuse("a kid is 1 to 64 characters of [A-Za-z0-9._-]"));
            }
            let alg = match jwk.common.key_algorithm {
                Some(KeyAlgorithm::ES256) => SigningAlgorithm::Es256,
                Some(KeyAlgorithm::EdDSA) => SigningAlgorithm::EdDsa,
                Some(KeyAlgorithm::RS256) => SigningAlgorithm::Rs256,
                // A published HMAC key would be a secret in public: never accepted.
                _ => return Err(refuse("a published key is ES256, EdDSA or RS256")),
            };
            if !is_public_point(jwk, alg) {
                return Err(refuse("not a public key of its algorithm"));
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|_| refuse("not a usable JWK"))?;
            let verifying_key = VerifyingKey {
                alg,
                check: SignatureCheck::new(alg, &key).map_err(refuse)?,
                retires_at: published.retires_at.get(&kid).copied(),
            };
            if verifying.insert(kid, verifying_key).is_some() {
                return Err(KeyError::DuplicateKid);
            }
        }
        Ok(Self {
            signing: Vec::new(),
            verifying,
            published: published.clone(),
        })
    }

    /// One HS256 key: the deployment's signing secret (the configuration before key sets).
    /// Its `kid` is derived from the secret, so every function names it alike.
    pub fn hs256(secret: &SigningSecret) -> Self {
        let kid = format!(
            "hs256-{}",
            &URL_SAFE_NO_PAD.encode(secret.derive("lambda-jwt-auth/kid/v1").expose())[..16]
        );
        let mut verifying = HashMap::new();
        verifying.insert(
            kid.clone(),
            VerifyingKey {
                alg: SigningAlgorithm::Hs256,
                check: SignatureCheck::Hmac(Box::new(aws_lc_rs::hmac::Key::new(
                    aws_lc_rs::hmac::HMAC_SHA256,
                    secret.expose(),
                ))),
                retires_at: None,
            },
        );
        Self {
            signing: vec![SigningKey {
                header: header_for(&kid, SigningAlgorithm::Hs256),
                kid,
                alg: SigningAlgorithm::Hs256,
                created_at: 0,
                signs_from: 0,
                retires_at: None,
                key: EncodingKey::from_secret(secret.expose()),
            }],
            verifying,
            published: PublishedKeys::default(),
        }
    }

    /// When the current key was created, for a ring that signs (`None` for a verifier's
    /// ring of public keys, and for a local HS256 key, which never rotates).
    pub fn current_created_at(&self) -> Option<u64> {
        self.signing
            .first()
            .map(|key| key.created_at)
            .filter(|created| *created > 0)
    }

    /// The `kid` of the current key (the newest), whether or not signers use it yet.
    pub fn current_kid(&self) -> &str {
        self.signing.first().map_or("", |key| key.kid.as_str())
    }

    pub fn current_algorithm(&self) -> Option<SigningAlgorithm> {
        self.signing.first().map(|key| key.alg)
    }

    /// The key to sign with at `now`, for a token that may be presented until
    /// `valid_until` (its `exp` plus the verifiers' leeway). A key is ready once its lead
    /// has passed ([`StoredKey::signs_from`]) and [`SIGNING_LEAD_SECS`] since this signer
    /// first saw it (`first_seen`): by then every verifier can have learnt it. The current key if
    /// it is ready; else the newest other key that still verifies at `valid_until`, ready
    /// ones first; else the current key (a brand-new set, or one whose older keys retire
    /// before the token would expire: a verifier meeting the new `kid` re-reads its keys,
    /// while a token of a key that retires first would be refused before its `exp`).
    pub(crate) fn signer(
        &self,
        now: u64,
        valid_until: u64,
        first_seen: &dyn Fn(&str) -> u64,
    ) -> Option<(&Header, &EncodingKey)> {
        let ready = |key: &SigningKey| {
            key.signs_from
                .max(first_seen(&key.kid).saturating_add(SIGNING_LEAD_SECS))
                <= now
        };
        let live = |key: &&SigningKey| key.retires_at.is_none_or(|at| at > valid_until);
        let current = self.signing.first()?;
        let older = || self.signing[1..].iter().filter(live);
        let chosen = if ready(current) {
            current
        } else {
            older()
                .find(|key| ready(key))
                // None ready: the one published longest, the likeliest to be known.
                .or_else(|| older().min_by_key(|key| key.signs_from))
                .unwrap_or(current)
        };
        Some((&chosen.header, &chosen.key))
    }

    /// The `kid` a token signed at `now` carries, for a signer that has known the set since
    /// its keys were created and signs tokens that may be presented until `valid_until`.
    pub fn signing_kid(&self, now: u64, valid_until: u64) -> Option<&str> {
        self.signer(now, valid_until, &|_| 0)
            .and_then(|(header, _)| header.kid.as_deref())
    }

    /// The key named `kid`, with the one algorithm it may be used with, unless it has
    /// retired by `now`.
    pub(crate) fn verifying_key(
        &self,
        kid: &str,
        now: u64,
    ) -> Option<(SigningAlgorithm, &SignatureCheck)> {
        self.verifying
            .get(kid)
            .filter(|key| key.retires_at.is_none_or(|at| at > now))
            .map(|key| (key.alg, &key.check))
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.verifying.contains_key(kid)
    }

    pub fn kids(&self) -> impl Iterator<Item = (&str, SigningAlgorithm)> {
        self.verifying
            .iter()
            .map(|(kid, key)| (kid.as_str(), key.alg))
    }

    /// The public JWK Set of the keys still verifying at `now` (empty for HS256).
    pub fn public_jwks(&self, now: u64) -> JwkSet {
        self.published.jwks_at(now)
    }

    /// The algorithms of the keys still verifying at `now`.
    pub fn algorithms(&self, now: u64) -> Vec<SigningAlgorithm> {
        let mut algorithms: Vec<SigningAlgorithm> = self
            .verifying
            .values()
            .filter(|key| key.retires_at.is_none_or(|at| at > now))
            .map(|key| key.alg)
            .collect();
        algorithms.sort_by_key(|alg| alg.as_str());
        algorithms.dedup();
        algorithms
    }
}

fn header_for(kid: &str, alg: SigningAlgorithm) -> Header {
    let mut header = Header::new(alg.jwt());
    header.typ = Some(TOKEN_TYPE.into());
    header.kid = Some(kid.to_string());
    header
}

/// A JWK holding a public curve point of `alg`'s curve, and nothing private.
fn is_public_point(jwk: &Jwk, alg: SigningAlgorithm) -> bool {
    use jsonwebtoken::jwk::{EllipticCurve, EllipticCurveKeyType, OctetKeyPairType};
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(ec), SigningAlgorithm::Es256) => {
            ec.key_type == EllipticCurveKeyType::EC && ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::OctetKeyPair(okp), SigningAlgorithm::EdDsa) => {
            okp.key_type == OctetKeyPairType::OctetKeyPair && okp.curve == EllipticCurve::Ed25519
        }
        (AlgorithmParameters::RSA(_), SigningAlgorithm::Rs256) => {
            rs256::jwk_components(jwk).is_some()
        }
        _ => false,
    }
}

/// A new key of `alg`: a random `kid`, fresh material from the OS CSPRNG.
pub fn generate_key(alg: SigningAlgorithm, now: u64) -> StoredKey {
    let rng = SystemRandom::new();
    // Key generation only fails when the OS has no entropy source: nothing is safe then.
    let private = Zeroizing::new(match alg {
        SigningAlgorithm::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("P-256 key generation")
                .as_ref()
                .to_vec()
        }
        // PKCS#8 v1 (the seed only): what jsonwebtoken expects of an Ed25519 key.
        SigningAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8v1(&rng)
            .expect("Ed25519 key generation")
            .as_ref()
            .to_vec(),
        SigningAlgorithm::Hs256 => {
            let mut secret = vec![0u8; 64];
            fill_random(&mut secret);
            secret
        }
        SigningAlgorithm::Rs256 => rs256::generate_pkcs8().to_vec(),
    });
    let mut id = [0u8; 9];
    fill_random(&mut id);
    StoredKey {
        kid: format!(
            "{}-{}",
            alg.as_str().to_ascii_lowercase(),
            URL_SAFE_NO_PAD.encode(id)
        ),
        alg: alg.as_str().into(),
        created_at: now,
        signs_from: None,
        retires_at: None,
        private: URL_SAFE_NO_PAD.encode(&*private),
    }
}

fn bad(key: &StoredKey, reason: &'static str) -> KeyError {
    KeyError::BadKey {
        kid: key.kid.clone(),
        reason,
    }
}

fn is_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 64
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn algorithm_of(key: &StoredKey) -> Result<SigningAlgorithm, KeyError> {
    SigningAlgorithm::parse(&key.alg).ok_or_else(|| bad(key, "unknown algorithm"))
}

fn material(key: &StoredKey) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(&key.private)
        .map(Zeroizing::new)
        .map_err(|_| bad(key, "material is not base64url"))
}

fn encoding_key(key: &StoredKey, alg: SigningAlgorithm) -> Result<EncodingKey, KeyError> {
    let der = material(key)?;
    Ok(match alg {
        SigningAlgorithm::Es256 => {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map_err(|_| bad(key, "not a P-256 PKCS#8 key"))?;
            EncodingKey::from_ec_der(&der)
        }
        SigningAlgorithm::EdDsa => {
            // v1 or v2 (a v2 key's public key must match its seed); kept as v1, the form
            // jsonwebtoken derives the public key from.
            let pair = Ed25519KeyPair::from_pkcs8(&der)
                .map_err(|_| bad(key, "not an Ed25519 PKCS#8 key"))?;
            let v1 = pair
                .to_pkcs8v1()
                .map_err(|_| bad(key, "not an Ed25519 PKCS#8 key"))?;
            EncodingKey::from_ed_der(v1.as_ref())
        }
        SigningAlgorithm::Hs256 => {
            if der.len() < crate::crypto::secret::MIN_SECRET_BYTES {
                return Err(bad(key, "an HS256 secret is at least 32 bytes"));
            }
            EncodingKey::from_secret(&der)
        }
        SigningAlgorithm::Rs256 => {
            let pkcs1 = rs256::pkcs1_of(&der)
                .ok_or_else(|| bad(key, "not an RSA-2048 PKCS#8 key with exponent 65537"))?;
            EncodingKey::from_rsa_der(&pkcs1)
        }
    })
}

fn decoding_key(
    key: &StoredKey,
    alg: SigningAlgorithm,
    encoding: &EncodingKey,
) -> Result<DecodingKey, KeyError> {
    match alg {
        SigningAlgorithm::Hs256 => Ok(DecodingKey::from_secret(&material(key)?)),
        _ => {
            let jwk = Jwk::from_encoding_key(encoding, alg.jwt())
                .map_err(|_| bad(key, "no public key"))?;
            DecodingKey::from_jwk(&jwk).map_err(|_| bad(key, "no public key"))
        }
    }
}

#[cfg(test)]
mod signature_vectors;

#[cfg(test)]
mod tests;
