//! The verifier: trusted issuers, their key sets, and the verified-token cache.
//!
//! [`Verifier::verify_at`] is the hot path: no I/O, no locks, a handful of
//! small allocations. Key fetches happen off it: at start-up
//! ([`Verifier::warm_up`]), in the background before keys age out
//! ([`Verifier::spawn_refresh`]), and, for a `kid` nobody has seen, at most
//! once per cooldown per issuer, coalesced across every caller waiting for it
//! ([`Verifier::verify`]).
//!
//! Two caches, two tools. Verified tokens live in moka (bounded by bytes,
//! each entry expiring at its token's `exp`). Each issuer's key set lives in
//! an `ArcSwap`: a key set must outlive its refresh time and keep serving
//! while the endpoint fails (up to the max stale age), which an expiring
//! cache entry would not do, and the hot path reads it with one atomic load
//! and no lock. Fetches are serialized per issuer by an async mutex that is
//! held only by the fetch itself, never by a verification.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::cache::{Entry, TokenCache, digest_token};
use crate::config::{ConfigError, VerifierConfig};
use crate::error::{Claim, VerifyError};
use crate::jose::{self, Loose, RawClaims, RawHeader};
use crate::keys::{KeySet, Lookup, ParsedJwks, parse_jwks};
use crate::metrics::{Decision, Metrics};
use crate::revocation_feed::{FeedFollower, FeedHealth};
use crate::revocation_set::{RevocationIds, RevocationSet};
use crate::token::VerifiedToken;

/// The current time as a duration since the Unix epoch.
pub fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The verifier could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built (TLS set-up).
    #[error("HTTP client: {0}")]
    Http(String),
}

/// Why a JWKS fetch failed. Kept as the issuer's last error for health.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connect or total timeout.
    #[error("timed out")]
    Timeout,
    /// Connection refused, DNS, TLS and other transport failures.
    #[error("transport error: {0}")]
    Transport(String),
    /// A status other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// Larger than the configured maximum.
    #[error("document too large")]
    TooLarge,
    /// Not a JWKS document.
    #[error("{0}")]
    Invalid(String),
    /// A JWKS without a single usable key: the last good keys are kept.
    #[error("no usable keys in the JWKS")]
    NoUsableKeys,
}

impl FetchError {
    fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            FetchError::Timeout
        } else {
            // Strip the URL: it is in the config already and may carry a query.
            FetchError::Transport(e.without_url_ref().to_string())
        }
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut msg = self.to_string();
        if let Some(url) = self.url() {
            msg = msg.replace(url.as_str(), "<jwks url>");
        }
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let _ = write!(msg, ": {s}");
            source = s.source();
        }
        msg
    }
}

#[derive(Debug, Clone, Default)]
struct KeyState {
    keys: Option<Arc<KeySet>>,
    /// Last successful fetch.
    fetched_at: Option<Duration>,
    last_attempt: Option<Duration>,
    last_error: Option<FetchError>,
    failures: u32,
    generation: u64,
}

struct IssuerEntry {
    iss: Arc<str>,
    audiences: Box<[Box<str>]>,
    jwks_url: reqwest::Url,
    state: ArcSwap<KeyState>,
    /// Held for the whole of a fetch: callers queue behind the one in flight
    /// instead of starting their own.
    fetch_lock: tokio::sync::Mutex<()>,
    fetching: AtomicBool,
    /// Unix millis before which an unknown `kid` triggers no fetch.
    next_miss_fetch_ms: AtomicU64,
    fetches_ok: AtomicU64,
    fetches_failed: AtomicU64,
}

/// Health of one issuer's keys.
#[derive(Debug, Clone)]
pub struct IssuerHealth {
    /// The issuer.
    pub issuer: String,
    /// Usable keys held.
    pub keys: usize,
    /// Time since the last successful fetch; `None` if never.
    pub age: Option<Duration>,
    /// Keys are loaded and younger than the maximum stale age.
    pub usable: bool,
    /// Keys are being served past their refresh time (the endpoint is failing).
    pub stale: bool,
    /// Failed fetches since the last success.
    pub consecutive_failures: u32,
    /// The last fetch error, if the last fetch failed.
    pub last_error: Option<String>,
    /// Successful fetches since start.
    pub fetches_ok: u64,
    /// Failed fetches since start.
    pub fetches_failed: u64,
}

/// Health of every issuer, and of the revocation feed.
#[derive(Debug, Clone)]
pub struct Health {
    /// One entry per trusted issuer, in configuration order.
    pub issuers: Vec<IssuerHealth>,
    /// The revocation feed; `None` when it is off.
    pub revocation: Option<FeedHealth>,
}

impl Health {
    /// Every issuer has usable keys, and the revocation feed (when on) has
    /// a complete listing no older than its lag bound.
    pub fn ready(&self) -> bool {
        self.issuers.iter().all(|i| i.usable) && self.revocation.as_ref().is_none_or(|r| !r.stale)
    }
}

/// Verifies access tokens of the configured issuers. Share it in an `Arc`.
pub struct Verifier {
    issuers: Box<[IssuerEntry]>,
    leeway_s: u64,
    refresh: Duration,
    max_stale: Duration,
    cooldown: Duration,
    max_token_bytes: usize,
    jwks_max_bytes: usize,
    /// Total timeout of one fetch: the longest a caller waits for keys.
    fetch_timeout: Duration,
    http: reqwest::Client,
    cache: TokenCache,
    metrics: Metrics,
    revocations: Arc<RevocationSet>,
    feed: Option<Arc<FeedFollower>>,
    /// `Some(max lag in ms)` when stale feeds refuse tokens.
    refuse_stale_ms: Option<u64>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuers", &self.issuers.iter().map(|i| &*i.iss).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Builds a verifier with no keys yet: call [`Verifier::warm_up`] and
    /// [`Verifier::spawn_refresh`] next.
    ///
    /// # Errors
    /// [`InitError`] if the configuration is invalid or the HTTP client
    /// cannot be built.
    pub fn new(cfg: &VerifierConfig) -> Result<Arc<Self>, InitError> {
        cfg.validate()?;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.jwks_connect_timeout)
            .timeout(cfg.jwks_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1)
            .user_agent(concat!("token-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| InitError::Http(e.to_string()))?;
        let revocations = Arc::new(RevocationSet::new(cfg.revocation.max_entries));
        let feed = FeedFollower::new(&cfg.revocation, Arc::clone(&revocations))?;
        let refuse_stale_ms = (feed.is_some() && cfg.revocation.stale_policy == crate::config::StalePolicy::Refuse)
            .then_some(cfg.revocation.max_lag.as_millis() as u64);
        let mut issuers = Vec::with_capacity(cfg.issuers.len());
        for iss in &cfg.issuers {
            let url = iss.jwks_url();
            let jwks_url =
                reqwest::Url::parse(&url).map_err(|e| ConfigError::new("AUTH_JWKS_URL", format!("{url:?}: {e}")))?;
            issuers.push(IssuerEntry {
                iss: Arc::from(iss.issuer.as_str()),
                audiences: iss.audiences.iter().map(|a| a.as_str().into()).collect(),
                jwks_url,
                state: ArcSwap::from_pointee(KeyState::default()),
                fetch_lock: tokio::sync::Mutex::new(()),
                fetching: AtomicBool::new(false),
                next_miss_fetch_ms: AtomicU64::new(0),
                fetches_ok: AtomicU64::new(0),
                fetches_failed: AtomicU64::new(0),
            });
        }
        Ok(Arc::new(Verifier {
            issuers: issuers.into_boxed_slice(),
            leeway_s: cfg.leeway.as_secs(),
            refresh: cfg.jwks_refresh,
            max_stale: cfg.jwks_max_stale,
            cooldown: cfg.unknown_kid_cooldown,
            max_token_bytes: cfg.max_token_bytes,
            jwks_max_bytes: cfg.jwks_max_bytes,
            fetch_timeout: cfg.jwks_timeout,
            http,
            // A cached result never outlives a refresh period by much: key
            // removal is also checked on every hit.
            cache: TokenCache::new(cfg.token_cache_bytes, Duration::from_secs(3600)),
            metrics: Metrics::default(),
            revocations,
            feed,
            refuse_stale_ms,
        }))
    }

    /// The revoked sessions and subjects this verifier checks every token
    /// against (empty when the feed is off).
    pub fn revocations(&self) -> &Arc<RevocationSet> {
        &self.revocations
    }

    /// The follower of the revocation feed; `None` when it is off
    /// (`REVOCATION_FEED_URL=off`).
    pub fn revocation_feed(&self) -> Option<&Arc<FeedFollower>> {
        self.feed.as_ref()
    }

    /// The revocation rules for a token that passed every other check:
    /// revoked first (that answer is certain), then, under the refuse
    /// policy, a stale feed.
    #[inline]
    fn check_revocation(&self, t: &VerifiedToken, now: Duration) -> Result<(), VerifyError> {
        if self.revocations.is_revoked(&t.revocation, t.iat) {
            return Err(VerifyError::Revoked);
        }
        if let Some(max_lag_ms) = self.refuse_stale_ms
            && self.revocations.lag_ms(now.as_millis() as u64).is_none_or(|lag| lag > max_lag_ms)
        {
            return Err(VerifyError::RevocationStale);
        }
        Ok(())
    }

    /// The counters this verifier and its edges record.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Verifies `token` at time `now` (since the Unix epoch) with the keys
    /// held now. Never does I/O: an unknown `kid` is an error here; use
    /// [`Verifier::verify`] to allow a refetch.
    ///
    /// # Errors
    /// Why the token is refused.
    pub fn verify_at(&self, token: &str, now: Duration) -> Result<Arc<VerifiedToken>, VerifyError> {
        self.check(token, now).map_err(|(e, _)| e)
    }

    /// Verifies `token` now. If its `kid` is unknown (or no keys are usable)
    /// and the issuer's cooldown allows, refetches that issuer's JWKS once,
    /// coalesced with every other caller, and tries again.
    ///
    /// # Errors
    /// Why the token is refused.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        match self.check(token, unix_now()) {
            Err((e @ (VerifyError::UnknownKid | VerifyError::KeysUnavailable), Some(idx))) => {
                if self.refetch_on_miss(idx).await { self.verify_at(token, unix_now()) } else { Err(e) }
            }
            other => other.map_err(|(e, _)| e),
        }
    }

    fn usable_keys<'s>(&self, state: &'s KeyState, now: Duration) -> Option<&'s Arc<KeySet>> {
        let fetched = state.fetched_at?;
        if now.saturating_sub(fetched) > self.max_stale {
            return None;
        }
        state.keys.as_ref()
    }

    fn hit(&self, entry: &Entry, now: Duration) -> Option<Arc<VerifiedToken>> {
        let (t, now_s) = (&entry.token, now.as_secs());
        // The cached answer holds only while the time rules give it: before
        // `exp`, and not before `nbf` or `iat` (the clock can go back).
        let early = now_s.saturating_add(self.leeway_s);
        if now_s >= t.exp || t.nbf.is_some_and(|n| n > early) || t.iat > early {
            return None;
        }
        let issuer = self.issuers.get(entry.issuer)?;
        let state = issuer.state.load();
        let keys = self.usable_keys(&state, now)?;
        keys.contains(&entry.key).then(|| Arc::clone(&entry.token))
    }

    /// The hot path. The error carries the issuer index when a key refetch
    /// could help.
    fn check(&self, token: &str, now: Duration) -> Result<Arc<VerifiedToken>, (VerifyError, Option<usize>)> {
        let plain = |e| (e, None);
        if token.is_empty() || token.len() > self.max_token_bytes {
            return Err(plain(VerifyError::Malformed));
        }
        // The cache key; not computed at all with the cache off.
        let digest = self.cache.enabled().then(|| digest_token(token));
        if let Some(digest) = &digest
            && let Some(entry) = self.cache.get(digest)
        {
            if let Some(t) = self.hit(&entry, now) {
                self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                self.check_revocation(&t, now).map_err(plain)?;
                return Ok(t);
            }
            self.cache.remove(digest);
        }
        self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);

        // JWS compact serialization: exactly three parts (a JWE has five).
        let (signing_input, sig_b64) = token.rsplit_once('.').ok_or(plain(VerifyError::Malformed))?;
        let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(plain(VerifyError::Malformed))?;
        if payload_b64.contains('.') {
            return Err(plain(VerifyError::Malformed));
        }

        let mut stack = [0u8; 1024];
        let heap;
        let header_bytes: &[u8] = match URL_SAFE_NO_PAD.decode_slice(header_b64, &mut stack) {
            Ok(n) => &stack[..n],
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                heap = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| plain(VerifyError::Malformed))?;
                &heap
            }
            Err(_) => return Err(plain(VerifyError::Malformed)),
        };
        let header = serde_json::from_slice::<RawHeader<'_>>(header_bytes)
            .map_err(|_| plain(VerifyError::Malformed))?
            .check()
            .map_err(plain)?;

        let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| plain(VerifyError::Malformed))?;
        let claims: RawClaims<'_> = serde_json::from_slice(&payload).map_err(|_| plain(VerifyError::Malformed))?;
        let iss = jose::required_str(claims.iss, Claim::Iss).map_err(plain)?;
        let idx = self.issuers.iter().position(|i| *i.iss == *iss).ok_or(plain(VerifyError::UnknownIssuer))?;
        let issuer = &self.issuers[idx];

        let state = issuer.state.load();
        let keys = self.usable_keys(&state, now).ok_or((VerifyError::KeysUnavailable, Some(idx)))?;
        let key = match keys.lookup(&header.kid, header.alg) {
            Lookup::Found(k) => k,
            Lookup::WrongAlgorithm => return Err(plain(VerifyError::KeyAlgorithmMismatch)),
            Lookup::Missing => return Err((VerifyError::UnknownKid, Some(idx))),
        };

        // RSA up to 4096 bits: 512 bytes. Anything longer cannot verify.
        let mut sig = [0u8; 512];
        let sig_len = URL_SAFE_NO_PAD.decode_slice(sig_b64, &mut sig).map_err(|_| plain(VerifyError::Malformed))?;
        if !key.verify(signing_input.as_bytes(), &sig[..sig_len]) {
            return Err(plain(VerifyError::InvalidSignature));
        }

        // Claims, after the signature: a forged token learns nothing more.
        let sub = jose::required_str(claims.sub, Claim::Sub).map_err(plain)?;
        if sub.is_empty() {
            return Err(plain(VerifyError::InvalidClaim(Claim::Sub)));
        }
        let jti = jose::required_str(claims.jti, Claim::Jti).map_err(plain)?;
        let exp = claims.exp.as_ref().ok_or(VerifyError::InvalidClaim(Claim::Exp)).map_err(plain)?;
        let exp = jose::numeric_date(exp, Claim::Exp).map_err(plain)?;
        let iat = claims.iat.as_ref().ok_or(VerifyError::InvalidClaim(Claim::Iat)).map_err(plain)?;
        let iat = jose::numeric_date(iat, Claim::Iat).map_err(plain)?;
        let nbf = jose::optional_date(claims.nbf.as_ref(), Claim::Nbf).map_err(plain)?;
        let scope = jose::optional_str(claims.scope, Claim::Scope).map_err(plain)?;
        let client_id = jose::optional_str(claims.client_id, Claim::ClientId).map_err(plain)?;
        let sid = jose::optional_str(claims.sid, Claim::Sid).map_err(plain)?;
        let accepted = |a: &str| issuer.audiences.iter().any(|x| **x == *a);
        match &claims.aud {
            Some(Loose::Str(a)) if accepted(a) => {}
            Some(Loose::StrArray(list)) if list.iter().any(|a| accepted(a)) => {}
            Some(Loose::Str(_) | Loose::StrArray(_)) => return Err(plain(VerifyError::InvalidAudience)),
            _ => return Err(plain(VerifyError::InvalidClaim(Claim::Aud))),
        }
        let now_s = now.as_secs();
        // RFC 7519 4.1.4: valid only before exp; the leeway widens that window.
        if now_s >= exp.saturating_add(self.leeway_s) {
            return Err(plain(VerifyError::Expired));
        }
        if nbf.is_some_and(|nbf| nbf > now_s.saturating_add(self.leeway_s)) {
            return Err(plain(VerifyError::NotYetValid));
        }
        if iat > now_s.saturating_add(self.leeway_s) {
            return Err(plain(VerifyError::IssuedInFuture));
        }

        let revocation = RevocationIds::of(&sub, sid.as_deref());
        let sub: Box<str> = sub.into();
        let jti: Box<str> = jti.into();
        let scope: Box<str> = scope.map(Into::into).unwrap_or_default();
        let client_id: Option<Box<str>> = client_id.map(Into::into);
        let key = Arc::clone(key);
        drop(state);
        let verified = Arc::new(VerifiedToken {
            issuer: Arc::clone(&issuer.iss),
            sub,
            jti,
            scope,
            client_id,
            exp,
            iat,
            nbf,
            claims: Bytes::from(payload),
            revocation,
        });
        if let Some(digest) = digest {
            self.cache.insert(digest, idx, Arc::clone(&verified), key, now_s);
        }
        self.check_revocation(&verified, now).map_err(plain)?;
        Ok(verified)
    }

    async fn refetch_on_miss(&self, idx: usize) -> bool {
        let issuer = &self.issuers[idx];
        let seen = issuer.state.load_full();
        let now_ms = unix_now().as_millis() as u64;
        if now_ms < issuer.next_miss_fetch_ms.load(Ordering::Acquire) && !issuer.fetching.load(Ordering::Acquire) {
            return false;
        }
        // Wait for one fetch at most: the one in flight, or our own. Never
        // for the fetch in flight and then others queued before us, or then
        // our own: chained, the waits outlast a caller's request timeout
        // while the endpoint hangs.
        let Ok(_guard) = tokio::time::timeout(self.fetch_timeout, issuer.fetch_lock.lock()).await else {
            return issuer.state.load().generation != seen.generation;
        };
        let state = issuer.state.load();
        if state.generation != seen.generation {
            // Somebody fetched while we queued: use their result.
            return true;
        }
        if state.last_attempt != seen.last_attempt {
            // A fetch failed while we queued: that was this miss's fetch.
            return false;
        }
        let now_ms = unix_now().as_millis() as u64;
        if now_ms < issuer.next_miss_fetch_ms.load(Ordering::Acquire) {
            return false;
        }
        issuer.next_miss_fetch_ms.store(now_ms + self.cooldown.as_millis() as u64, Ordering::Release);
        debug!(issuer = %issuer.iss, "unknown kid or no keys: refetching JWKS");
        self.refresh_locked(idx).await.is_ok()
    }

    /// Fetches and installs one issuer's JWKS now, waiting for a fetch
    /// already in flight first.
    ///
    /// # Errors
    /// Why the fetch failed; the previous keys stay in place.
    pub async fn refresh_issuer(&self, idx: usize) -> Result<(), FetchError> {
        let _guard = self.issuers[idx].fetch_lock.lock().await;
        self.refresh_locked(idx).await
    }

    /// Installs a JWKS document for `issuer` directly, as if it had just
    /// been fetched. For a process that holds the keys itself (the issuer
    /// verifying its own tokens) and for tests. Tokens cached under keys the
    /// document drops are invalidated as on a fetch.
    ///
    /// # Errors
    /// [`FetchError::Invalid`] for an unknown issuer or a document that is
    /// not a JWKS, [`FetchError::NoUsableKeys`] when no key is usable.
    pub fn install_jwks(&self, issuer: &str, jwks: &[u8]) -> Result<(), FetchError> {
        let idx = self
            .issuers
            .iter()
            .position(|i| &*i.iss == issuer)
            .ok_or_else(|| FetchError::Invalid(format!("issuer {issuer:?} is not configured")))?;
        let parsed = parse_jwks(jwks).map_err(|e| FetchError::Invalid(e.to_string()));
        let parsed = parsed.and_then(|p| if p.keys.is_empty() { Err(FetchError::NoUsableKeys) } else { Ok(p) });
        self.install(idx, parsed)
    }

    /// Fetches every issuer's JWKS once, concurrently. Start-up calls this
    /// before serving; failures are logged and kept for health, and the
    /// background refresh keeps trying.
    pub async fn warm_up(self: &Arc<Self>) -> Vec<Result<(), FetchError>> {
        let mut tasks = Vec::with_capacity(self.issuers.len());
        for idx in 0..self.issuers.len() {
            let me = Arc::clone(self);
            tasks.push(tokio::spawn(async move { me.refresh_issuer(idx).await }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.unwrap_or(Err(FetchError::Transport("warm-up task failed".into()))));
        }
        out
    }

    /// Starts one background task per issuer that refreshes its JWKS before
    /// the refresh period runs out (with jitter), and retries failures with
    /// exponential backoff (1 s doubling to 60 s). The tasks end when the
    /// verifier is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) {
        for idx in 0..self.issuers.len() {
            let weak: Weak<Self> = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let delay = match weak.upgrade() {
                        Some(v) => v.refresh_delay(idx, unix_now()),
                        None => return,
                    };
                    tokio::time::sleep(delay).await;
                    let Some(v) = weak.upgrade() else { return };
                    let _guard = v.issuers[idx].fetch_lock.lock().await;
                    // Someone (an unknown kid) may have refreshed meanwhile.
                    if v.refresh_delay(idx, unix_now()).is_zero() {
                        let _ = v.refresh_locked(idx).await;
                    }
                }
            });
        }
    }

    fn refresh_delay(&self, idx: usize, now: Duration) -> Duration {
        let st = self.issuers[idx].state.load();
        let due = match (st.fetched_at, st.last_attempt) {
            (Some(ok), _) if st.failures == 0 => {
                // Up to 10% early, spread per process so a fleet does not
                // refresh in step.
                let spread = self.refresh.as_millis() as u64 / 10;
                let jitter = if spread == 0 { 0 } else { u64::from(std::process::id()) % spread };
                ok + self.refresh - Duration::from_millis(jitter)
            }
            (_, Some(attempt)) => {
                let backoff = Duration::from_secs(1u64 << st.failures.min(6)).min(Duration::from_secs(60));
                attempt + backoff.min(self.refresh)
            }
            (_, None) => now,
        };
        due.saturating_sub(now)
    }

    async fn fetch(&self, issuer: &IssuerEntry) -> Result<ParsedJwks, FetchError> {
        let mut resp = self
            .http
            .get(issuer.jwks_url.clone())
            .header(reqwest::header::ACCEPT, "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(|e| FetchError::from_reqwest(&e))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > self.jwks_max_bytes as u64) {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| FetchError::from_reqwest(&e))? {
            if body.len() + chunk.len() > self.jwks_max_bytes {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let parsed = parse_jwks(&body).map_err(|e| FetchError::Invalid(e.to_string()))?;
        if parsed.keys.is_empty() {
            return Err(FetchError::NoUsableKeys);
        }
        Ok(parsed)
    }

    /// Fetch and install; the caller holds the issuer's fetch lock.
    async fn refresh_locked(&self, idx: usize) -> Result<(), FetchError> {
        let issuer = &self.issuers[idx];
        issuer.fetching.store(true, Ordering::Release);
        let result = self.fetch(issuer).await;
        issuer.fetching.store(false, Ordering::Release);
        self.install(idx, result)
    }

    fn install(&self, idx: usize, result: Result<ParsedJwks, FetchError>) -> Result<(), FetchError> {
        let issuer = &self.issuers[idx];
        let now = unix_now();
        let prev = issuer.state.load_full();
        match result {
            Ok(parsed) => {
                for skipped in &parsed.skipped {
                    warn!(issuer = %issuer.iss, reason = %skipped, "JWKS key skipped");
                }
                let set = Arc::new(parsed.keys.carry_over(prev.keys.as_deref()));
                let removed: Vec<_> =
                    prev.keys.iter().flat_map(|k| k.keys()).filter(|k| !set.contains(k)).cloned().collect();
                let added = set.keys().iter().filter(|k| !prev.keys.as_ref().is_some_and(|p| p.contains(k))).count();
                if added > 0 || !removed.is_empty() {
                    info!(issuer = %issuer.iss, keys = set.len(), added, removed = removed.len(), "JWKS keys changed");
                }
                issuer.state.store(Arc::new(KeyState {
                    keys: Some(set),
                    fetched_at: Some(now),
                    last_attempt: Some(now),
                    last_error: None,
                    failures: 0,
                    generation: prev.generation + 1,
                }));
                self.cache.invalidate_keys(removed);
                issuer.fetches_ok.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let failures = prev.failures.saturating_add(1);
                warn!(issuer = %issuer.iss, error = %e, failures, "JWKS fetch failed; keeping the last good keys");
                issuer.state.store(Arc::new(KeyState {
                    last_attempt: Some(now),
                    last_error: Some(e.clone()),
                    failures,
                    ..(*prev).clone()
                }));
                issuer.fetches_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Health of every issuer's keys at `now`.
    pub fn health(&self, now: Duration) -> Health {
        let issuers = self
            .issuers
            .iter()
            .map(|i| {
                let st = i.state.load();
                let age = st.fetched_at.map(|at| now.saturating_sub(at));
                let usable = self.usable_keys(&st, now).is_some();
                IssuerHealth {
                    issuer: i.iss.to_string(),
                    keys: st.keys.as_ref().map_or(0, |k| k.len()),
                    age,
                    usable,
                    stale: usable && (st.failures > 0 || age.is_some_and(|a| a > self.refresh * 2)),
                    consecutive_failures: st.failures,
                    last_error: st.last_error.as_ref().map(ToString::to_string),
                    fetches_ok: i.fetches_ok.load(Ordering::Relaxed),
                    fetches_failed: i.fetches_failed.load(Ordering::Relaxed),
                }
            })
            .collect();
        let revocation = self.feed.as_ref().map(|f| f.health(now.as_millis() as u64));
        Health { issuers, revocation }
    }

    /// Every counter and gauge in Prometheus text format (0.0.4).
    pub fn render_prometheus(&self, now: Duration) -> String {
        let mut out = String::with_capacity(4096);
        self.metrics.render_prometheus(&mut out);
        let (entries, bytes) = self.cache.stats();
        let _ = writeln!(out, "# HELP auth_token_cache_entries Tokens in the verified-token cache.");
        let _ = writeln!(out, "# TYPE auth_token_cache_entries gauge\nauth_token_cache_entries {entries}");
        let _ = writeln!(out, "# HELP auth_token_cache_bytes Approximate bytes held by the verified-token cache.");
        let _ = writeln!(out, "# TYPE auth_token_cache_bytes gauge\nauth_token_cache_bytes {bytes}");
        let health = self.health(now);
        let families: [(&str, &str, &str); 5] = [
            ("auth_jwks_fetches_total", "counter", "JWKS fetches by result."),
            ("auth_jwks_keys", "gauge", "Usable keys held per issuer."),
            ("auth_jwks_age_seconds", "gauge", "Seconds since the last successful JWKS fetch (-1: never)."),
            ("auth_jwks_usable", "gauge", "1 when the issuer's keys are loaded and within the maximum stale age."),
            ("auth_jwks_stale", "gauge", "1 when keys are served past their refresh time because fetches fail."),
        ];
        for (name, kind, help) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for h in &health.issuers {
                let iss = escape_label(&h.issuer);
                let _ = match name {
                    "auth_jwks_fetches_total" => writeln!(
                        out,
                        "{name}{{issuer=\"{iss}\",result=\"ok\"}} {}\n{name}{{issuer=\"{iss}\",result=\"error\"}} {}",
                        h.fetches_ok, h.fetches_failed
                    ),
                    "auth_jwks_keys" => writeln!(out, "{name}{{issuer=\"{iss}\"}} {}", h.keys),
                    "auth_jwks_age_seconds" => {
                        let age = h.age.map_or(-1.0, |a| a.as_secs_f64());
                        writeln!(out, "{name}{{issuer=\"{iss}\"}} {age:.3}")
                    }
                    "auth_jwks_usable" => writeln!(out, "{name}{{issuer=\"{iss}\"}} {}", u8::from(h.usable)),
                    _ => writeln!(out, "{name}{{issuer=\"{iss}\"}} {}", u8::from(h.stale)),
                };
            }
        }
        if let Some(r) = &health.revocation {
            let lag = r.lag.map_or(-1.0, |l| l.as_secs_f64());
            let revoked = self.metrics.count(Decision::Rejected(VerifyError::Revoked));
            let stale_refused = self.metrics.count(Decision::Rejected(VerifyError::RevocationStale));
            for (name, kind, help, value) in [
                (
                    "auth_revocation_lag_seconds",
                    "gauge",
                    "Seconds since the revocation feed's last complete listing (-1: none yet).",
                    format!("{lag:.3}"),
                ),
                ("auth_revocation_max_lag_seconds", "gauge", "The lag bound.", r.max_lag.as_secs_f64().to_string()),
                (
                    "auth_revocation_stale",
                    "gauge",
                    "1 while the feed has no complete listing within the lag bound.",
                    u8::from(r.stale).to_string(),
                ),
                ("auth_revocation_entries", "gauge", "Revoked sessions and subjects held.", r.entries.to_string()),
                (
                    "auth_revocation_fetch_errors_total",
                    "counter",
                    "Failed polls of the revocation feed.",
                    r.fetch_errors.to_string(),
                ),
                ("auth_revocation_pages_total", "counter", "Feed pages applied.", r.pages.to_string()),
                (
                    "auth_revocation_evicted_total",
                    "counter",
                    "Entries evicted because the set was full.",
                    r.evicted.to_string(),
                ),
                ("auth_revocation_revoked_total", "counter", "Tokens refused as revoked.", revoked.to_string()),
                (
                    "auth_revocation_stale_refused_total",
                    "counter",
                    "Tokens refused because the feed was stale (refuse policy).",
                    stale_refused.to_string(),
                ),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
            }
        }
        out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
