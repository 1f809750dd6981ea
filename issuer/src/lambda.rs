//! The Lambda adapter: API Gateway proxy events (REST API v1 and HTTP API
//! v2, through `lambda_http`) to [`App`] and back.

use std::sync::Arc;

use bytes::Bytes;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt as _};

use crate::app::{App, MAX_BODY_BYTES, Request};
use crate::attempts::ClientAddr;
use crate::error::ApiError;
use crate::store::Store;

/// The client's address as API Gateway saw it: `requestContext.identity.sourceIp`
/// (REST API) or `requestContext.http.sourceIp` (HTTP API). Never a header:
/// any client can send `X-Forwarded-For`.
fn client_addr(event: &lambda_http::Request) -> Option<ClientAddr> {
    let ip = match event.request_context_ref()? {
        RequestContext::ApiGatewayV1(ctx) => ctx.identity.source_ip.as_deref(),
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref(),
        // Other event sources are not configured for this function.
        _ => None,
    };
    ip.and_then(ClientAddr::parse)
}

/// Translates one event, handles it, and translates the answer.
pub async fn handle_event<S: Store>(app: &App<S>, event: lambda_http::Request) -> lambda_http::Response<Body> {
    // The path as API Gateway received it, without the stage that
    // lambda_http adds to the URI (the app also strips the configured prefix).
    let path = match event.raw_http_path() {
        "" => event.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let client = client_addr(&event);
    let (parts, body) = event.into_parts();
    let query = parts.uri.query().filter(|q| !q.is_empty()).map(str::to_owned);
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let resp = if body.len() > MAX_BODY_BYTES {
        app.error_response(ApiError::PayloadTooLarge, &parts.headers)
    } else {
        app.handle(Request { method: parts.method, path, query, client, headers: parts.headers, body }).await
    };
    let body = if resp.body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(resp.body.to_vec()) {
            Ok(s) => Body::Text(s),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    let mut out = lambda_http::Response::new(body);
    *out.status_mut() = resp.status;
    *out.headers_mut() = resp.headers;
    out
}

/// Runs the Lambda runtime loop over `app` (built once, at init).
///
/// # Errors
/// When the runtime API fails.
pub async fn run<S: Store>(app: Arc<App<S>>) -> Result<(), lambda_http::Error> {
    // The trace id travels with the invocation (crate::trace), not through
    // the process environment, which leaks on glibc when set per invocation.
    lambda_runtime::set_trace_id_env(false);
    lambda_http::run(lambda_http::service_fn(move |event: lambda_http::Request| {
        let app = Arc::clone(&app);
        let trace_id = event.lambda_context_ref().and_then(|c| c.xray_trace_id.clone());
        async move { Ok::<_, lambda_http::Error>(crate::trace::scope(trace_id, handle_event(&app, event)).await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IssuerConfig, Shape};
    use crate::keys::KeyRing;
    use crate::store::sqlite::{SqliteOptions, SqliteStore};

    const REST: &str = include_str!("../tests/fixtures/apigw_rest_request.json");
    const HTTP_API: &str = include_str!("../tests/fixtures/apigw_v2_request.json");

    fn app(dir: &std::path::Path) -> App<SqliteStore> {
        let d = dir.to_string_lossy().into_owned();
        let pairs = [
            ("ISSUER_URL", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"),
            ("ISSUER_AUDIENCE", "api"),
            ("ISSUER_COOKIE_PATH_PREFIX", "/prod"),
            ("ISSUER_DATA_DIR", d.as_str()),
            // Accounts at once: the adapter is under test, not sign-up.
            ("ISSUER_REQUIRE_VERIFIED_EMAIL", "false"),
        ];
        let cfg = IssuerConfig::from_settings(&token_core::Settings::from_pairs(&pairs), Shape::Local).unwrap();
        let store = SqliteStore::open_in_dir(dir, &SqliteOptions::default()).unwrap();
        App::new(cfg, store, KeyRing::generate(token_core::Algorithm::ES256).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn rest_and_http_api_events_reach_the_handlers() {
        let dir = std::env::temp_dir().join(format!("issuer-lambda-{}", crate::tokens::random_id().unwrap()));
        let app = app(&dir);

        // REST API (v1): path without the stage, plain JSON body.
        let event = lambda_http::request::from_str(REST).unwrap();
        let resp = handle_event(&app, event).await;
        assert_eq!(resp.status(), 202, "{:?}", resp.body());

        // HTTP API (v2): stage in the raw path, base64 body, cookies array.
        let event = lambda_http::request::from_str(HTTP_API).unwrap();
        let resp = handle_event(&app, event).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.body());
        let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(cookies.len(), 2);
        assert!(cookies[0].contains("Path=/prod/refresh;"), "{cookies:?}");
        assert!(cookies[1].contains("Path=/prod/logout;"), "{cookies:?}");
        match resp.body() {
            Body::Text(t) => assert!(t.contains("\"token_type\":\"Bearer\"")),
            other => panic!("{other:?}"),
        }

        // Unknown route and wrong method through the adapter.
        let event = lambda_http::request::from_str(&REST.replace("\"/register\"", "\"/nope\"")).unwrap();
        assert_eq!(handle_event(&app, event).await.status(), 404);
        let event =
            lambda_http::request::from_str(&REST.replace("\"httpMethod\": \"POST\"", "\"httpMethod\": \"GET\""))
                .unwrap();
        assert_eq!(handle_event(&app, event).await.status(), 405);
        let _ = std::fs::remove_dir_all(&dir);
    }
    /// API Gateway hands the path and query to the function decoded: a
    /// client chooses their characters. None may panic the adapter
    /// (lambda_http builds a URI from them) or reach a route.
    #[tokio::test]
    async fn client_chosen_paths_and_queries_get_an_answer_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("issuer-lambda-{}", crate::tokens::random_id().unwrap()));
        let app = app(&dir);
        // As written inside the event's JSON (escapes included).
        let paths = [
            "/register#x",
            "/register?x=1",
            "/a b",
            "/a\\\\b",
            "/%zz",
            "/a|b",
            "/a{b}",
            "/a\\\"b",
            "/a^b",
            "/a`b",
            "/a<b>",
            "/\\u00e9",
            "/a\\u0000b",
            "/a\\u007fb",
            "//x",
            "/a%2Fb",
            "/@x:y",
            "/register/..",
        ];
        for p in paths {
            let rest = REST
                .replace("\"/register\"", &format!("\"{p}\""))
                .replace("\"queryStringParameters\": null", "\"queryStringParameters\": {\"q#\": \"a b&c=#\"}");
            let v2 = HTTP_API.replace("\"/prod/login\"", &format!("\"/prod{p}\""));
            for text in [rest, v2] {
                let event = lambda_http::request::from_str(&text).unwrap();
                let status = handle_event(&app, event).await.status();
                assert_eq!(status, 404, "{p}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
