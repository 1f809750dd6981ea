//! Counters the edges expose (the sidecar as Prometheus text, the authorizer
//! in its logs). Plain atomics: recording costs one relaxed add.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Claim, VerifyError};

/// What an edge decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Valid token with the required scopes.
    Allow,
    /// Valid token without a required scope (403).
    InsufficientScope,
    /// No credentials at all (401 with a bare challenge).
    MissingToken,
    /// Credentials present but not a Bearer token, or unusable (400/401).
    InvalidRequest,
    /// The token was refused.
    Rejected(VerifyError),
}

const VERIFY_ERRORS: [VerifyError; 26] = [
    VerifyError::Malformed,
    VerifyError::InvalidType,
    VerifyError::CriticalHeader,
    VerifyError::AlgorithmNotAllowed,
    VerifyError::MissingKid,
    VerifyError::UnknownIssuer,
    VerifyError::UnknownKid,
    VerifyError::KeyAlgorithmMismatch,
    VerifyError::InvalidSignature,
    VerifyError::InvalidClaim(Claim::Iss),
    VerifyError::InvalidClaim(Claim::Sub),
    VerifyError::InvalidClaim(Claim::Aud),
    VerifyError::InvalidClaim(Claim::Exp),
    VerifyError::InvalidClaim(Claim::Nbf),
    VerifyError::InvalidClaim(Claim::Iat),
    VerifyError::InvalidClaim(Claim::Jti),
    VerifyError::InvalidClaim(Claim::Scope),
    VerifyError::InvalidClaim(Claim::ClientId),
    VerifyError::InvalidClaim(Claim::Sid),
    VerifyError::Expired,
    VerifyError::NotYetValid,
    VerifyError::IssuedInFuture,
    VerifyError::InvalidAudience,
    VerifyError::KeysUnavailable,
    VerifyError::Revoked,
    VerifyError::RevocationStale,
];
const FIXED: usize = 4;
const SLOTS: usize = FIXED + VERIFY_ERRORS.len();

impl Decision {
    fn slot(self) -> usize {
        match self {
            Decision::Allow => 0,
            Decision::InsufficientScope => 1,
            Decision::MissingToken => 2,
            Decision::InvalidRequest => 3,
            Decision::Rejected(e) => FIXED + VERIFY_ERRORS.iter().position(|x| *x == e).unwrap_or(0),
        }
    }

    fn from_slot(i: usize) -> Decision {
        match i {
            0 => Decision::Allow,
            1 => Decision::InsufficientScope,
            2 => Decision::MissingToken,
            3 => Decision::InvalidRequest,
            n => Decision::Rejected(VERIFY_ERRORS[n - FIXED]),
        }
    }

    /// `allow`, `deny` (403), `unauthorized` (401/400) or `unavailable` (503).
    pub fn outcome(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::InsufficientScope => "deny",
            Decision::Rejected(e) if e.is_server_side() => "unavailable",
            _ => "unauthorized",
        }
    }

    /// The stable reason label.
    pub fn reason(self) -> &'static str {
        match self {
            Decision::Allow => "ok",
            Decision::InsufficientScope => "insufficient_scope",
            Decision::MissingToken => "missing_token",
            Decision::InvalidRequest => "invalid_request",
            Decision::Rejected(e) => e.reason(),
        }
    }
}

/// Process-wide counters of one verifier.
#[derive(Debug)]
pub struct Metrics {
    decisions: [AtomicU64; SLOTS],
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            decisions: std::array::from_fn(|_| AtomicU64::new(0)),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one decision.
    #[inline]
    pub fn record(&self, d: Decision) {
        self.decisions[d.slot()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many times `d` was recorded.
    pub fn count(&self, d: Decision) -> u64 {
        self.decisions[d.slot()].load(Ordering::Relaxed)
    }

    /// Every decision kind with its count.
    pub fn decisions(&self) -> impl Iterator<Item = (Decision, u64)> + '_ {
        self.decisions.iter().enumerate().map(|(i, c)| (Decision::from_slot(i), c.load(Ordering::Relaxed)))
    }

    /// Verified-token cache hits.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Verified-token cache misses (signature checked).
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.load(Ordering::Relaxed)
    }

    /// Appends the decision and cache counters in Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        out.push_str("# HELP auth_decisions_total Authorization decisions by outcome and reason.\n");
        out.push_str("# TYPE auth_decisions_total counter\n");
        for (i, c) in self.decisions.iter().enumerate() {
            let d = Decision::from_slot(i);
            let _ = writeln!(
                out,
                "auth_decisions_total{{outcome=\"{}\",reason=\"{}\"}} {}",
                d.outcome(),
                d.reason(),
                c.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP auth_token_cache_hits_total Tokens answered from the verified-token cache.\n");
        out.push_str("# TYPE auth_token_cache_hits_total counter\n");
        let _ = writeln!(out, "auth_token_cache_hits_total {}", self.cache_hits());
        out.push_str("# HELP auth_token_cache_misses_total Tokens whose signature was checked.\n");
        out.push_str("# TYPE auth_token_cache_misses_total counter\n");
        let _ = writeln!(out, "auth_token_cache_misses_total {}", self.cache_misses());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_round_trips() {
        for i in 0..SLOTS {
            assert_eq!(Decision::from_slot(i).slot(), i);
        }
    }

    #[test]
    fn outcomes() {
        assert_eq!(Decision::Allow.outcome(), "allow");
        assert_eq!(Decision::InsufficientScope.outcome(), "deny");
        assert_eq!(Decision::Rejected(VerifyError::Expired).outcome(), "unauthorized");
        assert_eq!(Decision::Rejected(VerifyError::KeysUnavailable).outcome(), "unavailable");
        assert_eq!(Decision::Rejected(VerifyError::Revoked).outcome(), "unauthorized");
        assert_eq!(Decision::Rejected(VerifyError::Revoked).reason(), "revoked");
        assert_eq!(Decision::Rejected(VerifyError::RevocationStale).outcome(), "unavailable");
    }

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        m.record(Decision::Rejected(VerifyError::Expired));
        m.record(Decision::Rejected(VerifyError::Expired));
        let mut s = String::new();
        m.render_prometheus(&mut s);
        assert!(s.contains("auth_decisions_total{outcome=\"unauthorized\",reason=\"expired\"} 2\n"), "{s}");
    }
}
