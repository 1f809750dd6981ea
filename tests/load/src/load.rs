//! The open-loop engine of `auth-load`: requests leave at scheduled times
//! whatever happened to the earlier ones, and each latency is measured from
//! the request's *scheduled* time, so a server (or a client) that falls
//! behind shows up in the percentiles instead of silently slowing the
//! schedule down (coordinated omission).
//!
//! In-flight requests are bounded: a request whose time comes while the
//! bound is reached is not sent and is counted as dropped. Every request has
//! a timeout, enforced here whatever the client does.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Sub-buckets per power of two: values are kept to within 1/128 (0.8%).
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets for every `u64`: 128 exact small values, then 128 per octave.
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

/// A latency histogram in microseconds with bounded memory (log-linear
/// buckets, relative error under 0.8%; percentiles are reported as the
/// highest value of their bucket, never lower than the truth).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], count: 0, max: 0 }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return usize::try_from(v).unwrap_or(0);
    }
    let exp = 63 - u64::from(v.leading_zeros()); // >= SUB_BITS
    let shift = exp - u64::from(SUB_BITS);
    let mantissa = v >> shift; // in [SUB, 2 SUB)
    usize::try_from(SUB + shift * SUB + (mantissa - SUB)).unwrap_or(BUCKETS - 1)
}

/// The highest value that falls in bucket `i`.
fn bucket_top(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = (i - SUB) / SUB;
    let mantissa = SUB + (i - SUB) % SUB;
    ((mantissa + 1) << shift).saturating_sub(1)
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, micros: u64) {
        self.counts[bucket_of(micros)] += 1;
        self.count += 1;
        self.max = self.max.max(micros);
    }

    /// Values recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded (exact).
    #[must_use]
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the top of the bucket holding the
    /// `ceil(q x count)`-th value, capped at the exact maximum; 0 when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_top(i).min(self.max);
            }
        }
        self.max
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The route's expected answer.
    Ok,
    /// Another HTTP status.
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// Connection or protocol failure (a short reason, no secrets).
    Failed(String),
    /// Not sent: the client had nothing to send (e.g. the user's refresh
    /// token is being rotated by an earlier request).
    Skipped(&'static str),
}

/// What happened on one route.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteStats {
    /// Latencies of the answered requests (expected or not), µs from the
    /// scheduled time.
    pub latency: Histogram,
    /// Requests that got the expected answer.
    pub ok: u64,
    /// Everything else, by kind (`status 503`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Not sent because the in-flight bound was reached.
    pub dropped: u64,
    /// Not sent because the client had nothing to send.
    pub skipped: u64,
}

impl RouteStats {
    /// Requests that failed.
    #[must_use]
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A fixed-rate plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Requests per second.
    pub rate_per_s: f64,
    /// How long to send.
    pub duration: Duration,
    /// The bound on requests in flight.
    pub max_in_flight: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Plan {
    /// Requests the plan sends: `floor(rate x seconds)`.
    #[must_use]
    pub fn requests(&self) -> u64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (self.rate_per_s * self.duration.as_secs_f64()).floor().max(0.0) as u64;
        n
    }

    /// When request `i` is due, from the start.
    #[must_use]
    pub fn offset(&self, i: u64) -> Duration {
        #[allow(clippy::cast_precision_loss)]
        Duration::from_secs_f64(i as f64 / self.rate_per_s)
    }
}

/// Picks routes by weight, deterministically and evenly spread: request `i`
/// takes the route whose cumulative-weight band holds the fractional part
/// of `i x (golden ratio - 1)` (a low-discrepancy sequence: any window of
/// requests has close to the weighted mix).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    cumulative: Vec<f64>,
}

impl Mix {
    /// A mix of routes with these weights (route `k` has `weights[k]`).
    /// `None` when no weight is positive or any is negative or not finite.
    #[must_use]
    pub fn new(weights: &[f64]) -> Option<Mix> {
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return None;
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let mut acc = 0.0;
        Some(Mix {
            cumulative: weights
                .iter()
                .map(|w| {
                    acc += w / total;
                    acc
                })
                .collect(),
        })
    }

    /// The route of request `i`.
    #[must_use]
    pub fn pick(&self, i: u64) -> usize {
        #[allow(clippy::cast_precision_loss)]
        let x = (i as f64 * 0.618_033_988_749_894_9).fract();
        self.cumulative.iter().position(|&c| x < c).unwrap_or(self.cumulative.len() - 1)
    }
}

/// A progress snapshot (once a second while running, and at the end).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Since the start.
    pub elapsed: Duration,
    /// Scheduled so far.
    pub scheduled: u64,
    /// Of the plan.
    pub planned: u64,
    /// Answered or timed out.
    pub completed: u64,
    /// In flight now.
    pub in_flight: u64,
    /// Dropped at the bound so far.
    pub dropped: u64,
    /// Errors so far.
    pub errors: u64,
    /// p99 so far over all routes, µs.
    pub p99_us: u64,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// Per route, in route order.
    pub routes: Vec<RouteStats>,
    /// Wall time from the first scheduled request to the last completion.
    pub elapsed: Duration,
    /// The last progress snapshot.
    pub last: Progress,
}

struct Shared {
    routes: Vec<RouteStats>,
    all: Histogram,
    completed: u64,
}

fn snapshot(s: &Shared, elapsed: Duration, scheduled: u64, planned: u64, in_flight: u64) -> Progress {
    Progress {
        elapsed,
        scheduled,
        planned,
        completed: s.completed,
        in_flight,
        dropped: s.routes.iter().map(|r| r.dropped).sum(),
        errors: s.routes.iter().map(RouteStats::error_count).sum(),
        p99_us: s.all.quantile(0.99),
    }
}

/// Runs `plan` open-loop: request `i` is due at `start + i / rate`, goes to
/// route `mix.pick(i)` and is made by `send(route, i)`. `progress` is called
/// about once a second and once at the end.
pub async fn run<F, Fut>(plan: Plan, routes: usize, mix: &Mix, send: F, progress: impl FnMut(&Progress)) -> RunReport
where
    F: Fn(usize, u64) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    run_from(plan, 0, routes, mix, send, progress).await
}

/// [`run`] with the requests numbered from `first` (for the route pick and
/// `send`), so that consecutive steps continue one sequence: a short step
/// then gets its share of every route instead of starting over at the
/// first. Due times still count from the step's own start.
pub async fn run_from<F, Fut>(
    plan: Plan,
    first: u64,
    routes: usize,
    mix: &Mix,
    send: F,
    mut progress: impl FnMut(&Progress),
) -> RunReport
where
    F: Fn(usize, u64) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    // No route to send to: nothing is scheduled.
    let planned = if routes == 0 { 0 } else { plan.requests() };
    let shared = Arc::new(Mutex::new(Shared {
        routes: vec![RouteStats::default(); routes],
        all: Histogram::default(),
        completed: 0,
    }));
    let lock = |s: &Arc<Mutex<Shared>>| -> Shared {
        // Only used for the final copy below.
        let g = s.lock().unwrap_or_else(PoisonError::into_inner);
        Shared { routes: g.routes.clone(), all: g.all.clone(), completed: g.completed }
    };
    let slots = Arc::new(Semaphore::new(plan.max_in_flight));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let tick = Duration::from_secs(1);
    let mut next_progress = start + tick;
    let in_flight = |slots: &Semaphore| (plan.max_in_flight - slots.available_permits()) as u64;
    for i in 0..planned {
        let due = start + plan.offset(i);
        // Sleep to the due time, reporting progress on the way.
        loop {
            let wake = due.min(next_progress);
            tokio::time::sleep_until(wake).await;
            let now = Instant::now();
            if now >= next_progress {
                let s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                progress(&snapshot(&s, now - start, i, planned, in_flight(&slots)));
                next_progress += tick;
            }
            if now >= due {
                break;
            }
        }
        let n = first.wrapping_add(i);
        let route = mix.pick(n).min(routes - 1);
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            shared.lock().unwrap_or_else(PoisonError::into_inner).routes[route].dropped += 1;
            continue;
        };
        let fut = send(route, n);
        let shared = Arc::clone(&shared);
        let timeout = plan.timeout;
        tasks.spawn(async move {
            let outcome = tokio::time::timeout(timeout, fut).await.unwrap_or(Outcome::Timeout);
            // From the scheduled time, not the send time.
            let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
            let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
            let r = &mut s.routes[route];
            match outcome {
                Outcome::Skipped(_) => r.skipped += 1,
                other => {
                    r.latency.record(micros);
                    match other {
                        Outcome::Ok => r.ok += 1,
                        Outcome::Status(code) => *r.errors.entry(format!("status {code}")).or_default() += 1,
                        Outcome::Timeout => *r.errors.entry("timeout".to_owned()).or_default() += 1,
                        Outcome::Failed(why) => *r.errors.entry(why).or_default() += 1,
                        Outcome::Skipped(_) => {}
                    }
                    s.all.record(micros);
                    s.completed += 1;
                }
            }
            drop(permit);
        });
        // Reap finished tasks so the set stays as small as what is in flight.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let end = Instant::now() - start;
    let last = {
        let s = shared.lock().unwrap_or_else(PoisonError::into_inner);
        snapshot(&s, end, planned, planned, 0)
    };
    progress(&last);
    let s = lock(&shared);
    RunReport { routes: s.routes, elapsed: end, last }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_within_one_percent() {
        for v in [0, 1, 127, 128, 129, 255, 256, 1000, 12_345, 1_000_000, u64::MAX / 3] {
            let i = bucket_of(v);
            let top = bucket_top(i);
            assert!(top >= v, "{v}: top {top}");
            #[allow(clippy::cast_precision_loss)]
            let err = (top - v) as f64 / (v.max(1) as f64);
            assert!(err < 1.0 / 128.0 + 1e-12, "{v}: {err}");
            if i > 0 {
                assert!(bucket_top(i - 1) < v, "{v} belongs above the previous bucket");
            }
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000 {
            h.record(v);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), 1000);
        // The 500th value is 500; buckets are 2 wide from 256 to 511, so its
        // bucket is [500, 501] and reports 501, 0.2% above.
        let p50 = h.quantile(0.5);
        assert!((500..=504).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1000);
        assert_eq!(h.quantile(0.0), 1);
    }

    #[test]
    fn the_mix_follows_its_weights_in_any_window() {
        let mix = Mix::new(&[1.0, 10.0, 89.0]).unwrap();
        let mut counts = [0u32; 3];
        for i in 1000..11_000 {
            counts[mix.pick(i)] += 1;
        }
        // 10,000 picks: 100, 1,000, 8,900 within 1%.
        assert!((90..=110).contains(&counts[0]), "{counts:?}");
        assert!((990..=1010).contains(&counts[1]), "{counts:?}");
        assert!((8890..=8910).contains(&counts[2]), "{counts:?}");
        assert!(Mix::new(&[0.0, 0.0]).is_none());
        assert!(Mix::new(&[1.0, -1.0]).is_none());
        assert!(Mix::new(&[f64::NAN]).is_none());
    }

    #[test]
    fn the_plan_spaces_requests_evenly() {
        let p = Plan {
            rate_per_s: 200.0,
            duration: Duration::from_millis(2500),
            max_in_flight: 1,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(p.requests(), 500);
        assert_eq!(p.offset(0), Duration::ZERO);
        assert_eq!(p.offset(200), Duration::from_secs(1));
        assert_eq!(p.offset(1), Duration::from_millis(5));
    }
}
