//! The probe `scripts/bench-revocation.sh` runs under callgrind: verifies
//! one token `N` times, so the instruction count per verification is the
//! difference between two runs divided by the difference in `N`.
//!
//! ```text
//! revocation_probe <cached|signature> <N> [REVOKED_ENTRIES]
//! ```
//!
//! `cached`: the verified-token cache hit (the hot path); `signature`: the
//! cache off, every call checks the RS256 signature. `REVOKED_ENTRIES`
//! revoked sessions and subjects (none of them the token's) are loaded
//! first, so the lookups probe a populated set. The script builds this file
//! at the commit before revocation too, with the lines between the
//! `REVOCATION` markers removed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;

use token_core::{Algorithm, PublicJwks, SigningKey, Verifier, VerifierConfig, unix_now};

const ISS: &str = "https://issuer.test";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cached = match args.first().map(String::as_str) {
        Some("cached") => true,
        Some("signature") => false,
        _ => panic!("usage: revocation_probe <cached|signature> <N> [REVOKED_ENTRIES]"),
    };
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).expect("N");
    let entries: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let pem = include_str!("../benches/fixtures/test-key-rs256.pem");
    let key = SigningKey::from_pkcs8_pem(Algorithm::RS256, "rs1", pem).unwrap();
    let mut cfg = VerifierConfig::for_issuer(ISS, vec!["api".into()], Some("http://127.0.0.1:9/jwks.json".into()));
    cfg.token_cache_bytes = if cached { 4 * 1024 * 1024 } else { 0 };
    let v = Verifier::new(&cfg).unwrap();
    let jwks = serde_json::to_vec(&PublicJwks { keys: vec![key.public_jwk().clone()] }).unwrap();
    v.install_jwks(ISS, &jwks).unwrap();
    let now = unix_now().as_secs();
    // REVOCATION-BEGIN
    {
        use token_core::revocation::{FeedEvent, RevocationId};
        for i in 0..entries {
            let event = if i % 8 == 0 {
                FeedEvent::Subject { id: RevocationId::subject(&format!("other-{i}")), before: now, until: now + 960 }
            } else {
                FeedEvent::Session { id: RevocationId::session(&format!("fam-{i}")), until: now + 960 }
            };
            v.revocations().apply(&event, now);
        }
        assert_eq!(v.revocations().len() as u64, entries);
    }
    // REVOCATION-END
    let _ = entries;
    let token = key
        .sign_any(&serde_json::json!({
            "iss": ISS, "sub": "user-42", "aud": "api", "exp": now + 900, "iat": now,
            "jti": "probe", "scope": "pets:read pets:write", "sid": "fam-live"
        }))
        .unwrap();
    let t = unix_now();
    // Warm: the first call fills the cache.
    v.verify_at(&token, t).unwrap();
    for _ in 0..n {
        black_box(v.verify_at(black_box(&token), t).unwrap());
    }
    println!("ok {n}");
}
