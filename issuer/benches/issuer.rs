//! Issuer benchmarks on the embedded (SQLite) store.
//!
//! - `login/hash`: verifying one argon2id password (m=19456 KiB, t=2, p=1);
//! - `login/rest`: everything else a login does (find the user, record the
//!   success, create the session, sign the RS256 access token);
//! - `login/total`: a whole login through `App::handle` (no socket);
//! - `refresh/app`, `jwks/app`: through `App::handle`, requests per second;
//! - `refresh/http`, `jwks/http`: the same over the loopback HTTP server.
//!
//! Run: `cargo bench -p issuer --bench issuer`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderValue, Method};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use issuer::Request;
use issuer::config::IssuerConfig;
use issuer::store::Store as _;
use issuer::store::{Family, NewRefresh};

const PASSWORD: &str = "correct horse battery";

fn temp_dir() -> PathBuf {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    let p = std::env::temp_dir().join(format!("issuer-bench-{:016x}", u64::from_le_bytes(b)));
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn json_request(path: &str, body: &str) -> Request {
    let mut r = Request::new(Method::POST, path);
    r.headers.insert("content-type", HeaderValue::from_static("application/json"));
    r.body = Bytes::from(body.to_owned());
    r
}

fn refresh_request(token: &str) -> Request {
    let mut r = Request::new(Method::POST, "/refresh");
    r.headers.insert("x-requested-with", HeaderValue::from_static("bench"));
    r.headers.insert("cookie", HeaderValue::from_str(&format!("__Secure-refresh_token={token}")).unwrap());
    r
}

fn cookie_of(headers: &http::HeaderMap) -> String {
    let c = headers.get("set-cookie").unwrap().to_str().unwrap();
    c.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = temp_dir();
    // The account at once: login, not sign-up, is measured.
    let cfg = IssuerConfig {
        require_verified_email: false,
        ..IssuerConfig::local("http://127.0.0.1:8080", "api", dir.clone()).unwrap()
    };
    let app = Arc::new(issuer::server::local_app(cfg).unwrap());
    let creds = serde_json::json!({"email": "bench@example.com", "password": PASSWORD}).to_string();
    rt.block_on(async {
        assert_eq!(app.handle(json_request("/register", &creds)).await.status, 202);
    });
    let user = rt.block_on(app.store().find_user_by_email("bench@example.com")).unwrap().unwrap();

    let mut g = c.benchmark_group("login");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.bench_function("hash", |b| {
        b.iter(|| app.hasher().verify_blocking(PASSWORD, Some(&user.password_hash)).unwrap());
    });
    g.bench_function("rest", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let now = token_core::unix_now().as_secs();
                    let u = app.store().find_user_by_email("bench@example.com").await.unwrap().unwrap();
                    assert!(app.store().record_login_success(&u.user_id, now, None).await.unwrap());
                    let family = Family {
                        family_id: issuer::tokens::random_id().unwrap(),
                        user_id: u.user_id.clone(),
                        created_at: now,
                        expires_at: now + 7_776_000,
                        revoked_at: None,
                    };
                    let token = issuer::tokens::new_refresh_token().unwrap();
                    let first = NewRefresh {
                        token_hash: issuer::tokens::hash_refresh_token(&token),
                        family_id: family.family_id.clone(),
                        user_id: u.user_id.clone(),
                        issued_at: now,
                        expires_at: now + 2_592_000,
                    };
                    app.store().create_session(&family, &first).await.unwrap();
                    let claims = token_core::AccessClaims {
                        iss: "http://127.0.0.1:8080".into(),
                        sub: u.user_id.clone(),
                        aud: token_core::Audience::One("api".into()),
                        exp: now + 900,
                        iat: now,
                        nbf: None,
                        jti: issuer::tokens::random_id().unwrap(),
                        scope: u.scope.clone(),
                        client_id: None,
                        sid: None,
                    };
                    std::hint::black_box(app.keys().active().sign(&claims).unwrap());
                }
                start.elapsed()
            })
        });
    });
    g.bench_function("total", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(app.handle(json_request("/login", &creds)).await.status, 200);
                }
                start.elapsed()
            })
        });
    });
    g.finish();

    let login = rt.block_on(app.handle(json_request("/login", &creds)));
    let mut token = cookie_of(&login.headers);
    let mut g = c.benchmark_group("refresh");
    g.throughput(Throughput::Elements(1));
    g.bench_function("app", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let r = app.handle(refresh_request(&token)).await;
                    assert_eq!(r.status, 200);
                    token = cookie_of(&r.headers);
                }
                start.elapsed()
            })
        });
    });

    // The same over the loopback HTTP server.
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::clone(&app);
    rt.spawn(async move { issuer::server::serve(listener, served, std::future::pending()).await });
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let send = |req: Request| {
        let mut b = http::Request::builder().method(req.method).uri(format!("{base}{}", req.path));
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        let req = b.body(Full::new(req.body)).unwrap();
        let client = client.clone();
        async move {
            let resp = client.request(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            let _ = body.collect().await.unwrap();
            parts
        }
    };
    g.bench_function("http", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let parts = send(refresh_request(&token)).await;
                    assert_eq!(parts.status, 200);
                    token = cookie_of(&parts.headers);
                }
                start.elapsed()
            })
        });
    });
    g.finish();

    // Where a refresh's time goes: the store calls alone, and signing.
    let mut g = c.benchmark_group("refresh_parts");
    g.bench_function("store_only", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let family = Family {
                    family_id: issuer::tokens::random_id().unwrap(),
                    user_id: user.user_id.clone(),
                    created_at: token_core::unix_now().as_secs(),
                    expires_at: token_core::unix_now().as_secs() + 7_776_000,
                    revoked_at: None,
                };
                let record = |hash: String, now: u64| NewRefresh {
                    token_hash: hash,
                    family_id: family.family_id.clone(),
                    user_id: user.user_id.clone(),
                    issued_at: now,
                    expires_at: now + 2_592_000,
                };
                let now = token_core::unix_now().as_secs();
                let mut current = issuer::tokens::random_id().unwrap();
                app.store().create_session(&family, &record(current.clone(), now)).await.unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    let (rec, _) = app.store().get_refresh(&current).await.unwrap().unwrap();
                    app.store().get_user(&rec.user_id).await.unwrap().unwrap();
                    let next = issuer::tokens::random_id().unwrap();
                    let outcome = app.store().rotate(&current, &record(next.clone(), now), now).await.unwrap();
                    assert_eq!(outcome, issuer::store::RotateOutcome::Rotated);
                    current = next;
                }
                start.elapsed()
            })
        });
    });
    for alg in token_core::Algorithm::ALL {
        let key = token_core::SigningKey::generate(alg, "k").unwrap();
        let claims = token_core::AccessClaims {
            iss: "http://127.0.0.1:8080".into(),
            sub: user.user_id.clone(),
            aud: token_core::Audience::One("api".into()),
            exp: 2_000_000_000,
            iat: 1_900_000_000,
            nbf: None,
            jti: "jti".into(),
            scope: "openid".into(),
            client_id: None,
            sid: None,
        };
        g.bench_function(format!("sign_{alg}"), |b| b.iter(|| key.sign(&claims).unwrap()));
    }
    g.finish();

    let mut g = c.benchmark_group("jwks");
    g.throughput(Throughput::Elements(1));
    g.bench_function("app", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let r = app.handle(Request::new(Method::GET, "/.well-known/jwks.json")).await;
                    assert_eq!(r.status, 200);
                }
                start.elapsed()
            })
        });
    });
    g.bench_function("http", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let parts = send(Request::new(Method::GET, "/.well-known/jwks.json")).await;
                    assert_eq!(parts.status, 200);
                }
                start.elapsed()
            })
        });
    });
    g.finish();
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(issuer_benches, benches);
criterion_main!(issuer_benches);
