//! The sseloop hub: a program over the sseloop library. One module per
//! concern, so a newcomer finds each in its own file:
//!
//! - [`config`]: flags and environment variables;
//! - [`routes`]: which request goes where, and the native routes;
//! - [`history`]: the events kept for replay on reconnect;
//! - [`metrics`]: the Prometheus exposition;
//! - [`cors`]: the CORS headers and preflights;
//! - [`json`]: the JSON the hub writes;
//! - [`signals`]: SIGINT/SIGTERM to a graceful shutdown.

#![warn(missing_docs)]

pub mod config;
pub mod cors;
pub mod history;
pub mod json;
pub mod metrics;
pub mod routes;
pub mod signals;

pub use crate::config::Config;
pub use crate::routes::Hub;
