//! Following the issuer's revocation feed ([`crate::revocation`] is the wire
//! contract) into a [`RevocationSet`].
//!
//! One poll fetches pages after the cursor until a page says `more: false`,
//! applies each page's events and only then moves the cursor, and records the
//! page's `as_of_ms` as the time of the last complete listing (what the lag
//! is measured from). So:
//!
//! - **Coalesced.** The cursor sits behind an async mutex held for the whole
//!   poll: one poll in flight per process; [`FeedFollower::try_poll`] never
//!   waits for it.
//! - **Bounded.** Pages of at most [`MAX_PAGE`] events and
//!   `max_page_bytes`, each fetch under the total timeout (the whole poll too:
//!   a fetch frozen with its Lambda sandbox times out on the thaw instead of
//!   hanging), at most `max_entries / MAX_PAGE + 16` pages per poll.
//! - **Nothing lost, nothing applied twice.** A page that fails in any way
//!   (transport, status, size, timeout, garbage, the issuer restarting in the
//!   middle of the body) is applied not at all and the cursor stays: the next
//!   poll asks for the same page again. The issuer lists each event exactly
//!   once after a cursor (it lists only events older than its settle delay,
//!   so none committed late is skipped), and applying an
//!   event again would change nothing anyway.
//! - **A cursor the issuer refuses (400)** is dropped: the next poll lists
//!   everything live again, which only repeats events already applied.
//! - **Backed off.** After a failure the next poll waits the poll interval
//!   times 2^failures (capped at a third of the lag bound, at least the poll
//!   interval), with jitter, so a fleet does not hammer a recovering issuer
//!   in step.
//!
//! Expired entries are swept at most every 30 s.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::config::{ConfigError, RevocationConfig};
use crate::revocation::{FeedPage, MAX_PAGE};
use crate::revocation_set::RevocationSet;
use crate::verifier::unix_now;

/// Why a poll failed. The cursor did not move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// Connect or total timeout.
    #[error("timed out")]
    Timeout,
    /// Connection refused or reset, DNS, TLS, a body cut short.
    #[error("transport error: {0}")]
    Transport(String),
    /// A status other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// A body over the page size limit.
    #[error("page too large")]
    TooLarge,
    /// Not a feed page, or one that breaks the contract.
    #[error("invalid page: {0}")]
    Invalid(String),
}

impl FeedError {
    fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return FeedError::Timeout;
        }
        let e = e.without_url();
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        FeedError::Transport(msg)
    }
}

/// What one successful poll did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollOutcome {
    /// Pages fetched and applied.
    pub pages: u32,
    /// Events on them (including expired ones, skipped).
    pub events: u64,
    /// The listing reached `more: false`.
    pub complete: bool,
}

/// The feed's health, for readiness and metrics.
#[derive(Debug, Clone)]
pub struct FeedHealth {
    /// Time since the last complete listing's `as_of_ms`; `None` before the first.
    pub lag: Option<Duration>,
    /// The bound on the lag.
    pub max_lag: Duration,
    /// No complete listing yet, or the lag is over the bound.
    pub stale: bool,
    /// Entries held.
    pub entries: usize,
    /// Failed polls since the last success.
    pub consecutive_failures: u32,
    /// The last poll's error, if it failed.
    pub last_error: Option<String>,
    /// Failed polls since start.
    pub fetch_errors: u64,
    /// Pages applied since start.
    pub pages: u64,
    /// Entries evicted because the set was full, since start.
    pub evicted: u64,
}

/// Follows one feed into a [`RevocationSet`]. Share it in an `Arc`.
pub struct FeedFollower {
    set: Arc<RevocationSet>,
    http: reqwest::Client,
    url: reqwest::Url,
    cfg: RevocationConfig,
    max_pages: u32,
    /// The cursor (`None`: list everything live). Held for a whole poll.
    cursor: Arc<tokio::sync::Mutex<Option<String>>>,
    /// Unix millis before which no poll is due (the interval, or a backoff).
    next_poll_ms: AtomicU64,
    failures: AtomicU32,
    fetch_errors: AtomicU64,
    pages: AtomicU64,
    last_sweep_s: AtomicU64,
    last_error: Mutex<Option<FeedError>>,
}

impl std::fmt::Debug for FeedFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedFollower").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    unix_now().as_millis() as u64
}

/// A factor in [0.5, 1.0) from the std hasher's random keys: enough to
/// spread a fleet, no extra dependency.
fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    0.5 + (h.finish() >> 11) as f64 / (1u64 << 53) as f64 / 2.0
}

impl FeedFollower {
    /// A follower of `cfg.feed_url` into `set`; `None` when the feed is off.
    ///
    /// # Errors
    /// An invalid URL (naming `REVOCATION_FEED_URL`) or an HTTP client that
    /// cannot be built.
    pub fn new(cfg: &RevocationConfig, set: Arc<RevocationSet>) -> Result<Option<Arc<Self>>, ConfigError> {
        let Some(url) = &cfg.feed_url else { return Ok(None) };
        let var = "REVOCATION_FEED_URL";
        let url = reqwest::Url::parse(url).map_err(|e| ConfigError::new(var, format!("{url:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.timeout.min(Duration::from_secs(2)))
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1)
            .user_agent(concat!("token-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::new(var, format!("HTTP client: {e}")))?;
        let max_pages = u32::try_from(cfg.max_entries / MAX_PAGE + 16).unwrap_or(u32::MAX);
        Ok(Some(Arc::new(FeedFollower {
            set,
            http,
            url,
            cfg: cfg.clone(),
            max_pages,
            cursor: Arc::new(tokio::sync::Mutex::new(None)),
            next_poll_ms: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            fetch_errors: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            last_sweep_s: AtomicU64::new(0),
            last_error: Mutex::new(None),
        })))
    }

    /// The set this follower fills.
    pub fn set(&self) -> &Arc<RevocationSet> {
        &self.set
    }

    /// The settings.
    pub fn config(&self) -> &RevocationConfig {
        &self.cfg
    }

    /// No complete listing yet, or its lag over the bound, at `now_ms`.
    pub fn is_stale(&self, now_ms: u64) -> bool {
        self.set.lag_ms(now_ms).is_none_or(|lag| lag > self.cfg.max_lag.as_millis() as u64)
    }

    /// A poll is due at `now_ms` (interval elapsed, no backoff pending).
    pub fn is_due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_poll_ms.load(Ordering::Acquire)
    }

    /// A poll is running now.
    pub fn in_flight(&self) -> bool {
        self.cursor.try_lock().is_err()
    }

    /// How long until the next poll is due.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.next_poll_ms.load(Ordering::Acquire).saturating_sub(now_ms()))
    }

    /// Polls now, after the poll in flight if there is one.
    ///
    /// # Errors
    /// Why the poll failed; nothing of the failed page was applied.
    pub async fn poll(&self) -> Result<PollOutcome, FeedError> {
        let mut cursor = self.cursor.lock().await;
        self.poll_locked(&mut cursor).await
    }

    /// Polls now unless a poll is in flight (`None` then).
    pub async fn try_poll(&self) -> Option<Result<PollOutcome, FeedError>> {
        let mut cursor = self.cursor.try_lock().ok()?;
        Some(self.poll_locked(&mut cursor).await)
    }

    /// Waits (at most one fetch timeout per page the poll needs, bounded by
    /// `limit`) until the feed is fresh: joins the poll in flight, or polls.
    /// Returns whether it is fresh afterwards.
    pub async fn wait_fresh(&self, limit: Duration) -> bool {
        let attempt = async {
            let mut cursor = self.cursor.lock().await;
            if self.is_stale(now_ms()) {
                let _ = self.poll_locked(&mut cursor).await;
            }
        };
        let _ = tokio::time::timeout(limit, attempt).await;
        !self.is_stale(now_ms())
    }

    /// When due and none is in flight, starts a poll on the runtime and
    /// returns at once (the authorizer, per invocation). Returns whether it
    /// started one.
    pub fn spawn_if_due(self: &Arc<Self>) -> bool {
        if !self.is_due(now_ms()) {
            return false;
        }
        // Taken here, not in the task: a trigger right after this one sees
        // the poll in flight even before the runtime has run the task.
        let Ok(mut cursor) = Arc::clone(&self.cursor).try_lock_owned() else { return false };
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let _ = me.poll_locked(&mut cursor).await;
        });
        true
    }

    /// Starts the background loop: polls when due, forever, until the
    /// follower is dropped.
    pub fn spawn_loop(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let delay = match weak.upgrade() {
                    Some(f) => f.delay(),
                    None => return,
                };
                tokio::time::sleep(delay).await;
                let Some(f) = weak.upgrade() else { return };
                if f.is_due(now_ms()) && f.try_poll().await.is_none() {
                    // Another caller's poll is in flight: wait for it rather
                    // than spin, then go by the schedule it left.
                    drop(f.cursor.lock().await);
                }
            }
        });
    }

    /// Health at `now_ms`.
    pub fn health(&self, now_ms: u64) -> FeedHealth {
        FeedHealth {
            lag: self.set.lag_ms(now_ms).map(Duration::from_millis),
            max_lag: self.cfg.max_lag,
            stale: self.is_stale(now_ms),
            entries: self.set.len(),
            consecutive_failures: self.failures.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.as_ref().map(ToString::to_string)),
            fetch_errors: self.fetch_errors.load(Ordering::Relaxed),
            pages: self.pages.load(Ordering::Relaxed),
            evicted: self.set.evicted(),
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let base = self.cfg.poll_interval;
        let cap = (self.cfg.max_lag / 3).max(base);
        let d = base.saturating_mul(1u32 << failures.min(10)).min(cap);
        d.mul_f64(jitter())
    }

    async fn poll_locked(&self, cursor: &mut Option<String>) -> Result<PollOutcome, FeedError> {
        // The whole poll is bounded too: every page has its own timeout, and
        // a runtime frozen mid-fetch (Lambda) finds it expired on the thaw.
        let limit = self.cfg.timeout.saturating_mul(self.max_pages.saturating_add(1));
        let result = match tokio::time::timeout(limit, self.pages_locked(cursor)).await {
            Ok(r) => r,
            Err(_) => Err(FeedError::Timeout),
        };
        let now = now_ms();
        match &result {
            Ok(outcome) => {
                let was_failing = self.failures.swap(0, Ordering::Relaxed);
                if was_failing > 0 {
                    info!(failures = was_failing, "revocation feed recovered");
                }
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
                let next = if outcome.complete { self.cfg.poll_interval } else { Duration::ZERO };
                self.next_poll_ms.store(now + next.as_millis() as u64, Ordering::Release);
                let now_s = now / 1000;
                if now_s >= self.last_sweep_s.load(Ordering::Relaxed) + 30 {
                    self.last_sweep_s.store(now_s, Ordering::Relaxed);
                    let swept = self.set.sweep(now_s);
                    if swept > 0 {
                        debug!(swept, entries = self.set.len(), "expired revocations dropped");
                    }
                }
            }
            Err(e) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                self.fetch_errors.fetch_add(1, Ordering::Relaxed);
                let backoff = self.backoff(failures);
                warn!(error = %e, failures, retry_in_ms = backoff.as_millis() as u64, "revocation feed fetch failed");
                self.next_poll_ms.store(now + backoff.as_millis() as u64, Ordering::Release);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.clone());
                }
            }
        }
        result
    }

    async fn pages_locked(&self, cursor: &mut Option<String>) -> Result<PollOutcome, FeedError> {
        let mut outcome = PollOutcome { pages: 0, events: 0, complete: false };
        while outcome.pages < self.max_pages {
            let page = match self.fetch(cursor.as_deref()).await {
                Ok(page) => page,
                Err(e @ FeedError::Status(400)) if cursor.is_some() => {
                    // The issuer no longer understands our cursor (a new
                    // format, another store): list everything live again on
                    // the next poll. Applying events again changes nothing.
                    warn!("revocation feed refused the cursor; starting over with a full listing");
                    *cursor = None;
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let now = now_ms();
            check_page(&page, cursor.as_deref(), now)?;
            let now_s = now / 1000;
            let mut evicted = 0;
            for event in &page.events {
                evicted += self.set.apply(event, now_s);
            }
            if evicted > 0 {
                warn!(
                    evicted,
                    max_entries = self.set.max_entries(),
                    "revocation set full: evicted the entries closest to expiry"
                );
            }
            outcome.pages += 1;
            outcome.events += page.events.len() as u64;
            self.pages.fetch_add(1, Ordering::Relaxed);
            *cursor = (!page.next.is_empty()).then_some(page.next);
            if !page.more {
                self.set.mark_complete(page.as_of_ms);
                outcome.complete = true;
                break;
            }
        }
        Ok(outcome)
    }

    async fn fetch(&self, cursor: Option<&str>) -> Result<FeedPage, FeedError> {
        let mut url = self.url.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(c) = cursor {
                q.append_pair("after", c);
            }
            q.append_pair("limit", &MAX_PAGE.to_string());
        }
        let mut resp = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(FeedError::from_reqwest)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(FeedError::Status(resp.status().as_u16()));
        }
        let max = self.cfg.max_page_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(FeedError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(FeedError::from_reqwest)? {
            if body.len() + chunk.len() > max {
                return Err(FeedError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| FeedError::Invalid(format!("not a feed page: {e}")))
    }
}

/// The contract's rules a page must keep before anything on it is applied.
fn check_page(page: &FeedPage, cursor: Option<&str>, now_ms: u64) -> Result<(), FeedError> {
    let invalid = |m: &str| Err(FeedError::Invalid(m.to_owned()));
    if page.events.len() > MAX_PAGE {
        return invalid("more events than the page limit");
    }
    if page.next.len() > 512 || !page.next.bytes().all(|b| b.is_ascii_graphic()) {
        return invalid("cursor is not up to 512 visible ASCII characters");
    }
    if page.more && (page.next.is_empty() || Some(page.next.as_str()) == cursor) {
        return invalid("more pages announced without a new cursor");
    }
    if !page.more && (page.as_of_ms == 0 || page.as_of_ms > now_ms + 300_000) {
        return invalid("as_of_ms missing or more than 5 minutes ahead");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::{FeedEvent, RevocationId};

    fn page(events: usize, next: &str, more: bool, as_of_ms: u64) -> FeedPage {
        let events =
            (0..events).map(|i| FeedEvent::Session { id: RevocationId::session(&i.to_string()), until: 1 }).collect();
        FeedPage { events, next: next.into(), more, as_of_ms }
    }

    #[test]
    fn pages_that_break_the_contract_are_refused() {
        let now = 1_900_000_000_000;
        assert!(check_page(&page(3, "c1", true, 0), None, now).is_ok());
        assert!(check_page(&page(0, "c1", false, now - 1000), Some("c0"), now).is_ok());
        assert!(check_page(&page(0, "", false, now), None, now).is_ok(), "an empty feed");
        for (p, cursor) in [
            (page(MAX_PAGE + 1, "c", true, 0), None),
            (page(1, "c1", true, 0), Some("c1")),
            (page(1, "", true, 0), None),
            (page(1, "c\n", false, now), None),
            (page(1, &"c".repeat(513), false, now), None),
            (page(1, "c", false, 0), None),
            (page(1, "c", false, now + 301_000), None),
        ] {
            assert!(matches!(check_page(&p, cursor, now), Err(FeedError::Invalid(_))), "{p:?}");
        }
    }

    #[test]
    fn backoff_grows_to_a_third_of_the_lag_bound() {
        let cfg = RevocationConfig { feed_url: Some("http://127.0.0.1:9/revocations".into()), ..Default::default() };
        let f = FeedFollower::new(&cfg, Arc::new(RevocationSet::new(1000))).unwrap().unwrap();
        let (one, many) = (f.backoff(1), f.backoff(20));
        assert!(one >= Duration::from_secs(1) && one <= Duration::from_secs(2), "{one:?}");
        assert!(many >= Duration::from_secs(5) && many <= Duration::from_secs(10), "{many:?}");
    }
}
