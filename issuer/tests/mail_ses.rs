//! The SES transport ([`issuer::mail::Ses`]) against moto's SESv2, which
//! moto serves on the same server as DynamoDB: `DYNAMODB_ENDPOINT` (started
//! by `scripts/test.sh`). Without it the moto tests fail: they never skip.
//!
//! What moto cannot show is checked against loopback stand-ins: the request
//! itself (moto keeps only the HTML body of a message with both), SES's
//! refusals and throttling, and an endpoint that never answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sesv2::config::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use issuer::config::{IssuerConfig, Shape};
use issuer::mail::{Branding, MailError, Mailer, Message, MessageKind, Ses, SesConfig, compose, link};
use token_core::Settings;

const MISSING_ENDPOINT: &str = "DYNAMODB_ENDPOINT is not set: run scripts/test.sh, which starts moto (it serves \
     SESv2 beside DynamoDB), or point it at one";

const KINDS: [MessageKind; 5] = [
    MessageKind::VerifyEmail,
    MessageKind::SignupAttempt,
    MessageKind::PasswordReset,
    MessageKind::ResetUnknownAddress,
    MessageKind::PasswordChanged,
];

fn endpoint() -> String {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(v) if !v.trim().is_empty() => v.trim().trim_end_matches('/').to_owned(),
        _ => panic!("{MISSING_ENDPOINT}"),
    }
}

/// Static credentials and region: moto accepts anything, and nothing here
/// may reach for real credentials (IMDS, profiles).
async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "issuer-tests"))
        .load()
        .await
}

/// Unique per test and run: moto's state is shared by every test binary.
fn unique(tag: &str) -> String {
    format!("{tag}-{:08x}", rand::random::<u32>())
}

fn branding() -> Branding {
    Branding { product: "Pets & Co".into(), link_base: "https://app.example.com".into() }
}

/// Creates an email identity for `address` in moto (it counts as verified).
async fn create_identity(sdk: &SdkConfig, endpoint: &str, address: &str) {
    let conf = aws_sdk_sesv2::config::Builder::from(sdk).endpoint_url(endpoint).build();
    aws_sdk_sesv2::Client::from_conf(conf).create_email_identity().email_identity(address).send().await.unwrap_or_else(
        |e| panic!("CreateEmailIdentity at {endpoint}: {}", aws_sdk_sesv2::error::DisplayErrorContext(e)),
    );
}

/// `GET url`, the body as JSON (plain HTTP/1.1 over loopback, 10 s bound).
async fn get_json(url: &str) -> serde_json::Value {
    let uri: http::Uri = url.parse().unwrap();
    let authority = uri.authority().unwrap().clone();
    let fetch = async {
        let stream = tokio::net::TcpStream::connect(authority.as_str()).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let req =
            http::Request::get(uri.path()).header("host", authority.as_str()).body(Full::new(Bytes::new())).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "GET {url}");
        resp.into_body().collect().await.unwrap().to_bytes()
    };
    let body = tokio::time::timeout(Duration::from_secs(10), fetch).await.expect("GET moto-api/data.json timed out");
    serde_json::from_slice(&body).unwrap()
}

/// The messages moto recorded to `to`.
async fn moto_messages_to(endpoint: &str, to: &str) -> Vec<serde_json::Value> {
    let data = get_json(&format!("{endpoint}/moto-api/data.json")).await;
    let all = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    all.into_iter()
        .filter(|m| m["destinations"]["ToAddresses"].as_array().is_some_and(|a| a.iter().any(|t| t == to)))
        .collect()
}

#[tokio::test]
async fn each_kind_of_message_reaches_moto() {
    let endpoint = endpoint();
    let sdk = sdk_config().await;
    let run = unique("run");
    let address = format!("no-reply-{run}@mail.example.com");
    create_identity(&sdk, &endpoint, &address).await;
    let from = format!("Pets Tests <{address}>");
    let ses = Ses::new(&sdk, &SesConfig { endpoint: Some(endpoint.clone()), ..SesConfig::new(from.clone()) });
    let mailer = Mailer::new(ses);
    assert_eq!(mailer.transport_name(), "ses");

    let token = format!("tok-{run}+/=");
    let mut sent: Vec<Message> = Vec::new();
    for kind in KINDS {
        let to = format!("{}-{run}@example.com", kind.name().replace('_', "-"));
        let msg = compose(kind, &to, &branding(), Some(&token));
        mailer.send(&msg).await.unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
        sent.push(msg);
    }

    for msg in &sent {
        let got = moto_messages_to(&endpoint, &msg.to).await;
        assert_eq!(got.len(), 1, "{}: one message to {}: {got:?}", msg.kind.name(), msg.to);
        let got = &got[0];
        assert_eq!(got["source"], from.as_str());
        assert_eq!(got["subject"], msg.subject.as_str());
        // moto keeps the HTML body of a message that has both (the text body
        // is checked on the wire in `the_request_carries_both_bodies_in_utf8`).
        let html = got["body"].as_str().unwrap();
        assert_eq!(html, msg.html);
        let shown = html_escape::decode_html_entities(html);
        match link(msg.kind, &branding(), &token) {
            Some(link) => {
                assert!(link.contains("token=tok-"), "{link}");
                assert!(shown.contains(&link), "{}: {link} not in {shown}", msg.kind.name());
                assert!(msg.text.contains(&link), "{}", msg.text);
            }
            None => assert!(!shown.contains("token="), "{}: a notice carries no link", msg.kind.name()),
        }
    }
}

#[tokio::test]
async fn the_configured_mailer_sends_through_moto() {
    let endpoint = endpoint();
    let sdk = sdk_config().await;
    let address = format!("{}@mail.example.com", unique("sender"));
    create_identity(&sdk, &endpoint, &address).await;
    let pairs = [
        ("ISSUER_URL", "https://auth.example.com"),
        ("ISSUER_AUDIENCE", "api"),
        ("ISSUER_SIGNING_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:000000000000:secret:k"),
        ("ISSUER_MAIL_FROM", address.as_str()),
        ("SES_ENDPOINT", endpoint.as_str()),
    ];
    // Lambda-shaped: SES is the default transport there.
    let cfg = IssuerConfig::from_settings(&Settings::from_pairs(&pairs), Shape::Lambda).unwrap();
    let mailer = Mailer::from_config(&cfg, Some(&sdk)).await.unwrap();
    assert_eq!(mailer.transport_name(), "ses");
    let to = format!("{}@example.com", unique("configured"));
    let msg = compose(MessageKind::PasswordReset, &to, &cfg.branding, Some("t0k"));
    mailer.send(&msg).await.unwrap();
    let got = moto_messages_to(&endpoint, &to).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["source"], address.as_str());
    assert!(
        html_escape::decode_html_entities(got[0]["body"].as_str().unwrap())
            .contains("https://auth.example.com/reset-password?token=t0k")
    );
}

#[tokio::test]
async fn a_sender_without_identity_is_rejected() {
    let endpoint = endpoint();
    let sdk = sdk_config().await;
    // No CreateEmailIdentity for this sender nor its domain: moto refuses as
    // SES does, 400 MessageRejected ("Email address not verified").
    let from = format!("{}@unverified-{}.example.com", unique("nobody"), unique("d"));
    let ses = Ses::new(&sdk, &SesConfig { endpoint: Some(endpoint.clone()), ..SesConfig::new(from) });
    let to = format!("{}@example.com", unique("rejected"));
    let msg = compose(MessageKind::VerifyEmail, &to, &branding(), Some("secret-token-value"));
    let err = Mailer::new(ses).send(&msg).await.unwrap_err();
    match &err {
        MailError::Rejected(what) => assert!(what.contains("MessageRejected"), "{what}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.to_string().contains("secret-token-value"), "{err}");
    assert!(moto_messages_to(&endpoint, &to).await.is_empty(), "a refused message is not recorded");
}

/// A loopback SES stand-in: answers every request with `status` and
/// `body` (and the error type header when `error` is set), recording each
/// request's JSON body.
async fn stand_in(
    status: u16,
    error: Option<&'static str>,
    body: String,
) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (log, body) = (Arc::clone(&log), body.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (log, body) = (Arc::clone(&log), body.clone());
                    async move {
                        let bytes = req.into_body().collect().await.unwrap().to_bytes();
                        log.lock().unwrap().push(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null));
                        let mut resp =
                            hyper::Response::builder().status(status).header("content-type", "application/json");
                        if let Some(code) = error {
                            resp = resp.header("x-amzn-errortype", code);
                        }
                        Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(body))).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// Static settings without loading anything from the environment.
fn static_sdk() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sesv2::config::SharedCredentialsProvider::new(Credentials::new(
            "k", "s", None, None, "test",
        )))
        .build()
}

/// Short backoff so the retry tests do not wait.
fn stand_in_config(endpoint: String) -> SesConfig {
    SesConfig {
        endpoint: Some(endpoint),
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..SesConfig::new("Pets <no-reply@example.com>")
    }
    .with_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn the_request_carries_both_bodies_in_utf8() {
    let (endpoint, seen) = stand_in(200, None, r#"{"MessageId":"m-1"}"#.to_owned()).await;
    let cfg = SesConfig { configuration_set: Some("auth-mail".into()), ..stand_in_config(endpoint) };
    let ses = Ses::new(&static_sdk(), &cfg);
    let msg = compose(MessageKind::VerifyEmail, "ada@example.com", &branding(), Some("tök"));
    Mailer::new(ses).send(&msg).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req["FromEmailAddress"], "Pets <no-reply@example.com>");
    assert_eq!(req["Destination"]["ToAddresses"], serde_json::json!(["ada@example.com"]));
    assert_eq!(req["ConfigurationSetName"], "auth-mail");
    let simple = &req["Content"]["Simple"];
    assert_eq!(simple["Subject"], serde_json::json!({"Data": msg.subject, "Charset": "UTF-8"}));
    assert_eq!(simple["Body"]["Text"], serde_json::json!({"Data": msg.text, "Charset": "UTF-8"}));
    assert_eq!(simple["Body"]["Html"], serde_json::json!({"Data": msg.html, "Charset": "UTF-8"}));
    assert!(msg.text.contains("https://app.example.com/verify-email?token=t%C3%B6k"), "{}", msg.text);
}

#[tokio::test]
async fn refusals_are_rejected_at_once_and_outages_retried_then_unavailable() {
    let cases: [(u16, &'static str, bool); 7] = [
        (400, "MessageRejected", false),
        (400, "MailFromDomainNotVerifiedException", false),
        (400, "AccountSuspendedException", false),
        (400, "SendingPausedException", false),
        (400, "BadRequestException", false),
        (429, "TooManyRequestsException", true),
        (500, "InternalFailure", true),
    ];
    for (status, code, later) in cases {
        let body = format!(r#"{{"message":"refused: {code}"}}"#);
        let (endpoint, seen) = stand_in(status, Some(code), body).await;
        let cfg = stand_in_config(endpoint);
        let msg = compose(MessageKind::PasswordReset, "ada@example.com", &branding(), Some("secret-token-value"));
        let err = Mailer::new(Ses::new(&static_sdk(), &cfg)).send(&msg).await.unwrap_err();
        let what = match (&err, later) {
            (MailError::Unavailable(w), true) | (MailError::Rejected(w), false) => w,
            _ => panic!("{code}: got {err:?}"),
        };
        assert!(what.contains(code) && what.contains(&format!("HTTP {status}")), "{what}");
        assert!(!what.contains("secret-token-value") && !what.contains("ada@"), "{what}");
        // Refusals are final; outages are retried, boundedly.
        let attempts = seen.lock().unwrap().len();
        assert_eq!(attempts, if later { cfg.max_attempts as usize } else { 1 }, "{code}");
    }
}

#[tokio::test]
async fn an_endpoint_that_never_answers_is_unavailable() {
    // Accepts connections and reads nothing, answers nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            keep.lock().unwrap().push(stream);
        }
    });
    let cfg = SesConfig { endpoint: Some(format!("http://{addr}")), ..SesConfig::new("no-reply@example.com") }
        .with_timeout(Duration::from_millis(600));
    let msg = compose(MessageKind::VerifyEmail, "ada@example.com", &branding(), Some("secret-token-value"));
    let err = Mailer::new(Ses::new(&static_sdk(), &cfg)).send(&msg).await.unwrap_err();
    match &err {
        MailError::Unavailable(what) => assert!(what.contains("timed out"), "{what}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(!held.lock().unwrap().is_empty(), "the transport did connect");
}
