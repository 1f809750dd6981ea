//! The token core shared by the authorizer, the sidecar and the issuer.
//!
//! - [`Verifier`]: verifies access tokens in the RFC 9068 profile against the
//!   JWKS of one or more trusted issuers, with the RFC 8725 rules (algorithm
//!   allowlist, no `crit`, keys only from configuration). Verification does
//!   no I/O; keys are fetched off the hot path and cached.
//! - Revocation: [`revocation`] is the feed's wire contract shared with the
//!   issuer; [`revocation_set::RevocationSet`] holds the revoked sessions and
//!   subjects every verification checks (in memory, no I/O);
//!   [`revocation_feed::FeedFollower`] fills it from the issuer's feed.
//! - [`SigningKey`]: the issuer's side: signs tokens in the same profile and
//!   publishes its public key as a JWK.
//! - [`VerifierConfig`] and [`Settings`]: configuration from the environment,
//!   validated at start-up with errors that name the variable.
//! - `serve` (feature `serve`): the bounded, gracefully stopping HTTP accept
//!   loop and the shutdown signal that every local server shares.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use token_core::{AccessClaims, Algorithm, Audience, SigningKey};
//!
//! let key = SigningKey::generate(Algorithm::ES256, "2026-11").unwrap();
//! let token = key
//!     .sign(&AccessClaims {
//!         iss: "https://auth.example.com".into(),
//!         sub: "user-1".into(),
//!         aud: Audience::One("api".into()),
//!         exp: 1_900_000_900,
//!         iat: 1_900_000_000,
//!         nbf: None,
//!         jti: "t-1".into(),
//!         scope: "pets:read".into(),
//!         client_id: None,
//!         sid: None,
//!     })
//!     .unwrap();
//! assert_eq!(token.split('.').count(), 3);
//! ```
#![warn(missing_docs)]

mod alg;
mod bearer;
mod cache;
pub mod config;
mod error;
mod jose;
pub mod keys;
pub mod metrics;
pub mod revocation;
pub mod revocation_feed;
pub mod revocation_set;
#[cfg(feature = "serve")]
pub mod serve;
pub mod sign;
mod token;
mod verifier;

pub use alg::{Algorithm, UnknownAlgorithm};
pub use bearer::{Credentials, parse_authorization};
pub use config::{ConfigError, RevocationConfig, Settings, StalePolicy, TrustedIssuer, VerifierConfig};
pub use error::{Claim, VerifyError};
pub use metrics::{Decision, Metrics};
pub use sign::{AccessClaims, Audience, PublicJwk, PublicJwks, SignError, SigningKey};
pub use token::VerifiedToken;
pub use verifier::{FetchError, Health, InitError, IssuerHealth, Verifier, unix_now};
