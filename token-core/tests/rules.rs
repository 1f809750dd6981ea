//! Every rule of the token profile, checked through the public API with keys
//! installed directly (no network) and the time passed in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use token_core::{Algorithm, Claim, PublicJwks, SigningKey, Verifier, VerifierConfig, VerifyError};

const ISS: &str = "https://issuer.test";
/// Key sets are stamped with the real time when installed, and served for
/// `jwks_max_stale` (6 h) from then: tests work at the real time.
static NOW_CELL: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| token_core::unix_now().as_secs());

fn now() -> u64 {
    *NOW_CELL
}

struct Fixture {
    verifier: Arc<Verifier>,
    rs: SigningKey,
    es: SigningKey,
    ed: SigningKey,
}

fn jwks(keys: &[&SigningKey]) -> Vec<u8> {
    serde_json::to_vec(&PublicJwks { keys: keys.iter().map(|k| k.public_jwk().clone()).collect() }).unwrap()
}

fn fixture_with(cfg: impl FnOnce(&mut VerifierConfig)) -> Fixture {
    let mut c = VerifierConfig::for_issuer(ISS, vec!["api".into(), "web".into()], None);
    cfg(&mut c);
    let verifier = Verifier::new(&c).unwrap();
    let rs = SigningKey::generate(Algorithm::RS256, "rs1").unwrap();
    let es = SigningKey::generate(Algorithm::ES256, "es1").unwrap();
    let ed = SigningKey::generate(Algorithm::EdDSA, "ed1").unwrap();
    verifier.install_jwks(ISS, &jwks(&[&rs, &es, &ed])).unwrap();
    Fixture { verifier, rs, es, ed }
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "user-1", "aud": "api", "exp": now() + 900, "iat": now(),
        "jti": "jti-1", "scope": "pets:read pets:write", "client_id": "web-app"
    })
}

fn at(f: &Fixture, token: &str, now: u64) -> Result<Arc<token_core::VerifiedToken>, VerifyError> {
    f.verifier.verify_at(token, Duration::from_secs(now))
}

fn check(f: &Fixture, token: &str) -> Result<Arc<token_core::VerifiedToken>, VerifyError> {
    at(f, token, now())
}

/// A token with a hand-made header, signed by `key` (to test header rules).
fn with_header(key: &SigningKey, header: Value, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let input = format!("{h}.{p}");
    // Re-sign via jsonwebtoken's low-level API with the key's PEM.
    let enc = match key.alg() {
        Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(key.to_pkcs8_pem().as_bytes()).unwrap(),
        Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(key.to_pkcs8_pem().as_bytes()).unwrap(),
        Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(key.to_pkcs8_pem().as_bytes()).unwrap(),
    };
    let alg = match key.alg() {
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
    };
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &enc, alg).unwrap();
    format!("{input}.{sig}")
}

#[test]
fn valid_tokens_of_every_algorithm_verify() {
    let f = fixture();
    for key in [&f.rs, &f.es, &f.ed] {
        let t = check(&f, &key.sign_any(&claims()).unwrap()).unwrap();
        assert_eq!(t.sub(), "user-1");
        assert_eq!(t.scope(), "pets:read pets:write");
        assert_eq!(t.client_id(), Some("web-app"));
        assert_eq!(t.jti(), "jti-1");
        assert_eq!(t.exp(), now() + 900);
        assert_eq!(t.issuer(), ISS);
        let body: Value = serde_json::from_slice(t.claims_json()).unwrap();
        assert_eq!(body, claims());
    }
}

#[test]
fn tampered_payload_fails_the_signature() {
    let f = fixture();
    let token = f.rs.sign_any(&claims()).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut c = claims();
    c["sub"] = "admin".into();
    let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
    parts[1] = &forged;
    assert_eq!(check(&f, &parts.join(".")).unwrap_err(), VerifyError::InvalidSignature);
}

#[test]
fn signature_from_another_key_with_the_same_kid_fails() {
    let f = fixture();
    let impostor = SigningKey::generate(Algorithm::ES256, "es1").unwrap();
    assert_eq!(check(&f, &impostor.sign_any(&claims()).unwrap()).unwrap_err(), VerifyError::InvalidSignature);
}

#[test]
fn alg_none_and_hmac_are_refused() {
    let f = fixture();
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
    for alg in ["none", "HS256"] {
        let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"rs1"}}"#));
        assert_eq!(check(&f, &format!("{h}.{p}.")).unwrap_err(), VerifyError::AlgorithmNotAllowed, "{alg}");
        assert_eq!(check(&f, &format!("{h}.{p}.c2ln")).unwrap_err(), VerifyError::AlgorithmNotAllowed, "{alg}");
    }
}

#[test]
fn header_alg_must_match_the_keys_alg() {
    let f = fixture();
    // kid names the RSA key but the header says ES256 (signed with the EC key).
    let t = with_header(&f.es, json!({"alg":"ES256","typ":"at+jwt","kid":"rs1"}), &claims());
    assert_eq!(check(&f, &t).unwrap_err(), VerifyError::KeyAlgorithmMismatch);
}

#[test]
fn typ_must_be_at_jwt() {
    let f = fixture();
    for typ in [json!("JWT"), json!("jwt"), Value::Null] {
        let mut h = json!({"alg":"RS256","kid":"rs1"});
        if !typ.is_null() {
            h["typ"] = typ;
        }
        assert_eq!(check(&f, &with_header(&f.rs, h, &claims())).unwrap_err(), VerifyError::InvalidType);
    }
    let t = with_header(&f.rs, json!({"alg":"RS256","typ":"application/at+jwt","kid":"rs1"}), &claims());
    assert!(check(&f, &t).is_ok());
}

#[test]
fn crit_header_is_refused() {
    let f = fixture();
    let t = with_header(&f.rs, json!({"alg":"RS256","typ":"at+jwt","kid":"rs1","crit":["exp"]}), &claims());
    assert_eq!(check(&f, &t).unwrap_err(), VerifyError::CriticalHeader);
}

#[test]
fn embedded_keys_in_the_header_are_never_used() {
    let f = fixture();
    let attacker = SigningKey::generate(Algorithm::RS256, "evil").unwrap();
    let jwk = serde_json::to_value(attacker.public_jwk()).unwrap();
    let h = json!({"alg":"RS256","typ":"at+jwt","kid":"evil","jwk":jwk,"jku":"http://127.0.0.1:1/jwks","x5u":"http://127.0.0.1:1/x"});
    assert_eq!(check(&f, &with_header(&attacker, h, &claims())).unwrap_err(), VerifyError::UnknownKid);
}

#[test]
fn missing_kid_and_unknown_kid() {
    let f = fixture();
    let t = with_header(&f.rs, json!({"alg":"RS256","typ":"at+jwt"}), &claims());
    assert_eq!(check(&f, &t).unwrap_err(), VerifyError::MissingKid);
    let t = with_header(&f.rs, json!({"alg":"RS256","typ":"at+jwt","kid":"nope"}), &claims());
    assert_eq!(check(&f, &t).unwrap_err(), VerifyError::UnknownKid);
}

#[test]
fn unknown_issuer_is_refused_even_with_a_known_kid() {
    let f = fixture();
    let mut c = claims();
    c["iss"] = "https://other.test".into();
    assert_eq!(check(&f, &f.rs.sign_any(&c).unwrap()).unwrap_err(), VerifyError::UnknownIssuer);
}

#[test]
fn kid_is_looked_up_only_among_the_tokens_own_issuer() {
    let mut cfg = VerifierConfig::for_issuer(ISS, vec!["api".into()], None);
    cfg.issuers.push(token_core::TrustedIssuer {
        issuer: "https://partner.test".into(),
        jwks_url: None,
        audiences: vec!["api".into()],
    });
    let v = Verifier::new(&cfg).unwrap();
    let ours = SigningKey::generate(Algorithm::ES256, "shared-kid").unwrap();
    let partner = SigningKey::generate(Algorithm::ES256, "partner-kid").unwrap();
    v.install_jwks(ISS, &jwks(&[&ours])).unwrap();
    v.install_jwks("https://partner.test", &jwks(&[&partner])).unwrap();
    let now = Duration::from_secs(now());
    // The partner signs a token claiming to be from us, with its own kid.
    let forged = partner.sign_any(&claims()).unwrap();
    assert_eq!(v.verify_at(&forged, now).unwrap_err(), VerifyError::UnknownKid);
    let mut pc = claims();
    pc["iss"] = "https://partner.test".into();
    assert!(v.verify_at(&partner.sign_any(&pc).unwrap(), now).is_ok());
}

#[test]
fn audience_string_or_array_any_match() {
    let f = fixture();
    for (aud, ok) in [
        (json!("api"), true),
        (json!("web"), true),
        (json!(["other", "web"]), true),
        (json!("other"), false),
        (json!([]), false),
        (json!(["other"]), false),
    ] {
        let mut c = claims();
        c["aud"] = aud.clone();
        let r = check(&f, &f.es.sign_any(&c).unwrap());
        if ok {
            assert!(r.is_ok(), "{aud}");
        } else {
            assert_eq!(r.unwrap_err(), VerifyError::InvalidAudience, "{aud}");
        }
    }
    let mut c = claims();
    c["aud"] = json!(5);
    assert_eq!(check(&f, &f.es.sign_any(&c).unwrap()).unwrap_err(), VerifyError::InvalidClaim(Claim::Aud));
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(check(&f, &f.es.sign_any(&c).unwrap()).unwrap_err(), VerifyError::InvalidClaim(Claim::Aud));
}

#[test]
fn wrong_claim_types_are_named() {
    let f = fixture();
    let cases = [
        ("exp", json!("1800000900"), Claim::Exp),
        ("exp", json!(null), Claim::Exp),
        ("iat", json!("now"), Claim::Iat),
        ("nbf", json!(true), Claim::Nbf),
        ("sub", json!(42), Claim::Sub),
        ("sub", json!(""), Claim::Sub),
        ("jti", json!(["a"]), Claim::Jti),
        ("scope", json!(["pets:read"]), Claim::Scope),
        ("client_id", json!(7), Claim::ClientId),
        ("iss", json!(["https://issuer.test"]), Claim::Iss),
    ];
    for (name, value, claim) in cases {
        let mut c = claims();
        c[name] = value.clone();
        let err = check(&f, &f.ed.sign_any(&c).unwrap()).unwrap_err();
        assert_eq!(err, VerifyError::InvalidClaim(claim), "{name}={value}");
    }
}

#[test]
fn required_claims_must_be_present() {
    let f = fixture();
    for (name, claim) in [("sub", Claim::Sub), ("exp", Claim::Exp), ("iat", Claim::Iat), ("jti", Claim::Jti)] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(name);
        assert_eq!(check(&f, &f.ed.sign_any(&c).unwrap()).unwrap_err(), VerifyError::InvalidClaim(claim), "{name}");
    }
    // Optional ones may be absent.
    let mut c = claims();
    for name in ["scope", "client_id", "nbf"] {
        c.as_object_mut().unwrap().remove(name);
    }
    let t = check(&f, &f.ed.sign_any(&c).unwrap()).unwrap();
    assert_eq!(t.scope(), "");
    assert_eq!(t.client_id(), None);
}

#[test]
fn exp_in_past_fails_and_leeway_applies() {
    let f = fixture(); // leeway 60 s
    let token = f.es.sign_any(&claims()).unwrap(); // exp = now() + 900
    assert!(at(&f, &token, now() + 899).is_ok());
    assert!(at(&f, &token, now() + 900 + 59).is_ok(), "inside the leeway");
    assert_eq!(at(&f, &token, now() + 900 + 60).unwrap_err(), VerifyError::Expired);
    assert_eq!(at(&f, &token, now() + 10_000).unwrap_err(), VerifyError::Expired);
}

#[test]
fn zero_leeway_is_exact() {
    let f = fixture_with(|c| c.leeway = Duration::ZERO);
    let token = f.es.sign_any(&claims()).unwrap();
    assert!(at(&f, &token, now() + 899).is_ok());
    assert_eq!(at(&f, &token, now() + 900).unwrap_err(), VerifyError::Expired);
}

#[test]
fn nbf_and_iat_in_future_fail_beyond_leeway() {
    let f = fixture();
    let mut c = claims();
    c["nbf"] = json!(now() + 30);
    assert!(check(&f, &f.rs.sign_any(&c).unwrap()).is_ok(), "nbf within leeway");
    c["nbf"] = json!(now() + 61);
    assert_eq!(check(&f, &f.rs.sign_any(&c).unwrap()).unwrap_err(), VerifyError::NotYetValid);
    let mut c = claims();
    c["iat"] = json!(now() + 61);
    assert_eq!(check(&f, &f.rs.sign_any(&c).unwrap()).unwrap_err(), VerifyError::IssuedInFuture);
}

#[test]
fn fractional_numeric_dates_are_accepted() {
    let f = fixture();
    let mut c = claims();
    c["exp"] = json!((now() + 900) as f64 + 0.5);
    c["iat"] = json!(now() as f64 + 0.25);
    assert_eq!(check(&f, &f.rs.sign_any(&c).unwrap()).unwrap().exp(), now() + 900);
}

#[test]
fn malformed_tokens() {
    let f = fixture();
    let good = f.rs.sign_any(&claims()).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let cases = vec![
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra.parts"),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], "!!!", parts[2]),
        format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("not json"), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode("[1,2]"), parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], "A".repeat(2000)),
        "x".repeat(100_000),
        format!(" {good}"),
    ];
    for t in cases {
        assert_eq!(check(&f, &t).unwrap_err(), VerifyError::Malformed, "{:.60}", t);
    }
}

#[test]
fn duplicate_claims_are_malformed() {
    let f = fixture();
    let payload = format!(
        r#"{{"iss":"{ISS}","sub":"a","sub":"admin","aud":"api","exp":{},"iat":{},"jti":"j"}}"#,
        now() + 900,
        now()
    );
    let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"ed1"}"#);
    let p = URL_SAFE_NO_PAD.encode(payload);
    let input = format!("{h}.{p}");
    let enc = jsonwebtoken::EncodingKey::from_ed_pem(f.ed.to_pkcs8_pem().as_bytes()).unwrap();
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &enc, jsonwebtoken::Algorithm::EdDSA).unwrap();
    assert_eq!(check(&f, &format!("{input}.{sig}")).unwrap_err(), VerifyError::Malformed);
}

#[test]
fn repeated_token_is_answered_from_the_cache() {
    let f = fixture();
    let token = f.rs.sign_any(&claims()).unwrap();
    let first = check(&f, &token).unwrap();
    let m = f.verifier.metrics();
    let (hits, misses) = (m.cache_hits(), m.cache_misses());
    let again = check(&f, &token).unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(m.cache_hits(), hits + 1);
    assert_eq!(m.cache_misses(), misses);
}

#[test]
fn cached_token_still_expires() {
    let f = fixture();
    let token = f.rs.sign_any(&claims()).unwrap();
    check(&f, &token).unwrap();
    assert_eq!(at(&f, &token, now() + 900 + 60).unwrap_err(), VerifyError::Expired);
}

#[test]
fn invalid_results_are_not_cached() {
    let f = fixture();
    let mut c = claims();
    c["aud"] = "other".into();
    let token = f.rs.sign_any(&c).unwrap();
    let misses = f.verifier.metrics().cache_misses();
    assert!(check(&f, &token).is_err());
    assert!(check(&f, &token).is_err());
    assert_eq!(f.verifier.metrics().cache_misses(), misses + 2);
}

#[test]
fn cached_token_is_dropped_when_its_key_leaves_the_jwks() {
    let f = fixture();
    let token = f.rs.sign_any(&claims()).unwrap();
    check(&f, &token).unwrap();
    // The RSA key is rotated out.
    f.verifier.install_jwks(ISS, &jwks(&[&f.es, &f.ed])).unwrap();
    assert_eq!(check(&f, &token).unwrap_err(), VerifyError::UnknownKid);
    // Tokens of keys that stayed are still served from the cache.
    let es_token = f.es.sign_any(&claims()).unwrap();
    check(&f, &es_token).unwrap();
    f.verifier.install_jwks(ISS, &jwks(&[&f.es])).unwrap();
    let hits = f.verifier.metrics().cache_hits();
    check(&f, &es_token).unwrap();
    assert_eq!(f.verifier.metrics().cache_hits(), hits + 1);
}

#[test]
fn new_material_under_an_old_kid_voids_cached_tokens() {
    let f = fixture();
    let token = f.es.sign_any(&claims()).unwrap();
    check(&f, &token).unwrap();
    let replacement = SigningKey::generate(Algorithm::ES256, "es1").unwrap();
    f.verifier.install_jwks(ISS, &jwks(&[&f.rs, &replacement])).unwrap();
    assert_eq!(check(&f, &token).unwrap_err(), VerifyError::InvalidSignature);
}

#[test]
fn no_keys_yet_is_a_server_side_failure() {
    let v = Verifier::new(&VerifierConfig::for_issuer(ISS, vec!["api".into()], None)).unwrap();
    let key = SigningKey::generate(Algorithm::ES256, "es1").unwrap();
    let err = v.verify_at(&key.sign_any(&claims()).unwrap(), Duration::from_secs(now())).unwrap_err();
    assert_eq!(err, VerifyError::KeysUnavailable);
    assert!(err.is_server_side());
}

#[test]
fn scopes_are_checked_exactly() {
    let f = fixture();
    let t = check(&f, &f.rs.sign_any(&claims()).unwrap()).unwrap();
    assert!(t.has_scopes(["pets:read"]));
    assert!(t.has_scopes(["pets:write", "pets:read"]));
    assert!(!t.has_scopes(["pets"]));
    assert!(!t.has_scopes(["pets:read", "admin"]));
}

#[test]
fn keys_past_the_max_stale_age_are_not_used() {
    // The keys' age counts from when they were installed (the wall clock),
    // which can be seconds after the suite's fixed `now()` on a loaded
    // machine: bracket the install instead of assuming it happened at `now()`.
    let before = token_core::unix_now().as_secs();
    let f = fixture_with(|c| {
        c.jwks_refresh = Duration::from_secs(60);
        c.jwks_max_stale = Duration::from_secs(600);
    });
    let after = token_core::unix_now().as_secs();
    let mut c = claims();
    c["exp"] = json!(after + 3600);
    let token = f.rs.sign_any(&c).unwrap();
    assert!(at(&f, &token, before + 599).is_ok(), "stale but within the max stale age");
    assert_eq!(at(&f, &token, after + 602).unwrap_err(), VerifyError::KeysUnavailable, "even from the cache");
    let other = f.es.sign_any(&c).unwrap();
    assert_eq!(at(&f, &other, after + 602).unwrap_err(), VerifyError::KeysUnavailable);
    let h = f.verifier.health(Duration::from_secs(after + 602));
    assert!(!h.ready());
    assert!(f.verifier.health(Duration::from_secs(after + 10)).ready());
}
