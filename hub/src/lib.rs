//! The sseloop hub: a program over the sseloop library. One module per
//! concern, so a newcomer finds each in its own file:
//!
//! - [`config`]: flags and environment variables;
//! - [`auth`]: JWT authorization: tokens, claims, refusals that say why;
//! - [`jwks`]: trusted issuers' keys from their JWK Sets, fetched off the loop;
//! - [`update`]: the update every protocol decodes into;
//! - [`subscribers`]: who receives an update, grouped by selectors;
//! - [`hub`]: the hub's state and what every route shares (opening a
//!   stream, delivering and publishing an update, common answers);
//! - [`routes`]: which request goes where, and the native routes;
//! - [`mercure`]: the Mercure routes on `/.well-known/mercure`;
//! - [`metadata`]: the hub's OAuth protected resource metadata (RFC 9728);
//! - [`subscription`]: a Mercure subscription as the API shows it;
//! - [`subscriptions`]: Mercure's subscriptions API and events;
//! - [`paths`]: path segments, encoded and decoded, and the host a request reached;
//! - [`page`]: a listing's page, its cursor and the link to the next;
//! - [`history`]: the events kept for replay on reconnect;
//! - [`broker`]: several hubs as one, through a shared log in Redis;
//! - [`presence`]: which hub holds which client, and commands across hubs;
//! - [`inbox`]: what the Redis threads hand the loop;
//! - [`redis_link`]: one connection to Redis with deadlines;
//! - [`metrics`]: the Prometheus exposition;
//! - [`mint`]: `sseloop token`, tokens the hub accepts;
//! - [`cors`]: the CORS headers and preflights;
//! - [`json`]: the JSON the hub writes;
//! - [`signals`]: SIGINT/SIGTERM to a graceful shutdown, SIGHUP to a reload;
//! - [`tls`]: HTTPS: the certificate, checked at start and reloaded;
//! - [`topics`]: Mercure topic selectors (URI templates), compiled once;
//! - [`waiting`]: publishes waiting on Redis, each answered by its deadline.

#![warn(missing_docs)]

pub mod auth;
pub mod broker;
pub mod config;
pub mod cors;
pub mod deliveries;
pub mod history;
pub mod hub;
pub mod inbox;
pub mod json;
pub mod jwks;
pub mod mercure;
pub mod metadata;
pub mod metrics;
pub mod mint;
pub mod page;
pub mod paths;
pub mod presence;
pub mod redis_link;
pub mod routes;
pub mod signals;
pub mod subscribers;
pub mod subscription;
pub mod subscriptions;
pub mod tls;
pub mod topics;
pub mod update;
pub mod waiting;

pub use crate::config::Config;
pub use crate::hub::Hub;
