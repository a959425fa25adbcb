//! Password hashing: argon2id with one parameter set, owned here.
//!
//! - New hashes use [`HASH_PARAMS`] (OWASP's argon2id minimum: m = 19 MiB, t = 2, p = 1;
//!   the PHC string starts `$argon2id$v=19$m=19456,t=2,p=1$`).
//! - A stored hash is verified with its own parameters only when they are within
//!   [`MAX_MEMORY_KIB`] / [`MAX_ITERATIONS`] / [`MAX_PARALLELISM`]: argon2 computes whatever
//!   the PHC string asks for, and a planted `m=4194304` would be a denial of service.
//! - Hashes weaker than [`HASH_PARAMS`] verify, and report `needs_rehash` so that login can
//!   upgrade them.
//! - [`PasswordHasher::verify_dummy`] does the same work for a user that does not exist, so
//!   an unknown username takes as long as a wrong password (ASVS 6.3.8).
//! - The 19 MiB working memory is allocated once and reused: page faults on a fresh block
//!   are about half the cost of a verify.
//!
//! Everything here is CPU-bound for ~10-20 ms: async callers run it in `spawn_blocking`.

use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher as _, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Mutex;

/// m = 19 MiB, t = 2, p = 1, 32-byte output: OWASP Password Storage Cheat Sheet's argon2id row.
pub const HASH_PARAMS: (u32, u32, u32) = (19 * 1024, 2, 1);
/// Largest memory cost (KiB) a stored hash may ask for before it is refused unverified.
pub const MAX_MEMORY_KIB: u32 = 64 * 1024;
/// Largest iteration count a stored hash may ask for.
pub const MAX_ITERATIONS: u32 = 8;
/// Largest parallelism a stored hash may ask for.
pub const MAX_PARALLELISM: u32 = 4;
/// Password length bounds in characters (ASVS 6.2.1 / 6.2.9): no silent truncation anywhere.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

/// A PHC string as stored. `Debug` does not print it: a hash is an offline-cracking target.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash(String);

impl StoredHash {
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredHash([REDACTED])")
    }
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Match { needs_rehash: bool },
    Mismatch,
}

impl Verification {
    pub fn is_match(self) -> bool {
        matches!(self, Verification::Match { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    Length,
    #[error("password must not contain the username")]
    ContainsUsername,
    #[error("password is too common")]
    Common,
    #[error("argon2 failed: {0}")]
    Hashing(String),
}

/// Checks a new password against the policy (NIST SP 800-63B §3.1.1.2, ASVS 6.2):
/// - 8 to 128 characters, counted as characters, not bytes; every character counts (no
///   truncation) and any Unicode is allowed, spaces included;
/// - not the username, and not containing it (the first thing a guesser tries);
/// - not one of the most common passwords (a short embedded list: what credential-stuffing
///   lists try first).
///
/// There are deliberately no composition rules (they push users to predictable patterns)
/// and no expiry.
pub fn check_new_password(password: &SecretString, username: &str) -> Result<(), PasswordError> {
    let password = password.expose_secret();
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(PasswordError::Length);
    }
    let lowered = password.to_lowercase();
    if !username.is_empty() && lowered.contains(&username.to_lowercase()) {
        return Err(PasswordError::ContainsUsername);
    }
    if COMMON_PASSWORDS.contains(&lowered.as_str()) {
        return Err(PasswordError::Common);
    }
    Ok(())
}

/// The most common passwords of 8+ characters in public breach corpora.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "qwerty123",
    "iloveyou",
    "11111111",
    "00000000",
    "abc12345",
    "abcd1234",
    "1q2w3e4r",
    "1qaz2wsx",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "letmein1",
    "trustno1",
    "superman",
    "starwars",
    "whatever",
    "dragon123",
    "monkey123",
    "computer",
    "internet",
    "changeme",
    "administrator",
    "admin123",
    "qwertyui",
    "asdfghjk",
    "zxcvbnm1",
    "987654321",
    "123123123",
    "88888888",
    "12341234",
    "michael1",
    "jennifer",
    "football1",
    "liverpool",
    "chocolate",
    "password!",
    "welcome123",
];

/// What an unknown user's login is verified against: an argon2id hash with [`HASH_PARAMS`]
/// of a password nobody knows (random salt and output, made once). Its result is always
/// discarded, so only its cost matters: a constant makes it free at cold start, where
/// hashing a random password took ~90 ms of every start.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$vNKsE4gDV8BG4fbTHyQICw$tSSisKtSbPHUwxOIGwp7U3KFC/cCkLPJuvppqzuBl/o";

/// Hashes and verifies passwords. Build one at cold start and share it.
pub struct PasswordHasher {
    params: Params,
    /// Working memory for [`HASH_PARAMS`], reused across verifies (one per concurrent verify).
    memory_pool: Mutex<Vec<Vec<Block>>>,
    /// [`DUMMY_HASH`], verified when the user is unknown.
    dummy: StoredHash,
    /// argon2 computations done by `verify` (and so by `verify_dummy`): lets tests prove that
    /// every login outcome does the same work.
    computations: std::sync::atomic::AtomicU64,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordHasher {
    /// No argon2 work and no allocation: the memory of a verify is allocated by the first
    /// one (~10 ms for 19 MiB, measured by the cold-start bench) and then reused.
    pub fn new() -> Self {
        let (m, t, p) = HASH_PARAMS;
        let params = Params::new(m, t, p, Some(32)).expect("HASH_PARAMS are valid argon2 params");
        Self {
            params,
            memory_pool: Mutex::new(Vec::new()),
            dummy: StoredHash(DUMMY_HASH.to_string()),
            computations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Hashes a new password with [`HASH_PARAMS`] and a fresh 16-byte salt.
    pub fn hash(&self, password: &SecretString) -> Result<StoredHash, PasswordError> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        argon2
            .hash_password(password.expose_secret().as_bytes())
            .map(|phc| StoredHash(phc.to_string()))
            .map_err(|err| PasswordError::Hashing(err.to_string()))
    }

    /// Verifies `password` against a stored hash. Malformed or out-of-policy hashes are a
    /// mismatch (and logged), never a panic and never an expensive computation.
    pub fn verify(&self, password: &SecretString, stored: &StoredHash) -> Verification {
        match self.try_verify(password.expose_secret().as_bytes(), stored.as_phc()) {
            Ok(verification) => verification,
            Err(reason) => {
                tracing::warn!(reason, "stored password hash refused");
                Verification::Mismatch
            }
        }
    }

    /// Does the work of [`Self::verify`] for a user that does not exist, and mismatches.
    pub fn verify_dummy(&self, password: &SecretString) -> Verification {
        let _ = self.verify(password, &self.dummy);
        Verification::Mismatch
    }

    /// How many argon2 verifications this hasher has computed.
    pub fn computations(&self) -> u64 {
        self.computations.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn try_verify(&self, password: &[u8], phc: &str) -> Result<Verification, &'static str> {
        let parsed = argon2::PasswordHash::new(phc).map_err(|_| "not a PHC string")?;
        if parsed.algorithm != argon2::ARGON2ID_IDENT {
            return Err("not argon2id");
        }
        if parsed
            .version
            .is_some_and(|v| v != u32::from(Version::V0x13))
        {
            return Err("unsupported argon2 version");
        }
        let params = Params::try_from(&parsed).map_err(|_| "bad argon2 parameters")?;
        if params.m_cost() > MAX_MEMORY_KIB
            || params.t_cost() > MAX_ITERATIONS
            || params.p_cost() > MAX_PARALLELISM
        {
            return Err("argon2 parameters above the allowed maximum");
        }
        let salt = parsed.salt.as_ref().ok_or("no salt")?;
        let expected = parsed.hash.as_ref().ok_or("no hash output")?.as_bytes();
        let mut computed = vec![0u8; expected.len()];
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        self.computations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut memory = self.take_memory(params.block_count());
        let result = argon2.hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut computed,
            &mut memory[..],
        );
        self.return_memory(memory);
        result.map_err(|_| "argon2 refused the inputs")?;
        if aws_lc_rs::constant_time::verify_slices_are_equal(&computed, expected).is_err() {
            return Ok(Verification::Mismatch);
        }
        let needs_rehash = params.m_cost() < self.params.m_cost()
            || params.t_cost() < self.params.t_cost()
            || expected.len() < 32
            || params.p_cost() != self.params.p_cost();
        Ok(Verification::Match { needs_rehash })
    }

    fn take_memory(&self, blocks: usize) -> Vec<Block> {
        let pooled = (blocks == self.params.block_count())
            .then(|| self.memory_pool.lock().ok().and_then(|mut pool| pool.pop()))
            .flatten();
        pooled.unwrap_or_else(|| vec![Block::new(); blocks])
    }

    fn return_memory(&self, memory: Vec<Block>) {
        // Only the standard size is kept; at most a few (one per concurrent verify).
        if memory.len() != self.params.block_count() {
            return;
        }
        if let Ok(mut pool) = self.memory_pool.lock()
            && pool.len() < 4
        {
            pool.push(memory);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn hasher() -> &'static PasswordHasher {
        static HASHER: OnceLock<PasswordHasher> = OnceLock::new();
        HASHER.get_or_init(PasswordHasher::new)
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_string())
    }

    /// A hash made with other parameters, as an older deployment or an attacker might store.
    fn hash_with(m: u32, t: u32, p: u32, password: &str) -> StoredHash {
        let params = Params::new(m, t, p, Some(32)).unwrap();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        StoredHash(
            argon2
                .hash_password(password.as_bytes())
                .unwrap()
                .to_string(),
        )
    }

    #[test]
    fn new_hashes_are_argon2id_with_the_approved_parameters() {
        let stored = hasher().hash(&secret("correct horse battery")).unwrap();
        assert!(
            stored
                .as_phc()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            stored.as_phc()
        );
    }

    #[test]
    fn the_right_password_matches_without_rehash() {
        let stored = hasher().hash(&secret("correct horse battery")).unwrap();
        assert_eq!(
            hasher().verify(&secret("correct horse battery"), &stored),
            Verification::Match {
                needs_rehash: false
            }
        );
    }

    #[test]
    fn a_wrong_password_mismatches() {
        let stored = hasher().hash(&secret("correct horse battery")).unwrap();
        assert_eq!(
            hasher().verify(&secret("correct horse batterz"), &stored),
            Verification::Mismatch
        );
    }

    #[test]
    fn the_129th_character_matters_no_truncation() {
        let long = "a".repeat(128);
        let stored = hasher().hash(&secret(&long)).unwrap();
        let longer = format!("{long}b");
        assert!(!hasher().verify(&secret(&longer), &stored).is_match());
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_salt() {
        let a = hasher().hash(&secret("same password")).unwrap();
        let b = hasher().hash(&secret("same password")).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_weak_stored_hash_verifies_and_asks_for_a_rehash() {
        let weak = hash_with(8 * 1024, 1, 1, "old password");
        assert_eq!(
            hasher().verify(&secret("old password"), &weak),
            Verification::Match { needs_rehash: true }
        );
    }

    #[test]
    fn a_huge_memory_cost_is_refused_before_computing() {
        // m = 4 GiB would take seconds and 4 GiB of memory if it were computed.
        let planted = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                       AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let started = std::time::Instant::now();
        let result = hasher().verify(&secret("whatever"), &StoredHash::from_phc(planted.into()));
        assert_eq!(result, Verification::Mismatch);
        // Not a timing assertion on our code's speed: computing it would need 4 GiB.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn too_many_iterations_are_refused() {
        let planted = hash_with(1024, MAX_ITERATIONS + 1, 1, "pw");
        assert_eq!(
            hasher().verify(&secret("pw"), &planted),
            Verification::Mismatch
        );
    }

    #[test]
    fn malformed_and_foreign_hashes_mismatch_without_panicking() {
        for stored in [
            "",
            "plaintext",
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA",
            "$2b$12$abcdefghijklmnopqrstuv",
            "$argon2id$v=16$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(
                hasher().verify(&secret("pw"), &StoredHash::from_phc(stored.into())),
                Verification::Mismatch,
                "{stored}"
            );
        }
    }

    #[test]
    fn the_dummy_verify_never_matches() {
        assert_eq!(
            hasher().verify_dummy(&secret("anything")),
            Verification::Mismatch
        );
        assert_eq!(hasher().verify_dummy(&secret("")), Verification::Mismatch);
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_hash_costs() {
        // Same algorithm, version, parameters, salt and output lengths as a fresh hash: an
        // unknown user's login does the same work as a known one's.
        let parse = |phc: &str| {
            let parsed = argon2::PasswordHash::new(phc).unwrap();
            let salt: &[u8] = parsed.salt.as_ref().unwrap().as_ref();
            (
                parsed.algorithm.to_string(),
                parsed.version,
                Params::try_from(&parsed).unwrap(),
                salt.len(),
                parsed.hash.as_ref().unwrap().as_bytes().len(),
            )
        };
        let real = hasher().hash(&secret("a real password")).unwrap();
        let (m, t, p) = HASH_PARAMS;
        let dummy = parse(DUMMY_HASH);
        assert_eq!(dummy, parse(real.as_phc()));
        assert_eq!(
            (dummy.2.m_cost(), dummy.2.t_cost(), dummy.2.p_cost()),
            (m, t, p)
        );
        // A hasher of its own: the shared one counts other tests' verifies too.
        let fresh = PasswordHasher::new();
        fresh.verify_dummy(&secret("anything"));
        assert_eq!(fresh.computations(), 1, "the dummy verify computes");
    }

    #[test]
    fn the_password_policy_bounds_length_in_characters() {
        assert!(check_new_password(&secret("short"), "bob").is_err());
        assert!(check_new_password(&secret("eightchr"), "bob").is_ok());
        assert!(check_new_password(&secret(&"x".repeat(64)), "bob").is_ok());
        assert!(check_new_password(&secret(&"é".repeat(128)), "bob").is_ok());
        assert!(check_new_password(&secret(&"x".repeat(129)), "bob").is_err());
    }

    #[test]
    fn the_password_policy_refuses_the_username_and_common_passwords() {
        assert!(matches!(
            check_new_password(&secret("alice-2026!"), "alice"),
            Err(PasswordError::ContainsUsername)
        ));
        assert!(matches!(
            check_new_password(&secret("Password123"), "bob"),
            Err(PasswordError::Common)
        ));
        assert!(check_new_password(&secret("correct horse battery staple"), "bob").is_ok());
    }

    #[test]
    fn debug_output_never_shows_a_hash() {
        let stored = hasher().hash(&secret("correct horse battery")).unwrap();
        assert_eq!(format!("{stored:?}"), "StoredHash([REDACTED])");
    }
}
