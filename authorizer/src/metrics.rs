//! Decision counts as CloudWatch metrics instead of a log line per
//! invocation.
//!
//! At a billion authorizations a day, one INFO line of ~300 bytes per
//! decision is ~300 GB a day of CloudWatch Logs ingestion (about $4,500 a
//! month at $0.50/GB), the same order as the Lambda request charge, to
//! repeat what API Gateway's access log already records per request
//! (`principal`, `authorizerStatus`, `authorizerLatency`). So an allowed
//! request logs nothing at INFO (a DEBUG line remains); denials, refusals
//! and errors keep their INFO/WARN line with the reason (rare, and what an
//! investigation needs). The counts of every outcome go out as one
//! [Embedded Metric Format] line per sandbox per interval
//! (`AUTH_METRICS_INTERVAL_SECS`, default 60): CloudWatch turns it into the
//! metrics `Allow`, `Deny`, `Unauthorized`, `Unavailable`, `Revoked`,
//! `TokenCacheHits` and `TokenCacheMisses` in `AUTH_METRICS_NAMESPACE`,
//! for a few hundred bytes per sandbox-minute. A sandbox shut down between
//! flushes takes its last interval's counts with it: the metrics are a
//! lower bound, within one interval per sandbox.
//!
//! [Embedded Metric Format]: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

use std::sync::Mutex;
use std::time::{Duration, Instant};

use token_core::VerifyError;
use token_core::metrics::{Decision, Metrics};

/// The counters reported, by metric name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    allow: u64,
    deny: u64,
    unauthorized: u64,
    unavailable: u64,
    revoked: u64,
    cache_hits: u64,
    cache_misses: u64,
}

impl Counts {
    fn of(m: &Metrics) -> Self {
        let mut c = Counts {
            allow: m.count(Decision::Allow),
            deny: m.count(Decision::InsufficientScope),
            revoked: m.count(Decision::Rejected(VerifyError::Revoked)),
            cache_hits: m.cache_hits(),
            cache_misses: m.cache_misses(),
            ..Counts::default()
        };
        for (d, n) in m.decisions() {
            match d.outcome() {
                "unauthorized" => c.unauthorized += n,
                "unavailable" => c.unavailable += n,
                _ => {}
            }
        }
        c
    }

    fn since(self, before: Counts) -> Counts {
        Counts {
            allow: self.allow.saturating_sub(before.allow),
            deny: self.deny.saturating_sub(before.deny),
            unauthorized: self.unauthorized.saturating_sub(before.unauthorized),
            unavailable: self.unavailable.saturating_sub(before.unavailable),
            revoked: self.revoked.saturating_sub(before.revoked),
            cache_hits: self.cache_hits.saturating_sub(before.cache_hits),
            cache_misses: self.cache_misses.saturating_sub(before.cache_misses),
        }
    }

    fn fields(self) -> [(&'static str, u64); 7] {
        [
            ("Allow", self.allow),
            ("Deny", self.deny),
            ("Unauthorized", self.unauthorized),
            ("Unavailable", self.unavailable),
            ("Revoked", self.revoked),
            ("TokenCacheHits", self.cache_hits),
            ("TokenCacheMisses", self.cache_misses),
        ]
    }
}

/// Emits the decision counts as EMF lines, at most one per interval.
#[derive(Debug)]
pub struct EmfReporter {
    namespace: String,
    interval: Duration,
    state: Mutex<(Instant, Counts)>,
}

impl EmfReporter {
    /// A reporter into `namespace`, flushing at most every `interval`,
    /// counting from `now`.
    pub fn new(namespace: impl Into<String>, interval: Duration, now: Instant) -> Self {
        EmfReporter { namespace: namespace.into(), interval, state: Mutex::new((now, Counts::default())) }
    }

    /// The EMF line of the counts since the last flush, when the interval
    /// has passed at `now` and anything was counted; `None` otherwise.
    /// `timestamp_ms` is the wall clock (milliseconds since the epoch).
    pub fn tick(&self, metrics: &Metrics, now: Instant, timestamp_ms: u64) -> Option<String> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.saturating_duration_since(state.0) < self.interval {
            return None;
        }
        let current = Counts::of(metrics);
        let delta = current.since(state.1);
        *state = (now, current);
        if delta == Counts::default() {
            return None;
        }
        let fields = delta.fields();
        let definitions: Vec<serde_json::Value> =
            fields.iter().map(|(name, _)| serde_json::json!({"Name": name, "Unit": "Count"})).collect();
        let mut doc = serde_json::Map::new();
        doc.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{"Namespace": self.namespace, "Dimensions": [[]], "Metrics": definitions}],
            }),
        );
        for (name, n) in fields {
            doc.insert(name.into(), n.into());
        }
        serde_json::to_string(&doc).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_counts_since_the_last() {
        let m = Metrics::default();
        let t0 = Instant::now();
        let r = EmfReporter::new("Stack/Authorizer", Duration::from_secs(60), t0);
        for _ in 0..3 {
            m.record(Decision::Allow);
        }
        m.record(Decision::InsufficientScope);
        m.record(Decision::Rejected(VerifyError::Expired));
        m.record(Decision::Rejected(VerifyError::Revoked));
        m.record(Decision::Rejected(VerifyError::KeysUnavailable));
        assert_eq!(r.tick(&m, t0 + Duration::from_secs(59), 1), None, "not due yet");
        let line = r.tick(&m, t0 + Duration::from_secs(60), 1_700_000_000_000).expect("due");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Stack/Authorizer");
        assert_eq!(cw["Dimensions"], serde_json::json!([[]]));
        assert_eq!(cw["Metrics"].as_array().unwrap().len(), 7);
        for metric in cw["Metrics"].as_array().unwrap() {
            assert!(v.get(metric["Name"].as_str().unwrap()).is_some(), "every declared metric has a value");
        }
        assert_eq!((v["Allow"].as_u64(), v["Deny"].as_u64()), (Some(3), Some(1)));
        assert_eq!(
            (v["Unauthorized"].as_u64(), v["Revoked"].as_u64()),
            (Some(2), Some(1)),
            "revoked is unauthorized too"
        );
        assert_eq!(v["Unavailable"].as_u64(), Some(1));
        // The next interval: only what happened since; nothing new, no line.
        assert_eq!(r.tick(&m, t0 + Duration::from_secs(130), 2), None);
        m.record(Decision::Allow);
        assert_eq!(r.tick(&m, t0 + Duration::from_secs(150), 3), None, "flushed at 130: due at 190");
        let v: serde_json::Value =
            serde_json::from_str(&r.tick(&m, t0 + Duration::from_secs(190), 4).unwrap()).unwrap();
        assert_eq!((v["Allow"].as_u64(), v["Deny"].as_u64()), (Some(1), Some(0)));
    }
}
