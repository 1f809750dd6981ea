//! The signature algorithms the token profile allows.

use std::fmt;
use std::str::FromStr;

/// A JWS algorithm from the allowlist (RFC 8725 3.1).
///
/// Only asymmetric algorithms are here: a verifier that holds a shared secret
/// could also mint tokens, and `none` is never acceptable. Anything else in a
/// token's `alg` header is rejected before a key is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (the issuer's default: cheapest to verify).
    RS256,
    /// ECDSA with P-256 and SHA-256, fixed-length `r || s` signature.
    ES256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl Algorithm {
    /// Every allowed algorithm.
    pub const ALL: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

    /// The `alg` value as it appears in a JOSE header or a JWK.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses a header or JWK `alg`. Comparison is exact (RFC 7515 4.1.1:
    /// `alg` values are case-sensitive).
    pub fn from_jose(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Algorithm::RS256),
            "ES256" => Some(Algorithm::ES256),
            "EdDSA" => Some(Algorithm::EdDSA),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::from_jose(s).ok_or(UnknownAlgorithm)
    }
}

/// The string named no allowed algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm: expected one of RS256, ES256, EdDSA")]
pub struct UnknownAlgorithm;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_none_are_not_allowed() {
        for alg in ["none", "None", "HS256", "HS512", "rs256", "PS256", "ES384", ""] {
            assert_eq!(Algorithm::from_jose(alg), None, "{alg}");
        }
    }

    #[test]
    fn round_trips() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_jose(alg.as_str()), Some(alg));
        }
    }
}
