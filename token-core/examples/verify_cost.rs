//! Runs one verification mode N times, for instruction counting under
//! `valgrind --tool=callgrind` (counts do not depend on machine load):
//!
//! `cargo build --release -p token-core --example verify_cost`
//! `valgrind --tool=callgrind target/release/examples/verify_cost RS256 core 2000`
//!
//! Modes: `jwt` (bare jsonwebtoken::decode, key and Validation built once),
//! `core` (token-core signature path, cache off), `hit` (cache hit),
//! `setup` (key generation and set-up only: subtract it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use serde::Deserialize;
use token_core::{Algorithm, PublicJwks, SigningKey, Verifier, VerifierConfig, unix_now};

#[derive(Deserialize)]
#[allow(dead_code)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    jti: String,
    scope: String,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let alg: Algorithm = args.get(1).map_or("RS256", |s| s.as_str()).parse().unwrap();
    let mode = args.get(2).map_or("core", |s| s.as_str()).to_owned();
    let n: usize = args.get(3).map_or(1000, |s| s.parse().unwrap());
    let iss = "https://issuer.test";
    let now = unix_now();
    // A fixed key: generating one costs a random number of instructions.
    let pem = match alg {
        Algorithm::RS256 => include_str!("../benches/fixtures/test-key-rs256.pem"),
        Algorithm::ES256 => include_str!("../benches/fixtures/test-key-es256.pem"),
        Algorithm::EdDSA => include_str!("../benches/fixtures/test-key-eddsa.pem"),
    };
    let key = SigningKey::from_pkcs8_pem(alg, "k1", pem).unwrap();
    let token = key
        .sign_any(&serde_json::json!({
            "iss": iss, "sub": "user-1234567890", "aud": "api", "exp": now.as_secs() + 3600, "iat": now.as_secs(),
            "jti": "0b7c5e0e-5d8a-4f4c-9a51-6a3e2f1d9c11", "scope": "pets:read pets:write"
        }))
        .unwrap();
    let mut cfg = VerifierConfig::for_issuer(iss, vec!["api".into()], None);
    cfg.token_cache_bytes = if mode == "hit" { 1 << 20 } else { 0 };
    let v = Verifier::new(&cfg).unwrap();
    v.install_jwks(iss, &serde_json::to_vec(&PublicJwks { keys: vec![key.public_jwk().clone()] }).unwrap()).unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(serde_json::to_value(key.public_jwk()).unwrap()).unwrap();
    let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(match alg {
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
    });
    validation.set_audience(&["api"]);
    validation.set_issuer(&[iss]);
    let mut ok = 0usize;
    for _ in 0..n {
        ok += match mode.as_str() {
            "jwt" => usize::from(jsonwebtoken::decode::<Claims>(&token, &dk, &validation).is_ok()),
            "core" | "hit" => usize::from(v.verify_at(&token, now).is_ok()),
            _ => 1,
        };
    }
    println!("{alg} {mode} {ok}/{n}");
}
