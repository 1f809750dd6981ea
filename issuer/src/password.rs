//! Password hashing: argon2id (PHC strings), imported bcrypt, re-hashing.
//!
//! Hashing is deliberately slow and memory-hard (19 MiB per hash at the
//! OWASP minimum), so it runs on the blocking pool behind a semaphore: at
//! most `concurrency` hashes at once, and a request that cannot get a slot
//! within the queue wait is refused ([`HashError::Busy`], 503) instead of
//! queueing without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::Argon2Cost;

/// Hashing could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Every hashing slot stayed busy for the whole queue wait.
    #[error("password hashing is saturated")]
    Busy,
    /// The hasher failed (bad parameters, random source, task failure).
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The outcome of checking a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The password matches. `rehash` holds a new argon2id PHC string when
    /// the stored hash is bcrypt or weaker than the configured parameters.
    Match {
        /// The replacement hash to store, if any.
        rehash: Option<String>,
    },
    /// It does not (or the stored hash is unusable, or there is no user).
    Mismatch,
}

/// The hash computations a [`PasswordHasher`] has done, by kind: tests
/// check that every login path does the same work by counting it, not by
/// timing it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashStats {
    /// argon2 computations (hashes and verifications, the dummy's included).
    pub argon2: u64,
    /// bcrypt verifications.
    pub bcrypt: u64,
}

/// Hashes and verifies passwords. Share it in an `Arc`.
pub struct PasswordHasher {
    argon: Argon2<'static>,
    cost: Argon2Cost,
    /// A hash of a random password with the configured parameters: unknown
    /// users are verified against it so that they take as long as known ones.
    dummy: String,
    slots: Arc<Semaphore>,
    queue_wait: Duration,
    argon2_runs: AtomicU64,
    bcrypt_runs: AtomicU64,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("cost", &self.cost).finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], HashError> {
    crate::tokens::random_bytes::<N>().map_err(|e| HashError::Internal(e.to_string()))
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p))
}

impl PasswordHasher {
    /// A hasher with `cost`, at most `concurrency` hashes at once, and at
    /// most `queue_wait` spent waiting for a slot. Computes the dummy hash
    /// (blocking, once).
    ///
    /// # Errors
    /// [`HashError::Internal`] for parameters argon2 refuses.
    pub fn new(cost: Argon2Cost, concurrency: usize, queue_wait: Duration) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| HashError::Internal(format!("argon2 parameters: {e}")))?;
        let argon = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, params);
        let mut me = PasswordHasher {
            argon,
            cost,
            dummy: String::new(),
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            queue_wait,
            argon2_runs: AtomicU64::new(0),
            bcrypt_runs: AtomicU64::new(0),
        };
        let random = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, random_bytes::<24>()?);
        me.dummy = me.hash_blocking(&random)?;
        Ok(me)
    }

    /// The configured cost.
    pub fn cost(&self) -> Argon2Cost {
        self.cost
    }

    /// The hash computations done so far.
    pub fn stats(&self) -> HashStats {
        HashStats { argon2: self.argon2_runs.load(Ordering::Relaxed), bcrypt: self.bcrypt_runs.load(Ordering::Relaxed) }
    }

    /// Hashes `password` into an argon2id PHC string, here and now (blocking).
    ///
    /// # Errors
    /// [`HashError::Internal`] if argon2 fails.
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        let salt =
            SaltString::encode_b64(&random_bytes::<16>()?).map_err(|e| HashError::Internal(format!("salt: {e}")))?;
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Internal(format!("argon2: {e}")))
    }

    /// Does the stored argon2 hash use weaker parameters (or another
    /// variant) than configured?
    fn needs_rehash(&self, hash: &PasswordHash<'_>) -> bool {
        if hash.algorithm != argon2::Algorithm::Argon2id.ident() || hash.version != Some(Version::V0x13.into()) {
            return true;
        }
        match Params::try_from(hash) {
            Ok(p) => {
                p.m_cost() < self.cost.memory_kib
                    || p.t_cost() < self.cost.iterations
                    || p.p_cost() < self.cost.parallelism
            }
            Err(_) => true,
        }
    }

    /// Checks `password` against `stored` (argon2 PHC or bcrypt), or against
    /// the dummy hash when `stored` is `None`, here and now (blocking).
    /// Unusable stored hashes count as a mismatch, after the same work.
    ///
    /// # Errors
    /// [`HashError::Internal`] if computing a replacement hash fails.
    pub fn verify_blocking(&self, password: &str, stored: Option<&str>) -> Result<Verification, HashError> {
        let Some(stored) = stored else {
            self.check_argon(password, &self.dummy);
            return Ok(Verification::Mismatch);
        };
        if is_bcrypt(stored) {
            // bcrypt looks at the first 72 bytes only, as the system the
            // hashes come from did.
            self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
            return match bcrypt::verify(password, stored) {
                Ok(true) => Ok(Verification::Match { rehash: Some(self.hash_blocking(password)?) }),
                Ok(false) => Ok(Verification::Mismatch),
                Err(_) => {
                    tracing::warn!("stored bcrypt hash is unusable");
                    Ok(Verification::Mismatch)
                }
            };
        }
        match PasswordHash::new(stored) {
            Ok(hash) => {
                self.argon2_runs.fetch_add(1, Ordering::Relaxed);
                if self.argon.verify_password(password.as_bytes(), &hash).is_ok() {
                    let rehash = if self.needs_rehash(&hash) { Some(self.hash_blocking(password)?) } else { None };
                    Ok(Verification::Match { rehash })
                } else {
                    Ok(Verification::Mismatch)
                }
            }
            Err(_) => {
                tracing::warn!("stored password hash is not a PHC string");
                self.check_argon(password, &self.dummy);
                Ok(Verification::Mismatch)
            }
        }
    }

    fn check_argon(&self, password: &str, phc: &str) -> bool {
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        PasswordHash::new(phc).is_ok_and(|h| self.argon.verify_password(password.as_bytes(), &h).is_ok())
    }

    /// Waits (at most the queue wait) for a hashing slot, then runs `f` on
    /// the blocking pool. The slot is held until `f` ends, even if the
    /// caller stops waiting.
    async fn with_slot<T, F>(self: &Arc<Self>, f: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce(&PasswordHasher) -> Result<T, HashError> + Send + 'static,
    {
        let permit = tokio::time::timeout(self.queue_wait, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Busy)?;
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let out = f(&me);
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashError::Internal(format!("hash task: {e}")))?
    }

    /// [`PasswordHasher::hash_blocking`] off the async workers, bounded.
    ///
    /// # Errors
    /// [`HashError::Busy`] when saturated; [`HashError::Internal`] on failure.
    pub async fn hash(self: &Arc<Self>, password: String) -> Result<String, HashError> {
        self.with_slot(move |h| h.hash_blocking(&password)).await
    }

    /// [`PasswordHasher::verify_blocking`] off the async workers, bounded.
    ///
    /// # Errors
    /// [`HashError::Busy`] when saturated; [`HashError::Internal`] on failure.
    pub async fn verify(self: &Arc<Self>, password: String, stored: Option<String>) -> Result<Verification, HashError> {
        self.with_slot(move |h| h.verify_blocking(&password, stored.as_deref())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(Argon2Cost::default(), 2, Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn argon2id_round_trip_with_owasp_parameters() {
        let h = hasher();
        let phc = h.hash_blocking("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(h.verify_blocking("correct horse", Some(&phc)).unwrap(), Verification::Match { rehash: None });
        assert_eq!(h.verify_blocking("correct horsf", Some(&phc)).unwrap(), Verification::Mismatch);
    }

    #[test]
    fn salts_differ() {
        let h = hasher();
        assert_ne!(h.hash_blocking("pw-pw-pw-pw").unwrap(), h.hash_blocking("pw-pw-pw-pw").unwrap());
    }

    #[test]
    fn imported_bcrypt_verifies_and_is_rehashed() {
        let h = hasher();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let b = bcrypt::hash("legacy password", 4).unwrap();
            let b = b.replacen("$2b$", prefix, 1);
            match h.verify_blocking("legacy password", Some(&b)).unwrap() {
                Verification::Match { rehash: Some(new) } => {
                    assert!(new.starts_with("$argon2id$"), "{new}");
                    assert_eq!(
                        h.verify_blocking("legacy password", Some(&new)).unwrap(),
                        Verification::Match { rehash: None }
                    );
                }
                other => panic!("{prefix}: {other:?}"),
            }
            assert_eq!(h.verify_blocking("wrong password", Some(&b)).unwrap(), Verification::Mismatch);
        }
    }

    #[test]
    fn weaker_parameters_are_upgraded_on_login() {
        let weak = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap());
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let old = weak.hash_password(b"old params pw", &salt).unwrap().to_string();
        let h = hasher();
        match h.verify_blocking("old params pw", Some(&old)).unwrap() {
            Verification::Match { rehash: Some(new) } => assert!(new.contains("m=19456,t=2,p=1"), "{new}"),
            other => panic!("{other:?}"),
        }
        // argon2i is upgraded to argon2id too.
        let argon2i = Argon2::new(argon2::Algorithm::Argon2i, Version::V0x13, Params::default());
        let old = argon2i.hash_password(b"old params pw", &salt).unwrap().to_string();
        assert!(matches!(
            h.verify_blocking("old params pw", Some(&old)).unwrap(),
            Verification::Match { rehash: Some(_) }
        ));
        // Stronger stored parameters are kept.
        let strong = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, Params::new(32768, 3, 1, None).unwrap());
        let s = strong.hash_password(b"old params pw", &salt).unwrap().to_string();
        assert_eq!(h.verify_blocking("old params pw", Some(&s)).unwrap(), Verification::Match { rehash: None });
    }

    #[test]
    fn unknown_user_and_garbage_hashes_are_mismatches() {
        let h = hasher();
        assert_eq!(h.verify_blocking("anything at all", None).unwrap(), Verification::Mismatch);
        assert_eq!(h.verify_blocking("anything at all", Some("plaintext")).unwrap(), Verification::Mismatch);
        assert_eq!(h.verify_blocking("anything at all", Some("$2b$10$short")).unwrap(), Verification::Mismatch);
    }

    #[test]
    fn parameters_below_owasp_are_refused_by_config_not_here() {
        // The hasher takes what config validated; argon2 itself refuses nonsense.
        let bad = Argon2Cost { memory_kib: 1, iterations: 0, parallelism: 0 };
        assert!(PasswordHasher::new(bad, 1, Duration::ZERO).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saturation_is_busy_not_unbounded() {
        let h = Arc::new(PasswordHasher::new(Argon2Cost::default(), 1, Duration::from_millis(1)).unwrap());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let h = Arc::clone(&h);
            tasks.push(tokio::spawn(async move { h.hash("pw-pw-pw-pw".into()).await }));
        }
        let mut busy = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Err(HashError::Busy)) {
                busy += 1;
            }
        }
        assert!(busy >= 1, "one slot and a 1 ms wait: some of 8 must be refused");
    }
}
