//! Verification cost per token: the verified-token cache hit, the signature
//! path per algorithm, and beside it the bare `jsonwebtoken::decode` of the
//! same token with key and `Validation` built once (the floor a verifier
//! built on jsonwebtoken cannot go under).
//!
//! `cargo bench -p token-core --bench verify`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use token_core::{Algorithm, PublicJwks, SigningKey, Verifier, VerifierConfig, unix_now};

const ISS: &str = "https://issuer.test";

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

fn verifier(key: &SigningKey, cache_bytes: u64) -> std::sync::Arc<Verifier> {
    let mut cfg = VerifierConfig::for_issuer(ISS, vec!["api".into()], None);
    cfg.token_cache_bytes = cache_bytes;
    let v = Verifier::new(&cfg).unwrap();
    let jwks = serde_json::to_vec(&PublicJwks { keys: vec![key.public_jwk().clone()] }).unwrap();
    v.install_jwks(ISS, &jwks).unwrap();
    v
}

fn bench(c: &mut Criterion) {
    let now = unix_now().as_secs();
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg, "k1").unwrap();
        let token = key
            .sign_any(&serde_json::json!({
                "iss": ISS, "sub": "user-1234567890", "aud": "api", "exp": now + 3600, "iat": now,
                "jti": "0b7c5e0e-5d8a-4f4c-9a51-6a3e2f1d9c11", "scope": "pets:read pets:write"
            }))
            .unwrap();
        let mut group = c.benchmark_group(format!("verify/{alg}"));
        group.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));

        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(serde_json::to_value(key.public_jwk()).unwrap()).unwrap();
        let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(match alg {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        });
        validation.set_audience(&["api"]);
        validation.set_issuer(&[ISS]);
        group.bench_function("jsonwebtoken_decode_floor", |b| {
            b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&token), &dk, &validation).unwrap())
        });

        let uncached = verifier(&key, 0);
        let t = unix_now();
        group.bench_function("token_core_signature_path", |b| {
            b.iter(|| uncached.verify_at(black_box(&token), t).unwrap())
        });

        let cached = verifier(&key, 4 << 20);
        cached.verify_at(&token, t).unwrap();
        group.bench_function("token_core_cache_hit", |b| b.iter(|| cached.verify_at(black_box(&token), t).unwrap()));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
