//! Property tests of the sidecar: `/verify?scope=...` answers 200 exactly
//! when the token has every scope asked for, in any encoding and
//! repetition; else 403. No services needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;
use std::time::Duration;

use http::header;
use proptest::prelude::*;
use serde_json::json;
use token_core::{Algorithm, PublicJwks, SigningKey, Verifier, VerifierConfig};

const ISS: &str = "https://issuer.test";
static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate(Algorithm::EdDSA, "k").unwrap());
static RT: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());
static SIDECAR: LazyLock<sidecar::Sidecar> = LazyLock::new(|| {
    let cfg = VerifierConfig::for_issuer(ISS, vec!["api".into()], Some("http://127.0.0.1:9/jwks.json".into()));
    let v = Verifier::new(&cfg).unwrap();
    v.install_jwks(ISS, &serde_json::to_vec(&PublicJwks { keys: vec![KEY.public_jwk().clone()] }).unwrap()).unwrap();
    sidecar::Sidecar::new(v, Duration::from_secs(5))
});

fn token(scope: &str) -> String {
    let now = token_core::unix_now().as_secs();
    KEY.sign_any(
        &json!({"iss": ISS, "sub": "u", "aud": "api", "exp": now + 600, "iat": now, "jti": "j", "scope": scope}),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn verify_checks_every_scope_asked(
        have in proptest::collection::vec("[a-d]:?[xy]?", 0..4),
        asked in proptest::collection::vec(proptest::collection::vec("[a-d]:?[xy]?", 0..3), 0..3),
        encoding in 0usize..3,
    ) {
        let sep = ["+", "%20", "+%20"][encoding];
        let query: Vec<String> = asked
            .iter()
            .map(|group| format!("scope={}", group.iter().map(|s| s.replace(':', "%3A")).collect::<Vec<_>>().join(sep)))
            .collect();
        let uri = if query.is_empty() { "/verify".to_owned() } else { format!("/verify?{}", query.join("&")) };
        let req = http::Request::builder()
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", token(&have.join(" "))))
            .body(())
            .unwrap();
        let resp = RT.block_on(SIDECAR.handle(&req));
        let ok = asked.iter().flatten().all(|s| have.contains(s));
        prop_assert_eq!(resp.status().as_u16(), if ok { 200 } else { 403 }, "{} with {:?}", uri, have);
    }
}
