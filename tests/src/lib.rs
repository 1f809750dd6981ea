//! Test kit: real local servers for tests that cross crate boundaries.
//!
//! - [`JwksServer`]: serves a JWKS on a loopback port, counts fetches, and can
//!   fail, hang or serve garbage on demand.
//! - [`tokens`]: mint tokens in the profile for tests.
//! - [`RuntimeApi`]: the Lambda Runtime API on loopback, for bootstrap binaries.
//! - [`Proc`]: a workspace binary started for a test.
//! - [`bin_path`]: find a workspace binary built by `cargo build --bins`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use token_core::{PublicJwks, SigningKey};
use tokio::net::TcpListener;

pub mod runtime_api;
pub use runtime_api::{Outcome, RuntimeApi};

/// How the JWKS endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the current key set.
    Serve,
    /// This status with an empty body.
    Status(u16),
    /// Accept the request and never answer.
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
}

#[derive(Debug)]
struct State {
    mode: Mutex<Mode>,
    body: Mutex<Bytes>,
    fetches: AtomicUsize,
    /// Bumped by every [`JwksServer::set_keys`]; 0 for the keys it started with.
    keys_version: AtomicUsize,
    log: Mutex<Vec<Fetch>>,
}

/// One request to the JWKS endpoint, as [`JwksServer::fetch_log`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetch {
    /// When it arrived (for [`Mode::Serve`]: just before the key set is sent).
    pub at: std::time::Instant,
    /// How it was answered.
    pub mode: Mode,
    /// Which key set it would get: 0 for the keys given to
    /// [`JwksServer::start`], then one more per [`JwksServer::set_keys`].
    pub keys_version: usize,
}

/// A JWKS endpoint on 127.0.0.1 with a fetch counter.
#[derive(Debug)]
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

/// The JWKS document of these keys.
pub fn jwks_json(keys: &[&SigningKey]) -> Vec<u8> {
    serde_json::to_vec(&PublicJwks { keys: keys.iter().map(|k| k.public_jwk().clone()).collect() }).unwrap()
}

impl JwksServer {
    /// Starts serving `keys` on a free loopback port.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            mode: Mutex::new(Mode::Serve),
            body: Mutex::new(Bytes::from(jwks_json(keys))),
            fetches: AtomicUsize::new(0),
            keys_version: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let st = Arc::clone(&st);
                        async move { Ok::<_, Infallible>(answer(&st, req.uri().path()).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        JwksServer { addr, state, task }
    }

    /// `http://127.0.0.1:PORT/jwks.json`
    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Serves these keys from now on; returns their version (see [`Fetch`]).
    pub fn set_keys(&self, keys: &[&SigningKey]) -> usize {
        let mut body = self.state.body.lock().unwrap();
        *body = Bytes::from(jwks_json(keys));
        self.state.keys_version.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Changes how the endpoint answers.
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Requests received so far (including failed and hanging ones).
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Every request received so far, in order: when, how it was answered
    /// and which key set version it got. Tells which keys a verifier can
    /// hold at any moment: those of its last [`Mode::Serve`] answer.
    pub fn fetch_log(&self) -> Vec<Fetch> {
        self.state.log.lock().unwrap().clone()
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(st: &State, path: &str) -> Response<Full<Bytes>> {
    if path != "/jwks.json" {
        return Response::builder().status(404).body(Full::new(Bytes::new())).unwrap();
    }
    st.fetches.fetch_add(1, Ordering::SeqCst);
    let mode = *st.mode.lock().unwrap();
    // Body and version are read under the body lock: set_keys changes both under it.
    let (body, keys_version) = {
        let body = st.body.lock().unwrap();
        (body.clone(), st.keys_version.load(Ordering::SeqCst))
    };
    st.log.lock().unwrap().push(Fetch { at: std::time::Instant::now(), mode, keys_version });
    match mode {
        Mode::Serve => {
            Response::builder().header("content-type", "application/jwk-set+json").body(Full::new(body)).unwrap()
        }
        Mode::Status(code) => Response::builder().status(code).body(Full::new(Bytes::new())).unwrap(),
        Mode::Garbage => Response::builder().body(Full::new(Bytes::from_static(b"<html>oops</html>"))).unwrap(),
        Mode::Hang => std::future::pending().await,
    }
}

/// Waits until `cond` holds, checking every 10 ms: for tests that wait on an
/// event (a fetch in the log, a metric, a log line) instead of sleeping.
/// `within` is only a failure guard, never what a test asserts.
///
/// # Panics
/// When `cond` still does not hold after `within`, with `what` and the
/// time waited.
pub async fn wait_for(what: &str, within: std::time::Duration, mut cond: impl FnMut() -> bool) {
    eventually(what, within, || std::future::ready(cond())).await;
}

/// As [`wait_for`], for a condition that is itself asynchronous (an HTTP
/// request: the sidecar's readiness, a token's answer).
///
/// # Panics
/// As [`wait_for`].
pub async fn eventually<F, Fut>(what: &str, within: std::time::Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !cond().await {
        assert!(started.elapsed() < within, "waited {within:?} for {what}, in vain");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The dev stack (the `devstack` binary) on free loopback ports, with its
/// addresses read from its "dev stack ready" log line.
#[derive(Debug)]
pub struct DevStack {
    /// The process (logs, signals).
    pub proc: Proc,
    /// The front door (API Gateway in place).
    pub gateway: String,
    /// The issuer.
    pub issuer: String,
    /// The sidecar.
    pub sidecar: String,
}

impl DevStack {
    /// Starts it over `data_dir` with `extra` flags after the ports.
    ///
    /// # Panics
    /// When it does not start or logs no ready line.
    pub fn start(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        let dir = data_dir.to_str().unwrap();
        let mut args = vec![
            "--data-dir",
            dir,
            "--gateway-port",
            "0",
            "--issuer-port",
            "0",
            "--sidecar-port",
            "0",
            "--backend-port",
            "0",
        ];
        args.extend_from_slice(extra);
        let proc = Proc::spawn("devstack", &args, &[]);
        let ready: serde_json::Value = proc
            .logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == "dev stack ready")
            .expect("ready line");
        let addr = |k: &str| -> String {
            let a: SocketAddr = ready["fields"][k].as_str().unwrap().parse().unwrap();
            format!("http://localhost:{}", a.port())
        };
        DevStack { gateway: addr("gateway"), issuer: addr("issuer"), sidecar: addr("sidecar"), proc }
    }

    /// The dev outbox's messages to `to`, newest first (`GET /dev/outbox`
    /// at the front door).
    ///
    /// # Panics
    /// When the outbox does not answer 200 with JSON.
    pub async fn mail_to(&self, to: &str) -> Vec<serde_json::Value> {
        let url = format!("{}/dev/outbox?to={to}&limit=100", self.gateway);
        let resp = reqwest::get(&url).await.expect("the dev outbox answers");
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "GET {url}");
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        body["messages"].as_array().cloned().unwrap_or_default()
    }

    /// The token of the newest `kind` link (`verify_email`,
    /// `password_reset`) mailed to `to`, read from the link as a person
    /// would follow it.
    ///
    /// # Panics
    /// When there is no such message or it has no link with a token.
    pub async fn mailed_token(&self, to: &str, kind: &str) -> String {
        let mail = self.mail_to(to).await;
        let m = mail.iter().find(|m| m["kind"] == kind).unwrap_or_else(|| panic!("no {kind} message to {to}"));
        let link = m["links"][0].as_str().unwrap_or_else(|| panic!("{kind} to {to} has no link"));
        link.split_once("token=").map(|(_, t)| t.to_owned()).unwrap_or_else(|| panic!("no token in {link}"))
    }

    /// Registers `email` and follows the verification link: the account
    /// exists afterwards.
    ///
    /// # Panics
    /// When any step does not answer as it should.
    pub async fn signup(&self, email: &str, password: &str) {
        let c = reqwest::Client::new();
        let body = serde_json::json!({"email": email, "password": password}).to_string();
        let resp = c
            .post(format!("{}/register", self.issuer))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::ACCEPTED, "register {email}");
        let token = self.mailed_token(&email.trim().to_lowercase(), "verify_email").await;
        let resp = c
            .post(format!("{}/verify-email", self.issuer))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "token": token }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "verify {email}");
    }
}

/// Minting tokens for tests.
pub mod tokens {
    use serde_json::{Value, json};
    use token_core::SigningKey;

    /// Claims in the profile: `iss`, `sub`, `aud`, `exp = now + ttl`, `iat`, `jti`, `scope`.
    pub fn claims(iss: &str, aud: &str, sub: &str, scope: &str, ttl: i64) -> Value {
        let now = token_core::unix_now().as_secs() as i64;
        json!({
            "iss": iss, "sub": sub, "aud": aud, "exp": now + ttl, "iat": now,
            "jti": format!("{sub}-{}", rand_suffix()), "scope": scope
        })
    }

    /// Signs `claims` with `key` (header `typ: at+jwt`, `kid`).
    pub fn sign(key: &SigningKey, claims: &Value) -> String {
        key.sign_any(claims).unwrap()
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed) ^ (std::process::id() as u64) << 32
    }
}

/// The path of a workspace binary (`target/<profile>/<name>`), built by
/// `cargo build --workspace --bins` (scripts/test.sh does it first).
///
/// # Panics
/// With a message saying how to build it, when it is missing.
pub fn bin_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let path = target.join(profile).join(name);
    assert!(
        path.exists(),
        "binary {} is missing: build it first with `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A server binary started for a test, killed when dropped.
#[derive(Debug)]
pub struct Proc {
    child: std::process::Child,
    /// The address it listens on, from its `listen` log field.
    pub addr: std::net::SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    /// One message from each log reader when it reaches the end of its pipe.
    readers_done: std::sync::mpsc::Receiver<()>,
}

impl Proc {
    /// Starts `bin` and waits up to 30 s for a log line carrying a `listen`
    /// field (see [`Proc::start`]).
    ///
    /// # Panics
    /// When it exits or does not report an address in time, with its logs.
    pub fn spawn(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Self::launch(bin, args, env, true)
    }

    /// Starts `bin` (a workspace binary) with `args` and `env` only (a clean
    /// environment but `PATH`, JSON logs), without waiting for anything.
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Self::launch(bin, args, env, false)
    }

    fn launch(bin: &str, args: &[&str], env: &[(&str, &str)], wait_for_listen: bool) -> Proc {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(bin_path(bin));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, readers_done) = std::sync::mpsc::channel();
        let out_sink = Arc::clone(&logs);
        let out_done = done_tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                out_sink.lock().unwrap().push(line);
            }
            let _ = out_done.send(());
        });
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let addr = serde_json::from_str::<serde_json::Value>(&line).ok().and_then(|v| {
                    v.get("listen")
                        .or_else(|| v.get("fields").and_then(|f| f.get("listen")))
                        .and_then(|a| a.as_str())
                        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                });
                // Keep the line before announcing the address: callers read the logs next.
                sink.lock().unwrap().push(line);
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
            let _ = done_tx.send(());
        });
        if !wait_for_listen {
            return Proc { child, addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)), logs, readers_done };
        }
        match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(addr) => Proc { child, addr, logs, readers_done },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(std::time::Duration::from_millis(100));
                panic!(
                    "{bin} did not report a listen address (exit: {status:?}); logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        }
    }

    /// `http://ADDR{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits up to `timeout` for the process to exit. Once it has, what it
    /// wrote before exiting is in [`Proc::logs`]: the readers are given up to
    /// two seconds to drain its pipes.
    pub fn wait_timeout(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let drained = std::time::Instant::now() + std::time::Duration::from_secs(2);
                for _ in 0..2 {
                    let left = drained.saturating_duration_since(std::time::Instant::now());
                    if self.readers_done.recv_timeout(left).is_err() {
                        break;
                    }
                }
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bin` to completion with `env` and returns (exit code, stderr).
pub fn run_to_exit(bin: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(bin_path(bin));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The `--flag value` command line of the benchmark and chaos harnesses: one
/// reader for all of them, whose mistakes name the flag.
#[derive(Debug)]
pub struct Flags(std::iter::Skip<std::env::Args>);

impl Flags {
    /// The process's arguments after the program name.
    #[must_use]
    pub fn from_env() -> Self {
        Flags(std::env::args().skip(1))
    }

    /// The next flag, if any.
    pub fn next_flag(&mut self) -> Option<String> {
        self.0.next()
    }

    /// The value after `flag`.
    ///
    /// # Panics
    /// When the command line ends before it.
    pub fn value(&mut self, flag: &str) -> String {
        self.0.next().unwrap_or_else(|| panic!("{flag} needs a value"))
    }

    /// The value after `flag`, parsed.
    ///
    /// # Panics
    /// When it is missing or does not parse.
    pub fn parse<T: std::str::FromStr>(&mut self, flag: &str) -> T {
        let v = self.value(flag);
        v.parse().unwrap_or_else(|_| panic!("{flag}: cannot use {v:?}"))
    }
}

/// xorshift64*: a small seeded generator for the chaos harnesses (picking
/// request kinds and garbage), repeatable from its seed. Not for secrets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `len` characters of the base64url alphabet.
    pub fn b64(&mut self, len: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..len).map(|_| A[self.below(64) as usize] as char).collect()
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}
