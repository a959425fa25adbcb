//! The signing algorithms a key set may use, by their JOSE names.

use jsonwebtoken::Algorithm;

/// The algorithms a key set may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    Es256,
    EdDsa,
    Hs256,
    /// RSA-2048, PKCS#1 v1.5 ([`super::rs256`]): for verifiers that take RSA only.
    Rs256,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 4] = [Self::Es256, Self::EdDsa, Self::Hs256, Self::Rs256];

    /// The JOSE name (`alg`): `ES256`, `EdDSA`, `HS256`, `RS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
        }
    }

    /// Exactly one of the JOSE names (case matters, as in a JWS header).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == raw)
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
        }
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
