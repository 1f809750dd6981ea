//! Warm handler time per invocation, from event JSON in to response JSON out
//! (what lambda_runtime does around our handler, minus the HTTP to the
//! Runtime API): the verified-token cache hit, and the signature path per
//! algorithm. A last case adds the decision log line (JSON, to a sink) to
//! show what logging costs on top.
//!
//! `cargo bench -p authorizer --bench handler`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use authorizer::{Authorizer, AuthorizerConfig, AuthorizerEvent};
use criterion::{Criterion, criterion_group, criterion_main};
use token_core::{Algorithm, PublicJwks, Settings, SigningKey, Verifier, unix_now};

const ISS: &str = "https://issuer.test";

/// A route map of a typical size, the route asked last but one.
const ROUTES: &str = "GET /pets=pets:read,POST /pets=pets:write,GET /pets/{id}=pets:read,PUT /pets/{id}=pets:write,\
DELETE /pets/{id}=admin,GET /users/{id}=profile:read,GET /users/{id}/payment-methods=billing,ANY /files/{proxy+}=files";

fn authorizer(key: &SigningKey, cache_bytes: &str) -> Authorizer {
    authorizer_with(key, cache_bytes, &[])
}

fn authorizer_with(key: &SigningKey, cache_bytes: &str, extra: &[(&str, &str)]) -> Authorizer {
    let mut pairs = vec![
        ("AUTH_ISSUER", ISS),
        ("AUTH_AUDIENCE", "api"),
        ("AUTH_JWKS_URL", "http://127.0.0.1:9/jwks.json"),
        ("AUTH_TOKEN_CACHE_BYTES", cache_bytes),
        // On, as deployed: every invocation checks whether a poll is due
        // (the port refuses, so the polls fail fast and back off).
        ("REVOCATION_FEED_URL", "http://127.0.0.1:9/revocations"),
    ];
    pairs.extend_from_slice(extra);
    let cfg = AuthorizerConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap();
    let v = Verifier::new(&cfg.verifier).unwrap();
    v.install_jwks(ISS, &serde_json::to_vec(&PublicJwks { keys: vec![key.public_jwk().clone()] }).unwrap()).unwrap();
    Authorizer::new(v, &cfg)
}

fn event(key: &SigningKey) -> Vec<u8> {
    let now = unix_now().as_secs();
    let token = key
        .sign_any(&serde_json::json!({
            "iss": ISS, "sub": "user-1234567890", "aud": "api", "exp": now + 3600, "iat": now,
            "jti": "0b7c5e0e-5d8a-4f4c-9a51-6a3e2f1d9c11", "scope": "pets:read pets:write", "client_id": "web"
        }))
        .unwrap();
    serde_json::to_vec(&serde_json::json!({
        "type": "TOKEN",
        "authorizationToken": format!("Bearer {token}"),
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod/GET/pets"
    }))
    .unwrap()
}

/// A REST REQUEST event for `GET /users/{id}` (the deploy template's
/// authorizer type with a route map).
fn request_event(token_event: &[u8]) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(token_event).unwrap();
    serde_json::to_vec(&serde_json::json!({
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod/GET/users/42",
        "resource": "/users/{id}",
        "path": "/users/42",
        "httpMethod": "GET",
        "headers": {"Authorization": v["authorizationToken"], "Host": "abc123def4.execute-api.us-east-1.amazonaws.com"},
    }))
    .unwrap()
}

fn invoke(rt: &tokio::runtime::Runtime, a: &Authorizer, body: &[u8]) -> Vec<u8> {
    let e: AuthorizerEvent = serde_json::from_slice(body).unwrap();
    let answer = rt.block_on(a.handle(&e)).unwrap();
    serde_json::to_vec(&answer).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("authorizer_handler");
    group.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg, "k1").unwrap();
        let body = event(&key);
        let a = authorizer(&key, "0");
        group.bench_function(format!("signature_path/{alg}"), |b| b.iter(|| invoke(&rt, &a, black_box(&body))));
        if alg == Algorithm::RS256 {
            let cached = authorizer(&key, "4194304");
            invoke(&rt, &cached, &body);
            group.bench_function("cache_hit/RS256", |b| b.iter(|| invoke(&rt, &cached, black_box(&body))));
            let mapped = authorizer_with(&key, "4194304", &[("AUTH_ROUTE_SCOPES", ROUTES)]);
            let request = request_event(&body);
            invoke(&rt, &mapped, &request);
            group.bench_function("cache_hit_route_map_request/RS256", |b| {
                b.iter(|| invoke(&rt, &mapped, black_box(&request)))
            });
            let subscriber = tracing_subscriber::fmt().json().with_writer(std::io::sink).finish();
            tracing::subscriber::with_default(subscriber, || {
                group.bench_function("cache_hit_with_json_log/RS256", |b| {
                    b.iter(|| invoke(&rt, &cached, black_box(&body)))
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
