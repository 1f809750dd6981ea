//! The open-loop scheduler against a tiny local HTTP server that counts what
//! it receives. No wall-clock assertions: only counts, with generous
//! timeouts.

// Test helpers: a failure to bind or build is the test failing.
#![allow(clippy::expect_used)]
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use auth_load::load::{Mix, Outcome, Plan, run, run_from};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Default)]
struct Counts {
    fast: AtomicU64,
    teapot: AtomicU64,
}

/// Serves `/fast` (200) and `/teapot` (418), counting each (404 for
/// anything else).
async fn server() -> (SocketAddr, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
    let addr = listener.local_addr().expect("local addr");
    let counts = Arc::new(Counts::default());
    let c = Arc::clone(&counts);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let c = Arc::clone(&c);
                    async move {
                        let status = match req.uri().path() {
                            "/fast" => {
                                c.fast.fetch_add(1, Ordering::SeqCst);
                                StatusCode::OK
                            }
                            "/teapot" => {
                                c.teapot.fetch_add(1, Ordering::SeqCst);
                                StatusCode::IM_A_TEAPOT
                            }
                            _ => StatusCode::NOT_FOUND,
                        };
                        let mut r = Response::new(Full::new(Bytes::from_static(b"ok")));
                        *r.status_mut() = status;
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, counts)
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).connect_timeout(timeout).build().expect("a reqwest client")
}

fn get(client: &reqwest::Client, url: String, expect: u16) -> impl Future<Output = Outcome> + Send + 'static {
    let req = client.get(url);
    async move {
        match req.send().await {
            Ok(r) if r.status().as_u16() == expect => Outcome::Ok,
            Ok(r) => Outcome::Status(r.status().as_u16()),
            Err(e) if e.is_timeout() => Outcome::Timeout,
            Err(_) => Outcome::Failed("request failed".to_owned()),
        }
    }
}

#[tokio::test]
async fn every_scheduled_request_arrives_once_and_is_counted_on_its_route() {
    let (addr, counts) = server().await;
    let http = client(Duration::from_secs(10));
    let plan = Plan {
        rate_per_s: 400.0,
        duration: Duration::from_millis(250),
        max_in_flight: 1000,
        timeout: Duration::from_secs(10),
    };
    assert_eq!(plan.requests(), 100);
    // Route 0 expects 200 from /fast; route 1 expects 200 from /teapot (and
    // gets 418, an error).
    let mix = Mix::new(&[3.0, 1.0]).expect("weights");
    let mut progress_calls = 0;
    let report = run(
        plan,
        2,
        &mix,
        |route, _i| match route {
            0 => get(&http, format!("http://{addr}/fast"), 200),
            _ => get(&http, format!("http://{addr}/teapot"), 200),
        },
        |_| progress_calls += 1,
    )
    .await;
    let fast = counts.fast.load(Ordering::SeqCst);
    let teapot = counts.teapot.load(Ordering::SeqCst);
    assert_eq!(fast + teapot, 100, "every scheduled request was sent once");
    assert_eq!(report.routes[0].ok, fast);
    assert_eq!(report.routes[0].error_count(), 0);
    assert_eq!(report.routes[1].ok, 0);
    assert_eq!(report.routes[1].errors.get("status 418").copied(), Some(teapot));
    assert_eq!(report.routes[0].latency.count() + report.routes[1].latency.count(), 100);
    assert_eq!(report.routes.iter().map(|r| r.dropped).sum::<u64>(), 0);
    // The golden-ratio mix puts 3 in 4 on route 0: 75 of 100, give or take one.
    assert!((74..=76).contains(&fast), "{fast}");
    assert_eq!(report.last.completed, 100);
    assert_eq!(report.last.planned, 100);
    assert!(progress_calls >= 1, "a final progress line at least");
}

// Virtual time (tokio's paused clock): due times, the hold and the timeout
// are exact, so no stall of the test process can free a slot early.
#[tokio::test(start_paused = true)]
async fn requests_beyond_the_in_flight_bound_are_dropped_and_counted_and_timeouts_end_the_rest() {
    // Requests that never answer: the engine's timeout (3 s) ends each.
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let plan = Plan {
        rate_per_s: 1000.0,
        duration: Duration::from_millis(20),
        max_in_flight: 2,
        timeout: Duration::from_secs(3),
    };
    assert_eq!(plan.requests(), 20);
    let mix = Mix::new(&[1.0]).expect("weights");
    let report = run(
        plan,
        1,
        &mix,
        |_, _| {
            sent.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Outcome>()
        },
        |_| {},
    )
    .await;
    let r = &report.routes[0];
    // The first two hold the only slots until their timeout; the other 18
    // come due (within 20 ms) while both are held.
    assert_eq!(r.dropped, 18);
    assert_eq!(r.errors.get("timeout").copied(), Some(2));
    assert_eq!(r.ok, 0);
    assert_eq!(r.latency.count(), 2, "timed-out requests are measured too");
    assert!(r.latency.max() >= 3_000_000, "measured from the scheduled time, at least the timeout");
    assert_eq!(sent.load(Ordering::SeqCst), 2, "dropped requests were never sent");
}

#[tokio::test]
async fn skipped_requests_are_counted_apart_and_not_measured() {
    let plan = Plan {
        rate_per_s: 1000.0,
        duration: Duration::from_millis(10),
        max_in_flight: 100,
        timeout: Duration::from_secs(5),
    };
    let mix = Mix::new(&[1.0]).expect("weights");
    let report = run(
        plan,
        1,
        &mix,
        |_, i| async move { if i % 2 == 0 { Outcome::Skipped("nothing to send") } else { Outcome::Ok } },
        |_| {},
    )
    .await;
    assert_eq!(report.routes[0].skipped, 5);
    assert_eq!(report.routes[0].ok, 5);
    assert_eq!(report.routes[0].latency.count(), 5);
}

#[tokio::test]
async fn no_routes_means_nothing_is_scheduled() {
    let plan = Plan {
        rate_per_s: 1000.0,
        duration: Duration::from_millis(10),
        max_in_flight: 10,
        timeout: Duration::from_secs(1),
    };
    let mix = Mix::new(&[1.0]).expect("weights");
    let report = run(plan, 0, &mix, |_, _| async { Outcome::Ok }, |_| {}).await;
    assert!(report.routes.is_empty());
    assert_eq!(report.last.planned, 0);
    assert_eq!(report.last.completed, 0);
}

#[tokio::test]
async fn a_step_numbered_from_first_continues_the_route_sequence() {
    // Two routes weighted 1:1. Run 0..4 then 4..8 as two steps, and 0..8 as
    // one: the routes picked are the same, request by request.
    let mix = Mix::new(&[1.0, 1.0]).expect("weights");
    let plan = |n: u32| Plan {
        rate_per_s: 1000.0,
        duration: Duration::from_millis(u64::from(n)),
        max_in_flight: 100,
        timeout: Duration::from_secs(5),
    };
    let seen = std::sync::Mutex::new(Vec::new());
    let record = |route: usize, i: u64| {
        seen.lock().expect("lock").push((i, route));
        async { Outcome::Ok }
    };
    let _ = run_from(plan(4), 0, 2, &mix, record, |_| {}).await;
    let first = run_from(plan(4), 4, 2, &mix, record, |_| {}).await;
    assert_eq!(first.last.planned, 4);
    let mut split = std::mem::take(&mut *seen.lock().expect("lock"));
    let _ = run(plan(8), 2, &mix, record, |_| {}).await;
    let mut whole = std::mem::take(&mut *seen.lock().expect("lock"));
    split.sort_unstable();
    whole.sort_unstable();
    assert_eq!(split, whole);
    assert_eq!(split.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
}
