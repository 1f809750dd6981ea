//! Load-and-fault harness for the issuer (issue 6), on either store.
//!
//! Starts `issuer serve` (release) and drives concurrent registrations,
//! logins and refresh-token rotations from many simulated clients, each
//! keeping what the issuer acknowledged (2xx) in a ledger. Meanwhile the
//! store goes away and comes back:
//!
//! - `--store sqlite`: another connection holds an exclusive lock on the
//!   database file (`BEGIN EXCLUSIVE`) for longer than the issuer's busy
//!   timeout, then releases it. Afterwards the issuer is killed with SIGKILL
//!   in the middle of write bursts (`--kills` times) and restarted on the
//!   same data directory.
//! - `--store dynamodb`: the issuer talks to a DynamoDB-compatible server
//!   (moto, `--moto` or `DYNAMODB_ENDPOINT`) through a proxy run here, on
//!   fresh tables made with `DynamoStore::create_tables`. The proxy refuses
//!   connections (listener closed), accepts and hangs, and accepts and drops
//!   them, each for a while. It forwards one request at a time: moto runs
//!   requests in parallel without isolation (a cancelled transaction restores
//!   a snapshot of the whole table, undoing writes made meanwhile), which
//!   DynamoDB does not do; serialised, moto behaves like DynamoDB per item.
//!
//! Must hold (exit 1 otherwise):
//! - no 5xx other than 503, ever;
//! - every request that started and ended while the store was away: 503;
//! - the stored data is whole (checked directly in the database or by
//!   scanning both tables): no refresh token marked used without a successor
//!   in its family, every family with exactly one unused token (grace window
//!   off: a session is a chain with one live head), every token in an
//!   existing family of the same user, no family without a token, every user
//!   with its unique email (DynamoDB: user item and `EMAIL#` marker both
//!   ways), and everything acknowledged present;
//! - no client told 401 for a refresh token it holds legitimately (on
//!   DynamoDB a 503 can hide a committed rotation, so a 401 after a 503 or a
//!   lost answer is reuse detection doing its job: counted apart);
//! - SIGKILL (SQLite): the file passes `PRAGMA integrity_check`, the issuer
//!   starts on it, every acknowledged registration logs in, and every
//!   acknowledged refresh token still refreshes, unless the database shows
//!   the kill interrupted an unacknowledged rotation of it.
//!
//! Everything is printed as `CHAOS key=value ...` lines.
//!
//! ```text
//! issuer-chaos --store sqlite   [--bin target/release/issuer] [--workers 16] [--outages 2]
//!              [--outage-secs 6] [--busy-ms 2000] [--kills 3]
//! issuer-chaos --store dynamodb [--moto http://127.0.0.1:PORT] [--outages 3] [--outage-secs 6]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::{Flags, Rng, bin_path};
use issuer::tokens::hash_refresh_token;

// ---------------------------------------------------------------- arguments

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Sqlite,
    Dynamo,
}

#[derive(Debug)]
struct Args {
    store: StoreKind,
    bin: PathBuf,
    workers: usize,
    outages: usize,
    outage_secs: u64,
    gap_secs: u64,
    busy_ms: u64,
    kills: usize,
    moto: Option<String>,
}

fn args() -> Args {
    let mut store = None;
    let mut bin = None;
    let mut a = Args {
        store: StoreKind::Sqlite,
        bin: PathBuf::new(),
        workers: 16,
        outages: 0,
        outage_secs: 6,
        gap_secs: 6,
        busy_ms: 2000,
        kills: 3,
        moto: std::env::var("DYNAMODB_ENDPOINT").ok().filter(|v| !v.trim().is_empty()),
    };
    let mut f = Flags::from_env();
    while let Some(flag) = f.next_flag() {
        match flag.as_str() {
            "--store" => {
                store = Some(match f.value(&flag).as_str() {
                    "sqlite" => StoreKind::Sqlite,
                    "dynamodb" => StoreKind::Dynamo,
                    other => panic!("--store sqlite|dynamodb, not {other}"),
                });
            }
            "--bin" => bin = Some(PathBuf::from(f.value(&flag))),
            "--workers" => a.workers = f.parse(&flag),
            "--outages" => a.outages = f.parse(&flag),
            "--outage-secs" => a.outage_secs = f.parse(&flag),
            "--gap-secs" => a.gap_secs = f.parse(&flag),
            "--busy-ms" => a.busy_ms = f.parse(&flag),
            "--kills" => a.kills = f.parse(&flag),
            "--moto" => a.moto = Some(f.value(&flag)),
            other => panic!("unknown flag {other}"),
        }
    }
    a.store = store.expect("--store sqlite|dynamodb");
    a.bin = bin.unwrap_or_else(|| bin_path("issuer"));
    if a.outages == 0 {
        a.outages = if a.store == StoreKind::Sqlite { 2 } else { 3 };
    }
    if a.store == StoreKind::Sqlite {
        assert!(a.outage_secs * 1000 > a.busy_ms, "--outage-secs must be longer than --busy-ms");
    } else {
        assert!(a.moto.is_some(), "--store dynamodb needs --moto URL or DYNAMODB_ENDPOINT (moto's address)");
    }
    a
}

fn run_id() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("{:x}{:04x}", t.as_secs(), std::process::id() & 0xffff)
}

// ---------------------------------------------------------------- the issuer process

struct Issuer {
    child: std::process::Child,
    logs: Arc<Mutex<Vec<String>>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Issuer {
    /// Starts `issuer serve` with `env` and waits until it answers.
    async fn start(bin: &Path, port: u16, env: &[(String, String)]) -> Result<Issuer, String> {
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .env("ISSUER_URL", format!("http://127.0.0.1:{port}"))
            .env("ISSUER_LISTEN", format!("127.0.0.1:{port}"))
            .env("ISSUER_AUDIENCE", "api")
            // Hashing saturation is another 503: make it not happen here, so
            // every 503 is the store's.
            .env("ISSUER_HASH_QUEUE_MS", "60000")
            // Every simulated client comes from 127.0.0.1: lift the login
            // attempt limits, so a refused login is never the counters'.
            .env("ISSUER_LOGIN_MAX_PER_ACCOUNT_ADDRESS", "1000")
            .env("ISSUER_LOGIN_MAX_PER_ADDRESS", "1000000")
            .env("ISSUER_LOGIN_MAX_PER_ACCOUNT", "1000000")
            // Accounts at once, and no sign-up limit for the one client
            // address: registrations are store traffic here, not mail.
            .env("ISSUER_REQUIRE_VERIFIED_EMAIL", "false")
            .env("ISSUER_RECOVERY_MAX_PER_CLIENT", "1000000")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut me = Issuer { child, logs };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!("http://127.0.0.1:{port}/.well-known/jwks.json");
            if let Ok(r) = http.get(url).send().await
                && r.status() == 200
            {
                return Ok(me);
            }
            if let Ok(Some(status)) = me.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!("issuer exited ({status}):\n{}", me.logs.lock().unwrap().join("\n")));
            }
            if Instant::now() > deadline {
                let _ = me.child.kill();
                return Err("issuer did not answer within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn sigkill(&mut self) {
        // std's kill() is SIGKILL on Unix.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn log_count(&self, needle: &str) -> usize {
        self.logs.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- clients

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Endpoint {
    Register,
    Login,
    Refresh,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Register => "register",
            Endpoint::Login => "login",
            Endpoint::Refresh => "refresh",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Outcome {
    Status(u16),
    /// Connection refused or reset, or the answer cut: not acknowledged.
    Error,
    Timeout,
}

impl Outcome {
    fn label(self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Error => "error".into(),
            Outcome::Timeout => "timeout".into(),
        }
    }
    fn ok(self) -> bool {
        matches!(self, Outcome::Status(200..=299))
    }
}

/// One request; times in microseconds since the start (milliseconds are too
/// coarse: a request sent in the same millisecond as the lock was taken,
/// but before it, must not count as inside the outage).
#[derive(Debug, Clone, Copy)]
struct Rec {
    t0: u64,
    t1: u64,
    endpoint: Endpoint,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
struct User {
    email: String,
    password: String,
}

#[derive(Debug, Clone)]
struct Session {
    token: String,
    refreshes: u32,
    /// The last attempt to rotate it got no clear answer (503 or lost): it
    /// may have been rotated.
    ambiguous: bool,
}

/// What the issuer acknowledged, for the checks.
#[derive(Debug, Default)]
struct Ledger {
    users: Vec<User>,
    /// Hashes of refresh tokens handed out in a 2xx (login or refresh).
    tokens: Vec<String>,
}

#[derive(Debug, Default)]
struct Tally {
    recs: Vec<Rec>,
    /// A login with the right password answered 401, or a held refresh token
    /// refused without any doubt about it.
    unexpected_401: u64,
    /// A refresh token refused after its previous rotation got no clear answer.
    refresh_401_after_ambiguous: u64,
    /// 409 for a fresh address whose earlier attempt got no clear answer.
    register_409: u64,
}

struct Agent {
    id: usize,
    rng: Rng,
    run: String,
    n: u64,
    users: Vec<User>,
    session: Option<Session>,
}

struct Ctx {
    http: reqwest::Client,
    base: String,
    start: Instant,
    ledger: Mutex<Ledger>,
    store: StoreKind,
}

fn cookie_token(resp: &reqwest::Response) -> Option<String> {
    resp.headers().get_all(reqwest::header::SET_COOKIE).iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let value = v.strip_prefix("__Secure-refresh_token=")?.split(';').next()?;
        (!value.is_empty()).then(|| value.to_owned())
    })
}

fn error_outcome(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() { Outcome::Timeout } else { Outcome::Error }
}

impl Agent {
    fn new(id: usize, run: &str) -> Self {
        Agent { id, rng: Rng::new(id as u64 + 7), run: run.to_owned(), n: 0, users: Vec::new(), session: None }
    }

    async fn post(
        &self,
        ctx: &Ctx,
        endpoint: Endpoint,
        body: Option<String>,
        cookie: Option<&str>,
    ) -> (Outcome, Option<reqwest::Response>) {
        let mut req = ctx.http.post(format!("{}/{}", ctx.base, endpoint.name()));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        if let Some(c) = cookie {
            req = req.header("cookie", format!("__Secure-refresh_token={c}")).header("x-requested-with", "chaos");
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (Outcome::Status(status), Some(r))
            }
            Err(e) => (error_outcome(&e), None),
        }
    }

    /// One step: register, log in, or rotate the current session.
    async fn step(&mut self, ctx: &Ctx, tally: &mut Tally) {
        let roll = self.rng.below(100);
        let t0 = ctx.start.elapsed().as_micros() as u64;
        let endpoint;
        let outcome;
        if self.users.is_empty() || roll < 4 || (self.session.is_none() && roll < 25) {
            endpoint = Endpoint::Register;
            self.n += 1;
            let email = format!("chaos-{}-{}-{}@example.com", self.run, self.id, self.n);
            let password = format!("correct horse {}", self.n);
            let body = serde_json::json!({"email": email, "password": password}).to_string();
            let (o, resp) = self.post(ctx, endpoint, Some(body), None).await;
            outcome = o;
            // 202: the account exists (verification is off here).
            if let (Outcome::Status(202), Some(_)) = (o, resp) {
                let user = User { email, password };
                ctx.ledger.lock().unwrap().users.push(user.clone());
                self.users.push(user);
            } else if o == Outcome::Status(409) {
                tally.register_409 += 1;
            }
        } else if self.session.as_ref().is_none_or(|s| s.refreshes >= 20) {
            // A new login (the old session is simply abandoned, as a browser
            // that lost its cookie would).
            endpoint = Endpoint::Login;
            let user = self.rng.below(self.users.len() as u64) as usize;
            let u = &self.users[user];
            let body = serde_json::json!({"email": u.email, "password": u.password}).to_string();
            let (o, resp) = self.post(ctx, endpoint, Some(body), None).await;
            outcome = o;
            match (o, resp) {
                (Outcome::Status(200), Some(r)) => {
                    if let Some(token) = cookie_token(&r) {
                        ctx.ledger.lock().unwrap().tokens.push(hash_refresh_token(&token));
                        self.session = Some(Session { token, refreshes: 0, ambiguous: false });
                    }
                }
                (Outcome::Status(401), _) => tally.unexpected_401 += 1,
                _ => {}
            }
        } else {
            endpoint = Endpoint::Refresh;
            let token = self.session.as_ref().unwrap().token.clone();
            let (o, resp) = self.post(ctx, endpoint, None, Some(&token)).await;
            outcome = o;
            let s = self.session.as_mut().unwrap();
            match (o, resp) {
                (Outcome::Status(200), Some(r)) => {
                    if let Some(new) = cookie_token(&r) {
                        ctx.ledger.lock().unwrap().tokens.push(hash_refresh_token(&new));
                        s.token = new;
                        s.refreshes += 1;
                        s.ambiguous = false;
                    }
                }
                (Outcome::Status(401), _) => {
                    // SQLite: a 503 means nothing was written; only a lost
                    // answer leaves doubt. DynamoDB: a 503 can follow a commit.
                    if s.ambiguous {
                        tally.refresh_401_after_ambiguous += 1;
                    } else {
                        tally.unexpected_401 += 1;
                    }
                    self.session = None;
                }
                (Outcome::Status(503), _) => s.ambiguous |= ctx.store == StoreKind::Dynamo,
                (Outcome::Error | Outcome::Timeout, _) => s.ambiguous = true,
                _ => {}
            }
        }
        let t1 = ctx.start.elapsed().as_micros() as u64;
        tally.recs.push(Rec { t0, t1, endpoint, outcome });
        if !outcome.ok() {
            // Retry-After: 1 says a second; a busy client comes back sooner.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs every agent until `stop`; returns them (with their sessions) and the tally.
async fn drive(ctx: &Arc<Ctx>, agents: Vec<Agent>, stop: &Arc<AtomicBool>) -> (Vec<Agent>, Tally) {
    let mut tasks = Vec::new();
    for mut agent in agents {
        let (ctx, stop) = (Arc::clone(ctx), Arc::clone(stop));
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while !stop.load(Ordering::Relaxed) {
                agent.step(&ctx, &mut tally).await;
            }
            (agent, tally)
        }));
    }
    let mut agents = Vec::new();
    let mut tally = Tally::default();
    for t in tasks {
        let (a, t) = t.await.unwrap();
        agents.push(a);
        tally.recs.extend(t.recs);
        tally.unexpected_401 += t.unexpected_401;
        tally.refresh_401_after_ambiguous += t.refresh_401_after_ambiguous;
        tally.register_409 += t.register_409;
    }
    agents.sort_by_key(|a| a.id);
    (agents, tally)
}

// ---------------------------------------------------------------- the DynamoDB proxy

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyMode {
    Forward,
    /// Listener closed: connections are refused; open ones are closed at their next request.
    Refuse,
    /// Connections are accepted and closed at once, requests on open ones dropped.
    Drop,
    /// Connections are accepted and requests read, never answered.
    Hang,
}

impl ProxyMode {
    fn name(self) -> &'static str {
        match self {
            ProxyMode::Forward => "forward",
            ProxyMode::Refuse => "refuse_connections",
            ProxyMode::Drop => "drop_connections",
            ProxyMode::Hang => "accept_and_hang",
        }
    }
}

mod proxy {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    use super::ProxyMode;

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    #[derive(Debug, Default)]
    pub struct Counters {
        pub forwarded: AtomicU64,
        pub refused_requests: AtomicU64,
        pub dropped_connections: AtomicU64,
        pub hung_requests: AtomicU64,
        pub lost_responses: AtomicU64,
    }

    struct State {
        upstream: SocketAddr,
        mode: watch::Receiver<ProxyMode>,
        one_at_a_time: tokio::sync::Mutex<()>,
        counters: Arc<Counters>,
    }

    pub struct Proxy {
        pub addr: SocketAddr,
        mode: watch::Sender<ProxyMode>,
        pub counters: Arc<Counters>,
    }

    impl Proxy {
        pub async fn start(upstream: SocketAddr) -> Proxy {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, rx) = watch::channel(ProxyMode::Forward);
            let counters = Arc::new(Counters::default());
            let state = Arc::new(State {
                upstream,
                mode: rx.clone(),
                one_at_a_time: tokio::sync::Mutex::new(()),
                counters: Arc::clone(&counters),
            });
            tokio::spawn(accept_loop(Some(listener), addr, rx, state));
            Proxy { addr, mode: tx, counters }
        }

        pub fn set(&self, mode: ProxyMode) {
            let _ = self.mode.send(mode);
        }

        pub fn url(&self) -> String {
            format!("http://{}", self.addr)
        }
    }

    async fn accept_loop(
        mut listener: Option<TcpListener>,
        addr: SocketAddr,
        mut rx: watch::Receiver<ProxyMode>,
        state: Arc<State>,
    ) {
        loop {
            let mode = *rx.borrow_and_update();
            if mode == ProxyMode::Refuse {
                // Close the port: connects are refused until the mode changes.
                listener = None;
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            if listener.is_none() {
                loop {
                    match TcpListener::bind(addr).await {
                        Ok(l) => {
                            listener = Some(l);
                            break;
                        }
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    }
                }
            }
            let l = listener.as_ref().unwrap();
            tokio::select! {
                r = l.accept() => {
                    let Ok((stream, _)) = r else { continue };
                    let state = Arc::clone(&state);
                    tokio::spawn(connection(stream, state));
                }
                r = rx.changed() => if r.is_err() { return },
            }
        }
    }

    async fn connection(stream: TcpStream, state: Arc<State>) {
        let mode = *state.mode.borrow();
        match mode {
            ProxyMode::Drop | ProxyMode::Refuse => {
                state.counters.dropped_connections.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                return;
            }
            _ => {}
        }
        let _ = stream.set_nodelay(true);
        let service = service_fn(move |req| handle(Arc::clone(&state), req));
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
    }

    /// Waits while the mode is `Hang`.
    async fn hang(state: &State) {
        let mut rx = state.mode.clone();
        while *rx.borrow_and_update() == ProxyMode::Hang {
            if rx.changed().await.is_err() {
                break;
            }
        }
    }

    async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, BoxError> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await?.to_bytes();
        let mode = *state.mode.borrow();
        match mode {
            ProxyMode::Forward => {}
            ProxyMode::Hang => {
                state.counters.hung_requests.fetch_add(1, Ordering::Relaxed);
                hang(&state).await;
                return Err("hung request released: connection closed".into());
            }
            ProxyMode::Refuse | ProxyMode::Drop => {
                state.counters.refused_requests.fetch_add(1, Ordering::Relaxed);
                return Err("store away: connection closed".into());
            }
        }
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let mut forward = Request::builder().method(parts.method).uri(path);
        for (name, value) in &parts.headers {
            if name != hyper::header::HOST {
                forward = forward.header(name, value);
            }
        }
        let forward = forward.header(hyper::header::HOST, state.upstream.to_string()).body(Full::new(body))?;
        let (head, bytes) = {
            // One request at a time: the per-item isolation moto lacks.
            let _one = state.one_at_a_time.lock().await;
            let upstream = TcpStream::connect(state.upstream).await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
            tokio::spawn(conn);
            let response = sender.send_request(forward).await?;
            let (head, body) = response.into_parts();
            (head, body.collect().await?.to_bytes())
        };
        state.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        let mode = *state.mode.borrow();
        if mode != ProxyMode::Forward {
            // The store went away while this request was at it: the write
            // may have happened, the answer is lost.
            state.counters.lost_responses.fetch_add(1, Ordering::Relaxed);
            return Err("answer lost".into());
        }
        let mut response = Response::new(Full::new(bytes));
        *response.status_mut() = head.status;
        for (name, value) in &head.headers {
            if name != hyper::header::CONTENT_LENGTH
                && name != hyper::header::TRANSFER_ENCODING
                && name != hyper::header::CONNECTION
            {
                response.headers_mut().append(name, value.clone());
            }
        }
        Ok(response)
    }
}

// ---------------------------------------------------------------- invariants

/// Named counts of violations; every one must be 0.
#[derive(Debug, Default)]
struct Checks {
    items: Vec<(&'static str, u64)>,
    /// What was looked at (rows/items), for the report.
    seen: Vec<(&'static str, u64)>,
}

impl Checks {
    fn check(&mut self, name: &'static str, violations: u64) {
        self.items.push((name, violations));
    }
    fn failed(&self) -> usize {
        self.items.iter().filter(|(_, n)| *n > 0).count()
    }
    fn line(&self, label: &str) -> String {
        format!(
            "CHAOS invariants at={label} passed={} failed={} {} {}",
            self.items.len() - self.failed(),
            self.failed(),
            self.seen.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
            self.items.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
        )
    }
}

fn sqlite_checks(db: &Path, ledger: &Ledger) -> Checks {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let count = |sql: &str| -> u64 { conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64 };
    let mut c = Checks::default();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    c.check("integrity_check_not_ok", u64::from(integrity != "ok"));
    let fk: u64 = conn.prepare("PRAGMA foreign_key_check").unwrap().query_map([], |_| Ok(())).unwrap().count() as u64;
    c.check("foreign_key_violations", fk);
    c.seen.push(("users", count("SELECT count(*) FROM users")));
    c.seen.push(("families", count("SELECT count(*) FROM families")));
    c.seen.push(("tokens", count("SELECT count(*) FROM refresh_tokens")));
    c.seen.push(("used_tokens", count("SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL")));
    c.seen.push(("revoked_families", count("SELECT count(*) FROM families WHERE revoked_at IS NOT NULL")));
    c.check(
        "used_without_successor",
        count(
            "SELECT count(*) FROM refresh_tokens t WHERE t.used_at IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM refresh_tokens s WHERE s.family_id = t.family_id
               AND s.token_hash != t.token_hash AND s.issued_at >= t.used_at)",
        ),
    );
    c.check(
        "families_without_one_unused_token",
        count(
            "SELECT count(*) FROM families f WHERE (SELECT count(*) FROM refresh_tokens t
               WHERE t.family_id = f.family_id AND t.used_at IS NULL) != 1",
        ),
    );
    c.check(
        "tokens_without_family",
        count(
            "SELECT count(*) FROM refresh_tokens t WHERE NOT EXISTS
               (SELECT 1 FROM families f WHERE f.family_id = t.family_id)",
        ),
    );
    c.check(
        "families_without_token",
        count(
            "SELECT count(*) FROM families f WHERE NOT EXISTS
               (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.family_id)",
        ),
    );
    c.check(
        "token_user_differs_from_family",
        count("SELECT count(*) FROM refresh_tokens t JOIN families f USING (family_id) WHERE t.user_id != f.user_id"),
    );
    c.check(
        "families_of_unknown_users",
        count("SELECT count(*) FROM families f WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = f.user_id)"),
    );
    c.check("users_without_email", count("SELECT count(*) FROM users WHERE email IS NULL OR email = ''"));
    c.check("duplicate_emails", count("SELECT count(*) - count(DISTINCT email) FROM users"));
    let mut lost_users = 0;
    let mut get_user = conn.prepare("SELECT 1 FROM users WHERE email = ?1").unwrap();
    for u in &ledger.users {
        if !get_user.exists([&u.email]).unwrap() {
            lost_users += 1;
        }
    }
    let mut lost_tokens = 0;
    let mut get_token = conn.prepare("SELECT 1 FROM refresh_tokens WHERE token_hash = ?1").unwrap();
    for h in &ledger.tokens {
        if !get_token.exists([h]).unwrap() {
            lost_tokens += 1;
        }
    }
    c.seen.push(("acked_registrations", ledger.users.len() as u64));
    c.seen.push(("acked_tokens", ledger.tokens.len() as u64));
    c.check("acked_registrations_missing", lost_users);
    c.check("acked_tokens_missing", lost_tokens);
    c
}

type Item = HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

async fn scan(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Item> {
    client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
}

fn s_attr(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn n_attr(item: &Item, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

async fn dynamo_checks(store: &issuer::store::dynamo::DynamoStore, ledger: &Ledger) -> Checks {
    let users = scan(store.client(), store.users_table()).await;
    let refresh = scan(store.client(), store.refresh_table()).await;
    let mut c = Checks::default();
    let mut user_items: HashMap<String, &Item> = HashMap::new();
    let mut markers: HashMap<String, &Item> = HashMap::new();
    let mut malformed = 0u64;
    for it in &users {
        match s_attr(it, "pk") {
            Some(pk) if pk.starts_with("USER#") => {
                user_items.insert(pk["USER#".len()..].to_owned(), it);
            }
            Some(pk) if pk.starts_with("EMAIL#") => {
                markers.insert(pk["EMAIL#".len()..].to_owned(), it);
            }
            _ => malformed += 1,
        }
    }
    let mut users_without_marker = 0;
    let mut users_without_email = 0;
    let mut emails = HashSet::new();
    let mut duplicate = 0;
    for (id, it) in &user_items {
        let Some(email) = s_attr(it, "email") else {
            users_without_email += 1;
            continue;
        };
        if !emails.insert(email.clone()) {
            duplicate += 1;
        }
        if markers.get(&email).and_then(|m| s_attr(m, "userId")).as_deref() != Some(id.as_str()) {
            users_without_marker += 1;
        }
    }
    let mut markers_without_user = 0;
    for (email, m) in &markers {
        let user = s_attr(m, "userId").and_then(|id| user_items.get(&id).copied());
        if user.and_then(|u| s_attr(u, "email")).as_deref() != Some(email.as_str()) {
            markers_without_user += 1;
        }
    }
    // Refresh tokens and families.
    let mut families: HashMap<String, &Item> = HashMap::new();
    let mut tokens: Vec<(String, &Item)> = Vec::new();
    for it in &refresh {
        match s_attr(it, "pk") {
            Some(pk) if pk.starts_with("FAMILY#") => {
                families.insert(pk["FAMILY#".len()..].to_owned(), it);
            }
            Some(pk) if pk.starts_with("TOKEN#") => tokens.push((pk["TOKEN#".len()..].to_owned(), it)),
            _ => malformed += 1,
        }
    }
    let mut by_family: HashMap<String, Vec<(String, u64, Option<u64>)>> = HashMap::new();
    let (mut without_family, mut user_differs) = (0, 0);
    for (hash, it) in &tokens {
        let (Some(fam), Some(user), Some(issued)) =
            (s_attr(it, "familyId"), s_attr(it, "userId"), n_attr(it, "issuedAt"))
        else {
            malformed += 1;
            continue;
        };
        match families.get(&fam) {
            None => without_family += 1,
            Some(f) => {
                if s_attr(f, "familyUser").as_deref() != Some(user.as_str()) {
                    user_differs += 1;
                }
            }
        }
        by_family.entry(fam).or_default().push((hash.clone(), issued, n_attr(it, "usedAt")));
    }
    let mut used_without_successor = 0;
    let mut not_one_head = 0;
    let mut used = 0;
    for list in by_family.values() {
        if list.iter().filter(|(_, _, u)| u.is_none()).count() != 1 {
            not_one_head += 1;
        }
        for (h, _, u) in list {
            if let Some(u) = u {
                used += 1;
                if !list.iter().any(|(h2, issued, _)| h2 != h && issued >= u) {
                    used_without_successor += 1;
                }
            }
        }
    }
    let mut families_without_token = 0;
    let mut families_of_unknown_users = 0;
    let mut revoked = 0;
    for (id, f) in &families {
        if !by_family.contains_key(id) {
            families_without_token += 1;
        }
        if s_attr(f, "familyUser").is_none_or(|u| !user_items.contains_key(&u)) {
            families_of_unknown_users += 1;
        }
        if f.contains_key("revokedAt") {
            revoked += 1;
        }
    }
    not_one_head += families.keys().filter(|id| !by_family.contains_key(*id)).count() as u64;
    let token_set: HashSet<&str> = tokens.iter().map(|(h, _)| h.as_str()).collect();
    let stored_emails: HashSet<String> = user_items.values().filter_map(|it| s_attr(it, "email")).collect();
    let lost_users = ledger.users.iter().filter(|u| !stored_emails.contains(u.email.as_str())).count() as u64;
    let lost_tokens = ledger.tokens.iter().filter(|h| !token_set.contains(h.as_str())).count() as u64;
    c.seen.push(("users", user_items.len() as u64));
    c.seen.push(("email_markers", markers.len() as u64));
    c.seen.push(("families", families.len() as u64));
    c.seen.push(("tokens", tokens.len() as u64));
    c.seen.push(("used_tokens", used));
    c.seen.push(("revoked_families", revoked));
    c.seen.push(("acked_registrations", ledger.users.len() as u64));
    c.seen.push(("acked_tokens", ledger.tokens.len() as u64));
    c.check("malformed_items", malformed);
    c.check("used_without_successor", used_without_successor);
    c.check("families_without_one_unused_token", not_one_head);
    c.check("tokens_without_family", without_family);
    c.check("families_without_token", families_without_token);
    c.check("token_user_differs_from_family", user_differs);
    c.check("families_of_unknown_users", families_of_unknown_users);
    c.check("users_without_email", users_without_email);
    c.check("users_without_email_marker", users_without_marker);
    c.check("email_markers_without_user", markers_without_user);
    c.check("duplicate_emails", duplicate);
    c.check("acked_registrations_missing", lost_users);
    c.check("acked_tokens_missing", lost_tokens);
    c
}

// ---------------------------------------------------------------- report helpers

fn fmt_outcomes(m: &BTreeMap<Outcome, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter().map(|(o, n)| format!("{}:{n}", o.label())).collect::<Vec<_>>().join(",")
}

/// An outage, in microseconds since the start.
struct Window {
    what: &'static str,
    from: u64,
    to: u64,
}

/// Prints the per-endpoint and per-outage figures; returns (5xx other than
/// 503, requests inside an outage answered other than 503, 503 total).
fn report_traffic(label: &str, recs: &[Rec], windows: &[Window]) -> (u64, u64, u64) {
    let mut by_ep: BTreeMap<Endpoint, BTreeMap<Outcome, u64>> = BTreeMap::new();
    for r in recs {
        *by_ep.entry(r.endpoint).or_default().entry(r.outcome).or_default() += 1;
    }
    let total = recs.len();
    println!("CHAOS phase={label} requests={total}");
    for (ep, m) in &by_ep {
        println!(
            "CHAOS phase={label} endpoint={} n={} statuses={}",
            ep.name(),
            m.values().sum::<u64>(),
            fmt_outcomes(m)
        );
    }
    let mut bad5xx = 0;
    let mut inside_other = 0;
    let mut s503_in = 0;
    let mut s503_out = 0;
    for r in recs {
        if let Outcome::Status(s) = r.outcome
            && s >= 500
            && s != 503
        {
            bad5xx += 1;
        }
    }
    for (i, w) in windows.iter().enumerate() {
        let mut inside = BTreeMap::new();
        let mut overlap = BTreeMap::new();
        let mut waited = Vec::new();
        for r in recs {
            if r.t0 >= w.from && r.t1 <= w.to {
                *inside.entry(r.outcome).or_default() += 1;
            } else if r.t0 < w.to && r.t1 > w.from {
                *overlap.entry(r.outcome).or_default() += 1;
            }
            if r.t0 < w.to && r.t1 > w.from {
                waited.push((r.t1 - r.t0) / 1000);
            }
        }
        waited.sort_unstable();
        let p50 = waited.get(waited.len() / 2).copied().unwrap_or(0);
        let max = waited.last().copied().unwrap_or(0);
        let other: u64 = inside.iter().filter(|(o, _)| **o != Outcome::Status(503)).map(|(_, n)| n).sum();
        for r in recs.iter().filter(|r| r.t0 >= w.from && r.t1 <= w.to && r.outcome != Outcome::Status(503)).take(10) {
            println!(
                "CHAOS phase={label} outage={} inside_not_503 endpoint={} sent_s={:.3} answered_s={:.3} outcome={}",
                i + 1,
                r.endpoint.name(),
                r.t0 as f64 / 1e6,
                r.t1 as f64 / 1e6,
                r.outcome.label()
            );
        }
        inside_other += other;
        println!(
            "CHAOS phase={label} outage={} kind={} from_s={:.1} to_s={:.1} inside={} inside_statuses={} \
             inside_not_503={other} straddling={} straddling_statuses={} latency_ms_p50={p50} latency_ms_max={max}",
            i + 1,
            w.what,
            w.from as f64 / 1e6,
            w.to as f64 / 1e6,
            inside.values().sum::<u64>(),
            fmt_outcomes(&inside),
            overlap.values().sum::<u64>(),
            fmt_outcomes(&overlap)
        );
    }
    for r in recs.iter().filter(|r| r.outcome == Outcome::Status(503)) {
        if windows.iter().any(|w| r.t0 < w.to && r.t1 > w.from) {
            s503_in += 1;
        } else {
            s503_out += 1;
        }
    }
    let latency_max = recs.iter().map(|r| (r.t1 - r.t0) / 1000).max().unwrap_or(0);
    println!(
        "CHAOS phase={label} s503_during_outages={s503_in} s503_outside_outages={s503_out} s5xx_not_503={bad5xx} \
         latency_max_ms={latency_max}"
    );
    (bad5xx, inside_other, s503_in + s503_out)
}

// ---------------------------------------------------------------- main

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let run = run_id();
    let data_dir = std::env::temp_dir().join(format!("issuer-chaos-{run}"));
    std::fs::create_dir_all(&data_dir).unwrap();
    let port = free_port();
    let mut env: Vec<(String, String)> = vec![
        ("ISSUER_DATA_DIR".into(), data_dir.display().to_string()),
        ("ISSUER_SQLITE_BUSY_MS".into(), a.busy_ms.to_string()),
    ];
    let mut failures: Vec<String> = Vec::new();

    // The store, and for DynamoDB the proxy in front of it.
    let mut dynamo = None;
    let mut proxy = None;
    if a.store == StoreKind::Dynamo {
        use aws_config::{BehaviorVersion, Region};
        use aws_sdk_dynamodb::config::Credentials;
        let moto = a.moto.clone().unwrap();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "issuer-chaos"))
            .load()
            .await;
        let cfg = issuer::store::dynamo::DynamoConfig {
            users_table: format!("chaos-{run}-Users"),
            refresh_table: format!("chaos-{run}-RefreshTokens"),
            revocations_table: format!("chaos-{run}-Revocations"),
            endpoint: Some(moto.clone()),
            ..Default::default()
        };
        let store = issuer::store::dynamo::DynamoStore::new(&sdk, &cfg);
        store.create_tables().await.expect("create the tables on moto");
        let upstream: SocketAddr =
            moto.trim_start_matches("http://").trim_end_matches('/').parse().expect("--moto: http://127.0.0.1:PORT");
        let p = proxy::Proxy::start(upstream).await;
        env.extend([
            ("ISSUER_STORE".into(), "dynamodb".into()),
            ("DYNAMODB_ENDPOINT".into(), p.url()),
            ("ISSUER_USERS_TABLE".into(), cfg.users_table.clone()),
            ("ISSUER_REFRESH_TABLE".into(), cfg.refresh_table.clone()),
            ("ISSUER_REVOCATIONS_TABLE".into(), cfg.revocations_table.clone()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]);
        eprintln!("tables {} / {} on {moto}, proxy {}", cfg.users_table, cfg.refresh_table, p.url());
        dynamo = Some(store);
        proxy = Some(p);
    }
    let db_path = data_dir.join("issuer.sqlite3");

    let mut issuer = Issuer::start(&a.bin, port, &env).await.unwrap_or_else(|e| panic!("{e}"));
    let ctx = Arc::new(Ctx {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(a.workers)
            .build()
            .unwrap(),
        base: format!("http://127.0.0.1:{port}"),
        start: Instant::now(),
        ledger: Mutex::new(Ledger::default()),
        store: a.store,
    });
    let agents: Vec<Agent> = (0..a.workers).map(|i| Agent::new(i, &run)).collect();

    // ------------------------------------------------------------ phase 1: outages
    let total_secs = a.gap_secs + a.outages as u64 * (a.outage_secs + a.gap_secs);
    println!(
        "CHAOS what=issuer store={} workers={} outages={}x{}s gap_s={} busy_ms={} traffic_s={total_secs} run={run}",
        if a.store == StoreKind::Sqlite { "sqlite" } else { "dynamodb" },
        a.workers,
        a.outages,
        a.outage_secs,
        a.gap_secs,
        a.busy_ms
    );
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (ctx, stop) = (Arc::clone(&ctx), Arc::clone(&stop));
        tokio::spawn(async move { drive(&ctx, agents, &stop).await })
    };
    let mut windows = Vec::new();
    let modes = [ProxyMode::Refuse, ProxyMode::Hang, ProxyMode::Drop];
    for i in 0..a.outages {
        tokio::time::sleep(Duration::from_secs(a.gap_secs)).await;
        let hold = Duration::from_secs(a.outage_secs);
        match a.store {
            StoreKind::Sqlite => {
                let db = db_path.clone();
                let start = ctx.start;
                let (from, to) = tokio::task::spawn_blocking(move || {
                    let mut conn = rusqlite::Connection::open(&db).unwrap();
                    conn.busy_timeout(Duration::from_secs(30)).unwrap();
                    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive).unwrap();
                    let from = start.elapsed().as_micros() as u64;
                    std::thread::sleep(hold);
                    let to = start.elapsed().as_micros() as u64;
                    tx.rollback().unwrap();
                    (from, to)
                })
                .await
                .unwrap();
                eprintln!("outage {}: exclusive lock held {:.1}-{:.1} s", i + 1, from as f64 / 1e6, to as f64 / 1e6);
                windows.push(Window { what: "sqlite_exclusive_lock", from, to });
            }
            StoreKind::Dynamo => {
                let p = proxy.as_ref().unwrap();
                let mode = modes[i % modes.len()];
                let from = ctx.start.elapsed().as_micros() as u64;
                p.set(mode);
                tokio::time::sleep(hold).await;
                let to = ctx.start.elapsed().as_micros() as u64;
                p.set(ProxyMode::Forward);
                eprintln!("outage {}: proxy {} {:.1}-{:.1} s", i + 1, mode.name(), from as f64 / 1e6, to as f64 / 1e6);
                windows.push(Window { what: mode.name(), from, to });
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(a.gap_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut agents, tally) = traffic.await.unwrap();
    let (bad5xx, inside_other, _) = report_traffic("outages", &tally.recs, &windows);
    println!(
        "CHAOS phase=outages unexpected_401={} refresh_401_after_ambiguous_answer={} register_409={}",
        tally.unexpected_401, tally.refresh_401_after_ambiguous, tally.register_409
    );
    println!(
        "CHAOS phase=outages issuer_log store_unavailable={} hashing_saturated={} error_lines={}",
        issuer.log_count("store unavailable"),
        issuer.log_count("password hashing saturated"),
        issuer.log_count("\"level\":\"ERROR\"")
    );
    if let Some(p) = &proxy {
        let c = &p.counters;
        println!(
            "CHAOS phase=outages proxy forwarded={} refused_requests={} dropped_connections={} hung_requests={} \
             lost_answers={}",
            c.forwarded.load(Ordering::Relaxed),
            c.refused_requests.load(Ordering::Relaxed),
            c.dropped_connections.load(Ordering::Relaxed),
            c.hung_requests.load(Ordering::Relaxed),
            c.lost_responses.load(Ordering::Relaxed)
        );
    }
    if bad5xx > 0 {
        failures.push(format!("outages_5xx_not_503={bad5xx}"));
    }
    if inside_other > 0 {
        failures.push(format!("outages_inside_not_503={inside_other}"));
    }
    if tally.unexpected_401 > 0 {
        failures.push(format!("outages_unexpected_401={}", tally.unexpected_401));
    }
    // Let anything the SDK still retries settle before looking.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let checks = match a.store {
        StoreKind::Sqlite => sqlite_checks(&db_path, &ctx.ledger.lock().unwrap()),
        StoreKind::Dynamo => {
            let ledger = std::mem::take(&mut *ctx.ledger.lock().unwrap());
            let c = dynamo_checks(dynamo.as_ref().unwrap(), &ledger).await;
            *ctx.ledger.lock().unwrap() = ledger;
            c
        }
    };
    println!("{}", checks.line("after_outages"));
    if checks.failed() > 0 {
        failures.push(format!("invariants_after_outages_failed={}", checks.failed()));
    }

    // ------------------------------------------------------------ phase 2: SIGKILL (SQLite)
    if a.store == StoreKind::Sqlite {
        let mut rng = Rng::new(99);
        for round in 1..=a.kills {
            let acked_users_before = ctx.ledger.lock().unwrap().users.len();
            let acked_tokens_before = ctx.ledger.lock().unwrap().tokens.len();
            let stop = Arc::new(AtomicBool::new(false));
            let burst = {
                let (ctx, stop) = (Arc::clone(&ctx), Arc::clone(&stop));
                let agents = std::mem::take(&mut agents);
                tokio::spawn(async move { drive(&ctx, agents, &stop).await })
            };
            let burst_ms = 1500 + rng.below(2500);
            tokio::time::sleep(Duration::from_millis(burst_ms)).await;
            issuer.sigkill();
            stop.store(true, Ordering::Relaxed);
            let (back, tally) = burst.await.unwrap();
            agents = back;
            let acked_users: Vec<User> = ctx.ledger.lock().unwrap().users[acked_users_before..].to_vec();
            let acked_tokens = ctx.ledger.lock().unwrap().tokens.len() - acked_tokens_before;
            let errors = tally.recs.iter().filter(|r| matches!(r.outcome, Outcome::Error | Outcome::Timeout)).count();
            let bad5xx =
                tally.recs.iter().filter(|r| matches!(r.outcome, Outcome::Status(s) if s >= 500 && s != 503)).count();
            // Direct look at the file, before the issuer opens it again.
            let checks = sqlite_checks(&db_path, &ctx.ledger.lock().unwrap());
            // The issuer opens it.
            let restarted = Issuer::start(&a.bin, port, &env).await;
            let restart_ok = restarted.is_ok();
            let mut logins_ok = 0;
            let mut logins_failed = 0;
            let (mut sessions_ok, mut sessions_rotated_unacked, mut sessions_failed) = (0, 0, 0);
            match restarted {
                Err(e) => {
                    eprintln!("round {round}: the issuer did not start on the killed store: {e}");
                    failures.push(format!("sigkill_round{round}_restart_failed"));
                }
                Ok(new) => {
                    issuer = new;
                    // Every registration acknowledged in this burst logs in.
                    for u in &acked_users {
                        let body = serde_json::json!({"email": u.email, "password": u.password}).to_string();
                        let mut r = None;
                        for _ in 0..2 {
                            // One retry: a pooled connection may still be the killed process's.
                            r = ctx
                                .http
                                .post(format!("{}/login", ctx.base))
                                .header("content-type", "application/json")
                                .body(body.clone())
                                .send()
                                .await
                                .ok();
                            if r.is_some() {
                                break;
                            }
                        }
                        if r.is_some_and(|r| r.status() == 200) {
                            logins_ok += 1;
                        } else {
                            logins_failed += 1;
                        }
                    }
                    // Every session's last acknowledged refresh token still
                    // refreshes, unless the kill cut an unacknowledged
                    // rotation of it (the file says so: it is marked used).
                    let conn = rusqlite::Connection::open(&db_path).unwrap();
                    conn.busy_timeout(Duration::from_secs(30)).unwrap();
                    for agent in &mut agents {
                        let Some(s) = agent.session.as_mut() else { continue };
                        let hash = hash_refresh_token(&s.token);
                        let used: Option<Option<i64>> = {
                            use rusqlite::OptionalExtension as _;
                            conn.query_row("SELECT used_at FROM refresh_tokens WHERE token_hash = ?1", [&hash], |r| {
                                r.get(0)
                            })
                            .optional()
                            .unwrap()
                        };
                        let mut r = None;
                        for _ in 0..2 {
                            r = ctx
                                .http
                                .post(format!("{}/refresh", ctx.base))
                                .header("cookie", format!("__Secure-refresh_token={}", s.token))
                                .header("x-requested-with", "chaos")
                                .send()
                                .await
                                .ok();
                            if r.is_some() {
                                break;
                            }
                        }
                        let status = r.as_ref().map_or(0, |r| r.status().as_u16());
                        match (used, status) {
                            (Some(None), 200) => {
                                sessions_ok += 1;
                                if let Some(new) = r.as_ref().and_then(cookie_token) {
                                    ctx.ledger.lock().unwrap().tokens.push(hash_refresh_token(&new));
                                    s.token = new;
                                    s.ambiguous = false;
                                }
                            }
                            (Some(Some(_)), 401) if s.ambiguous => {
                                sessions_rotated_unacked += 1;
                                agent.session = None;
                            }
                            _ => {
                                eprintln!(
                                    "round {round}: session of agent {}: stored used_at {used:?}, refresh {status}",
                                    agent.id
                                );
                                sessions_failed += 1;
                                agent.session = None;
                            }
                        }
                    }
                }
            }
            println!(
                "CHAOS phase=sigkill round={round} burst_ms={burst_ms} requests={} transport_errors_at_kill={errors} \
                 s5xx_not_503={bad5xx} acked_registrations={} acked_tokens={acked_tokens} \
                 integrity_check={} restart_ok={restart_ok} acked_registrations_login_ok={logins_ok} \
                 login_failed={logins_failed} sessions_refresh_ok={sessions_ok} \
                 sessions_rotated_unacknowledged_at_kill={sessions_rotated_unacked} sessions_failed={sessions_failed}",
                tally.recs.len(),
                acked_users.len(),
                if checks.items.iter().any(|(k, v)| *k == "integrity_check_not_ok" && *v > 0) {
                    "FAILED"
                } else {
                    "ok"
                }
            );
            println!("{}", checks.line(&format!("after_sigkill_{round}")));
            if checks.failed() > 0 {
                failures.push(format!("invariants_after_sigkill{round}_failed={}", checks.failed()));
            }
            if bad5xx > 0 {
                failures.push(format!("sigkill{round}_5xx_not_503={bad5xx}"));
            }
            if logins_failed > 0 || sessions_failed > 0 {
                failures.push(format!("sigkill{round}_lost logins={logins_failed} sessions={sessions_failed}"));
            }
            if tally.unexpected_401 > 0 {
                failures.push(format!("sigkill{round}_unexpected_401={}", tally.unexpected_401));
            }
        }
        let checks = sqlite_checks(&db_path, &ctx.ledger.lock().unwrap());
        println!("{}", checks.line("end"));
        if checks.failed() > 0 {
            failures.push(format!("invariants_at_end_failed={}", checks.failed()));
        }
    }

    let errors = issuer.log_count("\"level\":\"ERROR\"");
    println!("CHAOS issuer_error_log_lines_last_process={errors}");
    let pass = failures.is_empty();
    println!(
        "CHAOS result={} store={}{}",
        if pass { "PASS" } else { "FAIL" },
        if a.store == StoreKind::Sqlite { "sqlite" } else { "dynamodb" },
        if pass { String::new() } else { format!(" failures={}", failures.join(",")) }
    );
    if !pass {
        let logs = issuer.logs.lock().unwrap().clone();
        eprintln!(
            "last issuer log lines:\n{}",
            logs.iter().rev().take(20).rev().cloned().collect::<Vec<_>>().join("\n")
        );
    }
    drop(issuer);
    let _ = std::fs::remove_dir_all(&data_dir);
    std::process::exit(if pass { 0 } else { 1 });
}
