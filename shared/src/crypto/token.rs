//! Access tokens: issuing and verifying JWS compact tokens (ES256, EdDSA or HS256).
//!
//! Verification is hardened beyond what `jsonwebtoken` does by default (RFC 8725,
//! SECURITY.md rows 2-23):
//! - the `Authorization` value must be exactly `Bearer <one token>`;
//! - tokens longer than [`MAX_TOKEN_BYTES`] are refused before any decoding;
//! - the shape is checked first: three base64url segments without padding;
//! - the header's `kid` must name one of our keys exactly ([`crate::crypto::keys::KeyRing`]); the
//!   algorithm is pinned to that key's; `none` and every other `alg` fail;
//! - `typ` must be `JWT`; any `crit` header fails (RFC 7515 §4.1.11: we understand none);
//!   `jku`/`x5u`/`jwk` are never fetched or used, and a token carrying them fails;
//! - `sub`, `role`, `iss`, `aud`, `iat`, `nbf`, `exp`, `jti` are all required; `iss` and `aud`
//!   must equal ours; times must be JSON integers (a string `exp` fails, CVE-2026-25537);
//! - `exp` and `nbf` are checked against the `now` passed in, with [`CLOCK_LEEWAY_SECS`].
//!
//! Keys come from a [`LiveKeys`] (a [`KeyRing`] re-read as rotation changes it); every
//! token's header names its key with `kid`.

use crate::crypto::keys::live::{KeySourceError, LiveKeys};
use crate::crypto::keys::{KeyRing, TOKEN_TYPE};
use crate::users::user::{Role, User, is_valid_user_id};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Longest token accepted, in bytes. Ours are ~350 bytes; 4 KiB leaves room for growth and
/// stops a 1 MB token from being base64-decoded and parsed.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Clock skew tolerated on `exp`, `nbf` and `iat`. Lambda hosts keep NTP time, so skew is
/// small; 30 s is the low end of RFC 7519's "a few minutes" and well inside ASVS's ≤ 60 s.
pub const CLOCK_LEEWAY_SECS: u64 = 30;

/// Default access-token lifetime (`TOKEN_TTL_SECONDS`): 15 minutes (SECURITY.md row 40).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 900;

/// What goes into and is demanded of every access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// `JWT_ISSUER` (default `lambda-jwt-auth`): the `iss` claim issued and required.
    pub issuer: String,
    /// `JWT_AUDIENCE` (default `lambda-jwt-auth-api`): the `aud` claim issued and required.
    pub audience: String,
    /// `TOKEN_TTL_SECONDS` (default 900, at most 3600): access-token lifetime.
    pub ttl_secs: u64,
    /// `JWT_PREVIOUS_ISSUER` (default none): an `iss` still accepted, never issued, while
    /// the tokens of an earlier issuer setting live out their lifetime after a change.
    pub previous_issuer: Option<String>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "lambda-jwt-auth".into(),
            audience: "lambda-jwt-auth-api".into(),
            ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            previous_issuer: None,
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub role: Role,
    /// The username at issue time (forwarded to the backends in the authorizer context).
    pub username: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// 128 random bits, base64url: names this token in logs and on the deny-list.
    pub jti: String,
    /// The session (refresh-token family) this token belongs to; logout revokes it.
    pub sid: String,
    /// The user's token version at issue time; "log out everywhere", a role change or
    /// disabling the user bumps the stored version, and older tokens stop working.
    pub ver: u64,
    /// How the user signed in (RFC 8176): `["pwd"]`, or `["pwd", "otp"]` after the second
    /// step ([`crate::access::second_factor`]). A token without it (issued before it
    /// existed) counts as password only.
    #[serde(default)]
    pub amr: Vec<String>,
}

impl Claims {
    /// Whether the user signed in with its second factor.
    pub fn second_factor(&self) -> bool {
        includes_second_factor(&self.amr)
    }

    /// The claims of a new access token for `user` in `session`, with a fresh `jti`, valid
    /// from `now` for `ttl_secs`.
    pub fn new(
        user: &User,
        session: &Session,
        settings: &TokenSettings,
        now: u64,
        ttl_secs: u64,
    ) -> Self {
        Self {
            sub: user.id.clone(),
            role: user.role,
            username: user.username.clone(),
            iss: settings.issuer.clone(),
            aud: settings.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + ttl_secs,
            jti: new_jti(),
            sid: session.id.clone(),
            ver: session.token_version,
            amr: sign_in_methods(session.second_factor),
        }
    }
}

/// RFC 8176's method values as tokens carry them in `amr`.
pub const PASSWORD_METHOD: &str = "pwd";
/// A one-time code: a TOTP code or a recovery code.
pub const ONE_TIME_CODE_METHOD: &str = "otp";

/// The `amr` of a sign-in, with or without the second step.
pub fn sign_in_methods(second_factor: bool) -> Vec<String> {
    let mut methods = vec![PASSWORD_METHOD.to_string()];
    if second_factor {
        methods.push(ONE_TIME_CODE_METHOD.to_string());
    }
    methods
}

/// Whether a list of methods includes the second factor.
pub fn includes_second_factor<S: AsRef<str>>(methods: &[S]) -> bool {
    methods
        .iter()
        .any(|method| method.as_ref() == ONE_TIME_CODE_METHOD)
}

/// Why a token was refused. Every variant is answered the same (401 `Unauthorized`); the
/// variant is for logs and metrics only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token")]
    Missing,
    #[error("not a single Bearer token")]
    NotBearer,
    #[error("token too long")]
    TooLong,
    #[error("malformed token")]
    Malformed,
    #[error("header not accepted")]
    Header,
    #[error("no key of ours has this kid")]
    UnknownKey,
    #[error("invalid signature or claims")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
}

/// A key ring ([`KeyRing::hs256`] for one HS256 secret, [`KeyRing::from_document`] for a key
/// set, [`KeyRing::from_published`] for its public half).
pub type TokenKeys = KeyRing;

/// What the issuer and the verifier take: live keys, or one ring that never changes.
pub trait IntoLiveKeys {
    fn into_live_keys(self) -> Arc<LiveKeys>;
}

impl IntoLiveKeys for Arc<LiveKeys> {
    fn into_live_keys(self) -> Arc<LiveKeys> {
        self
    }
}

impl IntoLiveKeys for Arc<KeyRing> {
    fn into_live_keys(self) -> Arc<LiveKeys> {
        LiveKeys::fixed(self)
    }
}

impl IntoLiveKeys for KeyRing {
    fn into_live_keys(self) -> Arc<LiveKeys> {
        LiveKeys::fixed(Arc::new(self))
    }
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No key set has been read yet (the source was unavailable, or rotation has not
    /// created the first set): a later try may work.
    #[error("no signing key loaded yet")]
    NoKeys,
    #[error("signing failed")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The login session a token belongs to: the refresh-token family, the user's token
/// version when it began, and whether it began with the second factor (every token of the
/// session says so in `amr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub token_version: u64,
    pub second_factor: bool,
}

impl Session {
    /// A new session signed in with the password alone; its id is 128 random bits,
    /// base64url.
    pub fn start(token_version: u64) -> Self {
        Self {
            id: new_jti(),
            token_version,
            second_factor: false,
        }
    }

    /// A new session signed in with the password and the second factor.
    pub fn start_with_second_factor(token_version: u64) -> Self {
        Self {
            second_factor: true,
            ..Self::start(token_version)
        }
    }
}

/// A freshly issued access token.
#[derive(Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[REDACTED]")
            .field("claims", &self.claims)
            .finish()
    }
}

/// Issues access tokens.
pub struct TokenIssuer {
    keys: Arc<LiveKeys>,
    settings: TokenSettings,
}

impl TokenIssuer {
    pub fn new(keys: impl IntoLiveKeys, settings: TokenSettings) -> Self {
        Self {
            keys: keys.into_live_keys(),
            settings,
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.settings.ttl_secs
    }

    /// The `iss` of every token issued.
    pub fn issuer_name(&self) -> &str {
        &self.settings.issuer
    }

    /// The keys this issuer signs with (the JWKS route publishes their public half).
    pub fn keys(&self) -> &Arc<LiveKeys> {
        &self.keys
    }

    /// Signs a token for `user` in session `session`, valid from `now` for the configured
    /// lifetime.
    pub fn issue(
        &self,
        user: &User,
        session: &Session,
        now: u64,
    ) -> Result<IssuedToken, IssueError> {
        self.issue_with_lifetime(user, session, now, self.settings.ttl_secs)
    }

    /// Signs a token with an explicit lifetime (tests and the local event generator).
    pub fn issue_with_lifetime(
        &self,
        user: &User,
        session: &Session,
        now: u64,
        ttl_secs: u64,
    ) -> Result<IssuedToken, IssueError> {
        let claims = Claims::new(user, session, &self.settings, now, ttl_secs);
        let token = self.sign_at(&claims, now)?;
        Ok(IssuedToken { token, claims })
    }

    /// Signs arbitrary claims with the key a signer uses now (tests craft edge cases).
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, IssueError> {
        self.sign_at(claims, self.keys.now())
    }

    fn sign_at(&self, claims: &impl Serialize, now: u64) -> Result<String, IssueError> {
        let ring = self.keys.signing_ring().ok_or(IssueError::NoKeys)?;
        let valid_until = now
            .saturating_add(self.settings.ttl_secs)
            .saturating_add(CLOCK_LEEWAY_SECS);
        let (header, key) = ring
            .signer(now, valid_until, &|kid| self.keys.first_seen(kid))
            .ok_or(IssueError::NoKeys)?;
        let token = jsonwebtoken::encode(header, claims, key)?;
        Ok(if header.alg == jsonwebtoken::Algorithm::ES256 {
            crate::crypto::keys::es256::with_low_s(token)
        } else {
            token
        })
    }
}

/// 128 random bits, base64url without padding.
fn new_jti() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    crate::crypto::secret::fill_random(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Verifies access tokens. Build once at cold start; `verify` costs ~0.6x a bare
/// `jsonwebtoken::decode` with HS256 (2-5 µs on a 2-core test machine) and within a few
/// percent of the signature check alone with ES256 (~80 µs) (`make bench`).
///
/// The JWS is taken apart here rather than by `jsonwebtoken::decode`, which parses the
/// header twice, the claims twice, and rebuilds the verifying key on every call. What it
/// checks is checked here too, in the order RFC 8725 asks: the header (only to find our
/// key), the signature with that key's one algorithm (`SignatureCheck`,
/// made ready once per ring), and only then the claims.
pub struct TokenVerifier {
    keys: Arc<LiveKeys>,
    issuer: String,
    previous_issuer: Option<String>,
    audience: String,
}

/// The JOSE header fields the verifier reads or refuses (RFC 7515 §4.1); any other
/// member is ignored. A repeated member fails to parse, so no two readers can disagree on
/// which `alg` or `kid` a token names.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<std::borrow::Cow<'a, str>>,
    // Refused whatever their value, `null` included: we understand no critical
    // extension, and never fetch or trust a key a token points at (RFC 8725 §3.10).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
}

/// `true` for a member that is there, whatever its value (`Option` would read `null` as
/// absent).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

impl JoseHeader<'_> {
    fn refused_members(&self) -> bool {
        self.crit || self.jku || self.x5u || self.jwk || self.x5c
    }
}

/// One base64url segment (no padding, as [`check_shape`] made sure), decoded.
fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
}

/// The `kid` a compact token's header names, if it parses.
fn header_kid(token: &str) -> Option<String> {
    let header = decode_segment(token.split('.').next()?)?;
    let header: JoseHeader = serde_json::from_slice(&header).ok()?;
    header.kid.map(std::borrow::Cow::into_owned)
}

impl TokenVerifier {
    pub fn new(keys: impl IntoLiveKeys, settings: &TokenSettings) -> Self {
        Self {
            keys: keys.into_live_keys(),
            issuer: settings.issuer.clone(),
            previous_issuer: settings.previous_issuer.clone(),
            audience: settings.audience.clone(),
        }
    }

    pub fn keys(&self) -> &Arc<LiveKeys> {
        &self.keys
    }

    /// Verifies the raw `Authorization` value as [`Self::verify_authorization`] does, with
    /// the keys kept current: a scheduled re-read when due, and one re-read when the token
    /// names a `kid` the ring lacks (at most once per
    /// [`crate::crypto::keys::live::UNKNOWN_KID_REREAD_SECS`], however many such tokens come).
    /// `Err(Err(_))` is a key source that could not be read: not the caller's fault.
    pub async fn verify_authorization_live(
        &self,
        authorization: Option<&str>,
        now: u64,
    ) -> Result<Claims, Result<TokenError, KeySourceError>> {
        self.keys.refresh_if_due().await;
        match self.verify_authorization(authorization, now) {
            Err(TokenError::UnknownKey) => {
                let kid = authorization
                    .and_then(|value| bearer_token(value).ok())
                    .and_then(header_kid)
                    .unwrap_or_default();
                if self.keys.reread_for_unknown_kid(&kid).await.map_err(Err)? {
                    self.verify_authorization(authorization, now).map_err(Ok)
                } else {
                    Err(Ok(TokenError::UnknownKey))
                }
            }
            other => other.map_err(Ok),
        }
    }

    /// Verifies the raw `Authorization` value (`Bearer <jwt>`).
    pub fn verify_authorization(
        &self,
        authorization: Option<&str>,
        now: u64,
    ) -> Result<Claims, TokenError> {
        let token = bearer_token(authorization.ok_or(TokenError::Missing)?)?;
        self.verify(token, now)
    }

    /// Verifies a compact JWS and returns its claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        check_shape(token)?;
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, claims) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        // The header is read before the signature is checked, to find the key only: `kid`
        // is an exact key into our own map, never a URL, a path or a key to trust.
        let header = decode_segment(header).ok_or(TokenError::Malformed)?;
        let header: JoseHeader = serde_json::from_slice(&header).map_err(|_| TokenError::Header)?;
        let kid = header.kid.as_deref().ok_or(TokenError::Header)?;
        let ring = self.keys.ring().ok_or(TokenError::UnknownKey)?;
        let (alg, check) = ring.verifying_key(kid, now).ok_or(TokenError::UnknownKey)?;
        // The algorithm is the key's, and the header must name exactly it: `none`, another
        // family, or a look-alike name all fail here.
        if header.alg != alg.as_str()
            || header.typ.as_deref() != Some(TOKEN_TYPE)
            || header.refused_members()
        {
            return Err(TokenError::Header);
        }
        let signature = decode_segment(signature).ok_or(TokenError::Invalid)?;
        if !check.verify(signing_input.as_bytes(), &signature) {
            return Err(TokenError::Invalid);
        }
        // Every claim is required and typed (times are JSON integers: a string `exp`
        // fails, CVE-2026-25537); a repeated claim fails to parse.
        let claims = decode_segment(claims).ok_or(TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&claims).map_err(|_| TokenError::Invalid)?;
        let known_issuer = claims.iss == self.issuer
            || self.previous_issuer.as_deref() == Some(claims.iss.as_str());
        if !known_issuer || claims.aud != self.audience {
            return Err(TokenError::Invalid);
        }
        if is_expired(claims.exp, now) {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now.saturating_add(CLOCK_LEEWAY_SECS)
            || claims.iat > now.saturating_add(CLOCK_LEEWAY_SECS)
        {
            return Err(TokenError::NotYetValid);
        }
        let opaque_id_ok = |id: &str| !id.is_empty() && id.len() <= 64;
        if !is_valid_user_id(&claims.sub)
            || !opaque_id_ok(&claims.jti)
            || !opaque_id_ok(&claims.sid)
        {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

/// Whether a token with this `exp` is expired at `now`, with [`CLOCK_LEEWAY_SECS`]: the one
/// rule the verifier and the backends (behind API Gateway's cache) both apply.
pub fn is_expired(exp: u64, now: u64) -> bool {
    exp.saturating_add(CLOCK_LEEWAY_SECS) <= now
}

/// Extracts the token from `Bearer <token>`: one scheme (case-insensitive, RFC 7235), one
/// space, one token; anything else (two tokens, a comma list, other schemes) fails.
pub fn bearer_token(authorization: &str) -> Result<&str, TokenError> {
    if authorization.len() > MAX_TOKEN_BYTES + 7 {
        return Err(TokenError::TooLong);
    }
    let (scheme, token) = authorization.split_once(' ').ok_or(TokenError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(TokenError::NotBearer);
    }
    Ok(token)
}

/// Three non-empty base64url segments (no padding), within [`MAX_TOKEN_BYTES`].
fn check_shape(token: &str) -> Result<(), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let mut segments = 0;
    for segment in token.split('.') {
        segments += 1;
        if segment.is_empty()
            || !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(TokenError::Malformed);
        }
    }
    if segments != 3 {
        return Err(TokenError::Malformed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::{KeySetDocument, SigningAlgorithm, generate_key};

    /// The pin itself, not only its effect: every key of a mixed set verifies a token
    /// whose header names its stored algorithm, and refuses the same token, signed by the
    /// same key, whose header names any other.
    #[test]
    fn each_key_is_verified_with_its_own_algorithm_only() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut document = KeySetDocument::generate(SigningAlgorithm::Es256, 0);
        document.keys.push(generate_key(SigningAlgorithm::EdDsa, 0));
        document.keys.push(generate_key(SigningAlgorithm::Hs256, 0));
        let settings = TokenSettings::default();
        let verifier = TokenVerifier::new(
            std::sync::Arc::new(KeyRing::from_document(&document).unwrap()),
            &settings,
        );
        let now = 1_000;
        let claims = serde_json::json!({
            "sub": "0".repeat(32), "role": "admin", "username": "alice",
            "iss": settings.issuer, "aud": settings.audience,
            "iat": now, "nbf": now, "exp": now + 60, "jti": "j", "sid": "s", "ver": 0,
        });
        for stored in &document.keys {
            let one = KeySetDocument {
                current: stored.kid.clone(),
                keys: vec![stored.clone()],
            };
            let ring = KeyRing::from_document(&one).unwrap();
            let (signer_header, key) = ring.signer(now, now, &|_| 0).unwrap();
            for named in ["ES256", "EdDSA", "HS256", "none", "es256", "HS512"] {
                let header = serde_json::json!({"alg": named, "kid": stored.kid, "typ": "JWT"});
                let input = format!(
                    "{}.{}",
                    b64.encode(header.to_string()),
                    b64.encode(claims.to_string())
                );
                let signature =
                    jsonwebtoken::crypto::sign(input.as_bytes(), key, signer_header.alg).unwrap();
                let mut token = format!("{input}.{signature}");
                if signer_header.alg == jsonwebtoken::Algorithm::ES256 {
                    token = crate::crypto::keys::es256::with_low_s(token);
                }
                let verdict = verifier.verify(&token, now);
                if named == stored.alg {
                    assert!(verdict.is_ok(), "{named}: {verdict:?}");
                } else {
                    assert_eq!(
                        verdict,
                        Err(TokenError::Header),
                        "{} named {named}",
                        stored.alg
                    );
                }
            }
        }
    }
}
