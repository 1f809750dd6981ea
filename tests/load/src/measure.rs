//! Measured work per issuer request type: the real issuer driven in-process
//! (`issuer::App::handle` with `issuer::Request` values), over DynamoDB
//! (moto) and over the embedded SQLite store.
//!
//! Per request type it records:
//! - the DynamoDB requests with the units DynamoDB would bill, from the
//!   capacity meter ([`crate::meter`]) in front of moto;
//! - process CPU time around the handler (`CLOCK_PROCESS_CPUTIME_ID`: the
//!   password hash runs on tokio's blocking pool, which a thread clock
//!   would miss), on a run straight to moto without the meter (whose own
//!   work would otherwise be counted) and on a SQLite run;
//! - the log bytes written at INFO in the JSON format the Lambda uses (the
//!   subscriber `lambda_runtime::tracing::init_default_subscriber` sets up
//!   with `AWS_LAMBDA_LOG_FORMAT=JSON`), through a counting writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use issuer::App;
use issuer::attempts::{AttemptPolicy, ClientAddr};
use issuer::config::{IssuerConfig, RecoveryLimits};
use issuer::mail::{MailTransport, Mailer, Message, MessageKind, SendFuture};
use issuer::store::Store;
use issuer::store::dynamo::{DynamoConfig, DynamoStore};
use issuer::store::sqlite::SqliteStore;
use issuer::{KeyRing, Request, Response};

use crate::meter::{Meter, Metered};

/// The request types measured, in the order each repetition makes them.
pub const REQUEST_TYPES: [&str; 14] = [
    "register",
    "verify_email",
    "login",
    "login_failed",
    "stuffing_checked",
    "refresh",
    "logout",
    "revocations_page",
    "logout_all",
    "forgot_password",
    "reset_password",
    "change_password",
    "stuffing_refused",
    "revocations_page_empty",
];

/// The message of a DynamoDB measurement without moto.
pub const MISSING_ENDPOINT: &str = "DYNAMODB_ENDPOINT is not set: run scripts/test.sh or scripts/measure-work.sh, \
     which start a DynamoDB-compatible server (moto), or point it at one";

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "purple elephant umbrella";
const COOKIE: &str = "__Secure-refresh_token";

/// A measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// No moto.
    #[error("{MISSING_ENDPOINT}")]
    MissingEndpoint,
    /// The issuer could not be set up.
    #[error("setting up the issuer: {0}")]
    Setup(String),
    /// The meter failed.
    #[error(transparent)]
    Meter(#[from] crate::meter::MeterError),
    /// A request got an answer the sequence does not expect.
    #[error("{request}: expected HTTP {expected}, got {got}: {body}")]
    Unexpected {
        /// The request type.
        request: &'static str,
        /// Expected status.
        expected: u16,
        /// Status received.
        got: u16,
        /// The answer's body (error code; no secrets: the issuer's errors carry none).
        body: String,
    },
    /// A step needed a value the previous answers did not give.
    #[error("{0}")]
    Missing(&'static str),
}

/// moto's endpoint from `DYNAMODB_ENDPOINT`.
///
/// # Errors
/// [`MeasureError::MissingEndpoint`] when unset.
pub fn endpoint() -> Result<String, MeasureError> {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().trim_end_matches('/').to_owned()),
        _ => Err(MeasureError::MissingEndpoint),
    }
}

/// Process CPU time (all threads, the blocking pool's included).
#[must_use]
pub fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}

static LOG_BYTES: AtomicU64 = AtomicU64::new(0);
static LOG_LINES: AtomicU64 = AtomicU64::new(0);

/// A writer that counts what the subscriber writes and drops it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingWriter;

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG_BYTES.fetch_add(buf.len() as u64, Ordering::Relaxed);
        LOG_LINES.fetch_add(buf.iter().filter(|&&b| b == b'\n').count() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CountingWriter {
    type Writer = CountingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CountingWriter
    }
}

/// Installs, once per process, the Lambda's JSON subscriber at INFO
/// (`lambda_runtime_api_client::tracing::init_default_subscriber_with_writer`:
/// no target, no time, JSON) writing into [`CountingWriter`]. Returns
/// whether the counter is the process's subscriber (false if another was
/// installed first: log bytes would then read zero).
pub fn install_log_counter() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_target(false)
            .without_time()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(CountingWriter)
            .json()
            .try_init()
            .is_ok()
    })
}

fn log_counts() -> (u64, u64) {
    (LOG_BYTES.load(Ordering::Relaxed), LOG_LINES.load(Ordering::Relaxed))
}

/// Mail kept in memory, so verification and reset links can be followed.
#[derive(Debug, Clone, Default)]
pub struct RecordingMail(Arc<Mutex<Vec<Message>>>);

impl MailTransport for RecordingMail {
    fn send<'a>(&'a self, msg: &'a Message) -> SendFuture<'a> {
        Box::pin(async move {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(msg.clone());
            Ok(())
        })
    }
    fn name(&self) -> &'static str {
        "recorder"
    }
}

impl RecordingMail {
    /// The token of the newest `kind` link mailed to `to`.
    #[must_use]
    pub fn token(&self, to: &str, kind: MessageKind) -> Option<String> {
        let sent = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let m = sent.iter().rev().find(|m| m.kind == kind && m.to == to)?;
        let link = m.text.split_whitespace().find(|w| w.contains("token="))?;
        Some(link.split_once("token=")?.1.to_owned())
    }
}

/// One request as measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its type ([`REQUEST_TYPES`]).
    pub name: &'static str,
    /// Process CPU time around the handler.
    pub cpu: Duration,
    /// Log bytes written while it ran.
    pub log_bytes: u64,
    /// Log lines written while it ran.
    pub log_lines: u64,
    /// The DynamoDB requests it made (metered runs only).
    pub dynamo: Vec<Metered>,
}

/// A configuration for measuring: production defaults (argon2id cost,
/// token lifetimes, verification on), with the attempt and recovery limits
/// lifted because every request comes from one address.
///
/// # Errors
/// [`MeasureError::Setup`] if the local configuration is refused.
pub fn config(dir: &std::path::Path) -> Result<IssuerConfig, MeasureError> {
    let mut cfg = IssuerConfig::local("https://issuer.example", "api", dir.to_path_buf())
        .map_err(|e| MeasureError::Setup(e.to_string()))?;
    cfg.attempt_policy = AttemptPolicy {
        per_account_address: 1000,
        per_address: 1_000_000,
        window_secs: 900,
        per_account: 1_000_000,
        account_window_secs: 60,
    };
    cfg.recovery_limits = RecoveryLimits { per_client: 1_000_000, mail_per_address: 1_000_000, window_secs: 3600 };
    Ok(cfg)
}

/// The configuration of the app that measures a refused attempt: one
/// attempt per account and address per window.
fn strict(cfg: &IssuerConfig) -> IssuerConfig {
    let mut c = cfg.clone();
    c.attempt_policy.per_account_address = 1;
    c
}

fn json_post(path: &str, body: &serde_json::Value, client: ClientAddr) -> Request {
    let mut r = Request::new(Method::POST, path);
    r.headers.insert("content-type", HeaderValue::from_static("application/json"));
    r.body = Bytes::from(body.to_string());
    r.client = Some(client);
    r
}

fn with_cookie(mut r: Request, token: &str) -> Result<Request, MeasureError> {
    r.headers.insert("x-requested-with", HeaderValue::from_static("auth-work"));
    r.headers.insert(
        "cookie",
        HeaderValue::from_str(&format!("{COOKIE}={token}")).map_err(|_| MeasureError::Missing("cookie value"))?,
    );
    Ok(r)
}

fn with_bearer(mut r: Request, token: &str) -> Result<Request, MeasureError> {
    r.headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| MeasureError::Missing("bearer value"))?,
    );
    Ok(r)
}

fn refresh_cookie(resp: &Response) -> Result<String, MeasureError> {
    resp.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find_map(|c| c.split(';').next()?.strip_prefix(&format!("{COOKIE}=")).map(str::to_owned))
        .filter(|t| !t.is_empty())
        .ok_or(MeasureError::Missing("no refresh cookie in the answer"))
}

fn access_token(resp: &Response) -> Result<String, MeasureError> {
    let v: serde_json::Value = serde_json::from_slice(&resp.body).map_err(|_| MeasureError::Missing("token body"))?;
    v["access_token"].as_str().map(str::to_owned).ok_or(MeasureError::Missing("no access token in the answer"))
}

/// Seconds each request moves the apps' clock forward: more than the
/// revocation feed's settle time (1 s), so a poll after a logout sees it
/// as a sidecar polling every second would, and writes keyed by time
/// (events, counters' windows) do not collide as they would if a whole
/// sequence ran within one second.
pub const CLOCK_STEP_SECS: u64 = 5;

/// The apps' clock: starts one minute into the current hour (so a few
/// repetitions stay within one hour of the feed's hourly partitions) and
/// moves [`CLOCK_STEP_SECS`] per request.
#[derive(Debug, Clone)]
pub struct StepClock(Arc<AtomicU64>);

impl Default for StepClock {
    fn default() -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        StepClock(Arc::new(AtomicU64::new(now - now % 3600 + 60)))
    }
}

impl StepClock {
    /// The clock as the apps read it.
    #[must_use]
    pub fn clock(&self) -> issuer::app::Clock {
        let c = self.0.clone();
        Arc::new(move || c.load(Ordering::Relaxed))
    }

    fn step(&self) {
        self.0.fetch_add(CLOCK_STEP_SECS, Ordering::Relaxed);
    }
}

/// Drives the request sequence and collects samples.
struct Driver<'a, S: Store> {
    clock: StepClock,
    app: &'a App<S>,
    strict: &'a App<S>,
    mail: &'a RecordingMail,
    meter: Option<&'a Meter>,
    samples: Vec<Sample>,
    record: bool,
}

impl<S: Store> Driver<'_, S> {
    /// Sends `req` unmeasured, expecting `status`.
    async fn send(
        &self,
        name: &'static str,
        app: &App<S>,
        req: Request,
        status: u16,
    ) -> Result<Response, MeasureError> {
        self.clock.step();
        let resp = app.handle(req).await;
        if resp.status != StatusCode::from_u16(status).unwrap_or(StatusCode::OK) {
            return Err(MeasureError::Unexpected {
                request: name,
                expected: status,
                got: resp.status.as_u16(),
                body: String::from_utf8_lossy(&resp.body).chars().take(200).collect(),
            });
        }
        Ok(resp)
    }

    /// Sends `req` and measures it.
    async fn measure(
        &mut self,
        name: &'static str,
        strict: bool,
        req: Request,
        status: u16,
    ) -> Result<Response, MeasureError> {
        if let Some(m) = self.meter {
            let _ = m.take();
        }
        let (b0, l0) = log_counts();
        let c0 = process_cpu();
        let app = if strict { self.strict } else { self.app };
        let resp = self.send(name, app, req, status).await?;
        let cpu = process_cpu().saturating_sub(c0);
        let (b1, l1) = log_counts();
        let dynamo = self.meter.map(Meter::take).unwrap_or_default();
        if self.record {
            self.samples.push(Sample { name, cpu, log_bytes: b1 - b0, log_lines: l1 - l0, dynamo });
        }
        Ok(resp)
    }

    /// One repetition of every request type, for the account `email`.
    async fn sequence(&mut self, rep: usize, tag: &str) -> Result<(), MeasureError> {
        let here = ClientAddr::new(std::net::Ipv4Addr::new(203, 0, 113, 7).into());
        let email = format!("work-{tag}-{rep}@example.com");
        let creds = |pw: &str| serde_json::json!({"email": email, "password": pw});
        self.measure("register", false, json_post("/register", &creds(PASSWORD), here), 202).await?;
        let token = self.mail.token(&email, MessageKind::VerifyEmail).ok_or(MeasureError::Missing("no verify link"))?;
        self.measure(
            "verify_email",
            false,
            json_post("/verify-email", &serde_json::json!({"token": token}), here),
            200,
        )
        .await?;
        let login = self.measure("login", false, json_post("/login", &creds(PASSWORD), here), 200).await?;
        self.measure("login_failed", false, json_post("/login", &creds("not the password at all"), here), 401).await?;
        let nobody = serde_json::json!({"email": format!("nobody-{tag}-{rep}@example.com"), "password": PASSWORD});
        self.measure("stuffing_checked", false, json_post("/login", &nobody, here), 401).await?;
        // A sidecar's cursor before the logout below.
        let first = self.send("revocations_page", self.app, Request::new(Method::GET, "/revocations"), 200).await?;
        let page: serde_json::Value =
            serde_json::from_slice(&first.body).map_err(|_| MeasureError::Missing("feed page"))?;
        let mut next = page["next"].as_str().ok_or(MeasureError::Missing("feed cursor"))?.to_owned();
        // Drain to the end, as a polling sidecar is.
        let mut more = page["more"].as_bool().unwrap_or(false);
        while more {
            let mut r = Request::new(Method::GET, "/revocations");
            r.query = Some(format!("after={next}"));
            let p = self.send("revocations_page", self.app, r, 200).await?;
            let v: serde_json::Value = serde_json::from_slice(&p.body).map_err(|_| MeasureError::Missing("feed"))?;
            next = v["next"].as_str().ok_or(MeasureError::Missing("feed cursor"))?.to_owned();
            more = v["more"].as_bool().unwrap_or(false);
        }
        let refreshed = self
            .measure(
                "refresh",
                false,
                with_cookie(Request::new(Method::POST, "/refresh"), &refresh_cookie(&login)?)?,
                200,
            )
            .await?;
        self.measure(
            "logout",
            false,
            with_cookie(Request::new(Method::POST, "/logout"), &refresh_cookie(&refreshed)?)?,
            204,
        )
        .await?;
        // One page holding the logout's event.
        let mut poll = Request::new(Method::GET, "/revocations");
        poll.query = Some(format!("after={next}"));
        let p = self.measure("revocations_page", false, poll, 200).await?;
        let v: serde_json::Value = serde_json::from_slice(&p.body).map_err(|_| MeasureError::Missing("feed"))?;
        let next = v["next"].as_str().ok_or(MeasureError::Missing("feed cursor"))?.to_owned();
        let again = self.send("login", self.app, json_post("/login", &creds(PASSWORD), here), 200).await?;
        self.measure(
            "logout_all",
            false,
            with_bearer(Request::new(Method::POST, "/logout-all"), &access_token(&again)?)?,
            200,
        )
        .await?;
        self.measure(
            "forgot_password",
            false,
            json_post("/password/forgot", &serde_json::json!({"email": email}), here),
            202,
        )
        .await?;
        let token =
            self.mail.token(&email, MessageKind::PasswordReset).ok_or(MeasureError::Missing("no reset link"))?;
        let reset = serde_json::json!({"token": token, "password": NEW_PASSWORD});
        self.measure("reset_password", false, json_post("/password/reset", &reset, here), 200).await?;
        let third = self.send("login", self.app, json_post("/login", &creds(NEW_PASSWORD), here), 200).await?;
        let change = serde_json::json!({"current_password": NEW_PASSWORD, "new_password": PASSWORD});
        self.measure(
            "change_password",
            false,
            with_bearer(json_post("/password/change", &change, here), &access_token(&third)?)?,
            200,
        )
        .await?;
        // Refused: the strict app allows one attempt per account and
        // address; the first (a wrong password) is let through, the second
        // is refused before any hash.
        let attacker = ClientAddr::new(std::net::Ipv4Addr::new(198, 51, 100, 9).into());
        let guess = creds("a guess from a botnet");
        self.send("stuffing_refused", self.strict, json_post("/login", &guess, attacker), 401).await?;
        self.measure("stuffing_refused", true, json_post("/login", &guess, attacker), 429).await?;
        // A poll with nothing new (the steady state of a quiet feed): the
        // events of this repetition were read just above; the logout-all
        // and the password changes added events, so read them first.
        let mut r = Request::new(Method::GET, "/revocations");
        r.query = Some(format!("after={next}"));
        let p = self.send("revocations_page", self.app, r, 200).await?;
        let v: serde_json::Value = serde_json::from_slice(&p.body).map_err(|_| MeasureError::Missing("feed"))?;
        let next = v["next"].as_str().ok_or(MeasureError::Missing("feed cursor"))?.to_owned();
        let mut r = Request::new(Method::GET, "/revocations");
        r.query = Some(format!("after={next}"));
        self.measure("revocations_page_empty", false, r, 200).await?;
        Ok(())
    }
}

/// Runs `reps` measured repetitions (after one unrecorded warm-up) on `app`.
///
/// # Errors
/// The first request that does not answer as expected.
pub async fn run<S: Store>(apps: &Apps<S>, meter: Option<&Meter>, reps: usize) -> Result<Vec<Sample>, MeasureError> {
    let tag = format!("{:08x}", rand_u32());
    let (app, strict_app, mail) = (&apps.app, &apps.strict, &apps.mail);
    let mut d =
        Driver { clock: apps.clock.clone(), app, strict: strict_app, mail, meter, samples: Vec::new(), record: false };
    d.sequence(0, &tag).await?;
    d.record = true;
    for rep in 1..=reps {
        d.sequence(rep, &tag).await?;
    }
    Ok(d.samples)
}

fn rand_u32() -> u32 {
    // Distinct table prefixes and addresses per run; no need for a CSPRNG.
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    t.subsec_nanos() ^ (std::process::id() << 8)
}

/// An SDK configuration for moto: static credentials, never real ones.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "auth-work"))
        .load()
        .await
}

/// A DynamoDB store on fresh tables `<prefix>-Users`, ... at `endpoint`,
/// tables created. Patient timeouts: moto on a busy machine.
///
/// # Errors
/// [`MeasureError::Setup`] if the tables cannot be created.
pub async fn dynamo_store(endpoint: &str, prefix: &str) -> Result<DynamoStore, MeasureError> {
    let sdk = sdk_config().await;
    let cfg = DynamoConfig {
        users_table: format!("{prefix}-Users"),
        refresh_table: format!("{prefix}-RefreshTokens"),
        revocations_table: format!("{prefix}-Revocations"),
        endpoint: Some(endpoint.to_owned()),
        attempt_timeout: Duration::from_secs(20),
        operation_timeout: Duration::from_secs(60),
        ..DynamoConfig::default()
    };
    let store = DynamoStore::new(&sdk, &cfg);
    store.create_tables().await.map_err(|e| MeasureError::Setup(format!("create_tables: {e}")))?;
    Ok(store)
}

/// The two apps over one store, with their shared clock and mailbox.
#[derive(Debug)]
pub struct Apps<S: Store> {
    /// Limits lifted.
    pub app: App<S>,
    /// One login attempt per account and address (the refused attempt).
    pub strict: App<S>,
    /// The mail both send.
    pub mail: RecordingMail,
    /// The clock both read.
    pub clock: StepClock,
}

/// The two apps (lifted limits, strict) over clones of `store`, sharing one
/// signing key, one recording mailbox and one stepping clock.
///
/// # Errors
/// [`MeasureError::Setup`].
pub fn apps<S: Store + Clone>(cfg: &IssuerConfig, store: S) -> Result<Apps<S>, MeasureError> {
    let keys = KeyRing::generate(cfg.signing_alg).map_err(|e| MeasureError::Setup(e.to_string()))?;
    let setup = |e: issuer::InitError| MeasureError::Setup(e.to_string());
    let mail = RecordingMail::default();
    let clock = StepClock::default();
    let app = App::new(cfg.clone(), store.clone(), keys.clone())
        .map_err(setup)?
        .with_mailer(Mailer::new(mail.clone()))
        .with_clock(clock.clock());
    let strict_app = App::new(strict(cfg), store, keys)
        .map_err(setup)?
        .with_mailer(Mailer::new(mail.clone()))
        .with_clock(clock.clock());
    Ok(Apps { app, strict: strict_app, mail, clock })
}

/// The metered DynamoDB run: samples with their DynamoDB requests.
///
/// # Errors
/// [`MeasureError`].
pub async fn metered_dynamo(endpoint: &str, dir: &std::path::Path, reps: usize) -> Result<Vec<Sample>, MeasureError> {
    let meter = Meter::start(endpoint).await?;
    let prefix = format!("work-m{:08x}", rand_u32());
    let store = dynamo_store(&meter.url(), &prefix).await?;
    let _ = meter.take();
    let apps = apps(&config(dir)?, store)?;
    run(&apps, Some(&meter), reps).await
}

/// The DynamoDB run straight to moto (CPU time and log bytes).
///
/// # Errors
/// [`MeasureError`].
pub async fn direct_dynamo(endpoint: &str, dir: &std::path::Path, reps: usize) -> Result<Vec<Sample>, MeasureError> {
    let prefix = format!("work-d{:08x}", rand_u32());
    let store = dynamo_store(endpoint, &prefix).await?;
    let apps = apps(&config(dir)?, store)?;
    run(&apps, None, reps).await
}

/// The embedded-store run (CPU time for comparison).
///
/// # Errors
/// [`MeasureError`].
pub async fn sqlite(dir: &std::path::Path, reps: usize) -> Result<Vec<Sample>, MeasureError> {
    let cfg = config(dir)?;
    let store = SqliteStore::open_in_dir(dir, &cfg.sqlite_options()).map_err(|e| MeasureError::Setup(e.to_string()))?;
    let apps = apps(&cfg, store)?;
    run(&apps, None, reps).await
}
