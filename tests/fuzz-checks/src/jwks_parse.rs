//! Arbitrary bytes into `token_core::keys::parse_jwks`, and the same document
//! installed into a verifier as if fetched.
//!
//! Invariants:
//! - parsing is deterministic (same keys, same skipped list);
//! - at most `MAX_KEYS_PER_SET` keys, each with a non-empty `kid`, no two
//!   with the same `kid` and algorithm, and every member of `keys` either
//!   taken or reported as skipped (one `TooMany` for the overflow);
//! - `install_jwks` succeeds exactly when the document parses with a usable
//!   key; after a failed install the previous keys stay in force;
//! - a token signed by the fixture key `rs1` is then accepted only if the key
//!   set in force has a key `rs1` for RS256, is `UnknownKid` when no key has
//!   that `kid`, `KeyAlgorithmMismatch` when only other algorithms do, and
//!   never `KeysUnavailable`.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::{ISS, NOW, keys, verifier};
use token_core::keys::{MAX_KEYS_PER_SET, ParsedJwks, SkippedKey, parse_jwks};
use token_core::{AccessClaims, Algorithm, Audience, Verifier, VerifyError};

static VERIFIER: LazyLock<Arc<Verifier>> = LazyLock::new(|| verifier(true));
static RS_TOKEN: LazyLock<String> = LazyLock::new(|| {
    let claims = AccessClaims {
        iss: ISS.into(),
        sub: "user-1".into(),
        aud: Audience::One("api".into()),
        exp: NOW + 900,
        iat: NOW,
        nbf: None,
        jti: "j".into(),
        scope: "read".into(),
        client_id: None,
        sid: None,
    };
    keys().rs.sign(&claims).unwrap_or_default()
});

thread_local! {
    /// (kid, alg) of the key set in force for `ISS`.
    static IN_FORCE: RefCell<Vec<(String, Algorithm)>> = RefCell::new(
        [("rs1", Algorithm::RS256), ("es1", Algorithm::ES256), ("ed1", Algorithm::EdDSA)]
            .into_iter()
            .map(|(k, a)| (k.to_owned(), a))
            .collect(),
    );
}

fn shape(p: &ParsedJwks) -> (Vec<(String, Algorithm)>, Vec<SkippedKey>) {
    (p.keys.keys().iter().map(|k| (k.kid().to_owned(), k.alg())).collect(), p.skipped.clone())
}

/// The target: one input, checked against the invariants above (a panic is a finding).
pub fn run(data: &[u8]) {
    let parsed = parse_jwks(data);
    let again = parse_jwks(data);
    assert_eq!(parsed.as_ref().map(shape), again.as_ref().map(shape), "parsing is not deterministic");

    if let Ok(p) = &parsed {
        let (kids, skipped) = shape(p);
        assert!(kids.len() <= MAX_KEYS_PER_SET, "{} keys", kids.len());
        for (i, (kid, alg)) in kids.iter().enumerate() {
            assert!(!kid.is_empty(), "a key without kid");
            assert!(!kids[..i].contains(&(kid.clone(), *alg)), "duplicate key {kid:?} {alg}");
        }
        let too_many = skipped.iter().filter(|s| **s == SkippedKey::TooMany).count();
        assert!(too_many <= 1);
        // Count the members as a plain JSON parser sees them.
        if let Ok(serde_json::Value::Object(doc)) = serde_json::from_slice::<serde_json::Value>(data)
            && let Some(serde_json::Value::Array(members)) = doc.get("keys")
        {
            let expected = members.len().min(MAX_KEYS_PER_SET) + usize::from(members.len() > MAX_KEYS_PER_SET);
            assert_eq!(kids.len() + skipped.len(), expected, "members lost or counted twice");
            assert_eq!(too_many, usize::from(members.len() > MAX_KEYS_PER_SET));
        }
    }

    let installed = VERIFIER.install_jwks(ISS, data);
    let usable = parsed.as_ref().is_ok_and(|p| !p.keys.is_empty());
    assert_eq!(installed.is_ok(), usable, "install_jwks disagrees with parse_jwks: {installed:?}");
    IN_FORCE.with(|in_force| {
        let mut in_force = in_force.borrow_mut();
        if let (true, Ok(p)) = (usable, &parsed) {
            *in_force = shape(p).0;
        }
        let result = VERIFIER.verify_at(&RS_TOKEN, Duration::from_secs(NOW));
        let has_kid = in_force.iter().any(|(k, _)| k == "rs1");
        let has_key = in_force.iter().any(|(k, a)| k == "rs1" && *a == Algorithm::RS256);
        match result {
            Ok(_) => assert!(has_key, "accepted without a key rs1 for RS256 in force"),
            Err(VerifyError::UnknownKid) => assert!(!has_kid, "UnknownKid while rs1 is in force"),
            Err(VerifyError::KeyAlgorithmMismatch) => {
                assert!(has_kid && !has_key, "KeyAlgorithmMismatch with {in_force:?}")
            }
            Err(VerifyError::InvalidSignature) => assert!(has_key, "signature checked without the key"),
            Err(e) => panic!("unexpected {e:?} with {in_force:?}"),
        }
    });
    // Put the real keys back now and then so the cached path is exercised.
    if data.first() == Some(&b'!') {
        crate::install(&VERIFIER);
        IN_FORCE.with(|f| {
            *f.borrow_mut() = [("rs1", Algorithm::RS256), ("es1", Algorithm::ES256), ("ed1", Algorithm::EdDSA)]
                .into_iter()
                .map(|(k, a)| (k.to_owned(), a))
                .collect();
        });
    }
}
