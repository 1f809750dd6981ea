//! Why a token was refused.

use std::fmt;

/// Why verification failed. Every variant has a stable, loggable
/// [`reason`](VerifyError::reason); none carries token material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a JWS compact serialization: wrong number of parts, bad base64url,
    /// bad JSON, duplicate members, or over the size limit.
    #[error("malformed token")]
    Malformed,
    /// `typ` missing or not `at+jwt` / `application/at+jwt` (RFC 9068 4).
    #[error("token type is not at+jwt")]
    InvalidType,
    /// The header carries `crit`: no extension is understood here (RFC 7515 4.1.11).
    #[error("token has a crit header")]
    CriticalHeader,
    /// `alg` is not on the allowlist (symmetric, `none`, or unknown).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No `kid` in the header.
    #[error("token has no kid")]
    MissingKid,
    /// `iss` names no trusted issuer.
    #[error("issuer not trusted")]
    UnknownIssuer,
    /// `kid` names no key of the token's issuer, even after a refetch.
    #[error("unknown key id")]
    UnknownKid,
    /// The key named by `kid` is for another algorithm than the header's `alg`.
    #[error("key does not match the token's algorithm")]
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// A claim is missing or has the wrong JSON type.
    #[error("claim {0} missing or of the wrong type")]
    InvalidClaim(Claim),
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// No `aud` value is one of the issuer's configured audiences.
    #[error("audience not accepted")]
    InvalidAudience,
    /// The verifier has no usable keys for the issuer: never fetched, or the
    /// last good set is older than the configured maximum stale age. This is a
    /// server condition, not the client's fault.
    #[error("signing keys unavailable")]
    KeysUnavailable,
    /// The token's session (`sid`) is revoked, or it was issued before its
    /// subject's revocation time (logout, logout-all, refresh-token reuse).
    #[error("token revoked")]
    Revoked,
    /// The revocation feed is stale and `REVOCATION_STALE_POLICY=refuse`:
    /// whether the token is revoked cannot be known. A server condition.
    #[error("revocation list stale")]
    RevocationStale,
}

/// A claim named in [`VerifyError::InvalidClaim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// `iss`
    Iss,
    /// `sub`
    Sub,
    /// `aud`
    Aud,
    /// `exp`
    Exp,
    /// `nbf`
    Nbf,
    /// `iat`
    Iat,
    /// `jti`
    Jti,
    /// `scope`
    Scope,
    /// `client_id`
    ClientId,
    /// `sid`
    Sid,
}

impl Claim {
    /// The claim's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Claim::Iss => "iss",
            Claim::Sub => "sub",
            Claim::Aud => "aud",
            Claim::Exp => "exp",
            Claim::Nbf => "nbf",
            Claim::Iat => "iat",
            Claim::Jti => "jti",
            Claim::Scope => "scope",
            Claim::ClientId => "client_id",
            Claim::Sid => "sid",
        }
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl VerifyError {
    /// A short, stable, snake_case reason for logs and metrics labels.
    pub fn reason(self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed",
            VerifyError::InvalidType => "invalid_type",
            VerifyError::CriticalHeader => "crit_header",
            VerifyError::AlgorithmNotAllowed => "alg_not_allowed",
            VerifyError::MissingKid => "missing_kid",
            VerifyError::UnknownIssuer => "unknown_issuer",
            VerifyError::UnknownKid => "unknown_kid",
            VerifyError::KeyAlgorithmMismatch => "key_alg_mismatch",
            VerifyError::InvalidSignature => "invalid_signature",
            VerifyError::InvalidClaim(c) => match c {
                Claim::Iss => "invalid_claim_iss",
                Claim::Sub => "invalid_claim_sub",
                Claim::Aud => "invalid_claim_aud",
                Claim::Exp => "invalid_claim_exp",
                Claim::Nbf => "invalid_claim_nbf",
                Claim::Iat => "invalid_claim_iat",
                Claim::Jti => "invalid_claim_jti",
                Claim::Scope => "invalid_claim_scope",
                Claim::ClientId => "invalid_claim_client_id",
                Claim::Sid => "invalid_claim_sid",
            },
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::IssuedInFuture => "issued_in_future",
            VerifyError::InvalidAudience => "invalid_audience",
            VerifyError::KeysUnavailable => "keys_unavailable",
            VerifyError::Revoked => "revoked",
            VerifyError::RevocationStale => "revocation_stale",
        }
    }

    /// True when the failure is the server's (no usable keys, a stale
    /// revocation feed under the refuse policy), not the token's: the
    /// sidecar answers 503 rather than 401 for these.
    pub fn is_server_side(self) -> bool {
        matches!(self, VerifyError::KeysUnavailable | VerifyError::RevocationStale)
    }
}
