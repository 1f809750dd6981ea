//! Runs the warm handler (cache hit, event JSON in to response JSON out) N
//! times, for instruction counts under callgrind across build targets:
//! `valgrind --tool=callgrind target/<target>/release/examples/handler_loop 2000`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use authorizer::{Authorizer, AuthorizerConfig, AuthorizerEvent};
use token_core::{Algorithm, PublicJwks, Settings, SigningKey, Verifier, unix_now};

fn main() {
    let n: usize = std::env::args().nth(1).map_or(1000, |s| s.parse().unwrap());
    let log = std::env::args().nth(2).is_some_and(|s| s == "log");
    let iss = "https://issuer.test";
    let key = SigningKey::from_pkcs8_pem(
        Algorithm::EdDSA,
        "k1",
        include_str!("../../token-core/benches/fixtures/test-key-eddsa.pem"),
    )
    .unwrap();
    let pairs = [("AUTH_ISSUER", iss), ("AUTH_AUDIENCE", "api"), ("AUTH_JWKS_URL", "http://127.0.0.1:9/jwks.json")];
    let cfg = AuthorizerConfig::from_settings(&Settings::from_pairs(&pairs)).unwrap();
    let v = Verifier::new(&cfg.verifier).unwrap();
    v.install_jwks(iss, &serde_json::to_vec(&PublicJwks { keys: vec![key.public_jwk().clone()] }).unwrap()).unwrap();
    let a = Authorizer::new(v, &cfg);
    let now = unix_now().as_secs();
    let token = key
        .sign_any(&serde_json::json!({"iss": iss, "sub": "user-1", "aud": "api", "exp": now + 3600, "iat": now, "jti": "j", "scope": "a b"}))
        .unwrap();
    let body = serde_json::to_vec(&serde_json::json!({"type":"TOKEN","authorizationToken":format!("Bearer {token}"),
        "methodArn":"arn:aws:execute-api:us-east-1:123456789012:abc123def4/prod/GET/pets"}))
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    if log {
        tracing_subscriber::fmt().json().with_writer(std::io::sink).init();
    }
    let mut bytes = 0;
    for _ in 0..n {
        let e: AuthorizerEvent = serde_json::from_slice(&body).unwrap();
        let answer = rt.block_on(a.handle(&e)).unwrap();
        bytes += serde_json::to_vec(&answer).unwrap().len();
    }
    println!("{n} {bytes}");
}
