//! Load-and-fault harness for the sidecar (issue 6).
//!
//! Starts the release sidecar (pinned to one CPU with `taskset` when there is
//! one) against a [`JwksServer`] this process controls, and drives mixed
//! traffic over many keep-alive connections for `--secs` seconds: valid
//! tokens, expired ones, garbage, unknown `kid`s (random), forged signatures
//! under a known `kid`, no token, oversized request heads (> 16 KiB: 431),
//! slow clients that trickle their request head (some within the header
//! timeout, some past it) and idle connections that send nothing. Meanwhile
//! the JWKS endpoint follows a schedule: serving, down (500), hanging, back,
//! then a rotation (a new key is published and signs new tokens at once; the
//! old key is removed later, while clients still present its tokens).
//!
//! Must hold (exit 1 otherwise):
//! - no 5xx at all: the maximum stale age is longer than the run, so keys
//!   are never legitimately unavailable (a 503 would be a bug);
//! - no valid token refused: a token counts as valid when its key was in the
//!   key set of the JWKS endpoint's last successful answer before the request
//!   was sent (so the sidecar held it), and no other key set was served
//!   between then and the answer. Tokens of a key the sidecar cannot have yet
//!   (published while it could not fetch, or since its last fetch) and of a
//!   removed key are counted separately;
//! - JWKS fetches within the bound the cooldown and refresh schedule allow
//!   (printed with its parts);
//! - the sidecar is still running at the end.
//!
//! Everything is printed as `CHAOS key=value ...` lines.
//!
//! ```text
//! sidecar-chaos [--bin target/release/sidecar] [--secs 60] [--conns 64] [--slow 16] [--idle 32]
//!               [--cooldown 5] [--refresh 10] [--max-stale 600] [--header-timeout 5] [--cpu 1|none]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use e2e_tests::tokens::{claims, sign};
use e2e_tests::{Fetch, Flags, JwksServer, Mode, Rng, bin_path};
use token_core::{Algorithm, SigningKey};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const ISS: &str = "https://issuer.test";
const AUD: &str = "api";
/// A JWKS answer is taken as installed by the sidecar this long after it was sent.
const INSTALL_MARGIN_MS: u32 = 200;

struct Args {
    bin: PathBuf,
    secs: u64,
    conns: usize,
    slow: usize,
    idle: usize,
    cooldown: u64,
    refresh: u64,
    max_stale: u64,
    header_timeout: u64,
    cpu: Option<String>,
    pool: usize,
}

fn args() -> Args {
    let mut a = Args {
        bin: PathBuf::new(),
        secs: 60,
        conns: 64,
        slow: 16,
        idle: 32,
        cooldown: 5,
        refresh: 10,
        max_stale: 600,
        header_timeout: 5,
        cpu: Some("1".into()),
        pool: 2000,
    };
    let mut bin = None;
    let mut f = Flags::from_env();
    while let Some(flag) = f.next_flag() {
        match flag.as_str() {
            "--bin" => bin = Some(PathBuf::from(f.value(&flag))),
            "--secs" => a.secs = f.parse(&flag),
            "--conns" => a.conns = f.parse(&flag),
            "--slow" => a.slow = f.parse(&flag),
            "--idle" => a.idle = f.parse(&flag),
            "--cooldown" => a.cooldown = f.parse(&flag),
            "--refresh" => a.refresh = f.parse(&flag),
            "--max-stale" => a.max_stale = f.parse(&flag),
            "--header-timeout" => a.header_timeout = f.parse(&flag),
            "--pool" => a.pool = f.parse(&flag),
            "--cpu" => {
                let v = f.value(&flag);
                a.cpu = (v != "none").then_some(v);
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a.bin = bin.unwrap_or_else(|| bin_path("sidecar"));
    assert!(a.secs >= 20, "--secs: at least 20");
    assert!(a.max_stale > a.secs, "--max-stale must be longer than the run (keys must never be unusable)");
    a
}

// ---------------------------------------------------------------- traffic

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Valid,
    Expired,
    Garbage,
    UnknownKid,
    ForgedSignature,
    NoToken,
    Oversized,
    SlowWithin,
    SlowPast,
    Idle,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Valid => "valid",
            Kind::Expired => "expired",
            Kind::Garbage => "garbage",
            Kind::UnknownKid => "unknown_kid",
            Kind::ForgedSignature => "forged_signature",
            Kind::NoToken => "no_token",
            Kind::Oversized => "oversized_head",
            Kind::SlowWithin => "slow_within_timeout",
            Kind::SlowPast => "slow_past_timeout",
            Kind::Idle => "idle",
        }
    }
}

/// What came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Status(u16),
    /// The server closed the connection without an answer.
    Closed,
    /// Reset, refused and other socket errors.
    SocketError,
    /// No answer within the client's timeout.
    Timeout,
}

impl Outcome {
    fn label(self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Closed => "closed".into(),
            Outcome::SocketError => "sock_err".into(),
            Outcome::Timeout => "timeout".into(),
        }
    }
}

/// A valid-token request: sent and answered at (ms since start), key index, outcome.
#[derive(Debug, Clone, Copy)]
struct ValidRecord {
    t0: u32,
    t1: u32,
    key: u8,
    outcome: Outcome,
}

#[derive(Debug, Default)]
struct Stats {
    by_kind: BTreeMap<(Kind, Outcome), u64>,
    valid: Vec<ValidRecord>,
    /// Slow and idle connections: how long until the server answered or closed (ms).
    close_ms: BTreeMap<Kind, Vec<u64>>,
}

impl Stats {
    fn add(&mut self, kind: Kind, outcome: Outcome) {
        *self.by_kind.entry((kind, outcome)).or_default() += 1;
    }
    fn merge(&mut self, other: Stats) {
        for (k, v) in other.by_kind {
            *self.by_kind.entry(k).or_default() += v;
        }
        self.valid.extend(other.valid);
        for (k, v) in other.close_ms {
            self.close_ms.entry(k).or_default().extend(v);
        }
    }
}

/// Tokens minted before the run.
struct Pools {
    /// Valid tokens per key index (0: the first key, 1: the rotated-in key).
    valid: [Vec<String>; 2],
    /// Expired past the leeway, per key index.
    expired: [Vec<String>; 2],
    /// base64url of a valid claims set, for tokens with random kids.
    claims_b64: String,
}

fn mint_pools(keys: &[&SigningKey; 2], n: usize) -> Pools {
    let valid = keys.map(|k| (0..n).map(|i| sign(k, &claims(ISS, AUD, &format!("user-{i}"), "read", 3600))).collect());
    let expired =
        keys.map(|k| (0..n / 10 + 1).map(|i| sign(k, &claims(ISS, AUD, &format!("old-{i}"), "read", -3600))).collect());
    let claims_b64 = B64.encode(serde_json::to_vec(&claims(ISS, AUD, "random-kid", "read", 3600)).unwrap());
    Pools { valid, expired, claims_b64 }
}

/// 0 before the rotation (only the first key signs), 1 after (both keys'
/// tokens are presented: new logins get the new key, old tokens linger).
static ROTATED: AtomicU8 = AtomicU8::new(0);

fn request(auth: Option<&str>, extra: &str) -> Vec<u8> {
    let mut r = String::from("GET /verify HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(a) = auth {
        r.push_str("Authorization: ");
        r.push_str(a);
        r.push_str("\r\n");
    }
    r.push_str(extra);
    r.push_str("\r\n");
    r.into_bytes()
}

/// A request of a random kind; for valid tokens, which key signed it.
fn pick(rng: &mut Rng, pools: &Pools) -> (Kind, Option<u8>, Vec<u8>) {
    let roll = rng.below(1000);
    let rotated = ROTATED.load(Ordering::Relaxed) == 1;
    let key = if rotated { rng.below(2) as usize } else { 0 };
    let any = |rng: &mut Rng, v: &Vec<String>| v[rng.below(v.len() as u64) as usize].clone();
    match roll {
        0..450 => {
            let tok = any(rng, &pools.valid[key]);
            (Kind::Valid, Some(key as u8), request(Some(&format!("Bearer {tok}")), ""))
        }
        450..550 => {
            let tok = any(rng, &pools.expired[key]);
            (Kind::Expired, None, request(Some(&format!("Bearer {tok}")), ""))
        }
        550..700 => {
            // Random base64url with dots now and then, 1 to ~3000 bytes; or structured junk.
            let tok = match rng.below(4) {
                0 => format!("{}.{}.{}", rng.b64(20), rng.b64(40), rng.b64(30)),
                1 => format!("{}.{}.{}", B64.encode(b"{\"alg\":\"none\"}"), rng.b64(50), ""),
                _ => {
                    let len = 1 + rng.below(3000) as usize;
                    let mut s = rng.b64(len).into_bytes();
                    for _ in 0..rng.below(4) {
                        let at = rng.below(s.len() as u64) as usize;
                        s[at] = b'.';
                    }
                    String::from_utf8(s).unwrap()
                }
            };
            (Kind::Garbage, None, request(Some(&format!("Bearer {tok}")), ""))
        }
        700..850 => {
            let len = 1 + rng.below(40) as usize;
            let kid = rng.b64(len);
            let header = B64.encode(format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}"}}"#));
            let sig = B64.encode(rng.bytes(256));
            (Kind::UnknownKid, None, request(Some(&format!("Bearer {header}.{}.{sig}", pools.claims_b64)), ""))
        }
        850..920 => {
            let tok = any(rng, &pools.valid[key]);
            let (signed, _) = tok.rsplit_once('.').unwrap();
            let sig = B64.encode(rng.bytes(256));
            (Kind::ForgedSignature, None, request(Some(&format!("Bearer {signed}.{sig}")), ""))
        }
        920..960 => (Kind::NoToken, None, request(None, "")),
        _ => {
            // Past the 16 KiB limit: one huge header, or a huge Authorization.
            let tok = any(rng, &pools.valid[key]);
            let len = 17_000 + rng.below(8000) as usize;
            let pad = rng.b64(len);
            let req = if rng.below(2) == 0 {
                request(Some(&format!("Bearer {tok}")), &format!("X-Padding: {pad}\r\n"))
            } else {
                request(Some(&format!("Bearer {pad}")), "")
            };
            (Kind::Oversized, None, req)
        }
    }
}

/// One keep-alive HTTP/1.1 connection, raw: lets a request be as large or
/// as slow as wanted.
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one response; returns its status and whether the connection stays open.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, bool)> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let mut lines = head.split("\r\n");
            let status: u16 = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other("bad status line"))?;
            let mut len = 0usize;
            let mut close = false;
            for l in lines {
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                } else if l.starts_with("connection:") && l.contains("close") {
                    close = true;
                }
            }
            let total = end + 4 + len;
            while buf.len() < total {
                if s.read_buf(buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            buf.drain(..total);
            return Ok((status, !close));
        }
        if s.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

fn io_outcome(e: &std::io::Error) -> Outcome {
    if e.kind() == std::io::ErrorKind::UnexpectedEof { Outcome::Closed } else { Outcome::SocketError }
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Conn { addr, stream: None, buf: Vec::with_capacity(4096) }
    }

    async fn send(&mut self, req: &[u8], timeout: Duration) -> Outcome {
        if self.stream.is_none() {
            match TcpStream::connect(self.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    self.stream = Some(s);
                    self.buf.clear();
                }
                Err(_) => return Outcome::SocketError,
            }
        }
        let s = self.stream.as_mut().unwrap();
        let buf = &mut self.buf;
        let exchange = async {
            s.write_all(req).await?;
            read_response(s, buf).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((status, keep))) => {
                if !keep {
                    self.stream = None;
                }
                Outcome::Status(status)
            }
            Ok(Err(e)) => {
                self.stream = None;
                io_outcome(&e)
            }
            Err(_) => {
                self.stream = None;
                Outcome::Timeout
            }
        }
    }
}

fn ms_since(start: Instant) -> u32 {
    start.elapsed().as_millis() as u32
}

async fn worker(id: u64, addr: SocketAddr, pools: Arc<Pools>, stop: Arc<AtomicBool>, start: Instant) -> Stats {
    let mut rng = Rng::new(id + 1);
    let mut conn = Conn::new(addr);
    let mut stats = Stats::default();
    while !stop.load(Ordering::Relaxed) {
        let (kind, key, req) = pick(&mut rng, &pools);
        let t0 = ms_since(start);
        let outcome = conn.send(&req, Duration::from_secs(30)).await;
        let t1 = ms_since(start);
        stats.add(kind, outcome);
        if let Some(key) = key {
            stats.valid.push(ValidRecord { t0, t1, key, outcome });
        }
        if kind == Kind::Oversized {
            // The server closes after a 431: start the next request afresh.
            conn.stream = None;
        }
    }
    stats
}

/// Trickles a valid request head byte by byte over `spread`; reports the
/// answer, or that the server cut the connection.
async fn slow_client(
    id: u64,
    addr: SocketAddr,
    pools: Arc<Pools>,
    stop: Arc<AtomicBool>,
    header_timeout: u64,
) -> Stats {
    let mut rng = Rng::new(1000 + id);
    let mut stats = Stats::default();
    while !stop.load(Ordering::Relaxed) {
        let past = rng.below(2) == 1;
        let (kind, spread_ms) = if past {
            (Kind::SlowPast, header_timeout * 1000 + 3000 + rng.below(2000))
        } else {
            (Kind::SlowWithin, 500 + rng.below(header_timeout * 1000 / 2))
        };
        let tok = &pools.valid[0][rng.below(pools.valid[0].len() as u64) as usize];
        let req = request(Some(&format!("Bearer {tok}")), "");
        let Ok(mut s) = TcpStream::connect(addr).await else {
            stats.add(kind, Outcome::SocketError);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let _ = s.set_nodelay(true);
        let started = Instant::now();
        let chunks = 50usize;
        let per = req.len().div_ceil(chunks);
        let pause = Duration::from_millis(spread_ms / chunks as u64);
        let mut failed = None;
        for chunk in req.chunks(per) {
            if let Err(e) = s.write_all(chunk).await {
                failed = Some(io_outcome(&e));
                break;
            }
            tokio::time::sleep(pause).await;
        }
        let outcome = match failed {
            Some(o) => o,
            None => {
                let mut buf = Vec::new();
                match tokio::time::timeout(Duration::from_secs(30), read_response(&mut s, &mut buf)).await {
                    Ok(Ok((status, _))) => Outcome::Status(status),
                    Ok(Err(e)) => io_outcome(&e),
                    Err(_) => Outcome::Timeout,
                }
            }
        };
        stats.add(kind, outcome);
        stats.close_ms.entry(kind).or_default().push(started.elapsed().as_millis() as u64);
    }
    stats
}

/// Connects and sends nothing (or one request, then nothing): the server
/// must close the connection after its header timeout.
async fn idle_client(id: u64, addr: SocketAddr, pools: Arc<Pools>, stop: Arc<AtomicBool>) -> Stats {
    let mut rng = Rng::new(5000 + id);
    let mut stats = Stats::default();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            stats.add(Kind::Idle, Outcome::SocketError);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut buf = Vec::new();
        if rng.below(2) == 0 {
            let tok = &pools.valid[0][rng.below(pools.valid[0].len() as u64) as usize];
            let _ = s.write_all(&request(Some(&format!("Bearer {tok}")), "")).await;
            let _ = read_response(&mut s, &mut buf).await;
        }
        let started = Instant::now();
        let mut one = [0u8; 1];
        let outcome = loop {
            tokio::select! {
                r = s.read(&mut one) => break match r {
                    Ok(0) => Outcome::Closed,
                    Ok(_) => Outcome::Status(0),
                    Err(_) => Outcome::SocketError,
                },
                () = tokio::time::sleep(Duration::from_millis(250)) => {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
                        break Outcome::Timeout;
                    }
                }
            }
        };
        if outcome == Outcome::Timeout && stop.load(Ordering::Relaxed) {
            break; // the run ended while waiting: not an outcome
        }
        stats.add(Kind::Idle, outcome);
        stats.close_ms.entry(Kind::Idle).or_default().push(started.elapsed().as_millis() as u64);
    }
    stats
}

// ---------------------------------------------------------------- the sidecar

struct Sidecar {
    child: std::process::Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn has_taskset() -> bool {
    std::process::Command::new("taskset").arg("-V").output().is_ok_and(|o| o.status.success())
}

fn start_sidecar(a: &Args, jwks_url: &str) -> Sidecar {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let pinned = a.cpu.as_ref().filter(|_| has_taskset());
    let mut cmd = match pinned {
        Some(cpu) => {
            let mut c = std::process::Command::new("taskset");
            c.arg("-c").arg(cpu).arg(&a.bin);
            c
        }
        None => std::process::Command::new(&a.bin),
    };
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .env("SIDECAR_LISTEN", addr.to_string())
        .env("AUTH_ISSUER", ISS)
        .env("AUTH_AUDIENCE", AUD)
        .env("AUTH_JWKS_URL", jwks_url)
        .env("AUTH_JWKS_COOLDOWN_SECS", a.cooldown.to_string())
        .env("AUTH_JWKS_REFRESH_SECS", a.refresh.to_string())
        .env("AUTH_JWKS_MAX_STALE_SECS", a.max_stale.to_string())
        .env("SIDECAR_HEADER_TIMEOUT_SECS", a.header_timeout.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("start the sidecar");
    let stderr = child.stderr.take().unwrap();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&logs);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    eprintln!(
        "sidecar {} on {addr}{}",
        a.bin.display(),
        pinned.map_or(String::from(" (not pinned)"), |c| format!(", pinned to CPU {c}"))
    );
    Sidecar { child, addr, logs }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// GET `path` on a fresh connection: (status, body).
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn metric(body: &str, prefix: &str) -> Option<f64> {
    body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------- schedule

/// Phase boundaries in seconds since the start of traffic.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    down: f64,
    hang: f64,
    back: f64,
    rotate_add: f64,
    rotate_remove: f64,
    end: f64,
}

impl Schedule {
    fn for_secs(secs: u64) -> Self {
        let d = secs as f64;
        Schedule {
            down: 0.15 * d,
            hang: 0.35 * d,
            back: 0.55 * d,
            rotate_add: 0.70 * d,
            rotate_remove: 0.85 * d,
            end: d,
        }
    }

    fn phase(&self, t: f64) -> &'static str {
        if t < self.down {
            "serving"
        } else if t < self.hang {
            "down"
        } else if t < self.back {
            "hanging"
        } else if t < self.rotate_add {
            "back"
        } else if t < self.rotate_remove {
            "rotated_added"
        } else {
            "rotated_removed"
        }
    }
}

/// The most background-refresh retries the verifier makes during an outage
/// of `outage` seconds: it retries after 1, 2, 4, ... s (capped at the
/// refresh period), each attempt taking at least no time.
fn retries_within(outage: f64, refresh: u64) -> u64 {
    let (mut t, mut n, mut step) = (0.0, 1u64, 1u64);
    loop {
        t += step.min(refresh) as f64;
        if t > outage {
            return n;
        }
        n += 1;
        step = (step * 2).min(64);
    }
}

// ---------------------------------------------------------------- main

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let k1 = SigningKey::generate(Algorithm::RS256, "key-1").unwrap();
    let k2 = SigningKey::generate(Algorithm::RS256, "key-2").unwrap();
    eprintln!("minting {} valid tokens per key...", a.pool);
    let pools = Arc::new(mint_pools(&[&k1, &k2], a.pool));
    // Key sets by version: 0 = {key-1}, 1 = {key-1, key-2}, 2 = {key-2}.
    let versions: [&[u8]; 3] = [&[0], &[0, 1], &[1]];

    let jwks = Arc::new(JwksServer::start(&[&k1]).await);
    let origin = Instant::now();
    let mut sidecar = start_sidecar(&a, &jwks.url());
    let addr = sidecar.addr;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = get(addr, "/readyz").await {
            break;
        }
        if let Ok(Some(status)) = sidecar.child.try_wait() {
            panic!("the sidecar exited ({status}):\n{}", sidecar.logs.lock().unwrap().join("\n"));
        }
        assert!(Instant::now() < deadline, "the sidecar was not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = sidecar.child.id();
    let hwm_start = status_kib(pid, "VmHWM");

    let sched = Schedule::for_secs(a.secs);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let offset_ms = start.duration_since(origin).as_millis() as i64;
    let mut tasks = Vec::new();
    for id in 0..a.conns {
        tasks.push(tokio::spawn(worker(id as u64, addr, Arc::clone(&pools), Arc::clone(&stop), start)));
    }
    for id in 0..a.slow {
        tasks.push(tokio::spawn(slow_client(id as u64, addr, Arc::clone(&pools), Arc::clone(&stop), a.header_timeout)));
    }
    for id in 0..a.idle {
        tasks.push(tokio::spawn(idle_client(id as u64, addr, Arc::clone(&pools), Arc::clone(&stop))));
    }

    // Sampler: the sidecar's own view of its keys, twice a second.
    let sampler = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let (mut samples, mut stale, mut unusable, mut failed) = (0u64, 0u64, 0u64, 0u64);
            let mut stale_by_phase: BTreeMap<&'static str, u64> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let t = start.elapsed().as_secs_f64();
                match get(addr, "/metrics").await {
                    Some((200, body)) => {
                        samples += 1;
                        if metric(&body, "auth_jwks_stale{") == Some(1.0) {
                            stale += 1;
                            *stale_by_phase.entry(sched.phase(t)).or_default() += 1;
                        }
                        if metric(&body, "auth_jwks_usable{") != Some(1.0) {
                            unusable += 1;
                        }
                    }
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (samples, stale, unusable, failed, stale_by_phase)
        })
    };

    // The JWKS schedule.
    let at = |secs: f64| start + Duration::from_secs_f64(secs);
    tokio::time::sleep_until(at(sched.down).into()).await;
    eprintln!("t={:.1}s JWKS down (500)", start.elapsed().as_secs_f64());
    jwks.set_mode(Mode::Status(500));
    tokio::time::sleep_until(at(sched.hang).into()).await;
    eprintln!("t={:.1}s JWKS hanging", start.elapsed().as_secs_f64());
    jwks.set_mode(Mode::Hang);
    tokio::time::sleep_until(at(sched.back).into()).await;
    eprintln!("t={:.1}s JWKS back", start.elapsed().as_secs_f64());
    jwks.set_mode(Mode::Serve);
    tokio::time::sleep_until(at(sched.rotate_add).into()).await;
    eprintln!("t={:.1}s rotation: key-2 published and signing new tokens", start.elapsed().as_secs_f64());
    assert_eq!(jwks.set_keys(&[&k1, &k2]), 1);
    ROTATED.store(1, Ordering::Relaxed);
    tokio::time::sleep_until(at(sched.rotate_remove).into()).await;
    eprintln!("t={:.1}s rotation: key-1 removed", start.elapsed().as_secs_f64());
    assert_eq!(jwks.set_keys(&[&k2]), 2);
    tokio::time::sleep_until(at(sched.end).into()).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();

    let mut stats = Stats::default();
    for t in tasks {
        stats.merge(t.await.unwrap());
    }
    let (samples, stale_samples, unusable_samples, sample_failures, stale_by_phase) = sampler.await.unwrap();
    let metrics = get(addr, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
    let alive = sidecar.child.try_wait().unwrap().is_none();
    let hwm = status_kib(pid, "VmHWM");
    let rss = status_kib(pid, "VmRSS");
    let log: Vec<Fetch> = jwks.fetch_log();

    // ------------------------------------------------------------ classify valid tokens
    // Serve answers, in ms since the start of traffic (the warm-up one is negative).
    let serves: Vec<(i64, usize)> = log
        .iter()
        .filter(|f| f.mode == Mode::Serve)
        .map(|f| (f.at.duration_since(origin).as_millis() as i64 - offset_ms, f.keys_version))
        .collect();
    let mut valid_loaded = BTreeMap::<Outcome, u64>::new();
    let mut refused_by_phase = BTreeMap::<&'static str, u64>::new();
    let mut loaded_by_phase = BTreeMap::<&'static str, u64>::new();
    let mut new_key = BTreeMap::<Outcome, u64>::new();
    let mut removed_key = BTreeMap::<Outcome, u64>::new();
    let mut transition = BTreeMap::<Outcome, u64>::new();
    for r in &stats.valid {
        let t0 = i64::from(r.t0) - i64::from(INSTALL_MARGIN_MS);
        let v0 = serves.iter().rev().find(|(at, _)| *at <= t0).map(|(_, v)| *v);
        let changed = serves.iter().any(|(at, v)| *at > t0 && *at <= i64::from(r.t1) && Some(*v) != v0);
        let Some(v0) = v0 else {
            *transition.entry(r.outcome).or_default() += 1;
            continue;
        };
        if changed {
            *transition.entry(r.outcome).or_default() += 1;
        } else if versions[v0].contains(&r.key) {
            *valid_loaded.entry(r.outcome).or_default() += 1;
            let phase = sched.phase(f64::from(r.t0) / 1000.0);
            *loaded_by_phase.entry(phase).or_default() += 1;
            if r.outcome != Outcome::Status(200) {
                *refused_by_phase.entry(phase).or_default() += 1;
            }
        } else if r.key == 1 {
            *new_key.entry(r.outcome).or_default() += 1;
        } else {
            *removed_key.entry(r.outcome).or_default() += 1;
        }
    }

    // ------------------------------------------------------------ report
    let fmt = |m: &BTreeMap<Outcome, u64>| {
        if m.is_empty() {
            return "none".to_owned();
        }
        m.iter().map(|(o, n)| format!("{}:{n}", o.label())).collect::<Vec<_>>().join(",")
    };
    let mut by_status = BTreeMap::<Outcome, u64>::new();
    let mut by_kind = BTreeMap::<Kind, BTreeMap<Outcome, u64>>::new();
    for ((kind, outcome), n) in &stats.by_kind {
        *by_status.entry(*outcome).or_default() += n;
        *by_kind.entry(*kind).or_default().entry(*outcome).or_default() += n;
    }
    let total: u64 = by_status.values().sum();
    let answered: u64 =
        by_status.iter().filter(|(o, _)| matches!(o, Outcome::Status(s) if *s > 0)).map(|(_, n)| n).sum();
    let s5xx: u64 =
        by_status.iter().filter(|(o, _)| matches!(o, Outcome::Status(s) if *s >= 500)).map(|(_, n)| n).sum();
    let s503 = by_status.get(&Outcome::Status(503)).copied().unwrap_or(0);
    let loaded_total: u64 = valid_loaded.values().sum();
    let refused: u64 = valid_loaded.iter().filter(|(o, _)| **o != Outcome::Status(200)).map(|(_, n)| n).sum();

    let fetches = log.len() as u64;
    let outage = sched.back - sched.down;
    let miss = (a.secs / a.cooldown) + 1;
    let periodic = (a.secs as f64 / (a.refresh as f64 * 0.9)).ceil() as u64 + 1;
    let retries = retries_within(outage, a.refresh);
    let slack = 2;
    let bound = 1 + miss + periodic + retries + slack;
    let by_mode = |m: fn(&Mode) -> bool| log.iter().filter(|f| m(&f.mode)).count();

    println!(
        "CHAOS what=sidecar secs={elapsed:.1} conns={} slow_clients={} idle_clients={} cooldown_s={} refresh_s={} \
         max_stale_s={} header_timeout_s={} pinned_cpu={}",
        a.conns,
        a.slow,
        a.idle,
        a.cooldown,
        a.refresh,
        a.max_stale,
        a.header_timeout,
        a.cpu.as_deref().filter(|_| has_taskset()).unwrap_or("none")
    );
    println!(
        "CHAOS schedule serving=0-{:.0}s down_500={:.0}-{:.0}s hanging={:.0}-{:.0}s back={:.0}-{:.0}s \
         key2_added={:.0}s key1_removed={:.0}s end={:.0}s",
        sched.down,
        sched.down,
        sched.hang,
        sched.hang,
        sched.back,
        sched.back,
        sched.rotate_add,
        sched.rotate_add,
        sched.rotate_remove,
        sched.end
    );
    println!(
        "CHAOS requests={total} answered={answered} rps={:.0} statuses={}",
        total as f64 / elapsed,
        fmt(&by_status)
    );
    for (kind, m) in &by_kind {
        println!("CHAOS kind={} n={} outcomes={}", kind.name(), m.values().sum::<u64>(), fmt(m));
    }
    for (kind, v) in &mut stats.close_ms {
        v.sort_unstable();
        let p = |q: f64| v.get(((v.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
        println!(
            "CHAOS connection_end kind={} n={} ms_p50={} ms_p90={} ms_max={}",
            kind.name(),
            v.len(),
            p(0.5),
            p(0.9),
            v.last().copied().unwrap_or(0)
        );
    }
    println!("CHAOS s5xx={s5xx} s503={s503} keys_unusable_samples={unusable_samples}");
    println!(
        "CHAOS valid_with_loaded_key={loaded_total} refused={refused} outcomes={} by_phase={}",
        fmt(&valid_loaded),
        loaded_by_phase
            .iter()
            .map(|(p, n)| format!("{p}:{n}/refused:{}", refused_by_phase.get(p).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(",")
    );
    println!(
        "CHAOS valid_new_key_not_yet_loaded={} outcomes={} (not a violation: the sidecar had not fetched key-2 yet)",
        new_key.values().sum::<u64>(),
        fmt(&new_key)
    );
    println!("CHAOS valid_removed_key={} outcomes={}", removed_key.values().sum::<u64>(), fmt(&removed_key));
    println!(
        "CHAOS valid_key_set_changed_in_flight={} outcomes={} (a JWKS answer within {INSTALL_MARGIN_MS} ms before or during the request)",
        transition.values().sum::<u64>(),
        fmt(&transition)
    );
    println!(
        "CHAOS stale_samples={stale_samples}/{samples} by_phase={} sample_failures={sample_failures}",
        stale_by_phase.iter().filter(|(_, n)| **n > 0).map(|(p, n)| format!("{p}:{n}")).collect::<Vec<_>>().join(",")
    );
    println!(
        "CHAOS jwks_fetches={fetches} served_200={} status_500={} hung={} bound={bound} \
         (1 warm-up + {miss} unknown-kid refetches [secs/cooldown+1] + {periodic} periodic [secs/(0.9*refresh)+1] \
         + {retries} outage retries [backoff 1,2,4.. s over {outage:.0} s] + {slack} slack) \
         sidecar_counted_ok={} sidecar_counted_error={}",
        by_mode(|m| *m == Mode::Serve),
        by_mode(|m| matches!(m, Mode::Status(_))),
        by_mode(|m| *m == Mode::Hang),
        metric(&metrics, "auth_jwks_fetches_total{issuer=\"https://issuer.test\",result=\"ok\"}").unwrap_or(-1.0),
        metric(&metrics, "auth_jwks_fetches_total{issuer=\"https://issuer.test\",result=\"error\"}").unwrap_or(-1.0),
    );
    let timeline: Vec<String> = log
        .iter()
        .map(|f| {
            let t = (f.at.duration_since(origin).as_millis() as i64 - offset_ms) as f64 / 1000.0;
            let m = match f.mode {
                Mode::Serve => format!("v{}", f.keys_version),
                Mode::Status(s) => s.to_string(),
                Mode::Hang => "hang".into(),
                Mode::Garbage => "garbage".into(),
            };
            format!("{t:.1}s:{m}")
        })
        .collect();
    println!("CHAOS jwks_timeline={}", timeline.join(","));
    println!(
        "CHAOS peak_rss_kib={hwm} peak_rss_mib={:.1} rss_end_kib={rss} peak_rss_before_traffic_kib={hwm_start} alive={alive}",
        hwm as f64 / 1024.0
    );
    let logs = sidecar.logs.lock().unwrap().clone();
    let errors = logs.iter().filter(|l| l.contains("\"level\":\"ERROR\"")).count();
    println!("CHAOS sidecar_log_lines={} error_lines={errors}", logs.len());

    let mut failures = Vec::new();
    if s5xx > 0 {
        failures.push(format!("s5xx={s5xx}"));
    }
    if refused > 0 {
        failures.push(format!("valid_refused={refused}"));
    }
    if fetches > bound {
        failures.push(format!("jwks_fetches={fetches}>bound={bound}"));
    }
    if !alive {
        failures.push("sidecar_died".into());
    }
    if answered == 0 {
        failures.push("no_answers".into());
    }
    let pass = failures.is_empty();
    println!(
        "CHAOS result={} must_hold no_5xx={} valid_refused_0={} fetches_within_bound={} alive={alive}{}",
        if pass { "PASS" } else { "FAIL" },
        s5xx == 0,
        refused == 0,
        fetches <= bound,
        if pass { String::new() } else { format!(" failures={}", failures.join(",")) }
    );
    if !pass {
        eprintln!(
            "last sidecar log lines:\n{}",
            logs.iter().rev().take(30).rev().cloned().collect::<Vec<_>>().join("\n")
        );
    }
    let _ = sidecar.child.kill();
    let _ = sidecar.child.wait();
    drop(sidecar);
    std::process::exit(if pass { 0 } else { 1 });
}
