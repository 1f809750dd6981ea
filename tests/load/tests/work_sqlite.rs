//! The measurement harness on the embedded store (no service needed): every
//! request type answers as the sequence expects, each is measured once per
//! repetition, and the log lines each writes at INFO are pinned (a new
//! INFO line on a path shows up here and in the bill's log bytes).
//!
//! One test in this binary: the log counter is the process's subscriber,
//! and another test running beside it would add its lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_load::measure;
use auth_load::measured;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_type_is_measured_with_its_log_lines() {
    assert!(measure::install_log_counter(), "the log counter is the process's subscriber");
    let dir = std::env::temp_dir().join(format!("auth-work-sqlite-{}", std::process::id()));
    let samples = measure::sqlite(&dir, 2).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    for name in measure::REQUEST_TYPES {
        let of: Vec<_> = samples.iter().filter(|s| s.name == name).collect();
        assert_eq!(of.len(), 2, "{name}: once per repetition");
        assert!(of.iter().all(|s| s.dynamo.is_empty()), "{name}: no meter on SQLite");
        assert!(of.iter().all(|s| !s.cpu.is_zero()), "{name}: CPU time counted");
    }
    // INFO lines per request type (audit events; refresh and the feed log
    // nothing at INFO; logout-all logs the revocation and the sessions ended).
    let lines = |name: &str| {
        let s: Vec<_> = samples.iter().filter(|s| s.name == name).collect();
        assert!(s.windows(2).all(|w| w[0].log_lines == w[1].log_lines), "{name}: the same every repetition");
        s[0].log_lines
    };
    let want = [
        ("register", 1),
        ("verify_email", 1),
        ("login", 1),
        ("login_failed", 1),
        ("stuffing_checked", 1),
        ("refresh", 0),
        ("logout", 1),
        ("revocations_page", 0),
        ("logout_all", 2),
        ("forgot_password", 1),
        ("reset_password", 1),
        ("change_password", 1),
        ("stuffing_refused", 1),
        ("revocations_page_empty", 0),
    ];
    for (name, n) in want {
        assert_eq!(lines(name), n, "INFO lines of {name}");
    }
    assert_eq!(want.len(), measure::REQUEST_TYPES.len());
    // Bytes follow lines: a line is a JSON object with a newline.
    for s in &samples {
        assert_eq!(s.log_bytes == 0, s.log_lines == 0, "{}", s.name);
    }

    // The samples aggregate and survive the work.toml round trip.
    let requests = measured::aggregate(&[], &samples, &samples).unwrap();
    let table = measured::MeasuredTable {
        date: "2026-12-02T00:00:00Z".into(),
        commit: "test".into(),
        machine: "test".into(),
        profile: "debug".into(),
        requests,
    };
    let back = measured::parse(&measured::to_toml(&table)).unwrap();
    assert_eq!(back.requests.len(), measure::REQUEST_TYPES.len());
    assert_eq!(back.get("logout_all").unwrap().log_lines, 2.0);
}
