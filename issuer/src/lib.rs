//! The issuer: register, login, refresh, logout and the JWKS.
#![warn(missing_docs)]

pub mod store;
