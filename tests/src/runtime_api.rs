//! The Lambda Runtime API (`/2018-06-01/runtime/...`) served on loopback, as
//! Lambda serves it to a bootstrap: `invocation/next` long-polls for the next
//! event, `invocation/{id}/response` and `/error` deliver the outcome,
//! `init/error` reports a failed init.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// What a function answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST /invocation/{id}/response` with this body.
    Response(Bytes),
    /// `POST /invocation/{id}/error` with this body (`{"errorType", "errorMessage"}`).
    Error(Bytes),
}

impl Outcome {
    /// The body as JSON.
    ///
    /// # Panics
    /// When it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        let (Outcome::Response(b) | Outcome::Error(b)) = self;
        serde_json::from_slice(b).unwrap()
    }
}

struct Invocation {
    id: String,
    trace_id: String,
    event: Bytes,
}

struct State {
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: Mutex<Option<Instant>>,
    polls: AtomicU64,
    init_error: Mutex<Option<Bytes>>,
}

/// A Runtime API endpoint for one bootstrap process.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    tx: mpsc::UnboundedSender<Invocation>,
    state: Arc<State>,
    seq: AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("State")
    }
}

impl RuntimeApi {
    /// Starts serving on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            next: tokio::sync::Mutex::new(rx),
            waiting: Mutex::new(HashMap::new()),
            first_poll: Mutex::new(None),
            polls: AtomicU64::new(0),
            init_error: Mutex::new(None),
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = Arc::clone(&st);
                        async move { Ok::<_, Infallible>(serve(&st, req).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        RuntimeApi { addr, tx, state, seq: AtomicU64::new(0), task }
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API` (`127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The environment a bootstrap needs besides its own configuration.
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API".into(), self.endpoint()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), "authorizer".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "2026/11/28/[$LATEST]test".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME".into(), "/aws/lambda/test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    /// Starts the authorizer bootstrap against this Runtime API, trusting
    /// `issuer` with audience `api` and the keys at `jwks_url`, with the
    /// Lambda environment and `extra` settings (later ones win).
    pub fn start_authorizer(&self, issuer: &str, jwks_url: &str, extra: &[(&str, &str)]) -> crate::Proc {
        let lambda = self.lambda_env();
        let mut env: Vec<(&str, &str)> = lambda.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(&[("AUTH_ISSUER", issuer), ("AUTH_AUDIENCE", "api"), ("AUTH_JWKS_URL", jwks_url)]);
        env.extend_from_slice(extra);
        crate::Proc::start("authorizer", &[], &env)
    }

    /// Queues an event with a fresh request id and trace id (as Lambda sends
    /// a new trace id per invocation) and waits for the function's outcome.
    pub async fn invoke(&self, event: impl Into<Bytes>) -> Outcome {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let trace_id = format!("Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0", n as u32, n, n);
        self.invoke_with_trace(event, trace_id).await
    }

    /// As [`RuntimeApi::invoke`] with a given trace id.
    ///
    /// # Panics
    /// When the function does not answer within 30 s.
    pub async fn invoke_with_trace(&self, event: impl Into<Bytes>, trace_id: String) -> Outcome {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("req-{n:016x}");
        let (done, wait) = oneshot::channel();
        self.state.waiting.lock().unwrap().insert(id.clone(), done);
        self.tx.send(Invocation { id, trace_id, event: event.into() }).ok().unwrap();
        tokio::time::timeout(Duration::from_secs(30), wait).await.expect("function answered").unwrap()
    }

    /// When the bootstrap first asked for an event (the end of its init).
    pub fn first_poll(&self) -> Option<Instant> {
        *self.state.first_poll.lock().unwrap()
    }

    /// `GET invocation/next` requests so far.
    pub fn polls(&self) -> u64 {
        self.state.polls.load(Ordering::Relaxed)
    }

    /// The body of `POST init/error`, if the init failed.
    pub fn init_error(&self) -> Option<Bytes> {
        self.state.init_error.lock().unwrap().clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn empty(status: u16) -> Response<Full<Bytes>> {
    Response::builder().status(status).body(Full::new(Bytes::new())).unwrap()
}

async fn serve(st: &State, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else { return empty(404) };
    if rest == "invocation/next" {
        st.first_poll.lock().unwrap().get_or_insert_with(Instant::now);
        st.polls.fetch_add(1, Ordering::Relaxed);
        let mut rx = st.next.lock().await;
        let Some(inv) = rx.recv().await else { return empty(500) };
        let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 30_000;
        return Response::builder()
            .header("lambda-runtime-aws-request-id", inv.id)
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:authorizer")
            .header("lambda-runtime-trace-id", inv.trace_id)
            .header("content-type", "application/json")
            .body(Full::new(inv.event))
            .unwrap();
    }
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if rest == "init/error" {
        *st.init_error.lock().unwrap() = Some(body);
        return empty(202);
    }
    if let Some(id_and_kind) = rest.strip_prefix("invocation/") {
        let (id, kind) = id_and_kind.split_once('/').unwrap_or((id_and_kind, ""));
        let outcome = match kind {
            "response" => Outcome::Response(body),
            "error" => Outcome::Error(body),
            _ => return empty(404),
        };
        if let Some(done) = st.waiting.lock().unwrap().remove(id) {
            let _ = done.send(outcome);
        }
        return empty(202);
    }
    empty(404)
}
