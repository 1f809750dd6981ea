//! The cache of verified tokens: a repeated token costs a hash and a lookup,
//! not a signature check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use moka::sync::Cache;

use crate::keys::VerifyKey;
use crate::token::VerifiedToken;

/// SHA-256 of the token: the cache never holds the token itself, and a
/// collision would need a second preimage.
pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest_token(token: &str) -> TokenDigest {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub token: Arc<VerifiedToken>,
    /// The key that verified it: the entry is void once this key leaves the
    /// issuer's JWKS.
    pub key: Arc<VerifyKey>,
    /// Index of the token's issuer in the verifier.
    pub issuer: usize,
    ttl: Duration,
}

struct ExpireAtExp;

impl moka::Expiry<TokenDigest, Entry> for ExpireAtExp {
    fn expire_after_create(&self, _: &TokenDigest, value: &Entry, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Bounded by bytes, each entry expiring at its token's `exp` (or sooner).
pub(crate) struct TokenCache {
    inner: Option<Cache<TokenDigest, Entry>>,
    max_ttl: Duration,
}

impl TokenCache {
    /// `max_bytes == 0` disables the cache.
    pub fn new(max_bytes: u64, max_ttl: Duration) -> Self {
        let inner = (max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, e: &Entry| e.token.weight())
                .expire_after(ExpireAtExp)
                .support_invalidation_closures()
                .build()
        });
        TokenCache { inner, max_ttl }
    }

    /// Whether the cache is on (`max_bytes > 0`).
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub fn get(&self, digest: &TokenDigest) -> Option<Entry> {
        self.inner.as_ref()?.get(digest)
    }

    /// Caches a verified token until `exp` (never past `max_ttl`). Tokens
    /// already past `exp` (accepted only through the leeway) are not cached.
    pub fn insert(
        &self,
        digest: TokenDigest,
        issuer: usize,
        token: Arc<VerifiedToken>,
        key: Arc<VerifyKey>,
        now_s: u64,
    ) {
        let Some(cache) = &self.inner else { return };
        let left = token.exp.saturating_sub(now_s);
        if left == 0 {
            return;
        }
        let ttl = Duration::from_secs(left).min(self.max_ttl);
        cache.insert(digest, Entry { token, key, issuer, ttl });
    }

    pub fn remove(&self, digest: &TokenDigest) {
        if let Some(cache) = &self.inner {
            cache.invalidate(digest);
        }
    }

    /// Drops every token verified by one of `keys`.
    pub fn invalidate_keys(&self, keys: Vec<Arc<VerifyKey>>) {
        let Some(cache) = &self.inner else { return };
        if keys.is_empty() {
            return;
        }
        // Only fails when closures are not enabled, which they are.
        let _ = cache.invalidate_entries_if(move |_, e| keys.iter().any(|k| Arc::ptr_eq(k, &e.key)));
    }

    /// Entries and weighted size, after pending maintenance.
    pub fn stats(&self) -> (u64, u64) {
        match &self.inner {
            Some(c) => {
                c.run_pending_tasks();
                (c.entry_count(), c.weighted_size())
            }
            None => (0, 0),
        }
    }
}
