//! Password hashing: argon2id (PHC strings), imported bcrypt, re-hashing.
//!
//! Hashing is deliberately slow and memory-hard (19 MiB per hash at the
//! OWASP minimum), so it runs on the blocking pool behind a semaphore: at
//! most `concurrency` hashes at once, and a request that cannot get a slot
//! within the queue wait is refused ([`HashError::Busy`], 503) instead of
//! queueing without bound.
//!
//! **Bounded memory.** Each slot owns one preallocated argon2 memory area
//! (the configured `m` KiB), and every hash with the configured parameters
//! is computed in it (`Argon2::hash_password_into_with_memory`). Nothing
//! allocates 19 MiB per request, so resident memory is the pool
//! (`concurrency` x `m` KiB) whatever the number of requests; before, each
//! blocking thread's allocator kept the blocks of its last hash. A stored
//! hash whose memory cost exceeds the configured one is verified in a
//! temporary allocation and replaced on a successful login.
//!
//! **Same work on every path.** Every verification does the same hash work
//! whether the account exists, the password is right or wrong, or the hash
//! is an imported one: one argon2id with the configured parameters (against
//! a dummy hash where there is no usable one) and, when the deployment has
//! imported bcrypt hashes ([`PasswordHasher::with_legacy_bcrypt`], setting
//! `ISSUER_LEGACY_BCRYPT_COST`), one bcrypt at that cost (against a dummy
//! bcrypt hash where the account has none). [`HashStats`] counts both kinds
//! so tests assert this structure rather than time.
//!
//! **Imported bcrypt hashes** are best wrapped at import
//! ([`PasswordHasher::wrap_bcrypt_blocking`]): the stored value becomes
//! `$bcrypt-argon2id$2b$<cost>$<bcrypt salt>` followed by an argon2id PHC
//! string computed over the bcrypt hash string, so a leaked store holds no
//! bare bcrypt hash. Verification recomputes the bcrypt hash with the stored
//! salt and cost, then checks the argon2id over it. Plain bcrypt hashes
//! (`$2a$`, `$2b$`, `$2y$`) are still accepted. Both are replaced by plain
//! argon2id on the next successful login.

use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Argon2, Block, Params, Version};
use base64::Engine as _;
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
    /// the stored hash is bcrypt (plain or wrapped) or its argon2 parameters
    /// differ from the configured ones.
    Match {
        /// The replacement hash to store, if any.
        rehash: Option<String>,
    },
    /// It does not (or the stored hash is unusable, or there is no user).
    Mismatch,
}

/// How many hash computations of each kind a [`PasswordHasher`] has done
/// since it was built, dummies included. Tests use it to check that every
/// login path does the same hash work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashStats {
    /// argon2 computations (hashing, verification, dummy verification).
    pub argon2: u64,
    /// bcrypt computations (verification, dummy verification).
    pub bcrypt: u64,
}

impl std::ops::Sub for HashStats {
    type Output = HashStats;
    fn sub(self, rhs: HashStats) -> HashStats {
        HashStats { argon2: self.argon2 - rhs.argon2, bcrypt: self.bcrypt - rhs.bcrypt }
    }
}

/// The prefix of an imported bcrypt hash wrapped in argon2id.
pub const WRAPPED_BCRYPT_PREFIX: &str = "$bcrypt-argon2id";

/// bcrypt's own base64 alphabet (`./A-Za-z0-9`), unpadded; the last salt
/// character carries unused bits.
const BCRYPT_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::BCRYPT,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// The preallocated argon2 memory areas, one per hashing slot.
struct BlockPool {
    free: Mutex<Vec<Box<[Block]>>>,
    blocks_per_area: usize,
}

impl BlockPool {
    fn new(areas: usize, blocks_per_area: usize) -> Self {
        let free = (0..areas).map(|_| vec![Block::new(); blocks_per_area].into_boxed_slice()).collect();
        BlockPool { free: Mutex::new(free), blocks_per_area }
    }

    /// An area from the pool. The async paths hold a semaphore permit per
    /// area, so the pool never runs dry there; the blocking paths (tools,
    /// tests, start-up) may find it empty and then get a temporary area.
    fn take(&self) -> Area<'_> {
        let area = self.free.lock().ok().and_then(|mut f| f.pop());
        match area {
            Some(a) => Area { pool: self, blocks: Some(a), pooled: true },
            None => Area {
                pool: self,
                blocks: Some(vec![Block::new(); self.blocks_per_area].into_boxed_slice()),
                pooled: false,
            },
        }
    }
}

/// A memory area, returned to its pool when dropped.
struct Area<'p> {
    pool: &'p BlockPool,
    blocks: Option<Box<[Block]>>,
    pooled: bool,
}

impl Area<'_> {
    fn blocks(&mut self) -> &mut [Block] {
        self.blocks.as_deref_mut().unwrap_or(&mut [])
    }
}

impl Drop for Area<'_> {
    fn drop(&mut self) {
        if self.pooled
            && let (Some(b), Ok(mut free)) = (self.blocks.take(), self.pool.free.lock())
        {
            free.push(b);
        }
    }
}

/// A stored hash, as the verifier understands it.
enum Stored<'a> {
    /// An argon2 PHC string.
    Argon(PasswordHash<'a>),
    /// A plain bcrypt hash.
    Bcrypt(&'a str),
    /// bcrypt settings (`$2b$NN$<salt>`) and the argon2id over the bcrypt hash.
    Wrapped { cost: u32, salt: [u8; 16], argon: PasswordHash<'a> },
    /// Anything else.
    Unusable,
}

fn parse_stored(stored: &str) -> Stored<'_> {
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p)) {
        return Stored::Bcrypt(stored);
    }
    if let Some(rest) = stored.strip_prefix(WRAPPED_BCRYPT_PREFIX) {
        // "$2b$NN$" + 22 salt characters, then the PHC string.
        let (settings, phc) = (rest.get(..29), rest.get(29..));
        let parsed = settings.zip(phc).and_then(|(settings, phc)| {
            let cost: u32 = settings.strip_prefix("$2b$")?.get(..2)?.parse().ok()?;
            let salt = BCRYPT_B64.decode(settings.get(7..)?).ok()?;
            let argon = PasswordHash::new(phc).ok()?;
            Some(Stored::Wrapped { cost, salt: salt.try_into().ok()?, argon })
        });
        return parsed.unwrap_or(Stored::Unusable);
    }
    PasswordHash::new(stored).map_or(Stored::Unusable, Stored::Argon)
}

/// Hashes and verifies passwords. Share it in an `Arc`.
pub struct PasswordHasher {
    argon: Argon2<'static>,
    params: Params,
    cost: Argon2Cost,
    /// An argon2id hash of a random password with the configured parameters:
    /// paths without a usable hash are verified against it.
    dummy: String,
    /// `ISSUER_LEGACY_BCRYPT_COST` and a bcrypt hash of a random password at
    /// that cost, for the paths without a bcrypt hash of their own.
    legacy_bcrypt: Option<(u32, String)>,
    pool: BlockPool,
    slots: Arc<Semaphore>,
    queue_wait: Duration,
    argon2_count: AtomicU64,
    bcrypt_count: AtomicU64,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("cost", &self.cost)
            .field("legacy_bcrypt_cost", &self.legacy_bcrypt.as_ref().map(|(c, _)| *c))
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], HashError> {
    crate::tokens::random_bytes::<N>().map_err(|e| HashError::Internal(e.to_string()))
}

fn random_password() -> Result<String, HashError> {
    Ok(base64::engine::general_purpose::STANDARD.encode(random_bytes::<24>()?))
}

impl PasswordHasher {
    /// A hasher with `cost`, at most `concurrency` hashes at once (and as
    /// many preallocated memory areas), and at most `queue_wait` spent
    /// waiting for a slot. Computes the dummy hash (blocking, once).
    ///
    /// # Errors
    /// [`HashError::Internal`] for parameters argon2 refuses.
    pub fn new(cost: Argon2Cost, concurrency: usize, queue_wait: Duration) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| HashError::Internal(format!("argon2 parameters: {e}")))?;
        let argon = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, params.clone());
        let concurrency = concurrency.max(1);
        let mut me = PasswordHasher {
            argon,
            pool: BlockPool::new(concurrency, params.block_count()),
            params,
            cost,
            dummy: String::new(),
            legacy_bcrypt: None,
            slots: Arc::new(Semaphore::new(concurrency)),
            queue_wait,
            argon2_count: AtomicU64::new(0),
            bcrypt_count: AtomicU64::new(0),
        };
        me.dummy = me.hash_blocking(&random_password()?)?;
        Ok(me)
    }

    /// Declares that the store holds imported bcrypt hashes of `cost`
    /// (`ISSUER_LEGACY_BCRYPT_COST`): from now on every verification also
    /// does one bcrypt at that cost, a dummy one where the account has no
    /// bcrypt hash, so imported accounts cost the same as the others.
    /// Computes the dummy bcrypt hash (blocking, once).
    ///
    /// # Errors
    /// [`HashError::Internal`] for a cost bcrypt refuses (4 to 31).
    pub fn with_legacy_bcrypt(mut self, cost: u32) -> Result<Self, HashError> {
        let dummy = bcrypt::hash(random_password()?, cost).map_err(|e| HashError::Internal(format!("bcrypt: {e}")))?;
        self.legacy_bcrypt = Some((cost, dummy));
        Ok(self)
    }

    /// The hasher of a configuration: its argon2 cost, concurrency, queue
    /// wait and legacy bcrypt cost.
    ///
    /// # Errors
    /// [`HashError::Internal`] for parameters argon2 or bcrypt refuse.
    pub fn from_config(cfg: &crate::config::IssuerConfig) -> Result<Self, HashError> {
        let me = Self::new(cfg.argon2, cfg.hash_concurrency, cfg.hash_queue_wait)?;
        match cfg.legacy_bcrypt_cost {
            Some(cost) => me.with_legacy_bcrypt(cost),
            None => Ok(me),
        }
    }

    /// The configured cost.
    pub fn cost(&self) -> Argon2Cost {
        self.cost
    }

    /// The hash work done so far, by kind.
    pub fn stats(&self) -> HashStats {
        HashStats {
            argon2: self.argon2_count.load(Ordering::Relaxed),
            bcrypt: self.bcrypt_count.load(Ordering::Relaxed),
        }
    }

    /// argon2id with the configured parameters into `out`, in a pooled area.
    fn argon_into(&self, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), HashError> {
        self.argon2_count.fetch_add(1, Ordering::Relaxed);
        let mut area = self.pool.take();
        self.argon
            .hash_password_into_with_memory(password, salt, out, area.blocks())
            .map_err(|e| HashError::Internal(format!("argon2: {e}")))
    }

    /// Hashes `password` into an argon2id PHC string, here and now (blocking).
    ///
    /// # Errors
    /// [`HashError::Internal`] if argon2 fails.
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        self.phc(password.as_bytes())
    }

    fn phc(&self, input: &[u8]) -> Result<String, HashError> {
        let internal = |e: argon2::password_hash::Error| HashError::Internal(format!("argon2: {e}"));
        let salt = SaltString::encode_b64(&random_bytes::<16>()?).map_err(internal)?;
        let mut salt_buf = [0u8; 16];
        let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(internal)?;
        let len = self.params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let mut out = vec![0u8; len];
        self.argon_into(input, salt_bytes, &mut out)?;
        let hash = PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(internal)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(internal)?),
        };
        Ok(hash.to_string())
    }

    /// Wraps an imported bcrypt hash (`$2a$`, `$2b$`, `$2y$`) in argon2id,
    /// for import tools: the result verifies the same passwords, costs one
    /// bcrypt and one argon2id to check, and exposes no bare bcrypt hash.
    ///
    /// # Errors
    /// [`HashError::Internal`] if `bcrypt_hash` is not a bcrypt hash, or
    /// argon2 fails.
    pub fn wrap_bcrypt_blocking(&self, bcrypt_hash: &str) -> Result<String, HashError> {
        let not_bcrypt = || HashError::Internal("not a bcrypt hash".into());
        let Stored::Bcrypt(_) = parse_stored(bcrypt_hash) else { return Err(not_bcrypt()) };
        let parts: bcrypt::HashParts = bcrypt::HashParts::from_str(bcrypt_hash).map_err(|_| not_bcrypt())?;
        // The wrapped input is the hash as this crate formats it ($2b$):
        // the same string the verifier recomputes.
        let normalised = parts.format_for_version(bcrypt::Version::TwoB);
        let settings = normalised.get(..29).ok_or_else(not_bcrypt)?;
        Ok(format!("{WRAPPED_BCRYPT_PREFIX}{settings}{}", self.phc(normalised.as_bytes())?))
    }

    /// Verifies `password` against an argon2 PHC hash: in a pooled area
    /// when the memory cost fits it, else in a temporary allocation.
    fn argon_check(&self, password: &[u8], hash: &PasswordHash<'_>) -> bool {
        let (Ok(params), Ok(alg), Some(expected), Some(salt)) =
            (Params::try_from(hash), argon2::Algorithm::try_from(hash.algorithm), &hash.hash, &hash.salt)
        else {
            return self.dummy_argon(password);
        };
        let version = hash.version.map_or(Ok(Version::V0x13), Version::try_from).unwrap_or(Version::V0x13);
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return self.dummy_argon(password) };
        let argon = Argon2::new(alg, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        self.argon2_count.fetch_add(1, Ordering::Relaxed);
        let computed = if params.block_count() <= self.pool.blocks_per_area {
            let mut area = self.pool.take();
            argon.hash_password_into_with_memory(password, salt, &mut out, area.blocks())
        } else {
            argon.hash_password_into(password, salt, &mut out)
        };
        // Output's equality is constant-time.
        computed.is_ok() && Output::new(&out).is_ok_and(|o| &o == expected)
    }

    /// The same work as a real verification, against the dummy hash.
    fn dummy_argon(&self, password: &[u8]) -> bool {
        match PasswordHash::new(&self.dummy) {
            Ok(h) => self.argon_check(password, &h),
            Err(_) => false,
        }
    }

    /// The dummy bcrypt step (only when a legacy cost is configured).
    fn dummy_bcrypt(&self, password: &str) {
        if let Some((_, dummy)) = &self.legacy_bcrypt {
            self.bcrypt_count.fetch_add(1, Ordering::Relaxed);
            let _ = bcrypt::verify(password, dummy);
        }
    }

    fn warn_unconfigured_bcrypt(&self) {
        if self.legacy_bcrypt.is_none() {
            tracing::warn!(
                "a stored bcrypt hash was checked without ISSUER_LEGACY_BCRYPT_COST: \
                 imported accounts cost more to check than the others"
            );
        }
    }

    /// Do the stored argon2 parameters differ from the configured ones (or
    /// is it another variant or version)?
    fn needs_rehash(&self, hash: &PasswordHash<'_>) -> bool {
        if hash.algorithm != argon2::Algorithm::Argon2id.ident() || hash.version != Some(Version::V0x13.into()) {
            return true;
        }
        match Params::try_from(hash) {
            Ok(p) => {
                p.m_cost() != self.params.m_cost()
                    || p.t_cost() != self.params.t_cost()
                    || p.p_cost() != self.params.p_cost()
                    || !p.keyid().is_empty()
                    || !p.data().is_empty()
            }
            Err(_) => true,
        }
    }

    /// Checks `password` against `stored` (argon2 PHC, plain or wrapped
    /// bcrypt), or against the dummy hash when `stored` is `None`, here and
    /// now (blocking). Every path does the same hash work (see the module
    /// docs); unusable stored hashes count as a mismatch, after that work.
    ///
    /// # Errors
    /// [`HashError::Internal`] if computing a replacement hash fails.
    pub fn verify_blocking(&self, password: &str, stored: Option<&str>) -> Result<Verification, HashError> {
        let pw = password.as_bytes();
        let matched = match stored.map_or(Stored::Unusable, parse_stored) {
            Stored::Argon(hash) => {
                self.dummy_bcrypt(password);
                if self.argon_check(pw, &hash) { Some(self.needs_rehash(&hash)) } else { None }
            }
            Stored::Bcrypt(hash) => {
                self.warn_unconfigured_bcrypt();
                // bcrypt looks at the first 72 bytes only, as the system the
                // hashes come from did.
                self.bcrypt_count.fetch_add(1, Ordering::Relaxed);
                let ok = match bcrypt::verify(password, hash) {
                    Ok(ok) => ok,
                    Err(_) => {
                        tracing::warn!("stored bcrypt hash is unusable");
                        false
                    }
                };
                self.dummy_argon(pw);
                ok.then_some(true)
            }
            Stored::Wrapped { cost, salt, argon } => {
                self.warn_unconfigured_bcrypt();
                self.bcrypt_count.fetch_add(1, Ordering::Relaxed);
                match bcrypt::hash_with_salt(password, cost, salt) {
                    Ok(parts) => {
                        let inner = parts.format_for_version(bcrypt::Version::TwoB);
                        self.argon_check(inner.as_bytes(), &argon).then_some(true)
                    }
                    Err(_) => {
                        tracing::warn!("stored wrapped bcrypt hash is unusable");
                        self.dummy_argon(pw);
                        None
                    }
                }
            }
            Stored::Unusable => {
                if stored.is_some() {
                    tracing::warn!("stored password hash is not a PHC string");
                }
                self.dummy_bcrypt(password);
                self.dummy_argon(pw);
                None
            }
        };
        match matched {
            None => Ok(Verification::Mismatch),
            Some(false) => Ok(Verification::Match { rehash: None }),
            Some(true) => Ok(Verification::Match { rehash: Some(self.hash_blocking(password)?) }),
        }
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
    use argon2::password_hash::PasswordHasher as _;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(Argon2Cost::default(), 2, Duration::from_secs(5)).unwrap()
    }

    fn legacy_hasher() -> PasswordHasher {
        hasher().with_legacy_bcrypt(4).unwrap()
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
    fn pooled_hashes_verify_with_the_reference_implementation() {
        // The PHC string built from the pooled computation is the one argon2
        // itself would build: its own verifier accepts it, and ours accepts
        // its hashes.
        let h = hasher();
        let ours = h.hash_blocking("interop password").unwrap();
        let reference = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, Params::default());
        let parsed = PasswordHash::new(&ours).unwrap();
        use argon2::password_hash::PasswordVerifier as _;
        assert!(reference.verify_password(b"interop password", &parsed).is_ok());
        let salt = SaltString::encode_b64(&[9u8; 16]).unwrap();
        let theirs = reference.hash_password(b"interop password", &salt).unwrap().to_string();
        assert_eq!(h.verify_blocking("interop password", Some(&theirs)).unwrap(), Verification::Match { rehash: None });
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
    fn wrapped_bcrypt_verifies_and_is_rehashed() {
        let h = legacy_hasher();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let b = bcrypt::hash("legacy password", 4).unwrap().replacen("$2b$", prefix, 1);
            let wrapped = h.wrap_bcrypt_blocking(&b).unwrap();
            assert!(wrapped.starts_with("$bcrypt-argon2id$2b$04$"), "{wrapped}");
            assert!(wrapped.contains("$argon2id$v=19$m=19456,t=2,p=1$"), "{wrapped}");
            assert!(!wrapped.contains(&b[29..]), "the bcrypt digest must not be stored");
            match h.verify_blocking("legacy password", Some(&wrapped)).unwrap() {
                Verification::Match { rehash: Some(new) } => assert!(new.starts_with("$argon2id$"), "{new}"),
                other => panic!("{prefix}: {other:?}"),
            }
            assert_eq!(h.verify_blocking("wrong password", Some(&wrapped)).unwrap(), Verification::Mismatch);
        }
        assert!(h.wrap_bcrypt_blocking("$argon2id$v=19$m=19456,t=2,p=1$x$y").is_err());
        // A damaged wrapped hash is a mismatch, not an error.
        let b = bcrypt::hash("legacy password", 4).unwrap();
        let wrapped = h.wrap_bcrypt_blocking(&b).unwrap();
        for broken in [&wrapped[..40], &wrapped.replacen("$2b$04$", "$2b$xx$", 1), "$bcrypt-argon2id"] {
            assert_eq!(h.verify_blocking("legacy password", Some(broken)).unwrap(), Verification::Mismatch);
        }
    }

    /// Every path does one argon2 and, with a legacy bcrypt cost, one
    /// bcrypt: unknown email, wrong and right password, plain and wrapped
    /// bcrypt, weaker argon2, garbage. (Rehashing after a match is extra
    /// work on the success path only.)
    #[test]
    fn every_path_does_the_same_hash_work() {
        let weak = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, Params::new(8192, 2, 1, None).unwrap());
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let weak = weak.hash_password(b"pw-weak-params", &salt).unwrap().to_string();
        for (legacy, bcrypt_per_path) in [(false, 0), (true, 1)] {
            let h = if legacy { legacy_hasher() } else { hasher() };
            let argon = h.hash_blocking("right password").unwrap();
            let plain = bcrypt::hash("right password", 4).unwrap();
            let wrapped = h.wrap_bcrypt_blocking(&plain).unwrap();
            let mut cases: Vec<(&str, Option<&str>)> = vec![
                ("unknown email", None),
                ("wrong password", Some(&argon)),
                ("garbage hash", Some("plaintext")),
                ("weaker argon2, wrong password", Some(&weak)),
            ];
            if legacy {
                cases.extend([("plain bcrypt, wrong", Some(plain.as_str())), ("wrapped, wrong", Some(&wrapped))]);
            }
            for (what, stored) in cases {
                let before = h.stats();
                assert_eq!(h.verify_blocking("wrong password", stored).unwrap(), Verification::Mismatch, "{what}");
                assert_eq!(h.stats() - before, HashStats { argon2: 1, bcrypt: bcrypt_per_path }, "{what}");
            }
            // The right password: the same work, plus the rehash (success only).
            let before = h.stats();
            assert!(matches!(h.verify_blocking("right password", Some(&argon)).unwrap(), Verification::Match { .. }));
            assert_eq!(h.stats() - before, HashStats { argon2: 1, bcrypt: bcrypt_per_path });
            if legacy {
                for stored in [&plain, &wrapped] {
                    let before = h.stats();
                    let v = h.verify_blocking("right password", Some(stored)).unwrap();
                    assert!(matches!(v, Verification::Match { rehash: Some(_) }));
                    assert_eq!(h.stats() - before, HashStats { argon2: 2, bcrypt: 1 }, "check + rehash");
                }
            }
        }
    }

    #[test]
    fn other_parameters_are_replaced_on_login() {
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
        // More memory than a pooled area: verified in a temporary
        // allocation, then replaced by the configured parameters so that
        // memory stays bounded by the pool.
        let strong = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, Params::new(32768, 3, 1, None).unwrap());
        let s = strong.hash_password(b"old params pw", &salt).unwrap().to_string();
        match h.verify_blocking("old params pw", Some(&s)).unwrap() {
            Verification::Match { rehash: Some(new) } => assert!(new.contains("m=19456,t=2,p=1"), "{new}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(h.verify_blocking("wrong params pw", Some(&s)).unwrap(), Verification::Mismatch);
    }

    #[test]
    fn unknown_user_and_garbage_hashes_are_mismatches() {
        let h = hasher();
        assert_eq!(h.verify_blocking("anything at all", None).unwrap(), Verification::Mismatch);
        assert_eq!(h.verify_blocking("anything at all", Some("plaintext")).unwrap(), Verification::Mismatch);
        assert_eq!(h.verify_blocking("anything at all", Some("$2b$10$short")).unwrap(), Verification::Mismatch);
        assert_eq!(
            h.verify_blocking("anything at all", Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$")).unwrap(),
            Verification::Mismatch
        );
    }

    #[test]
    fn parameters_below_owasp_are_refused_by_config_not_here() {
        // The hasher takes what config validated; argon2 itself refuses nonsense.
        let bad = Argon2Cost { memory_kib: 1, iterations: 0, parallelism: 0 };
        assert!(PasswordHasher::new(bad, 1, Duration::ZERO).is_err());
        assert!(hasher().with_legacy_bcrypt(3).is_err());
    }

    #[test]
    fn the_pool_holds_one_area_per_slot_and_gets_them_back() {
        let h = PasswordHasher::new(Argon2Cost::default(), 3, Duration::from_secs(1)).unwrap();
        let free = || h.pool.free.lock().unwrap().len();
        assert_eq!(free(), 3);
        assert_eq!(h.pool.blocks_per_area, 19_456);
        {
            let _a = h.pool.take();
            let _b = h.pool.take();
            assert_eq!(free(), 1);
        }
        assert_eq!(free(), 3);
        h.verify_blocking("some password", None).unwrap();
        assert_eq!(free(), 3, "areas come back after use");
        // An empty pool (blocking callers only) lends a temporary area, and
        // does not keep it.
        let taken: Vec<_> = (0..4).map(|_| h.pool.take()).collect();
        assert_eq!(free(), 0);
        drop(taken);
        assert_eq!(free(), 3);
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
        assert_eq!(h.pool.free.lock().unwrap().len(), 1, "the one area is back");
    }
}
