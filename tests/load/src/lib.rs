//! A day at 70 million registered users (issue 15): the load model, the
//! dated price table, the bill computed from counted work, and an open-loop
//! load generator for the dev stack.
//!
//! - [`model`]: the day's traffic as typed parameters with their reasoning,
//!   and the diurnal curve that turns daily totals into rates per hour.
//! - [`prices`]: `docs/bench/prices.toml`, read into typed prices.
//! - [`bill`]: counted work per request type to DynamoDB units, Lambda
//!   GB-seconds, log bytes, and a monthly bill per service; Cognito at the
//!   same MAUs; capacity at the peak.
//! - [`load`]: the open-loop engine of the `auth-load` generator.
//! - [`report`]: the markdown `auth-bill` prints.
//! - [`stack`]: the dev stack as the generator drives it (seeding, routes).
//! - [`capacity`]: DynamoDB's capacity rules (item sizes, GSI entries)
//!   applied to real items; [`meter`]: the loopback proxy in front of moto
//!   that records each request's units.
//! - [`measure`]: the issuer driven in-process, per request type: DynamoDB
//!   requests and units, process CPU time, log bytes (`auth-work`).
//! - [`work`]: the work per request the bill multiplies: measured
//!   (`docs/bench/work.toml`) where measured, estimates elsewhere.

#![warn(missing_docs)]

pub mod bill;
pub mod capacity;
pub mod load;
pub mod measure;
pub mod measured;
pub mod meter;
pub mod model;
pub mod prices;
pub mod report;
pub mod stack;
pub mod work;
