//! A loopback HTTP proxy in front of moto that can drop requests or
//! responses, answer with DynamoDB errors, empty Query results, and forward
//! one request at a time.
//!
//! Shared by the DynamoDB store tests and the login attempt tests
//! (`#[path]`-included: integration tests share no crate).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What to do to a request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Close the connection without forwarding the request.
    DropRequest,
    /// Forward the request, then close the connection without answering.
    DropResponse,
    /// Answer with this status and DynamoDB JSON error body.
    Reply(u16, String),
    /// Answer a Query with no items.
    EmptyQuery,
}

impl Fault {
    pub fn throttling() -> Self {
        Fault::Reply(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#.to_owned(),
        )
    }

    pub fn internal_error() -> Self {
        Fault::Reply(
            500,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal error"}"#
                .to_owned(),
        )
    }

    pub fn cancelled(codes: &[&str]) -> Self {
        let reasons: Vec<String> = codes.iter().map(|c| format!(r#"{{"Code":"{c}"}}"#)).collect();
        Fault::Reply(
            400,
            format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [{}]","CancellationReasons":[{}]}}"#,
                codes.join(", "),
                reasons.join(",")
            ),
        )
    }
}

struct Rule {
    operation: String,
    fault: Fault,
    remaining: Option<usize>,
}

struct State {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<String>>,
    serialize: Option<tokio::sync::Mutex<()>>,
}

/// The running proxy; stops with the test's runtime.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl FaultProxy {
    pub async fn start(upstream: &str, serialize: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            serialize: serialize.then(|| tokio::sync::Mutex::new(())),
        });
        let accept_state = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&accept_state);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&state), req));
                    // Errors are the point of some faults: ignore them.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Applies `fault` to the next `times` requests of `operation`
    /// (`None`: all of them, until [`FaultProxy::clear`]).
    pub fn inject(&self, operation: &str, fault: Fault, times: Option<usize>) {
        self.state.rules.lock().unwrap().push(Rule { operation: operation.to_owned(), fault, remaining: times });
        self.state.seen.lock().unwrap().clear();
    }

    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Requests of `operation` since the last [`FaultProxy::inject`].
    pub fn seen(&self, operation: &str) -> usize {
        self.state.seen.lock().unwrap().iter().filter(|o| *o == operation).count()
    }
}

fn take_fault(state: &State, operation: &str) -> Option<Fault> {
    let mut rules = state.rules.lock().unwrap();
    let index = rules.iter().position(|r| r.operation == operation && r.remaining != Some(0))?;
    let rule = &mut rules[index];
    if let Some(n) = rule.remaining.as_mut() {
        *n -= 1;
    }
    Some(rule.fault.clone())
}

fn json_response(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.0"));
    response
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    state.seen.lock().unwrap().push(operation.clone());
    let fault = take_fault(&state, &operation);
    match &fault {
        Some(Fault::DropRequest) => return Err("fault: request dropped".into()),
        Some(Fault::Reply(status, body)) => return Ok(json_response(*status, body.clone())),
        _ => {}
    }

    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = Request::builder().method(parts.method).uri(format!("{}{path}", state.upstream));
    for (name, value) in &parts.headers {
        if name != header::HOST {
            forward = forward.header(name, value);
        }
    }
    let forward = forward.body(Full::new(body))?;
    let (head, bytes) = {
        let _one_at_a_time = match &state.serialize {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let response = state.client.request(forward).await?;
        let (head, body) = response.into_parts();
        (head, body.collect().await?.to_bytes())
    };
    match fault {
        Some(Fault::DropResponse) => Err("fault: response dropped".into()),
        Some(Fault::EmptyQuery) => Ok(json_response(200, r#"{"Count":0,"Items":[],"ScannedCount":0}"#.to_owned())),
        _ => {
            let mut response = Response::new(Full::new(bytes));
            *response.status_mut() = head.status;
            for (name, value) in &head.headers {
                if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING && name != header::CONNECTION {
                    response.headers_mut().append(name, value.clone());
                }
            }
            Ok(response)
        }
    }
}
