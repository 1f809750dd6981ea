//! Arbitrary bytes as a token into `Verifier::verify_at`, with the real keys
//! installed. The seeds are valid tokens of every algorithm, so mutations
//! start from tokens that reach the claims checks.
//!
//! Invariants, beyond "no panic":
//! - the decision is the same when repeated (the second call is usually a
//!   cache hit) and the same on a verifier without the token cache;
//! - keys are installed and fresh: never `KeysUnavailable`;
//! - an accepted token is a three-part JWS within the size bound whose
//!   header is the profile (`typ` at+jwt, an allowed `alg`, a `kid` of its
//!   own issuer's keys), whose payload is exactly the claims returned, whose
//!   issuer is trusted and whose audience is accepted, with
//!   `now < exp + leeway`, `nbf <= now + leeway` and `iat <= now + leeway`,
//!   a non-empty `sub`, and scopes without blanks.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::{NOW, check_accepted, summary, verifier};
use token_core::{Verifier, VerifyError};

static CACHED: LazyLock<Arc<Verifier>> = LazyLock::new(|| verifier(true));
static UNCACHED: LazyLock<Arc<Verifier>> = LazyLock::new(|| verifier(false));

/// The target: one input, checked against the invariants above (a panic is a finding).
pub fn run(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let now = Duration::from_secs(NOW);
    let first = CACHED.verify_at(token, now);
    let again = CACHED.verify_at(token, now);
    let fresh = UNCACHED.verify_at(token, now);
    assert_eq!(summary(&first), summary(&again), "decision changed when repeated");
    assert_eq!(summary(&first), summary(&fresh), "decision depends on the cache");
    match &first {
        Ok(t) => check_accepted(token, t, NOW),
        Err(e) => assert_ne!(*e, VerifyError::KeysUnavailable, "keys are installed"),
    }
}
