//! The sseloop hub: a program over the sseloop library. One module per
//! concern, so a newcomer finds each in its own file:
//!
//! - [`config`]: flags and environment variables;
//! - [`auth`]: JWT authorization: tokens, claims, refusals that say why;
//! - [`subscribers`]: who receives an update, grouped by selectors;
//! - [`routes`]: which request goes where, the native routes, and what
//!   both interfaces share (opening a stream, delivering an update);
//! - [`mercure`]: the Mercure routes on `/.well-known/mercure`;
//! - [`subscriptions`]: Mercure's subscriptions API and events;
//! - [`history`]: the events kept for replay on reconnect;
//! - [`broker`]: several hubs as one, through a shared log in Redis;
//! - [`presence`]: which hub holds which client, and commands across hubs;
//! - [`metrics`]: the Prometheus exposition;
//! - [`cors`]: the CORS headers and preflights;
//! - [`json`]: the JSON the hub writes;
//! - [`signals`]: SIGINT/SIGTERM to a graceful shutdown;
//! - [`topics`]: Mercure topic selectors (URI templates), compiled once;
//! - [`waiting`]: publishes waiting on Redis, each answered by its deadline.

#![warn(missing_docs)]

pub mod auth;
pub mod broker;
pub mod config;
pub mod cors;
pub mod history;
pub mod json;
pub mod mercure;
pub mod metrics;
pub mod presence;
pub mod routes;
pub mod signals;
pub mod subscribers;
pub mod subscriptions;
pub mod topics;
pub mod waiting;

pub use crate::config::Config;
pub use crate::routes::Hub;
