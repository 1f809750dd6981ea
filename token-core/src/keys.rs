//! A JWKS parsed into ready-to-use verification keys.
//!
//! Keys are parsed once, when a JWKS is fetched; the hot path only compares
//! `kid`s and calls [`ParsedPublicKey::verify_sig`]. Keys that the profile
//! cannot use are skipped one by one (with a reason) instead of failing the
//! whole set: real JWKS documents carry encryption keys and algorithms we do
//! not accept beside the signing keys we need.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::Algorithm;

/// The most keys taken from one JWKS document; the rest are skipped.
pub const MAX_KEYS_PER_SET: usize = 64;

/// A public key ready to verify signatures of one algorithm.
pub struct VerifyKey {
    kid: Box<str>,
    alg: Algorithm,
    key: ParsedPublicKey,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Checks `signature` over `message`.
    #[inline]
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    /// Same key material, id and algorithm.
    fn same_as(&self, other: &VerifyKey) -> bool {
        self.kid == other.kid && self.alg == other.alg && self.key.as_ref() == other.key.as_ref()
    }
}

/// The usable keys of one issuer's JWKS.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<VerifyKey>>,
}

/// Result of looking a `kid` up for an algorithm.
pub(crate) enum Lookup<'a> {
    Found(&'a Arc<VerifyKey>),
    /// A key has this `kid`, but for another algorithm.
    WrongAlgorithm,
    Missing,
}

impl KeySet {
    /// The keys, in document order.
    pub fn keys(&self) -> &[Arc<VerifyKey>] {
        &self.keys
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key with this `kid` and algorithm. A JWKS may hold the same `kid`
    /// for keys of different types (RFC 7517 4.5), so both must match.
    pub(crate) fn lookup(&self, kid: &str, alg: Algorithm) -> Lookup<'_> {
        let mut kid_seen = false;
        for key in &self.keys {
            if &*key.kid == kid {
                if key.alg == alg {
                    return Lookup::Found(key);
                }
                kid_seen = true;
            }
        }
        if kid_seen { Lookup::WrongAlgorithm } else { Lookup::Missing }
    }

    /// Is this exact key (same allocation) still in the set?
    pub(crate) fn contains(&self, key: &Arc<VerifyKey>) -> bool {
        self.keys.iter().any(|k| Arc::ptr_eq(k, key))
    }

    /// Reuses the `Arc`s of keys that did not change, so that tokens cached
    /// under them stay valid across refreshes.
    pub(crate) fn carry_over(mut self, previous: Option<&KeySet>) -> KeySet {
        if let Some(prev) = previous {
            for key in &mut self.keys {
                if let Some(old) = prev.keys.iter().find(|old| old.same_as(key)) {
                    *key = Arc::clone(old);
                }
            }
        }
        self
    }
}

/// Why one JWK was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkippedKey {
    /// The member has no `kid`: tokens could not name it.
    #[error("key without kid")]
    NoKid,
    /// `use` is present and is not `sig`.
    #[error("key {kid:?}: use is not sig")]
    NotForSignatures {
        /// The key id.
        kid: String,
    },
    /// `key_ops` is present and lacks `verify`.
    #[error("key {kid:?}: key_ops lacks verify")]
    NoVerifyOp {
        /// The key id.
        kid: String,
    },
    /// Unsupported key type, curve or algorithm, or `alg` not matching `kty`.
    #[error("key {kid:?}: unsupported type or algorithm")]
    Unsupported {
        /// The key id.
        kid: String,
    },
    /// The key material is malformed or too weak (RSA under 2048 bits).
    #[error("key {kid:?}: invalid key material")]
    Invalid {
        /// The key id.
        kid: String,
    },
    /// A key with the same `kid` and algorithm came earlier in the set.
    #[error("key {kid:?}: duplicate kid")]
    Duplicate {
        /// The key id.
        kid: String,
    },
    /// The set has more than [`MAX_KEYS_PER_SET`] keys.
    #[error("more than {MAX_KEYS_PER_SET} keys")]
    TooMany,
}

/// The JWKS document could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JWKS document: {0}")]
pub struct JwksError(String);

/// A parsed JWKS: the usable keys and what was skipped.
#[derive(Debug)]
pub struct ParsedJwks {
    /// The usable keys.
    pub keys: KeySet,
    /// Members that were skipped, with why.
    pub skipped: Vec<SkippedKey>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Parses a JWKS document (RFC 7517 5).
///
/// # Errors
/// [`JwksError`] when the document is not a JSON object with a `keys` array.
/// Individual keys that cannot be used are reported in
/// [`ParsedJwks::skipped`], not as an error.
pub fn parse_jwks(body: &[u8]) -> Result<ParsedJwks, JwksError> {
    let raw: RawJwks = serde_json::from_slice(body).map_err(|e| JwksError(e.to_string()))?;
    let mut keys: Vec<Arc<VerifyKey>> = Vec::new();
    let mut skipped = Vec::new();
    for (i, value) in raw.keys.into_iter().enumerate() {
        if i >= MAX_KEYS_PER_SET {
            skipped.push(SkippedKey::TooMany);
            break;
        }
        let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else {
            skipped.push(SkippedKey::Unsupported { kid: String::new() });
            continue;
        };
        match parse_jwk(jwk) {
            Ok(key) if keys.iter().any(|k| k.kid == key.kid && k.alg == key.alg) => {
                skipped.push(SkippedKey::Duplicate { kid: key.kid.into() });
            }
            Ok(key) => keys.push(Arc::new(key)),
            Err(why) => skipped.push(why),
        }
    }
    Ok(ParsedJwks { keys: KeySet { keys }, skipped })
}

fn b64(s: Option<&str>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s?).ok()
}

fn parse_jwk(jwk: RawJwk) -> Result<VerifyKey, SkippedKey> {
    let Some(kid) = jwk.kid.filter(|k| !k.is_empty()) else {
        return Err(SkippedKey::NoKid);
    };
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(SkippedKey::NotForSignatures { kid });
    }
    if jwk.key_ops.as_ref().is_some_and(|ops| !ops.iter().any(|op| op == "verify")) {
        return Err(SkippedKey::NoVerifyOp { kid });
    }
    let alg_matches = |wanted: Algorithm, aliases: &[&str]| match jwk.alg.as_deref() {
        None => true,
        Some(a) => a == wanted.as_str() || aliases.contains(&a),
    };
    let invalid = |kid: &str| SkippedKey::Invalid { kid: kid.to_owned() };
    let (alg, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) if alg_matches(Algorithm::RS256, &[]) => {
            let (Some(n), Some(e)) = (b64(jwk.n.as_deref()), b64(jwk.e.as_deref())) else {
                return Err(invalid(&kid));
            };
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            // RFC 7518 3.3: 2048 bits or larger.
            if n.len() < 256 || n[0] == 0 {
                return Err(invalid(&kid));
            }
            let key = RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(&sig::RSA_PKCS1_2048_8192_SHA256)
                .map_err(|_| invalid(&kid))?;
            (Algorithm::RS256, key)
        }
        ("EC", Some("P-256")) if alg_matches(Algorithm::ES256, &[]) => {
            let (Some(x), Some(y)) = (b64(jwk.x.as_deref()), b64(jwk.y.as_deref())) else {
                return Err(invalid(&kid));
            };
            if x.len() != 32 || y.len() != 32 {
                return Err(invalid(&kid));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let key = ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point).map_err(|_| invalid(&kid))?;
            (Algorithm::ES256, key)
        }
        // RFC 9864 names the same algorithm "Ed25519".
        ("OKP", Some("Ed25519")) if alg_matches(Algorithm::EdDSA, &["Ed25519"]) => {
            let Some(x) = b64(jwk.x.as_deref()).filter(|x| x.len() == 32) else {
                return Err(invalid(&kid));
            };
            let key = ParsedPublicKey::new(&sig::ED25519, x).map_err(|_| invalid(&kid))?;
            (Algorithm::EdDSA, key)
        }
        _ => return Err(SkippedKey::Unsupported { kid }),
    };
    Ok(VerifyKey { kid: kid.into_boxed_str(), alg, key })
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len().saturating_sub(1));
    &b[first..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::SigningKey;

    fn jwks_of(keys: &[serde_json::Value]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
    }

    fn jwk(alg: Algorithm, kid: &str) -> serde_json::Value {
        serde_json::to_value(SigningKey::generate(alg, kid).unwrap().public_jwk()).unwrap()
    }

    #[test]
    fn parses_each_supported_key_type() {
        let body = jwks_of(&[jwk(Algorithm::RS256, "r"), jwk(Algorithm::ES256, "e"), jwk(Algorithm::EdDSA, "o")]);
        let parsed = parse_jwks(&body).unwrap();
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let algs: Vec<_> = parsed.keys.keys().iter().map(|k| (k.kid().to_owned(), k.alg())).collect();
        assert_eq!(
            algs,
            vec![("r".into(), Algorithm::RS256), ("e".into(), Algorithm::ES256), ("o".into(), Algorithm::EdDSA)]
        );
    }

    #[test]
    fn key_with_use_enc_is_skipped() {
        let mut k = jwk(Algorithm::RS256, "r");
        k["use"] = "enc".into();
        let parsed = parse_jwks(&jwks_of(&[k])).unwrap();
        assert!(parsed.keys.is_empty());
        assert_eq!(parsed.skipped, vec![SkippedKey::NotForSignatures { kid: "r".into() }]);
    }

    #[test]
    fn key_ops_without_verify_is_skipped() {
        let mut k = jwk(Algorithm::ES256, "e");
        k["key_ops"] = serde_json::json!(["encrypt"]);
        assert!(parse_jwks(&jwks_of(&[k])).unwrap().keys.is_empty());
    }

    #[test]
    fn alg_not_matching_kty_is_skipped() {
        let mut k = jwk(Algorithm::RS256, "r");
        k["alg"] = "ES256".into();
        let mut h = jwk(Algorithm::RS256, "h");
        h["alg"] = "HS256".into();
        let parsed = parse_jwks(&jwks_of(&[k, h])).unwrap();
        assert!(parsed.keys.is_empty());
        assert_eq!(parsed.skipped.len(), 2);
    }

    #[test]
    fn symmetric_and_unknown_keys_are_skipped_but_the_rest_kept() {
        let oct = serde_json::json!({"kty":"oct","kid":"s","k":"c2VjcmV0"});
        let odd = serde_json::json!({"kty":"RSA","kid":"bad","n":5,"e":"AQAB"});
        let parsed = parse_jwks(&jwks_of(&[oct, odd, jwk(Algorithm::EdDSA, "o")])).unwrap();
        assert_eq!(parsed.keys.len(), 1);
        assert_eq!(parsed.skipped.len(), 2);
    }

    #[test]
    fn weak_rsa_is_rejected() {
        // 1024-bit modulus.
        let n = URL_SAFE_NO_PAD.encode([0xC5u8; 128]);
        let k = serde_json::json!({"kty":"RSA","kid":"weak","n":n,"e":"AQAB"});
        let parsed = parse_jwks(&jwks_of(&[k])).unwrap();
        assert_eq!(parsed.skipped, vec![SkippedKey::Invalid { kid: "weak".into() }]);
    }

    #[test]
    fn ec_point_not_on_curve_is_rejected() {
        let k = serde_json::json!({"kty":"EC","crv":"P-256","kid":"e","x":URL_SAFE_NO_PAD.encode([1u8;32]),"y":URL_SAFE_NO_PAD.encode([2u8;32])});
        assert!(parse_jwks(&jwks_of(&[k])).unwrap().keys.is_empty());
    }

    #[test]
    fn not_a_jwks_is_an_error() {
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"{\"keys\":{}}").is_err());
        assert!(parse_jwks(b"not json").is_err());
    }

    #[test]
    fn same_kid_for_two_algorithms_is_looked_up_by_both() {
        let parsed = parse_jwks(&jwks_of(&[jwk(Algorithm::RS256, "k"), jwk(Algorithm::ES256, "k")])).unwrap();
        assert!(matches!(parsed.keys.lookup("k", Algorithm::ES256), Lookup::Found(_)));
        assert!(matches!(parsed.keys.lookup("k", Algorithm::RS256), Lookup::Found(_)));
        assert!(matches!(parsed.keys.lookup("k", Algorithm::EdDSA), Lookup::WrongAlgorithm));
        assert!(matches!(parsed.keys.lookup("x", Algorithm::EdDSA), Lookup::Missing));
    }

    #[test]
    fn unchanged_keys_keep_their_identity_across_refreshes() {
        let a = jwk(Algorithm::ES256, "a");
        let first = parse_jwks(&jwks_of(std::slice::from_ref(&a))).unwrap().keys;
        let second = parse_jwks(&jwks_of(&[a, jwk(Algorithm::ES256, "b")])).unwrap().keys.carry_over(Some(&first));
        assert!(second.contains(&first.keys()[0]));
        let replaced = parse_jwks(&jwks_of(&[jwk(Algorithm::ES256, "a")])).unwrap().keys.carry_over(Some(&first));
        assert!(!replaced.contains(&first.keys()[0]), "new material under an old kid is a new key");
    }

    #[test]
    fn too_many_keys_are_bounded() {
        let k = jwk(Algorithm::EdDSA, "o");
        let keys: Vec<_> = (0..MAX_KEYS_PER_SET + 5)
            .map(|i| {
                let mut k = k.clone();
                k["kid"] = format!("k{i}").into();
                k
            })
            .collect();
        let parsed = parse_jwks(&jwks_of(&keys)).unwrap();
        assert_eq!(parsed.keys.len(), MAX_KEYS_PER_SET);
        assert_eq!(parsed.skipped, vec![SkippedKey::TooMany]);
    }
}
