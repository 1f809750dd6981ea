//! The fuzz targets' checks, one module per target, without libFuzzer: the
//! cargo-fuzz crate `tests/fuzz` wraps each module's `run` in
//! `fuzz_target!`, and this crate's test `seeds` replays the committed seeds
//! (`tests/fuzz/corpus/<target>/`) through the same functions as part of the
//! workspace's `cargo test`, so the checks build with the workspace's
//! dependencies instead of a second dependency graph.
//!
//! What the targets share (this module): fixed keys (the committed test keys
//! of the token-core benchmarks, so that seed tokens stay valid), verifiers
//! with those keys installed, raw signing of hand-made headers, and an
//! independent glob for checking policy evaluation.
//!
//! Tokens are verified with `verify_at` at the fixed time [`NOW`]: keys are
//! stamped with the real time when installed and stay usable at any earlier
//! time, so a run does not depend on the clock.

pub mod authorizer_event;
pub mod bearer_and_routes;
pub mod issuer_request;
pub mod jwks_parse;
pub mod token_verify;
pub mod token_verify_structured;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use token_core::{
    Algorithm, PublicJwks, SigningKey, TrustedIssuer, VerifiedToken, Verifier, VerifierConfig, VerifyError,
};

/// Our issuer.
pub const ISS: &str = "https://issuer.fuzz";
/// A second trusted issuer, with its own key under its own `kid`.
pub const PARTNER: &str = "https://partner.fuzz";
/// Audiences accepted for [`ISS`].
pub const AUDIENCES: [&str; 2] = ["api", "web"];
/// The audience accepted for [`PARTNER`].
pub const PARTNER_AUDIENCE: &str = "partner-api";
/// The time `verify_at` is called with (2023-11-14).
pub const NOW: u64 = 1_700_000_000;
/// The verifiers' clock leeway.
pub const LEEWAY: u64 = 60;
/// The verifiers' longest token.
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Where the JWKS would be fetched from: never reached by `verify_at`; a
/// refetch by `verify` fails at once (nothing listens on port 9).
pub const JWKS_URL: &str = "http://127.0.0.1:9/jwks.json";

const RS_PEM: &str = include_str!("../../../token-core/benches/fixtures/test-key-rs256.pem");
const ES_PEM: &str = include_str!("../../../token-core/benches/fixtures/test-key-es256.pem");
const ED_PEM: &str = include_str!("../../../token-core/benches/fixtures/test-key-eddsa.pem");

/// The fixed signing keys.
#[derive(Debug)]
pub struct Keys {
    /// RS256, `kid` `rs1`, of [`ISS`].
    pub rs: SigningKey,
    /// ES256, `kid` `es1`, of [`ISS`].
    pub es: SigningKey,
    /// EdDSA, `kid` `ed1`, of [`ISS`].
    pub ed: SigningKey,
    /// The EdDSA key again, `kid` `ped1`, of [`PARTNER`] only.
    pub partner: SigningKey,
}

fn load(alg: Algorithm, kid: &str, pem: &str) -> SigningKey {
    match SigningKey::from_pkcs8_pem(alg, kid, pem) {
        Ok(k) => k,
        Err(e) => panic!("fixture key {kid}: {e}"),
    }
}

/// The fixed keys, parsed once.
pub fn keys() -> &'static Keys {
    static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
        rs: load(Algorithm::RS256, "rs1", RS_PEM),
        es: load(Algorithm::ES256, "es1", ES_PEM),
        ed: load(Algorithm::EdDSA, "ed1", ED_PEM),
        partner: load(Algorithm::EdDSA, "ped1", ED_PEM),
    });
    &KEYS
}

/// A JWKS document of these keys.
pub fn jwks_of(keys: &[&SigningKey]) -> Vec<u8> {
    let doc = PublicJwks { keys: keys.iter().map(|k| k.public_jwk().clone()).collect() };
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// The configuration of [`verifier`]: two issuers, leeway [`LEEWAY`].
pub fn verifier_config(cache: bool) -> VerifierConfig {
    let mut cfg = VerifierConfig::for_issuer(ISS, AUDIENCES.iter().map(|a| (*a).to_owned()).collect(), None);
    cfg.issuers[0].jwks_url = Some(JWKS_URL.into());
    cfg.issuers.push(TrustedIssuer {
        issuer: PARTNER.into(),
        jwks_url: Some(JWKS_URL.into()),
        audiences: vec![PARTNER_AUDIENCE.into()],
    });
    cfg.leeway = Duration::from_secs(LEEWAY);
    cfg.max_token_bytes = MAX_TOKEN_BYTES;
    cfg.unknown_kid_cooldown = Duration::from_secs(3600);
    cfg.token_cache_bytes = if cache { 1024 * 1024 } else { 0 };
    cfg
}

/// A verifier with every fixed key installed; `cache` turns the
/// verified-token cache on.
pub fn verifier(cache: bool) -> Arc<Verifier> {
    let v = match Verifier::new(&verifier_config(cache)) {
        Ok(v) => v,
        Err(e) => panic!("verifier: {e}"),
    };
    install(&v);
    v
}

/// Installs the fixed keys (again).
pub fn install(v: &Verifier) {
    let k = keys();
    let ours = v.install_jwks(ISS, &jwks_of(&[&k.rs, &k.es, &k.ed]));
    let theirs = v.install_jwks(PARTNER, &jwks_of(&[&k.partner]));
    assert!(ours.is_ok() && theirs.is_ok(), "installing the fixed keys failed");
}

struct RawSigners {
    rs: RsaKeyPair,
    es: EcdsaKeyPair,
    ed: Ed25519KeyPair,
}

fn der(pem_text: &str) -> Vec<u8> {
    let body: String = pem_text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default()
}

static SIGNERS: LazyLock<RawSigners> = LazyLock::new(|| {
    let rs = RsaKeyPair::from_pkcs8(&der(RS_PEM));
    let es = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &der(ES_PEM));
    let ed = Ed25519KeyPair::from_pkcs8(&der(ED_PEM));
    match (rs, es, ed) {
        (Ok(rs), Ok(es), Ok(ed)) => RawSigners { rs, es, ed },
        _ => panic!("fixture keys do not parse"),
    }
});

/// Signs `input` (a JWS signing input) with the fixed key of `alg`, whatever
/// the header says: for tokens with hand-made headers.
pub fn sign_raw(alg: Algorithm, input: &[u8]) -> Vec<u8> {
    let s = &*SIGNERS;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let out = match alg {
        Algorithm::RS256 => {
            let mut out = vec![0u8; s.rs.public_modulus_len()];
            s.rs.sign(&sig::RSA_PKCS1_SHA256, &rng, input, &mut out).map(|()| out).ok()
        }
        Algorithm::ES256 => s.es.sign(&rng, input).ok().map(|g| g.as_ref().to_vec()),
        Algorithm::EdDSA => Some(s.ed.sign(input).as_ref().to_vec()),
    };
    out.unwrap_or_default()
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url without padding, decoded.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// `header.payload.signature` with the header and payload given as JSON
/// text and signed by the fixed key of `alg`.
pub fn token(header_json: &str, payload_json: &str, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header_json.as_bytes()), b64(payload_json.as_bytes()));
    let signature = sign_raw(alg, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// The profile header for a key.
pub fn profile_header(alg: Algorithm, kid: &str) -> String {
    serde_json::json!({"typ": "at+jwt", "alg": alg.as_str(), "kid": kid}).to_string()
}

/// IAM ARN matching, written independently of the authorizer's (dynamic
/// programming instead of backtracking): `*` matches any run of bytes,
/// `?` exactly one.
pub fn reference_glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // m[j]: pattern[..i] matches text[..j].
    let mut m = vec![false; t.len() + 1];
    m[0] = true;
    for &pc in p {
        let mut next = vec![false; t.len() + 1];
        if pc == b'*' {
            let mut any = false;
            for j in 0..=t.len() {
                any |= m[j];
                next[j] = any;
            }
        } else {
            for j in 1..=t.len() {
                next[j] = m[j - 1] && (pc == b'?' || pc == t[j - 1]);
            }
        }
        m = next;
    }
    m[t.len()]
}

/// A current-thread tokio runtime with I/O and time, for async handlers.
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    }
}

/// A verification result reduced to what must not depend on the cache or
/// on repetition.
pub type Summary = Result<(String, String, u64, u64, Option<u64>), VerifyError>;

/// See [`Summary`].
pub fn summary(r: &Result<Arc<VerifiedToken>, VerifyError>) -> Summary {
    r.as_ref().map(|t| (t.issuer().to_owned(), t.sub().to_owned(), t.exp(), t.iat(), t.nbf())).map_err(|e| *e)
}

/// Checks a token `verify_at(token, now)` accepted against every rule of
/// the profile, decoding it independently of the verifier.
///
/// # Panics
/// When a rule is broken: that is the finding.
pub fn check_accepted(token: &str, t: &VerifiedToken, now: u64) {
    assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token of {} parts", parts.len());
    let header: Value = serde_json::from_slice(&unb64(parts[0]).expect("header is base64url")).expect("header JSON");
    let typ = header["typ"].as_str().expect("typ is a string").to_ascii_lowercase();
    assert!(typ == "at+jwt" || typ == "application/at+jwt", "typ {typ}");
    assert!(header.get("crit").is_none(), "crit accepted");
    let alg = header["alg"].as_str().expect("alg is a string");
    let kid = header["kid"].as_str().expect("kid is a string");
    let own_kids: &[(&str, &str)] =
        if t.issuer() == ISS { &[("rs1", "RS256"), ("es1", "ES256"), ("ed1", "EdDSA")] } else { &[("ped1", "EdDSA")] };
    assert!(own_kids.contains(&(kid, alg)), "kid {kid:?} alg {alg:?} is not a key of {}", t.issuer());

    let payload = unb64(parts[1]).expect("payload is base64url");
    assert_eq!(&payload[..], &t.claims_json()[..], "claims differ from the payload");
    let claims: Value = serde_json::from_slice(&payload).expect("payload JSON");
    assert_eq!(claims["iss"].as_str(), Some(t.issuer()));
    let accepted: &[&str] = match t.issuer() {
        ISS => &AUDIENCES,
        PARTNER => &[PARTNER_AUDIENCE],
        other => panic!("untrusted issuer {other:?} accepted"),
    };
    let aud_ok = match &claims["aud"] {
        Value::String(a) => accepted.contains(&a.as_str()),
        Value::Array(list) => list.iter().any(|a| a.as_str().is_some_and(|a| accepted.contains(&a))),
        other => panic!("aud {other} accepted"),
    };
    assert!(aud_ok, "audience {} accepted", claims["aud"]);
    assert_eq!(claims["sub"].as_str(), Some(t.sub()));
    assert!(!t.sub().is_empty());
    assert_eq!(claims["jti"].as_str(), Some(t.jti()));
    assert!(now < t.exp().saturating_add(LEEWAY), "expired token accepted: exp {} now {now}", t.exp());
    assert!(t.iat() <= now + LEEWAY, "iat {} in the future at {now}", t.iat());
    assert!(t.nbf().is_none_or(|n| n <= now + LEEWAY), "nbf {:?} in the future at {now}", t.nbf());
    assert!(t.scopes().all(|s| !s.is_empty() && !s.contains(' ')));
    assert!(t.has_scopes(t.scopes()));
    assert!(t.has_scopes([]));
}
