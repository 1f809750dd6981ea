//! The signing key ring: one active key that signs, every key published.
//!
//! The ring has one document format, the Secrets Manager secret of
//! `docs/DESIGN.md`:
//!
//! ```json
//! {"active": "2026-11", "keys": [
//!   {"kid": "2026-11", "alg": "RS256", "private_key_pem": "-----BEGIN PRIVATE KEY-----..."}
//! ]}
//! ```
//!
//! On AWS it is read at init from Secrets Manager
//! ([`KeyRing::from_secrets_manager`]); locally it is generated on first start
//! and kept in `<data dir>/keys/signing-keys.json` (mode 0600, directory
//! 0700) and reused on restart ([`KeyRing::load_or_create_local`]).

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use token_core::{Algorithm, PublicJwks, SigningKey};

/// The key file inside the data directory.
pub const LOCAL_KEY_FILE: &str = "keys/signing-keys.json";

/// Why the key ring could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The document is not the key-ring JSON format.
    #[error("key ring is not valid JSON of the expected format: {0}")]
    Format(String),
    /// A semantic problem (no keys, active key missing, duplicate kid, bad key).
    #[error("key ring: {0}")]
    Invalid(String),
    /// Reading or writing the local key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Secrets Manager could not be read.
    #[error("secrets manager: {0}")]
    Secrets(String),
}

/// One key of the stored document.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    kid: String,
    alg: String,
    private_key_pem: String,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// The stored document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredRing {
    active: String,
    keys: Vec<StoredKey>,
}

/// The issuer's keys. `Debug` prints key ids only.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
    active: usize,
    jwks: PublicJwks,
    jwks_json: Bytes,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active().kid())
            .field("kids", &self.keys.iter().map(SigningKey::kid).collect::<Vec<_>>())
            .finish()
    }
}

/// A random key id: 12 base64url characters.
fn random_kid() -> Result<String, KeyError> {
    let b = crate::tokens::random_bytes::<9>().map_err(|e| KeyError::Invalid(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

impl KeyRing {
    /// A ring from keys and the id of the active one.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] when `keys` is empty, a `kid` repeats, or
    /// `active` names no key.
    pub fn new(keys: Vec<SigningKey>, active: &str) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Invalid("no keys".into()));
        }
        for (i, k) in keys.iter().enumerate() {
            if k.kid().is_empty() {
                return Err(KeyError::Invalid("empty kid".into()));
            }
            if keys[..i].iter().any(|o| o.kid() == k.kid()) {
                return Err(KeyError::Invalid(format!("kid {:?} appears twice", k.kid())));
            }
        }
        let active = keys
            .iter()
            .position(|k| k.kid() == active)
            .ok_or_else(|| KeyError::Invalid(format!("active kid {active:?} is not among the keys")))?;
        let jwks = PublicJwks { keys: keys.iter().map(|k| k.public_jwk().clone()).collect() };
        let jwks_json =
            Bytes::from(serde_json::to_vec(&jwks).map_err(|e| KeyError::Invalid(format!("JWKS encoding: {e}")))?);
        Ok(KeyRing { keys, active, jwks, jwks_json })
    }

    /// A ring of one freshly generated key.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] if key generation fails.
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let kid = random_kid()?;
        let key = SigningKey::generate(alg, kid.clone()).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Self::new(vec![key], &kid)
    }

    /// Parses the key-ring document (the Secrets Manager secret format).
    ///
    /// # Errors
    /// [`KeyError::Format`] for bad JSON, [`KeyError::Invalid`] for an
    /// unknown algorithm, a key that does not load, or the rules of
    /// [`KeyRing::new`].
    pub fn from_json(text: &str) -> Result<Self, KeyError> {
        let doc: StoredRing = serde_json::from_str(text).map_err(|e| {
            // Never echo the document: it holds private keys.
            KeyError::Format(format!("line {} column {}: {:?}", e.line(), e.column(), e.classify()))
        })?;
        let mut keys = Vec::with_capacity(doc.keys.len());
        for k in &doc.keys {
            let alg: Algorithm =
                k.alg.parse().map_err(|_| KeyError::Invalid(format!("key {:?}: unknown alg {:?}", k.kid, k.alg)))?;
            let key = SigningKey::from_pkcs8_pem(alg, k.kid.clone(), &k.private_key_pem)
                .map_err(|e| KeyError::Invalid(format!("key {:?}: {e}", k.kid)))?;
            keys.push(key);
        }
        Self::new(keys, &doc.active)
    }

    /// The document form, private keys included: handle as a secret.
    ///
    /// # Errors
    /// [`KeyError::Invalid`] if encoding fails.
    pub fn to_json(&self) -> Result<String, KeyError> {
        let doc = StoredRing {
            active: self.active().kid().to_owned(),
            keys: self
                .keys
                .iter()
                .map(|k| StoredKey {
                    kid: k.kid().to_owned(),
                    alg: k.alg().as_str().to_owned(),
                    private_key_pem: k.to_pkcs8_pem().to_owned(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&doc).map_err(|e| KeyError::Invalid(e.to_string()))
    }

    /// Loads `<data_dir>/keys/signing-keys.json`, or generates a ring of one
    /// `alg` key and writes it there (mode 0600, atomically) on first start.
    ///
    /// # Errors
    /// [`KeyError::Io`] on file errors; as [`KeyRing::from_json`] for a bad file.
    pub fn load_or_create_local(data_dir: &Path, alg: Algorithm) -> Result<Self, KeyError> {
        let path = data_dir.join(LOCAL_KEY_FILE);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KeyError::Io { path, source }
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let ring = Self::from_json(&text)?;
                if ring.active().alg() != alg {
                    tracing::warn!(
                        active_alg = %ring.active().alg(),
                        configured_alg = %alg,
                        "ISSUER_SIGNING_ALG differs from the stored active key; keeping the stored key"
                    );
                }
                Ok(ring)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let dir = path.parent().unwrap_or(data_dir);
                create_private_dir(dir).map_err(io(dir))?;
                let ring = Self::generate(alg)?;
                write_private_file(&path, ring.to_json()?.as_bytes()).map_err(io(&path))?;
                tracing::info!(kid = ring.active().kid(), alg = %alg, "generated a signing key");
                Ok(ring)
            }
            Err(e) => Err(KeyError::Io { path, source: e }),
        }
    }

    /// Reads the ring from the Secrets Manager secret `arn` (its
    /// `SecretString`, in the document format).
    ///
    /// # Errors
    /// [`KeyError::Secrets`] if the secret cannot be read; as
    /// [`KeyRing::from_json`] for a bad document.
    pub async fn from_secrets_manager(client: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<Self, KeyError> {
        let out = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| KeyError::Secrets(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string()))?;
        let text = out.secret_string().ok_or_else(|| KeyError::Secrets("the secret has no SecretString".into()))?;
        Self::from_json(text)
    }

    /// The key that signs.
    pub fn active(&self) -> &SigningKey {
        // `active` is checked in `new`; fall back to the first key rather than panic.
        self.keys.get(self.active).unwrap_or(&self.keys[0])
    }

    /// Every key (active and published-only).
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The public keys.
    pub fn jwks(&self) -> &PublicJwks {
        &self.jwks
    }

    /// The JWKS document, serialised once.
    pub fn jwks_json(&self) -> &Bytes {
        &self.jwks_json
    }
}

/// Creates `dir` and its parents; the last one with mode 0700.
///
/// # Errors
/// The I/O error.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Writes `bytes` to `path` with mode 0600: a temporary file, fsync, rename,
/// so a crash leaves either the old file or the new one.
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("issuer-keys-{tag}-{}", random_kid().unwrap()));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn local_key_is_created_once_and_reused() {
        let dir = temp_dir("local");
        let a = KeyRing::load_or_create_local(&dir, Algorithm::ES256).unwrap();
        let b = KeyRing::load_or_create_local(&dir, Algorithm::ES256).unwrap();
        assert_eq!(a.jwks(), b.jwks());
        assert_eq!(a.active().kid(), b.active().kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(LOCAL_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(dir.join("keys")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secret_format_with_a_published_only_key() {
        let k1 = SigningKey::generate(Algorithm::EdDSA, "2026-11").unwrap();
        let k2 = SigningKey::generate(Algorithm::ES256, "2026-12").unwrap();
        let doc = serde_json::json!({"active": "2026-12", "keys": [
            {"kid": "2026-11", "alg": "EdDSA", "private_key_pem": k1.to_pkcs8_pem()},
            {"kid": "2026-12", "alg": "ES256", "private_key_pem": k2.to_pkcs8_pem()},
        ]});
        let ring = KeyRing::from_json(&doc.to_string()).unwrap();
        assert_eq!(ring.active().kid(), "2026-12");
        assert_eq!(ring.jwks().keys.len(), 2);
        let again = KeyRing::from_json(&ring.to_json().unwrap()).unwrap();
        assert_eq!(again.jwks(), ring.jwks());
    }

    #[test]
    fn bad_rings_are_refused_without_echoing_keys() {
        let k = SigningKey::generate(Algorithm::EdDSA, "a").unwrap();
        let pem = k.to_pkcs8_pem();
        let cases = [
            serde_json::json!({"active": "b", "keys": [{"kid": "a", "alg": "EdDSA", "private_key_pem": pem}]}),
            serde_json::json!({"active": "a", "keys": []}),
            serde_json::json!({"active": "a", "keys": [
                {"kid": "a", "alg": "EdDSA", "private_key_pem": pem},
                {"kid": "a", "alg": "EdDSA", "private_key_pem": pem}]}),
            serde_json::json!({"active": "a", "keys": [{"kid": "a", "alg": "RS256", "private_key_pem": pem}]}),
            serde_json::json!({"active": "a", "keys": [{"kid": "a", "alg": "HS256", "private_key_pem": pem}]}),
            serde_json::json!({"active": "a", "keys": [{"kid": "a", "alg": "EdDSA", "private_key_pem": pem, "x": 1}]}),
        ];
        for doc in cases {
            let err = KeyRing::from_json(&doc.to_string()).unwrap_err().to_string();
            assert!(!err.contains("PRIVATE KEY"), "{err}");
        }
        let err = KeyRing::from_json(&format!("{{\"active\": \"{pem}")).unwrap_err().to_string();
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
}
