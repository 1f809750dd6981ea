//! The API Gateway Lambda authorizer on the shared token verifier.
//!
//! - [`event`]: TOKEN, REQUEST and HTTP API 2.0 events, told apart by shape.
//! - [`routes`]: the route map and how a request finds its entry.
//! - [`policy`]: the IAM policy for exactly the method and resource asked,
//!   and its evaluation.
//! - [`Authorizer::handle`]: the whole decision as a plain async function.
//!
//! The binary (`main.rs`) reads the configuration once at init, fetches the
//! JWKS while Lambda's init phase has a full CPU, and hands the handler to
//! `lambda_runtime`.
#![warn(missing_docs)]

pub mod config;
pub mod event;
pub mod handler;
pub mod metrics;
pub mod policy;
pub mod routes;

pub use config::{AuthorizerConfig, HttpApiResponse};
pub use event::{AuthorizerEvent, EventKind, rest_cache_key};
pub use handler::{Answer, AuthContext, Authorizer, AuthorizerError};
pub use routes::{Route, RouteMap};
