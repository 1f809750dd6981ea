//! The forward-auth sidecar: the token core's verifier over HTTP on
//! localhost, for services outside API Gateway.
//!
//! [`Sidecar::handle`] is the whole behaviour as a plain function;
//! [`server::serve`] is the hyper adapter; `main.rs` reads the configuration
//! and wires them.
#![warn(missing_docs)]

pub mod config;
pub mod server;
pub mod service;

pub use config::{Command, LogFormat, SidecarConfig};
pub use server::{Limits, serve, shutdown_signal};
pub use service::Sidecar;

impl SidecarConfig {
    /// The server limits from this configuration.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            header_timeout: self.header_timeout,
            max_head_bytes: self.max_header_bytes,
            drain_timeout: self.shutdown_grace,
        }
    }
}
