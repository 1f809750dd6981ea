//! Signing cost per access token: the issuer pays it on every login and
//! refresh. `cargo bench -p token-core --bench sign`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use token_core::{AccessClaims, Algorithm, Audience, SigningKey};

fn bench(c: &mut Criterion) {
    let claims = AccessClaims {
        iss: "https://issuer.test".into(),
        sub: "user-1234567890".into(),
        aud: Audience::One("api".into()),
        exp: 1_900_000_900,
        iat: 1_900_000_000,
        nbf: None,
        jti: "0b7c5e0e5d8a4f4c9a516a3e2f1d9c11".into(),
        scope: "openid pets:read pets:write".into(),
        client_id: Some("first-party".into()),
        sid: None,
    };
    let mut group = c.benchmark_group("sign");
    group.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg, "k1").unwrap();
        group.bench_function(format!("{alg}"), |b| b.iter(|| key.sign(black_box(&claims)).unwrap()));
    }
    // The floor: the RSA signature alone with the key parsed once.
    let key = SigningKey::generate(Algorithm::RS256, "k1").unwrap();
    let der = pem::parse(key.to_pkcs8_pem()).unwrap().into_contents();
    let kp = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let msg = [7u8; 400];
    group.bench_function("RS256_aws_lc_key_parsed_once", |b| {
        b.iter(|| {
            let mut sig = vec![0u8; kp.public_modulus_len()];
            kp.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, black_box(&msg), &mut sig).unwrap();
            sig
        })
    });
    group.bench_function("RS256_aws_lc_parse_each_time", |b| {
        b.iter(|| {
            let kp = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(black_box(&der)).unwrap();
            let mut sig = vec![0u8; kp.public_modulus_len()];
            kp.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, black_box(&msg), &mut sig).unwrap();
            sig
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
