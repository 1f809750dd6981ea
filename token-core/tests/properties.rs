//! Property tests for the rules with many inputs: leeway arithmetic at its
//! exact boundaries, audience matching, scopes, NumericDates and the
//! `Authorization` header. Tokens are really signed (Ed25519, the cheapest)
//! and really verified; time is passed in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use token_core::{
    Algorithm, Claim, Credentials, PublicJwks, SigningKey, VerifiedToken, Verifier, VerifierConfig, VerifyError,
    parse_authorization,
};

const ISS: &str = "https://issuer.test";
/// Tokens are verified around this time. Keys are stamped with the real
/// time when installed and are usable at any earlier time.
const T0: u64 = 1_700_000_000;

static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate(Algorithm::EdDSA, "ed1").unwrap());

fn verifier(audiences: &[&str], leeway: u64) -> Arc<Verifier> {
    let mut cfg = VerifierConfig::for_issuer(ISS, audiences.iter().map(|a| (*a).to_owned()).collect(), None);
    cfg.leeway = Duration::from_secs(leeway);
    let v = Verifier::new(&cfg).unwrap();
    let jwks = serde_json::to_vec(&PublicJwks { keys: vec![KEY.public_jwk().clone()] }).unwrap();
    v.install_jwks(ISS, &jwks).unwrap();
    v
}

/// One verifier per leeway, shared by the cases (the cache included: a
/// decision must not depend on what was verified before).
static VERIFIERS: LazyLock<Vec<(u64, Arc<Verifier>)>> =
    LazyLock::new(|| [0, 1, 60, 600].into_iter().map(|l| (l, verifier(&["api", "web"], l))).collect());

fn with_leeway(leeway: u64) -> &'static Arc<Verifier> {
    &VERIFIERS.iter().find(|(l, _)| *l == leeway).unwrap().1
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "user-1", "aud": "api", "exp": T0 + 900, "iat": T0, "jti": "j", "scope": "read"})
}

fn sign(c: &Value) -> String {
    KEY.sign_any(c).unwrap()
}

fn verify(v: &Verifier, token: &str, now: u64) -> Result<Arc<VerifiedToken>, VerifyError> {
    v.verify_at(token, Duration::from_secs(now))
}

/// The time rules, from RFC 7519 4.1.4-4.1.6 with a leeway: valid while
/// `now < exp + leeway`, `nbf <= now + leeway`, `iat <= now + leeway`,
/// checked in that order.
fn time_model(exp: u64, nbf: Option<u64>, iat: u64, now: u64, leeway: u64) -> Result<(), VerifyError> {
    if now >= exp + leeway {
        Err(VerifyError::Expired)
    } else if nbf.is_some_and(|n| n > now + leeway) {
        Err(VerifyError::NotYetValid)
    } else if iat > now + leeway {
        Err(VerifyError::IssuedInFuture)
    } else {
        Ok(())
    }
}

fn leeway() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1), Just(60), Just(600)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every time claim, at and around every boundary, with every leeway.
    #[test]
    fn time_claims_follow_the_leeway_rules(
        leeway in leeway(),
        exp_off in 0u64..2000,
        iat_off in 0u64..2000,
        nbf_off in proptest::option::of(0u64..2000),
        pick in 0usize..4,
        delta in -2i64..=2,
        spread in 0u64..1500,
    ) {
        let exp = T0 + exp_off;
        let iat = T0 - 1000 + iat_off;
        let nbf = nbf_off.map(|o| T0 - 1000 + o);
        // Look right at a boundary most of the time.
        let edge = match pick {
            0 => exp + leeway,
            1 => nbf.unwrap_or(exp).saturating_sub(leeway),
            2 => iat.saturating_sub(leeway),
            _ => T0 - 1000 + spread,
        };
        let now = edge.saturating_add_signed(delta);
        let mut c = claims();
        c["exp"] = json!(exp);
        c["iat"] = json!(iat);
        if let Some(n) = nbf {
            c["nbf"] = json!(n);
        }
        let token = sign(&c);
        let v = with_leeway(leeway);
        let got = verify(v, &token, now).map(|t| {
            assert_eq!((t.exp(), t.iat(), t.nbf()), (exp, iat, nbf));
        });
        prop_assert_eq!(got, time_model(exp, nbf, iat, now, leeway), "exp {} iat {} nbf {:?} now {}", exp, iat, nbf, now);
    }

    /// The same token asked about at several times, in any order: each
    /// answer is what the rules say at that time, whatever the cache holds.
    #[test]
    fn decisions_do_not_depend_on_earlier_verifications(
        leeway in leeway(),
        nbf_off in 0u64..200,
        iat_off in 0u64..200,
        times in proptest::collection::vec(0u64..1400, 1..6),
    ) {
        let exp = T0 + 900;
        let nbf = T0 + nbf_off;
        let iat = T0 + iat_off;
        let mut c = claims();
        c["exp"] = json!(exp);
        c["nbf"] = json!(nbf);
        c["iat"] = json!(iat);
        c["jti"] = json!(format!("j-{leeway}-{nbf_off}-{iat_off}-{times:?}"));
        let token = sign(&c);
        let v = with_leeway(leeway);
        for t in times {
            let now = T0 - 400 + t;
            let got = verify(v, &token, now).map(|_| ());
            prop_assert_eq!(got, time_model(exp, Some(nbf), iat, now, leeway), "now {}", now);
        }
    }

    /// Fractional NumericDates are truncated; negative, huge, non-finite or
    /// string dates are refused by name.
    #[test]
    fn numeric_dates(secs in 0u64..1_000_000, frac in 0.0f64..0.999, bad in 0usize..4) {
        let mut c = claims();
        c["exp"] = json!((T0 + 900 + secs) as f64 + frac);
        let t = verify(with_leeway(60), &sign(&c), T0).unwrap();
        prop_assert_eq!(t.exp(), T0 + 900 + secs);
        let wrong = [json!(-1 - secs as i64), json!(1e300), json!(format!("{}", T0 + secs)), json!([T0])];
        c["exp"] = wrong[bad].clone();
        prop_assert_eq!(verify(with_leeway(60), &sign(&c), T0).unwrap_err(), VerifyError::InvalidClaim(Claim::Exp));
    }

    /// `aud` as a string or an array is accepted when any of its values is
    /// any configured audience; otherwise refused as `InvalidAudience`.
    #[test]
    fn audience_any_match(
        configured in proptest::sample::subsequence(vec!["a", "b", "c", "api"], 1..=4),
        aud in prop_oneof![
            "[a-d]{1,3}".prop_map(Value::from),
            proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c"), Just("api"), Just("x"), Just("A")], 0..4)
                .prop_map(|v| json!(v)),
        ],
    ) {
        let v = verifier(&configured, 60);
        let mut c = claims();
        c["aud"] = aud.clone();
        let values: Vec<&str> = match &aud {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap()).collect(),
            _ => unreachable!(),
        };
        let expected = values.iter().any(|a| configured.contains(a));
        let got = verify(&v, &sign(&c), T0);
        if expected {
            prop_assert!(got.is_ok(), "{aud} against {configured:?}: {got:?}");
        } else {
            prop_assert_eq!(got.unwrap_err(), VerifyError::InvalidAudience, "{} against {:?}", aud, configured);
        }
    }

    /// Scopes are split on spaces (any number, leading and trailing ones
    /// too); a token has the required scopes exactly when each is one of its
    /// own, compared whole and case-sensitively.
    #[test]
    fn scopes_split_on_spaces_and_match_exactly(
        parts in proptest::collection::vec("[a-cA:]{0,3}", 0..6),
        gaps in proptest::collection::vec(1usize..3, 6),
        required in proptest::collection::vec("[a-cA:]{1,3}", 0..4),
    ) {
        let mut scope = String::new();
        for (i, p) in parts.iter().enumerate() {
            scope.push_str(p);
            scope.push_str(&" ".repeat(gaps[i]));
        }
        let mut c = claims();
        c["scope"] = json!(scope);
        let t = verify(with_leeway(60), &sign(&c), T0).unwrap();
        prop_assert_eq!(t.scope(), scope.as_str());
        let own: Vec<&str> = parts.iter().map(String::as_str).filter(|p| !p.is_empty()).collect();
        prop_assert_eq!(t.scopes().collect::<Vec<_>>(), own.clone());
        let expected = required.iter().all(|r| own.contains(&r.as_str()));
        prop_assert_eq!(t.has_scopes(required.iter().map(String::as_str)), expected);
        prop_assert!(t.has_scopes(own.iter().copied()));
        prop_assert!(t.has_scopes([]));
    }

    /// `Bearer <b64token>` in any case and spacing gives the token back;
    /// anything at all never panics, and `Bearer(t)` is always a b64token.
    #[test]
    fn bearer_header_values(
        scheme_case in proptest::collection::vec(any::<bool>(), 6),
        before in 0usize..3,
        between in 1usize..4,
        after in 0usize..3,
        token in "[A-Za-z0-9._~+/-]{1,40}={0,2}",
        noise in ".{0,40}",
    ) {
        let scheme: String = "bearer"
            .chars()
            .zip(&scheme_case)
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        let value = format!("{}{scheme}{}{token}{}", " ".repeat(before), " ".repeat(between), " ".repeat(after));
        prop_assert_eq!(parse_authorization(Some(&value)), Credentials::Bearer(token.as_str()));
        if let Credentials::Bearer(t) = parse_authorization(Some(&noise)) {
            let body = t.trim_end_matches('=');
            prop_assert!(!body.is_empty());
            prop_assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)), "{:?}", t);
        }
    }
}

/// Found by `decisions_do_not_depend_on_earlier_verifications`: a token with
/// `nbf` = T0 verified at T0 was cached, and asked again at T0 - 400 (the
/// clock went back) the cache answered valid where the rules say
/// `NotYetValid`. The cache now re-checks `nbf` and `iat` on every hit.
#[test]
fn cached_token_is_not_valid_before_its_nbf_or_iat() {
    let v = with_leeway(0);
    let mut c = claims();
    c["nbf"] = json!(T0);
    c["jti"] = json!("regression-nbf");
    let token = sign(&c);
    assert!(verify(v, &token, T0).is_ok());
    assert_eq!(verify(v, &token, T0 - 400).unwrap_err(), VerifyError::NotYetValid);
    assert!(verify(v, &token, T0).is_ok(), "valid again once the clock is back");

    let mut c = claims();
    c["iat"] = json!(T0 + 100);
    c["jti"] = json!("regression-iat");
    let token = sign(&c);
    assert!(verify(v, &token, T0 + 100).is_ok());
    assert_eq!(verify(v, &token, T0 + 99).unwrap_err(), VerifyError::IssuedInFuture);
}
