//! The API Gateway Lambda authorizer on the shared token verifier.
//!
//! - [`event`]: TOKEN, REQUEST and HTTP API 2.0 events, told apart by shape.
//! - [`policy`]: the IAM policy for every route the token may call, and its
//!   evaluation.
//! - [`Authorizer::handle`]: the whole decision as a plain async function.
//!
//! The binary (`main.rs`) reads the configuration once at init, fetches the
//! JWKS while Lambda's init phase has a full CPU, and hands the handler to
//! `lambda_runtime`.
#![warn(missing_docs)]

pub mod config;
pub mod event;
pub mod handler;
pub mod policy;

pub use config::{AuthorizerConfig, HttpApiResponse, Route};
pub use event::{AuthorizerEvent, EventKind};
pub use handler::{Answer, AuthContext, Authorizer, AuthorizerError};
