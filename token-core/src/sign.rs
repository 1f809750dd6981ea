//! Signing access tokens: the issuer's side of the profile.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::Algorithm;

/// The `typ` header of every access token (RFC 9068 2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// A public key as published in the issuer's JWKS (RFC 7517), always with
/// `use: sig`, `alg` and `kid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// The one algorithm the key is for.
    pub alg: String,
    /// The key id tokens name in their header.
    pub kid: String,
    /// RSA modulus.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
    /// Curve (`P-256`, `Ed25519`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    /// EC x coordinate, or the Ed25519 public key.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
}

/// A JWKS document: `{"keys": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PublicJwks {
    /// The published keys.
    pub keys: Vec<PublicJwk>,
}

/// `aud`: one audience or several (RFC 7519 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience, serialized as a string.
    One(String),
    /// Several audiences, serialized as an array.
    Many(Vec<String>),
}

/// The claims of an access token in the RFC 9068 profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audience(s).
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not before, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nbf: Option<u64>,
    /// Unique token id.
    pub jti: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The OAuth client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    /// The session (refresh-token family) the token belongs to, so that one
    /// session can be revoked (see [`crate::revocation`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
}

/// Failure to create, load or use a signing key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The key material could not be generated.
    #[error("key generation failed")]
    Generate,
    /// The PEM or PKCS#8 document is not a private key of the algorithm.
    #[error("not a PKCS#8 private key for {0}")]
    InvalidKey(Algorithm),
    /// The claims could not be serialized.
    #[error("claims not serializable: {0}")]
    Claims(String),
    /// The crypto backend failed to sign.
    #[error("signing failed")]
    Sign,
}

/// The private key, parsed once: parsing an RSA key costs more than the
/// signature itself (about 440 of 730 microseconds on our machines).
enum KeyPair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key with its id. `Debug` never prints key material.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    pair: Arc<KeyPair>,
    /// `base64url({"typ":"at+jwt","alg":...,"kid":...})`, computed once.
    header_b64: String,
    pkcs8_pem: String,
    jwk: PublicJwk,
}

#[derive(Serialize)]
struct JoseHeader<'a> {
    typ: &'a str,
    alg: &'a str,
    kid: &'a str,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// Generates a fresh key: RSA 2048, P-256 or Ed25519.
    ///
    /// # Errors
    /// [`SignError::Generate`] if the system random source fails.
    pub fn generate(alg: Algorithm, kid: impl Into<String>) -> Result<Self, SignError> {
        let der: Vec<u8> = match alg {
            Algorithm::RS256 => {
                let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| SignError::Generate)?;
                kp.as_der().map_err(|_| SignError::Generate)?.as_ref().to_vec()
            }
            Algorithm::ES256 => {
                let kp =
                    EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| SignError::Generate)?;
                kp.to_pkcs8v1().map_err(|_| SignError::Generate)?.as_ref().to_vec()
            }
            Algorithm::EdDSA => {
                let kp = Ed25519KeyPair::generate().map_err(|_| SignError::Generate)?;
                kp.to_pkcs8v1().map_err(|_| SignError::Generate)?.as_ref().to_vec()
            }
        };
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
        Self::from_pkcs8_pem(alg, kid, &pem)
    }

    /// Loads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    ///
    /// # Errors
    /// [`SignError::InvalidKey`] when the document is not a private key for `alg`.
    pub fn from_pkcs8_pem(alg: Algorithm, kid: impl Into<String>, pem_text: &str) -> Result<Self, SignError> {
        let kid = kid.into();
        let invalid = || SignError::InvalidKey(alg);
        let doc = pem::parse(pem_text).map_err(|_| invalid())?;
        if doc.tag() != "PRIVATE KEY" {
            return Err(invalid());
        }
        let der = doc.contents();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let mut jwk = PublicJwk {
            kty: String::new(),
            use_: "sig".into(),
            alg: alg.as_str().into(),
            kid: kid.clone(),
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        };
        let pair = match alg {
            Algorithm::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(|_| invalid())?;
                if kp.public_modulus_len() < 256 {
                    return Err(invalid());
                }
                let parts = PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                jwk.kty = "RSA".into();
                jwk.n = Some(b64(&parts.n));
                jwk.e = Some(b64(&parts.e));
                KeyPair::Rsa(kp)
            }
            Algorithm::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(|_| invalid())?;
                let point = kp.public_key().as_ref();
                if point.len() != 65 {
                    return Err(invalid());
                }
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                jwk.x = Some(b64(&point[1..33]));
                jwk.y = Some(b64(&point[33..]));
                KeyPair::Ec(kp)
            }
            Algorithm::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(der).map_err(|_| invalid())?;
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64(kp.public_key().as_ref()));
                KeyPair::Ed(kp)
            }
        };
        let header = serde_json::to_vec(&JoseHeader { typ: ACCESS_TOKEN_TYP, alg: alg.as_str(), kid: &kid })
            .map_err(|e| SignError::Claims(e.to_string()))?;
        let header_b64 = URL_SAFE_NO_PAD.encode(header);
        Ok(SigningKey { kid, alg, pair: Arc::new(pair), header_b64, pkcs8_pem: pem_text.to_owned(), jwk })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public half, for the JWKS.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// The private key as PKCS#8 PEM, for storing it. Handle as a secret.
    pub fn to_pkcs8_pem(&self) -> &str {
        &self.pkcs8_pem
    }

    /// Signs `claims` as an access token: a JWS compact serialization
    /// (RFC 7515 7.1) with header `typ: at+jwt`, `alg`, `kid`.
    ///
    /// # Errors
    /// [`SignError::Sign`] if the backend fails.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, SignError> {
        self.sign_any(claims)
    }

    /// Signs arbitrary claims with the profile's header. For tests and tools
    /// that need tokens outside the profile (wrong types, missing claims).
    ///
    /// # Errors
    /// [`SignError::Claims`] if `claims` does not serialize to JSON,
    /// [`SignError::Sign`] if the backend fails.
    pub fn sign_any<T: Serialize>(&self, claims: &T) -> Result<String, SignError> {
        let payload = serde_json::to_vec(claims).map_err(|e| SignError::Claims(e.to_string()))?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 360);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = match &*self.pair {
            KeyPair::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                kp.sign(&sig::RSA_PKCS1_SHA256, &rng, token.as_bytes(), &mut sig).map_err(|_| SignError::Sign)?;
                sig
            }
            KeyPair::Ec(kp) => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                kp.sign(&rng, token.as_bytes()).map_err(|_| SignError::Sign)?.as_ref().to_vec()
            }
            KeyPair::Ed(kp) => kp.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_key_material() {
        let key = SigningKey::generate(Algorithm::EdDSA, "k1").unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("[redacted]"));
        assert!(!shown.contains("PRIVATE"));
    }

    #[test]
    fn pem_round_trip_keeps_the_public_key() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg, "k").unwrap();
            let again = SigningKey::from_pkcs8_pem(alg, "k", key.to_pkcs8_pem()).unwrap();
            assert_eq!(key.public_jwk(), again.public_jwk(), "{alg}");
        }
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let ec = SigningKey::generate(Algorithm::ES256, "k").unwrap();
        assert!(SigningKey::from_pkcs8_pem(Algorithm::RS256, "k", ec.to_pkcs8_pem()).is_err());
        assert!(SigningKey::from_pkcs8_pem(Algorithm::EdDSA, "k", ec.to_pkcs8_pem()).is_err());
        assert!(SigningKey::from_pkcs8_pem(Algorithm::ES256, "k", "not pem").is_err());
    }

    #[test]
    fn jsonwebtoken_decodes_what_we_sign() {
        // Interoperability: an independent implementation accepts our tokens.
        let claims = AccessClaims {
            iss: "https://issuer.test".into(),
            sub: "u".into(),
            aud: Audience::Many(vec!["api".into(), "web".into()]),
            exp: 4_000_000_000,
            iat: 1_700_000_000,
            nbf: None,
            jti: "j".into(),
            scope: "a b".into(),
            client_id: Some("c".into()),
            sid: None,
        };
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg, "k").unwrap();
            let token = key.sign(&claims).unwrap();
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(serde_json::to_value(key.public_jwk()).unwrap()).unwrap();
            let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut v = jsonwebtoken::Validation::new(match alg {
                Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
                Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
                Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            });
            v.set_audience(&["web"]);
            let data = jsonwebtoken::decode::<AccessClaims>(&token, &dk, &v).unwrap();
            assert_eq!(data.claims, claims, "{alg}");
        }
    }

    #[test]
    fn header_is_the_profile() {
        let key = SigningKey::generate(Algorithm::ES256, "kid-1").unwrap();
        let token = key.sign_any(&serde_json::json!({"sub":"u"})).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some("kid-1"));
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    }
}
