//! End-to-end tests across the crates. One test binary (each file in tests/
//! would be another binary to link); suites are modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authorizer;
mod issuer_lambda;
mod jwks;
mod recovery;
mod revocation;
mod route_map;
mod secrets_in_logs;
mod sidecar;
mod stack;
mod trace_env;
