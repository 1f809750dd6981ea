//! Structured tokens into `Verifier::verify_at`: the header and the claims
//! are built from fuzzed JSON members (duplicates included), base64url-encoded
//! and signed with a real key, so every input gets past base64 and, most of
//! the time, past the signature to the claims checks.
//!
//! Invariants:
//! - everything `token_verify` checks (same decision repeated, with and
//!   without the cache, accepted tokens obey every rule);
//! - for tokens with the profile header, a good signature and claims made of
//!   defaults, omissions and whole-number times, the exact decision equals an
//!   independent model of the rules (their order included);
//! - leeway boundaries: an accepted token is still accepted at
//!   `exp + leeway - 1` and refused as `Expired` at `exp + leeway`;
//! - the cache never answers differently from a full check, also when the
//!   clock is earlier than at a previous verification.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::{ISS, LEEWAY, MAX_TOKEN_BYTES, NOW, PARTNER, b64, check_accepted, sign_raw, summary, verifier};
use arbitrary::{Arbitrary, Unstructured};
use serde_json::Value;
use token_core::{Algorithm, Claim, Verifier, VerifyError};

static CACHED: LazyLock<Arc<Verifier>> = LazyLock::new(|| verifier(true));
static UNCACHED: LazyLock<Arc<Verifier>> = LazyLock::new(|| verifier(false));

const WORDS: &[&str] = &[
    "api",
    "web",
    "partner-api",
    "other",
    ISS,
    PARTNER,
    "at+jwt",
    "AT+JWT",
    "application/at+jwt",
    "JWT",
    "RS256",
    "ES256",
    "EdDSA",
    "none",
    "HS256",
    "rs1",
    "es1",
    "ed1",
    "ped1",
    "",
    "user-1",
    "read write",
    " read  write ",
    "https://issuer.fuzz/",
];

#[derive(Arbitrary, Debug, Clone)]
enum Scalar {
    Int(i64),
    Str(String),
    Word(u8),
}

#[derive(Arbitrary, Debug, Clone)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Word(u8),
    Arr(Vec<Scalar>),
    Obj(Vec<(String, Scalar)>),
}

fn word(i: u8) -> &'static str {
    WORDS[usize::from(i) % WORDS.len()]
}

fn scalar_json(s: &Scalar) -> Value {
    match s {
        Scalar::Int(n) => Value::from(*n),
        Scalar::Str(s) => Value::from(s.as_str()),
        Scalar::Word(i) => Value::from(word(*i)),
    }
}

fn val_json(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Int(n) => Value::from(*n),
        Val::UInt(n) => Value::from(*n),
        Val::Float(f) => Value::from(*f),
        Val::Str(s) => Value::from(s.as_str()),
        Val::Word(i) => Value::from(word(*i)),
        Val::Arr(items) => Value::Array(items.iter().map(scalar_json).collect()),
        Val::Obj(members) => Value::Object(members.iter().map(|(k, v)| (k.clone(), scalar_json(v))).collect()),
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    Rs,
    Es,
    Ed,
    Partner,
    /// The header names `rs1`, the signature is garbage.
    Garbage,
}

impl Signer {
    fn alg_kid(self) -> (Algorithm, &'static str) {
        match self {
            Signer::Rs | Signer::Garbage => (Algorithm::RS256, "rs1"),
            Signer::Es => (Algorithm::ES256, "es1"),
            Signer::Ed => (Algorithm::EdDSA, "ed1"),
            Signer::Partner => (Algorithm::EdDSA, "ped1"),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum HeaderKey {
    Alg,
    Typ,
    Kid,
    Crit,
    Jku,
    Jwk,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum HeaderSpec {
    /// `typ`, `alg` and `kid` of the signer.
    Profile,
    /// The profile plus these members (duplicates stay duplicates).
    ProfilePlus(Vec<(HeaderKey, Val)>),
    /// Only these members.
    Custom(Vec<(HeaderKey, Val)>),
}

/// One claim: the default value, left out, a time relative to [`NOW`], any
/// JSON value, or sent twice.
#[derive(Arbitrary, Debug, Clone)]
enum Field {
    Default,
    Absent,
    Time(i32),
    Value(Val),
    Twice(Val),
}

#[derive(Arbitrary, Debug)]
struct Claims {
    iss: Field,
    sub: Field,
    aud: Field,
    exp: Field,
    nbf: Field,
    iat: Field,
    jti: Field,
    scope: Field,
    client_id: Field,
    extra: Vec<(String, Val)>,
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    None,
    FlipSignature(u16, u8),
    FlipPayload(u16, u8),
    Append(String),
}

/// One structured case: who signs, the header, the claims, a mutation and
/// the verification time.
#[derive(Arbitrary, Debug)]
pub struct Input {
    signer: Signer,
    header: HeaderSpec,
    claims: Claims,
    mutation: Mutation,
    /// The verification time, relative to [`NOW`] (at most 80,000,000 s on).
    now_offset: i32,
    /// How far back the clock goes for the second look.
    back: u16,
}

fn member(out: &mut String, key: &str, value: &Value) {
    if out.len() > 1 {
        out.push(',');
    }
    out.push_str(&Value::from(key).to_string());
    out.push(':');
    out.push_str(&value.to_string());
}

fn header_json(spec: &HeaderSpec, signer: Signer) -> String {
    let (alg, kid) = signer.alg_kid();
    let mut out = String::from("{");
    if !matches!(spec, HeaderSpec::Custom(_)) {
        member(&mut out, "typ", &Value::from("at+jwt"));
        member(&mut out, "alg", &Value::from(alg.as_str()));
        member(&mut out, "kid", &Value::from(kid));
    }
    if let HeaderSpec::ProfilePlus(extra) | HeaderSpec::Custom(extra) = spec {
        for (k, v) in extra {
            let key = match k {
                HeaderKey::Alg => "alg",
                HeaderKey::Typ => "typ",
                HeaderKey::Kid => "kid",
                HeaderKey::Crit => "crit",
                HeaderKey::Jku => "jku",
                HeaderKey::Jwk => "jwk",
                HeaderKey::Other(s) => s.as_str(),
            };
            member(&mut out, key, &val_json(v));
        }
    }
    out.push('}');
    out
}

fn time_value(offset: i32) -> Value {
    let t = NOW as i64 + i64::from(offset);
    Value::from(t)
}

fn claims_json(c: &Claims, signer: Signer) -> String {
    let partner = signer == Signer::Partner;
    let defaults: [(&str, &Field, Option<Value>); 9] = [
        ("iss", &c.iss, Some(Value::from(if partner { PARTNER } else { ISS }))),
        ("sub", &c.sub, Some(Value::from("user-1"))),
        ("aud", &c.aud, Some(Value::from(if partner { "partner-api" } else { "api" }))),
        ("exp", &c.exp, Some(time_value(900))),
        ("nbf", &c.nbf, None),
        ("iat", &c.iat, Some(time_value(0))),
        ("jti", &c.jti, Some(Value::from("jti-1"))),
        ("scope", &c.scope, Some(Value::from("read write"))),
        ("client_id", &c.client_id, None),
    ];
    let mut out = String::from("{");
    for (name, field, default) in defaults {
        match field {
            Field::Default => {
                if let Some(d) = default {
                    member(&mut out, name, &d);
                }
            }
            Field::Absent => {}
            Field::Time(o) => member(&mut out, name, &time_value(*o)),
            Field::Value(v) => member(&mut out, name, &val_json(v)),
            Field::Twice(v) => {
                let v = val_json(v);
                member(&mut out, name, &v);
                member(&mut out, name, &v);
            }
        }
    }
    for (k, v) in &c.extra {
        member(&mut out, k, &val_json(v));
    }
    out.push('}');
    out
}

/// The decision the rules give, for the inputs simple enough to model:
/// profile header, good signature, no mutation, claims that are defaults,
/// omissions or times, no extra member with a registered name. A token
/// over the size bound is `Malformed` before anything else is looked at.
fn model(input: &Input, token_len: usize, now: u64) -> Option<Result<(), VerifyError>> {
    let simple = |f: &Field| matches!(f, Field::Default | Field::Absent | Field::Time(_));
    let c = &input.claims;
    let registered = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "client_id"];
    if !matches!(input.header, HeaderSpec::Profile)
        || input.signer == Signer::Garbage
        || !matches!(input.mutation, Mutation::None)
        || ![&c.iss, &c.sub, &c.aud, &c.exp, &c.nbf, &c.iat, &c.jti, &c.scope, &c.client_id].into_iter().all(simple)
        || c.extra.iter().any(|(k, _)| registered.contains(&k.as_str()))
    {
        return None;
    }
    if token_len > MAX_TOKEN_BYTES {
        return Some(Err(VerifyError::Malformed));
    }
    let bad = |claim| Err(VerifyError::InvalidClaim(claim));
    // A required string claim: only the default is a string.
    let string = |f: &Field, claim| if matches!(f, Field::Default) { Ok(()) } else { bad(claim) };
    // A date: the default or a non-negative time.
    let date = |f: &Field, default: Option<i64>, claim| -> Result<Option<u64>, VerifyError> {
        let t = match f {
            Field::Default => default,
            Field::Absent => None,
            Field::Time(o) => Some(NOW as i64 + i64::from(*o)),
            _ => unreachable!(),
        };
        match t {
            Some(t) if t < 0 => Err(VerifyError::InvalidClaim(claim)),
            t => Ok(t.map(|t| t as u64)),
        }
    };
    let run = || -> Result<(), VerifyError> {
        string(&c.iss, Claim::Iss)?;
        string(&c.sub, Claim::Sub)?;
        string(&c.jti, Claim::Jti)?;
        let exp = date(&c.exp, Some(NOW as i64 + 900), Claim::Exp)?.ok_or(VerifyError::InvalidClaim(Claim::Exp))?;
        let iat = date(&c.iat, Some(NOW as i64), Claim::Iat)?.ok_or(VerifyError::InvalidClaim(Claim::Iat))?;
        let nbf = date(&c.nbf, None, Claim::Nbf)?;
        if matches!(c.scope, Field::Time(_)) {
            return bad(Claim::Scope);
        }
        if matches!(c.client_id, Field::Time(_)) {
            return bad(Claim::ClientId);
        }
        match c.aud {
            Field::Default => {}
            _ => return bad(Claim::Aud),
        }
        if now >= exp + LEEWAY {
            return Err(VerifyError::Expired);
        }
        if nbf.is_some_and(|n| n > now + LEEWAY) {
            return Err(VerifyError::NotYetValid);
        }
        if iat > now + LEEWAY {
            return Err(VerifyError::IssuedInFuture);
        }
        Ok(())
    };
    Some(run())
}

fn both(token: &str, now: u64) -> crate::Summary {
    let at = Duration::from_secs(now);
    let cached = summary(&CACHED.verify_at(token, at));
    let fresh = summary(&UNCACHED.verify_at(token, at));
    assert_eq!(cached, fresh, "the cache answered differently at {now}");
    cached
}

/// Raw bytes as an [`Input`], the way libfuzzer-sys's `fuzz_target!` reads
/// them (`arbitrary_take_rest`); `None` when they are too short for the type
/// or do not decode (libFuzzer skips such inputs).
pub fn decode(data: &[u8]) -> Option<Input> {
    if data.len() < <Input as Arbitrary>::size_hint(0).0 {
        return None;
    }
    Input::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// The target: builds the token `input` describes and checks the decision.
pub fn check(input: Input) {
    let (alg, _) = input.signer.alg_kid();
    let header = header_json(&input.header, input.signer);
    let payload = claims_json(&input.claims, input.signer);
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let mut signature =
        if input.signer == Signer::Garbage { vec![7u8; 256] } else { sign_raw(alg, signing_input.as_bytes()) };
    let mut signing_input = signing_input.into_bytes();
    let mut tail = String::new();
    match &input.mutation {
        Mutation::None => {}
        Mutation::FlipSignature(i, x) => {
            if !signature.is_empty() {
                let i = usize::from(*i) % signature.len();
                signature[i] ^= x | 1;
            }
        }
        Mutation::FlipPayload(i, x) => {
            let i = usize::from(*i) % signing_input.len();
            signing_input[i] ^= x | 1;
        }
        Mutation::Append(s) => tail.push_str(s),
    }
    let Ok(signing_input) = String::from_utf8(signing_input) else { return };
    let token = format!("{signing_input}.{}{tail}", b64(&signature));

    // Up to ~2.5 years after NOW: before the real time, when the keys were
    // installed (they are usable at any earlier time).
    let now = (NOW as i64 + i64::from(input.now_offset).min(80_000_000)).max(0) as u64;
    let decision = both(&token, now);
    assert_eq!(decision, both(&token, now), "decision changed when repeated");
    let verified = CACHED.verify_at(&token, Duration::from_secs(now));
    match &verified {
        Ok(t) => check_accepted(&token, t, now),
        Err(e) => assert_ne!(*e, VerifyError::KeysUnavailable, "keys are installed"),
    }
    if let Some(expected) = model(&input, token.len(), now) {
        assert_eq!(decision.as_ref().map(|_| ()).map_err(|e| *e), expected, "the rules say otherwise: {payload}");
    }

    // Keys are usable up to the real time (they were installed then, and
    // the maximum stale age runs from there): look only at times before it.
    let real_now = token_core::unix_now().as_secs();
    if let Ok(t) = &verified {
        let edge = t.exp().saturating_add(LEEWAY);
        if edge > now && edge < real_now {
            let last = both(&token, edge - 1);
            assert!(last.is_ok(), "refused inside the leeway at exp + leeway - 1: {last:?}");
            assert_eq!(both(&token, edge), Err(VerifyError::Expired), "accepted at exp + leeway");
        }
    }
    // An earlier clock: the cache must not answer what a full check would not.
    let earlier = now.saturating_sub(u64::from(input.back));
    let _ = both(&token, earlier);
}
