//! X-Ray trace propagation for the AWS SDK calls one invocation makes.
//!
//! Lambda hands each invocation its trace id in the invocation's `Context`.
//! lambda_runtime used to export it as the process-wide `_X_AMZN_TRACE_ID`
//! variable, which the AWS SDK's recursion-detection interceptor copies onto
//! `X-Amzn-Trace-Id`; that `setenv` on every invocation leaks on glibc (see
//! the authorizer README, "Memory"), so the issuer turns it off and carries
//! the id itself: the Lambda adapter runs each invocation inside [`scope`],
//! and [`TraceHeader`], installed on every SDK client, puts the id on the
//! request the same way the SDK would have.

use std::future::Future;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

/// The header X-Ray reads.
pub const TRACE_ID_HEADER: &str = "x-amzn-trace-id";

tokio::task_local! {
    static TRACE_ID: Option<String>;
}

/// Runs `f` with `trace_id` as the current invocation's trace.
pub async fn scope<F: Future>(trace_id: Option<String>, f: F) -> F::Output {
    TRACE_ID.scope(trace_id, f).await
}

/// The current invocation's trace id, if any.
pub fn current() -> Option<String> {
    TRACE_ID.try_with(Clone::clone).ok().flatten()
}

/// Adds `X-Amzn-Trace-Id` from [`current`] to outgoing SDK requests that do
/// not carry one yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceHeader;

impl Intercept for TraceHeader {
    fn name(&self) -> &'static str {
        "TraceHeader"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        if request.headers().contains_key(TRACE_ID_HEADER) {
            return Ok(());
        }
        if let Some(id) = current() {
            // A trace id is visible ASCII; anything else is dropped, never sent.
            if id.bytes().all(|b| b.is_ascii_graphic()) {
                request.headers_mut().insert(TRACE_ID_HEADER, id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::store::Store;
    use crate::store::dynamo::{DynamoConfig, DynamoStore};

    /// A loopback endpoint that records the trace header of each request
    /// and answers like a throttled DynamoDB.
    async fn recorder() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
        use hyper::server::conn::http1;
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let v = req.headers().get(TRACE_ID_HEADER).map(|v| v.to_str().unwrap().to_owned());
                        log.lock().unwrap().push(v);
                        async {
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(400)
                                    .header("content-type", "application/x-amz-json-1.0")
                                    .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                        br#"{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"no"}"#,
                                    )))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                });
            }
        });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn sdk_requests_carry_the_invocations_trace_id() {
        let (endpoint, seen) = recorder().await;
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new("k", "s", None, None, "test"),
            ))
            .build();
        let cfg = DynamoConfig { endpoint: Some(endpoint), ..DynamoConfig::default() };
        let store = DynamoStore::new(&sdk, &cfg);
        let id = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let _ = scope(Some(id.to_owned()), store.get_user("u1")).await;
        let _ = store.get_user("u2").await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, vec![Some(id.to_owned()), None]);
    }

    #[tokio::test]
    async fn current_is_scoped_to_the_invocation() {
        assert_eq!(current(), None);
        assert_eq!(scope(Some("Root=1-a".into()), async { current() }).await.as_deref(), Some("Root=1-a"));
        assert_eq!(scope(None, async { current() }).await, None);
    }
}
