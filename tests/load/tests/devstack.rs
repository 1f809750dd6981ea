//! `auth-load` against the real dev stack (the `devstack` binary, embedded
//! store): users are seeded and every route answers as expected. Counts
//! only, no wall-clock assertions.
//!
//! Needs the `devstack` binary: `cargo build -p devstack` (scripts/test.sh
//! builds every binary first). Without it the test fails saying so.

// Test code: a failure to start the stack is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use auth_load::load::{Mix, Plan, run};
use auth_load::stack::{Route, Stack, Targets};

/// The dev stack binary in this build's target directory.
fn devstack_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let path = target.join(profile).join("devstack");
    assert!(
        path.exists(),
        "the devstack binary is missing at {}: build it first with `cargo build -p devstack` \
         (scripts/test.sh builds every binary)",
        path.display()
    );
    path
}

/// The dev stack as a child process, killed when dropped.
struct DevStack {
    child: Child,
    dir: PathBuf,
    targets: Targets,
}

impl Drop for DevStack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the dev stack on free ports with verification off and the login
/// and sign-up limits lifted (every request comes from 127.0.0.1), and reads
/// its addresses from the walkthrough it prints.
fn start() -> DevStack {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("auth-load-devstack-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(devstack_bin())
        .args(["--data-dir", dir.join("data").to_str().unwrap()])
        .args(["--gateway-port", "0", "--issuer-port", "0", "--sidecar-port", "0", "--backend-port", "0"])
        .env("ISSUER_REQUIRE_VERIFIED_EMAIL", "false")
        .env("ISSUER_RECOVERY_MAX_PER_CLIENT", "1000000")
        .env("ISSUER_LOGIN_MAX_PER_ADDRESS", "1000000")
        .env("ISSUER_LOGIN_MAX_PER_ACCOUNT", "1000000")
        .env("ISSUER_LOGIN_MAX_PER_ACCOUNT_ADDRESS", "1000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start devstack");
    let stdout = child.stdout.take().expect("devstack stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut gateway, mut issuer, mut sidecar) = (None, None, None);
    let url_in = |line: &str| line.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_owned);
    while gateway.is_none() || issuer.is_none() || sidecar.is_none() {
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("devstack printed no addresses within 60 s");
            }
        };
        let t = line.trim_start();
        if t.starts_with("front door") {
            gateway = url_in(t);
        } else if t.starts_with("issuer ") {
            issuer = url_in(t);
        } else if t.starts_with("sidecar") {
            sidecar = url_in(t).map(|u| u.trim_end_matches("/verify").to_owned());
        }
    }
    DevStack { child, dir, targets: Targets { issuer: issuer.unwrap(), gateway, sidecar } }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_expected_on_the_dev_stack() {
    let stack = start();
    let client = Stack::new(stack.targets.clone(), 3, "test", Duration::from_secs(20)).unwrap();
    client.seed(3).await.expect("seed 3 users");
    let routes = Route::ALL;
    let mix = Mix::new(&[1.0; 6]).unwrap();
    let plan = Plan {
        rate_per_s: 60.0,
        duration: Duration::from_millis(1000),
        max_in_flight: 1000,
        timeout: Duration::from_secs(20),
    };
    let report = run(plan, routes.len(), &mix, |k, i| client.request(routes[k], i), |_| {}).await;
    let mut answered = 0;
    for (route, s) in routes.iter().zip(&report.routes) {
        assert!(s.errors.is_empty(), "{}: {:?}", route.name(), s.errors);
        assert_eq!(s.dropped, 0, "{}", route.name());
        assert_eq!(s.ok, s.latency.count(), "{}: every answer was the expected one", route.name());
        assert!(s.ok >= 1, "{}: at least one request answered", route.name());
        if *route != Route::Refresh {
            assert_eq!(s.skipped, 0, "{}: only a refresh can find its token in use", route.name());
        }
        answered += s.ok + s.skipped;
    }
    assert_eq!(answered, 60, "every scheduled request was sent or (refresh) skipped");
}
