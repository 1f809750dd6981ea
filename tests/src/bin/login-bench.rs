//! Our login, timed one call at a time, for the side-by-side with the seed's
//! Node.js stack (`scripts/bench-node-seed.sh`, docs/bench/node-seed.md).
//!
//! The issuer as the local dev stack builds it (`issuer::server::local_app`:
//! embedded SQLite store, RS256 key, argon2id at the configured defaults,
//! m=19456 KiB t=2 p=1), one registered account, then:
//! - `what=login_hash`: the password check alone (`PasswordHasher::verify_blocking`);
//! - `what=login_app`: a whole `POST /login` through `App::handle` (parse,
//!   attempt counters (limits raised out of reach: one account logs in
//!   over and over), the hash on the blocking pool, the session written to
//!   SQLite, the RS256 access token signed); no socket, no Runtime API hop,
//!   no DynamoDB round trip.
//!
//! ```text
//! login-bench --logins 200 [--times-out FILE]   # FILE: each whole login, in ns, one a line
//! ```
//! Every figure is one `BENCH key=value ...` line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use e2e_tests::Flags;
use hyper::Method;
use hyper::header::HeaderValue;
use issuer::Request;
use issuer::attempts::AttemptPolicy;
use issuer::config::IssuerConfig;
use issuer::store::Store as _;

const PASSWORD: &str = "correct horse battery";

fn json_request(path: &str, body: &str) -> Request {
    let mut r = Request::new(Method::POST, path);
    r.headers.insert("content-type", HeaderValue::from_static("application/json"));
    r.body = Bytes::from(body.to_owned());
    r
}

/// `what=... n= mean_ms= p50_ms= p99_ms= max_ms=` of `times`.
fn report(what: &str, mut times: Vec<Duration>, extra: &str) {
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| ms(times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1]);
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    println!(
        "BENCH what={what} n={} mean_ms={mean:.2} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}{extra}",
        times.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let mut logins = 100usize;
    let mut times_out: Option<String> = None;
    let mut f = Flags::from_env();
    while let Some(flag) = f.next_flag() {
        match flag.as_str() {
            "--logins" => logins = f.parse(&flag),
            "--times-out" => times_out = Some(f.value(&flag)),
            other => panic!("unknown flag {other}"),
        }
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let dir = std::env::temp_dir().join(format!("login-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One account logs in over and over: the attempt counters are still
    // kept (the same store work), with limits that this run does not reach.
    let cfg = IssuerConfig {
        require_verified_email: false,
        attempt_policy: AttemptPolicy {
            per_account_address: u32::MAX,
            per_address: u32::MAX,
            per_account: u32::MAX,
            ..AttemptPolicy::default()
        },
        ..IssuerConfig::local("http://127.0.0.1:8080", "api", dir.clone()).unwrap()
    };
    let params = format!(
        " argon2_m_kib={} argon2_t={} argon2_p={}",
        cfg.argon2.memory_kib, cfg.argon2.iterations, cfg.argon2.parallelism
    );
    let app = issuer::server::local_app(cfg).unwrap();
    let creds = serde_json::json!({"email": "bench@example.com", "password": PASSWORD}).to_string();
    assert_eq!(app.handle(json_request("/register", &creds)).await.status, 202);
    let user = app.store().find_user_by_email("bench@example.com").await.unwrap().unwrap();

    // Warm-up: the first hashes fault in the 19 MiB argon2 buffer.
    for _ in 0..3 {
        assert_eq!(app.handle(json_request("/login", &creds)).await.status, 200, "login");
    }
    let mut hash = Vec::with_capacity(logins);
    for _ in 0..logins {
        let t0 = Instant::now();
        let v = app.hasher().verify_blocking(PASSWORD, Some(&user.password_hash)).unwrap();
        hash.push(t0.elapsed());
        std::hint::black_box(v);
    }
    report("login_hash", hash, &params);

    let mut whole = Vec::with_capacity(logins);
    for _ in 0..logins {
        let t0 = Instant::now();
        let r = app.handle(json_request("/login", &creds)).await;
        whole.push(t0.elapsed());
        assert_eq!(r.status, 200, "login");
    }
    if let Some(path) = &times_out {
        let lines: String = whole.iter().map(|d| format!("{}\n", d.as_nanos())).collect();
        std::fs::write(path, lines).unwrap();
    }
    report("login_app", whole, &params);
    let _ = std::fs::remove_dir_all(&dir);
}
