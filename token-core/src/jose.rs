//! Strict, borrowing parsers for the JOSE header and the claims set.
//!
//! serde does the JSON; these visitors only decide what each member may be.
//! A member of the wrong JSON type is reported by name instead of failing the
//! whole parse with an anonymous serde error, duplicate members are rejected
//! (RFC 7515 4, RFC 8725 3.x), and strings are borrowed from the decoded bytes
//! when they contain no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{Claim, VerifyError};

/// A JSON value reduced to what the profile can use. Never fails on valid JSON.
#[derive(Debug, PartialEq)]
pub(crate) enum Loose<'a> {
    Str(Cow<'a, str>),
    UInt(u64),
    Float(f64),
    StrArray(Vec<Cow<'a, str>>),
    /// A negative integer, bool, null, object, or an array with a non-string.
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Loose::UInt(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(Loose::Other, Loose::UInt))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Loose::Float(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        let mut all_strings = true;
        while let Some(item) = seq.next_element::<Loose<'de>>()? {
            match item {
                Loose::Str(s) if all_strings => items.push(s),
                _ => all_strings = false,
            }
        }
        Ok(if all_strings { Loose::StrArray(items) } else { Loose::Other })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

/// A map key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Records a member, refusing a second occurrence.
fn set_once<'a, E: de::Error>(slot: &mut Option<Loose<'a>>, value: Loose<'a>) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom("duplicate member"));
    }
    *slot = Some(value);
    Ok(())
}

/// The JOSE header members the verifier looks at. Everything else (`jku`,
/// `x5u`, `jwk`, `x5c`, ...) is read past and never used: keys come only from
/// the configured JWKS.
#[derive(Debug, Default)]
pub(crate) struct RawHeader<'a> {
    pub alg: Option<Loose<'a>>,
    pub typ: Option<Loose<'a>>,
    pub kid: Option<Loose<'a>>,
    pub crit: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawHeader<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut h = RawHeader::default();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    match &*k {
                        "alg" => set_once(&mut h.alg, map.next_value()?)?,
                        "typ" => set_once(&mut h.typ, map.next_value()?)?,
                        "kid" => set_once(&mut h.kid, map.next_value()?)?,
                        "crit" => {
                            if h.crit {
                                return Err(de::Error::custom("duplicate member"));
                            }
                            map.next_value::<IgnoredAny>()?;
                            h.crit = true;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

/// A header that passed the profile's checks.
#[derive(Debug)]
pub(crate) struct Header<'a> {
    pub alg: crate::Algorithm,
    pub kid: Cow<'a, str>,
}

impl<'a> RawHeader<'a> {
    /// Applies the profile: `typ` is `at+jwt` (RFC 9068 4; media types compare
    /// case-insensitively, RFC 7515 4.1.9), no `crit`, `alg` on the allowlist,
    /// a string `kid`.
    pub fn check(self) -> Result<Header<'a>, VerifyError> {
        match &self.typ {
            Some(Loose::Str(t)) if t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt") => {
            }
            _ => return Err(VerifyError::InvalidType),
        }
        if self.crit {
            return Err(VerifyError::CriticalHeader);
        }
        let alg = match &self.alg {
            Some(Loose::Str(a)) => crate::Algorithm::from_jose(a).ok_or(VerifyError::AlgorithmNotAllowed)?,
            _ => return Err(VerifyError::AlgorithmNotAllowed),
        };
        let kid = match self.kid {
            Some(Loose::Str(k)) if !k.is_empty() => k,
            _ => return Err(VerifyError::MissingKid),
        };
        Ok(Header { alg, kid })
    }
}

/// The registered claims of the profile, as found in the payload.
#[derive(Debug, Default)]
pub(crate) struct RawClaims<'a> {
    pub iss: Option<Loose<'a>>,
    pub sub: Option<Loose<'a>>,
    pub aud: Option<Loose<'a>>,
    pub exp: Option<Loose<'a>>,
    pub nbf: Option<Loose<'a>>,
    pub iat: Option<Loose<'a>>,
    pub jti: Option<Loose<'a>>,
    pub scope: Option<Loose<'a>>,
    pub client_id: Option<Loose<'a>>,
    pub sid: Option<Loose<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawClaims<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawClaims<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWT claims set object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut c = RawClaims::default();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let slot = match &*k {
                        "iss" => &mut c.iss,
                        "sub" => &mut c.sub,
                        "aud" => &mut c.aud,
                        "exp" => &mut c.exp,
                        "nbf" => &mut c.nbf,
                        "iat" => &mut c.iat,
                        "jti" => &mut c.jti,
                        "scope" => &mut c.scope,
                        "client_id" => &mut c.client_id,
                        "sid" => &mut c.sid,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    set_once(slot, map.next_value()?)?;
                }
                Ok(c)
            }
        }
        d.deserialize_map(V)
    }
}

/// A required string claim.
pub(crate) fn required_str<'a>(v: Option<Loose<'a>>, claim: Claim) -> Result<Cow<'a, str>, VerifyError> {
    match v {
        Some(Loose::Str(s)) => Ok(s),
        _ => Err(VerifyError::InvalidClaim(claim)),
    }
}

/// An optional string claim: absent is fine, any other type is not.
pub(crate) fn optional_str<'a>(v: Option<Loose<'a>>, claim: Claim) -> Result<Option<Cow<'a, str>>, VerifyError> {
    match v {
        None => Ok(None),
        Some(Loose::Str(s)) => Ok(Some(s)),
        Some(_) => Err(VerifyError::InvalidClaim(claim)),
    }
}

/// A NumericDate (RFC 7519 2): a non-negative JSON number of seconds,
/// fractions allowed and truncated. A string is not a NumericDate.
pub(crate) fn numeric_date(v: &Loose<'_>, claim: Claim) -> Result<u64, VerifyError> {
    match *v {
        Loose::UInt(n) => Ok(n),
        // 2^53: beyond it f64 seconds are no longer whole numbers, and no real
        // date is there.
        Loose::Float(f) if f.is_finite() && (0.0..9_007_199_254_740_992.0).contains(&f) => Ok(f as u64),
        _ => Err(VerifyError::InvalidClaim(claim)),
    }
}

/// An optional NumericDate.
pub(crate) fn optional_date(v: Option<&Loose<'_>>, claim: Claim) -> Result<Option<u64>, VerifyError> {
    v.map(|v| numeric_date(v, claim)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(json: &str) -> Result<Header<'_>, VerifyError> {
        let raw: RawHeader<'_> = serde_json::from_str(json).map_err(|_| VerifyError::Malformed)?;
        raw.check()
    }

    #[test]
    fn typ_at_jwt_in_any_case_is_accepted() {
        for typ in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+Jwt"] {
            let json = format!(r#"{{"alg":"RS256","typ":"{typ}","kid":"k"}}"#);
            assert!(header(&json).is_ok(), "{typ}");
        }
    }

    #[test]
    fn typ_jwt_or_missing_is_rejected() {
        assert_eq!(header(r#"{"alg":"RS256","typ":"JWT","kid":"k"}"#).unwrap_err(), VerifyError::InvalidType);
        assert_eq!(header(r#"{"alg":"RS256","kid":"k"}"#).unwrap_err(), VerifyError::InvalidType);
        assert_eq!(header(r#"{"alg":"RS256","typ":1,"kid":"k"}"#).unwrap_err(), VerifyError::InvalidType);
    }

    #[test]
    fn crit_is_rejected_even_when_empty() {
        assert_eq!(
            header(r#"{"alg":"RS256","typ":"at+jwt","kid":"k","crit":[]}"#).unwrap_err(),
            VerifyError::CriticalHeader
        );
        assert_eq!(
            header(r#"{"alg":"RS256","typ":"at+jwt","kid":"k","crit":["b64"],"b64":false}"#).unwrap_err(),
            VerifyError::CriticalHeader
        );
    }

    #[test]
    fn none_and_hmac_are_rejected() {
        for alg in [r#""none""#, r#""HS256""#, r#""rs256""#, "null", "1"] {
            let json = format!(r#"{{"alg":{alg},"typ":"at+jwt","kid":"k"}}"#);
            assert_eq!(header(&json).unwrap_err(), VerifyError::AlgorithmNotAllowed, "{alg}");
        }
    }

    #[test]
    fn kid_must_be_a_non_empty_string() {
        assert_eq!(header(r#"{"alg":"RS256","typ":"at+jwt"}"#).unwrap_err(), VerifyError::MissingKid);
        assert_eq!(header(r#"{"alg":"RS256","typ":"at+jwt","kid":""}"#).unwrap_err(), VerifyError::MissingKid);
        assert_eq!(header(r#"{"alg":"RS256","typ":"at+jwt","kid":7}"#).unwrap_err(), VerifyError::MissingKid);
    }

    #[test]
    fn duplicate_header_members_are_malformed() {
        assert_eq!(
            header(r#"{"alg":"RS256","alg":"none","typ":"at+jwt","kid":"k"}"#).unwrap_err(),
            VerifyError::Malformed
        );
    }

    #[test]
    fn embedded_keys_and_urls_are_ignored() {
        let h = header(r#"{"alg":"ES256","typ":"at+jwt","kid":"k","jku":"https://evil","x5u":"https://evil","jwk":{"kty":"EC"},"x5c":["AAAA"]}"#)
            .unwrap();
        assert_eq!(h.alg, crate::Algorithm::ES256);
        assert_eq!(h.kid, "k");
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let h = header(r#"{"alg":"RS256","typ":"at+jwt","kid":"a\u002fb"}"#).unwrap();
        assert_eq!(h.kid, "a/b");
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(&Loose::UInt(5), Claim::Exp), Ok(5));
        assert_eq!(numeric_date(&Loose::Float(5.9), Claim::Exp), Ok(5));
        assert!(numeric_date(&Loose::Float(-1.0), Claim::Exp).is_err());
        assert!(numeric_date(&Loose::Float(f64::NAN), Claim::Exp).is_err());
        assert!(numeric_date(&Loose::Float(1e300), Claim::Exp).is_err());
        assert!(numeric_date(&Loose::Str("5".into()), Claim::Exp).is_err());
        assert!(numeric_date(&Loose::Other, Claim::Exp).is_err());
    }

    #[test]
    fn claims_parse_types_without_failing() {
        let c: RawClaims<'_> =
            serde_json::from_str(r#"{"exp":"1","aud":["a",1],"sub":{"x":1},"extra":[1,{"y":[]}],"iat":-5}"#).unwrap();
        assert_eq!(c.exp, Some(Loose::Str("1".into())));
        assert_eq!(c.aud, Some(Loose::Other));
        assert_eq!(c.sub, Some(Loose::Other));
        assert_eq!(c.iat, Some(Loose::Other));
    }

    #[test]
    fn duplicate_claims_are_rejected() {
        assert!(serde_json::from_str::<RawClaims<'_>>(r#"{"sub":"a","sub":"b"}"#).is_err());
    }
}
