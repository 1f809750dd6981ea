//! The revocation feed follower against a fake feed served over loopback
//! HTTP: paging, garbage, slow and failing fetches, the issuer restarting in
//! the middle of a page, coalescing, lag, the stale policy, and the
//! verifier's answers for revoked tokens (cache hits included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use token_core::revocation::{FeedEvent, FeedPage, RevocationId};
use token_core::revocation_feed::{FeedError, FeedFollower};
use token_core::revocation_set::{RevocationIds, RevocationSet};
use token_core::{
    Algorithm, RevocationConfig, SigningKey, StalePolicy, Verifier, VerifierConfig, VerifyError, unix_now,
};

/// What the fake does with the next request.
#[derive(Debug, Clone)]
enum Fault {
    Status(u16),
    Garbage,
    /// A page whose events are fine but whose `next` breaks the contract.
    BadCursor,
    /// Answers after this long (past the client's timeout).
    Slow(Duration),
    /// Promises a body and closes the connection half-way (an issuer
    /// restarting mid-page).
    CutMidBody,
    TooLarge,
}

#[derive(Debug, Default)]
struct State {
    events: Vec<FeedEvent>,
    page_size: usize,
    /// `as_of_ms` of complete listings: `now - lag_ms`.
    lag_ms: u64,
    /// One entry per coming request: a fault, or `None` to serve it.
    faults: VecDeque<Option<Fault>>,
    /// The `after` of every request, in order.
    requests: Vec<Option<String>>,
    delay: Duration,
}

#[derive(Clone)]
struct FakeFeed {
    state: Arc<Mutex<State>>,
    url: String,
}

impl FakeFeed {
    async fn start(events: Vec<FeedEvent>, page_size: usize) -> Self {
        let state = Arc::new(Mutex::new(State { events, page_size, lag_ms: 1000, ..State::default() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/revocations", listener.local_addr().unwrap());
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let st = Arc::clone(&st);
                        async move { Ok::<_, Infallible>(answer(&st, req.uri().query().unwrap_or("")).await) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        FakeFeed { state, url }
    }

    fn push_faults(&self, faults: &[Option<Fault>]) {
        self.state.lock().unwrap().faults.extend(faults.iter().cloned());
    }

    fn add(&self, events: &[FeedEvent]) {
        self.state.lock().unwrap().events.extend_from_slice(events);
    }

    fn requests(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn answer(st: &Mutex<State>, query: &str) -> hyper::Response<Body> {
    let after = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "after").map(|(_, v)| v.into_owned());
    let (fault, page, delay) = {
        let mut s = st.lock().unwrap();
        s.requests.push(after.clone());
        let start: usize = after.as_deref().map_or(0, |c| c.trim_start_matches('c').parse().unwrap());
        let end = (start + s.page_size).min(s.events.len());
        let more = end < s.events.len();
        let as_of_ms = if more { 0 } else { unix_now().as_millis() as u64 - s.lag_ms };
        let page = FeedPage { events: s.events[start..end].to_vec(), next: format!("c{end}"), more, as_of_ms };
        (s.faults.pop_front().flatten(), page, s.delay)
    };
    tokio::time::sleep(delay).await;
    let json = serde_json::to_vec(&page).unwrap();
    let body = match fault {
        None => json,
        Some(Fault::Status(code)) => {
            let mut r = hyper::Response::new(full(Bytes::from_static(b"{}")));
            *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
            return r;
        }
        Some(Fault::Garbage) => b"{\"events\": [{\"kind\": \"session\", \"id\": \"nope\"".to_vec(),
        Some(Fault::BadCursor) => {
            let mut bad = page.clone();
            bad.next = "c\u{7f}".into();
            bad.more = true;
            serde_json::to_vec(&bad).unwrap()
        }
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            json
        }
        Some(Fault::CutMidBody) => {
            // Content-Length promises the whole page, half is sent, then the
            // body fails and hyper drops the connection: what a client sees
            // when the issuer restarts in the middle of a page.
            let half = Bytes::from(json[..json.len() / 2].to_vec());
            let mut r = hyper::Response::new(BoxBody::new(HalfThenFail(Some(half))));
            r.headers_mut().insert("content-length", json.len().into());
            return r;
        }
        Some(Fault::TooLarge) => vec![b' '; 2 * 1024 * 1024],
    };
    hyper::Response::new(full(Bytes::from(body)))
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(b: Bytes) -> Body {
    BoxBody::new(Full::new(b).map_err(|never| match never {}))
}

/// A body that sends its bytes, then fails.
struct HalfThenFail(Option<Bytes>);

impl hyper::body::Body for HalfThenFail {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(match self.0.take() {
            Some(b) => Ok(hyper::body::Frame::data(b)),
            None => Err(std::io::Error::other("issuer restarted")),
        }))
    }
}

fn now_s() -> u64 {
    unix_now().as_secs()
}

fn session(i: usize) -> FeedEvent {
    FeedEvent::Session { id: RevocationId::session(&format!("sid-{i}")), until: now_s() + 900 }
}

fn config(url: &str) -> RevocationConfig {
    RevocationConfig {
        feed_url: Some(url.to_owned()),
        poll_interval: Duration::from_millis(100),
        max_lag: Duration::from_secs(30),
        timeout: Duration::from_millis(300),
        ..RevocationConfig::default()
    }
}

fn follower(cfg: &RevocationConfig) -> Arc<FeedFollower> {
    FeedFollower::new(cfg, Arc::new(RevocationSet::new(cfg.max_entries))).unwrap().unwrap()
}

fn revoked(set: &RevocationSet, i: usize) -> bool {
    set.is_revoked(&RevocationIds::of("anyone", Some(&format!("sid-{i}"))), 0)
}

#[tokio::test]
async fn pages_are_followed_to_a_complete_listing_and_then_only_new_events() {
    let feed = FakeFeed::start((0..10).map(session).collect(), 4).await;
    let f = follower(&config(&feed.url));
    assert!(f.is_stale(unix_now().as_millis() as u64), "no listing yet");
    let out = f.poll().await.unwrap();
    assert!(out.complete);
    assert_eq!((out.pages, out.events), (3, 10));
    assert_eq!(feed.requests(), vec![None, Some("c4".into()), Some("c8".into())]);
    assert!((0..10).all(|i| revoked(f.set(), i)));
    assert!(!revoked(f.set(), 10), "positive control: an unknown session is not revoked");
    assert!(!f.is_stale(unix_now().as_millis() as u64));
    let lag = f.health(unix_now().as_millis() as u64).lag.unwrap();
    assert!(lag >= Duration::from_secs(1), "as_of_ms is one second old: {lag:?}");

    // Next poll: asks after the last cursor, gets only what is new.
    feed.add(&[session(10)]);
    let out = f.poll().await.unwrap();
    assert_eq!((out.pages, out.events), (1, 1));
    assert_eq!(feed.requests().last().unwrap().as_deref(), Some("c10"));
    assert!(revoked(f.set(), 10));
    assert_eq!(f.set().applied(), 11, "every event applied exactly once");
}

#[tokio::test]
async fn under_faults_no_event_is_lost_or_applied_twice() {
    let n = 23;
    let feed = FakeFeed::start((0..n).map(session).collect(), 3).await;
    let f = follower(&config(&feed.url));
    // Faults before the first page and in the middle of the listing, every
    // kind, some back to back.
    feed.push_faults(&[
        Some(Fault::Status(503)),
        None,
        Some(Fault::Garbage),
        None,
        None,
        Some(Fault::CutMidBody),
        Some(Fault::Slow(Duration::from_millis(900))),
        None,
        Some(Fault::BadCursor),
        Some(Fault::TooLarge),
        None,
        Some(Fault::Status(500)),
    ]);
    let mut failures = 0;
    loop {
        match f.poll().await {
            Ok(out) if out.complete => break,
            Ok(_) => {}
            Err(_) => failures += 1,
        }
        assert!(failures < 20, "never completed");
    }
    assert_eq!(failures, 7, "each fault failed one poll");
    assert_eq!(f.set().applied(), n as u64, "no event lost, none applied twice");
    assert!((0..n).all(|i| revoked(f.set(), i)));
    // Each failed request was asked again with the same cursor, and the
    // successful ones walked the pages in order.
    let mut asked: Vec<Option<String>> = feed.requests();
    asked.dedup();
    let pages: Vec<Option<String>> =
        (0..n).step_by(3).map(|i| if i == 0 { None } else { Some(format!("c{i}")) }).collect();
    assert_eq!(asked, pages);
    assert_eq!(f.health(unix_now().as_millis() as u64).fetch_errors, 7);
}

#[tokio::test]
async fn each_fault_fails_the_poll_and_keeps_the_cursor() {
    for fault in [
        Fault::Status(500),
        Fault::Garbage,
        Fault::BadCursor,
        Fault::Slow(Duration::from_millis(900)),
        Fault::CutMidBody,
        Fault::TooLarge,
    ] {
        let feed = FakeFeed::start((0..6).map(session).collect(), 2).await;
        let f = follower(&config(&feed.url));
        f.poll().await.unwrap();
        let applied = f.set().applied();
        feed.add(&[session(6), session(7), session(8)]);
        feed.push_faults(&[Some(fault.clone())]);
        let err = f.poll().await.unwrap_err();
        match (&fault, &err) {
            (Fault::Status(500), FeedError::Status(500))
            | (Fault::Garbage | Fault::BadCursor, FeedError::Invalid(_))
            | (Fault::Slow(_), FeedError::Timeout)
            | (Fault::CutMidBody, FeedError::Transport(_))
            | (Fault::TooLarge, FeedError::TooLarge) => {}
            _ => panic!("{fault:?} gave {err:?}"),
        }
        assert_eq!(f.set().applied(), applied, "{fault:?}: nothing of the failed page applied");
        assert!(!revoked(f.set(), 6));
        let out = f.poll().await.unwrap();
        assert_eq!(out.events, 3, "{fault:?}: the retry gets the same events");
        let reqs = feed.requests();
        assert_eq!(reqs[reqs.len() - 2], reqs[reqs.len() - 3], "{fault:?}: same cursor retried: {reqs:?}");
        assert!(revoked(f.set(), 8));
    }
}

#[tokio::test]
async fn a_cursor_the_issuer_refuses_starts_a_full_listing_again() {
    let feed = FakeFeed::start((0..3).map(session).collect(), 2).await;
    let f = follower(&config(&feed.url));
    f.poll().await.unwrap();
    let applied = f.set().applied();
    feed.push_faults(&[Some(Fault::Status(400))]);
    assert_eq!(f.poll().await.unwrap_err(), FeedError::Status(400));
    f.poll().await.unwrap();
    let reqs = feed.requests();
    assert_eq!(
        reqs[reqs.len() - 3..],
        [Some("c3".into()), None, Some("c2".into())][..],
        "the refused cursor, then from the start: {reqs:?}"
    );
    assert_eq!(f.set().applied(), applied + 3, "the whole listing again");
    assert_eq!(f.set().len(), 3, "and nothing twice in the set");
}

#[tokio::test]
async fn a_burst_of_triggers_makes_one_fetch() {
    let feed = FakeFeed::start((0..3).map(session).collect(), 10).await;
    feed.state.lock().unwrap().delay = Duration::from_millis(100);
    let f = follower(&config(&feed.url));
    let started: usize = (0..50).map(|_| usize::from(f.spawn_if_due())).sum();
    assert_eq!(started, 1);
    let polls: Vec<_> = (0..20).map(|_| f.try_poll()).collect();
    for p in polls {
        assert!(p.await.is_none(), "a poll was in flight: nobody starts another");
    }
    assert!(f.wait_fresh(Duration::from_secs(5)).await);
    assert_eq!(feed.requests().len(), 1);
    assert!(revoked(f.set(), 2));
}

#[tokio::test]
async fn lag_over_the_bound_is_stale_and_backs_off_on_failure() {
    let feed = FakeFeed::start(vec![session(0)], 10).await;
    feed.state.lock().unwrap().lag_ms = 45_000;
    let f = follower(&config(&feed.url));
    f.poll().await.unwrap();
    let h = f.health(unix_now().as_millis() as u64);
    assert!(h.stale && h.lag.unwrap() >= Duration::from_secs(45), "{h:?}");
    feed.state.lock().unwrap().lag_ms = 1000;
    f.poll().await.unwrap();
    assert!(!f.health(unix_now().as_millis() as u64).stale);
    // A failure schedules the next poll later than the interval.
    feed.push_faults(&[Some(Fault::Status(500))]);
    assert!(f.poll().await.is_err());
    assert!(!f.is_due(unix_now().as_millis() as u64));
    assert!(f.delay() > Duration::from_millis(50));
}

fn verifier(feed: &FakeFeed, policy: StalePolicy, cache: bool) -> (Arc<Verifier>, SigningKey) {
    let iss = "https://issuer.test";
    let mut cfg = VerifierConfig::for_issuer(iss, vec!["api".into()], Some("http://127.0.0.1:9/jwks.json".into()));
    cfg.revocation = RevocationConfig { stale_policy: policy, ..config(&feed.url) };
    cfg.token_cache_bytes = if cache { 1 << 20 } else { 0 };
    let v = Verifier::new(&cfg).unwrap();
    let key = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let jwks = token_core::PublicJwks { keys: vec![key.public_jwk().clone()] };
    v.install_jwks(iss, &serde_json::to_vec(&jwks).unwrap()).unwrap();
    (v, key)
}

fn token(key: &SigningKey, sub: &str, sid: Option<&str>, iat: u64) -> String {
    let mut c = serde_json::json!({
        "iss": "https://issuer.test", "sub": sub, "aud": "api", "exp": iat + 900, "iat": iat, "jti": "j"
    });
    if let Some(s) = sid {
        c["sid"] = s.into();
    }
    key.sign_any(&c).unwrap()
}

#[tokio::test]
async fn revoked_tokens_are_refused_on_cache_hits_too() {
    let feed = FakeFeed::start(vec![], 10).await;
    for cache in [true, false] {
        let (v, key) = verifier(&feed, StalePolicy::Serve, cache);
        let now = now_s();
        let a = token(&key, "alice", Some("fam-a"), now);
        let b = token(&key, "alice", Some("fam-b"), now);
        let no_sid = token(&key, "bob", None, now);
        for t in [&a, &b, &no_sid] {
            assert!(v.verify_at(t, unix_now()).is_ok(), "positive control");
        }
        let f = v.revocation_feed().unwrap();
        feed.add(&[FeedEvent::Session { id: RevocationId::session("fam-a"), until: now + 900 }]);
        f.poll().await.unwrap();
        assert_eq!(v.verify_at(&a, unix_now()).unwrap_err(), VerifyError::Revoked, "cache {cache}");
        assert!(v.verify_at(&b, unix_now()).is_ok(), "the other session keeps working");
        feed.add(&[FeedEvent::Subject { id: RevocationId::subject("bob"), before: now + 1, until: now + 960 }]);
        f.poll().await.unwrap();
        assert_eq!(v.verify_at(&no_sid, unix_now()).unwrap_err(), VerifyError::Revoked, "by subject");
        let later = token(&key, "bob", None, now + 1);
        assert!(v.verify_at(&later, unix_now()).is_ok(), "issued at `before`: valid");
        let h = v.health(unix_now());
        assert!(h.ready() && h.revocation.unwrap().entries >= 2);
        let m = v.render_prometheus(unix_now());
        assert!(m.contains("auth_revocation_entries "), "{m}");
        feed.state.lock().unwrap().events.clear();
    }
}

#[tokio::test]
async fn the_refuse_policy_refuses_while_stale_and_serve_keeps_serving() {
    let feed = FakeFeed::start(vec![], 10).await;
    let (refuse, key) = verifier(&feed, StalePolicy::Refuse, true);
    let t = token(&key, "carol", Some("fam-c"), now_s());
    assert_eq!(refuse.verify_at(&t, unix_now()).unwrap_err(), VerifyError::RevocationStale, "no listing yet");
    assert!(!refuse.health(unix_now()).ready());
    refuse.revocation_feed().unwrap().poll().await.unwrap();
    assert!(refuse.verify_at(&t, unix_now()).is_ok());
    assert!(refuse.health(unix_now()).ready());
    // 31 s later without a listing: stale again (the cached answer too).
    let later = unix_now() + Duration::from_secs(31);
    assert_eq!(refuse.verify_at(&t, later).unwrap_err(), VerifyError::RevocationStale);
    assert!(!refuse.health(later).ready());

    let (serve, key) = verifier(&feed, StalePolicy::Serve, true);
    let t = token(&key, "carol", Some("fam-c"), now_s());
    assert!(serve.verify_at(&t, unix_now()).is_ok(), "serve: verifies before any listing");
    assert!(!serve.health(unix_now()).ready(), "but is not ready");
}

#[tokio::test]
async fn expired_events_are_not_kept() {
    let now = now_s();
    let feed = FakeFeed::start(
        vec![
            FeedEvent::Session { id: RevocationId::session("gone"), until: now - 1 },
            FeedEvent::Session { id: RevocationId::session("live"), until: now + 900 },
        ],
        10,
    )
    .await;
    let f = follower(&config(&feed.url));
    f.poll().await.unwrap();
    assert_eq!(f.set().len(), 1);
    assert!(f.set().is_revoked(&RevocationIds::of("x", Some("live")), 0));
    assert!(!f.set().is_revoked(&RevocationIds::of("x", Some("gone")), 0));
}
