//! The issuer: register, login, refresh, logout and the JWKS.
//!
//! One core, thin edges:
//! - [`session`]: the session rules (register, login with its lockout,
//!   refresh rotation with reuse detection, logout, logout-all) over any
//!   [`store::Store`], with time passed in and typed outcomes. No HTTP.
//! - [`app::App`]: the HTTP layer, over plain [`wire::Request`] and
//!   [`wire::Response`] values: bodies, cookies, CSRF, CORS, and the one
//!   mapping of outcomes to responses ([`error`]).
//! - [`server`]: the local HTTP adapter (hyper) and the local shape's SQLite
//!   store; [`lambda`]: the Lambda adapter (API Gateway proxy events).
//! - [`store`]: the `Store` trait with the SQLite and DynamoDB backends.
//!   Which backend runs is chosen by the binaries, never by the core.
//!
//! # Examples
//!
//! Serving a local issuer on a loopback port until a shutdown signal:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use issuer::{App, IssuerConfig};
//!
//! let cfg = IssuerConfig::local("http://127.0.0.1:8080", "api", "./data".into())?;
//! let app = Arc::new(issuer::server::local_app(cfg)?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! issuer::server::serve(listener, app, issuer::server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod app;
pub mod attempts;
pub mod config;
pub mod cookie;
pub mod error;
pub mod keys;
pub mod lambda;
pub mod mail;
pub mod password;
pub mod server;
pub mod session;
pub mod store;
pub mod tokens;
pub mod trace;
pub mod validate;
pub mod wire;

pub use app::{App, InitError};
pub use config::{IssuerConfig, Shape, StoreKind};
pub use error::ApiError;
pub use keys::KeyRing;
pub use session::{Issued, SessionError, SessionRules, Sessions};
pub use wire::{Request, Response};

/// Sets up logging once: JSON lines when `LOG_FORMAT=json`, text otherwise;
/// the level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
