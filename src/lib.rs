//! sseloop: a Server-Sent Events server written from the socket up, on one
//! single-threaded `mio` event loop that a program embeds.
//!
//! Each request goes to a [`Handler`], which answers it plainly or turns it
//! into an event stream. Every stream has a **seid** (server event id), from a
//! pluggable [`SeidGenerator`], by which any handler or any thread (through a
//! [`Handle`]) can reach it. Events are encoded once into shared [`Frame`]s,
//! queued by reference, and written with one `write`/`writev` per client per
//! pass of the loop. A publish to a topic costs the same whatever the number
//! of subscribers: the frame goes on the topic's log once, and each
//! subscriber takes everything it has not seen in one visit when its write
//! comes. Idle, stalled and slow clients are evicted through a timer wheel
//! and a per-client queue cap, never at the expense of the others.
//!
//! # Quick start
//!
//! ```no_run
//! use sseloop::{Event, Reply, Request, Response, Server};
//!
//! let server = Server::builder()
//!     .bind("127.0.0.1:8080")?
//!     .build(|req: &Request, reply: &mut Reply<'_>| match req.path() {
//!         "/events" => {
//!             // Opens the stream (200, text/event-stream) and sends one event.
//!             let _ = reply.send(Event::new("hello world").event("greeting"));
//!             // Tell everyone else who arrived.
//!             let seid = reply.seid().unwrap_or_default().to_owned();
//!             let _ = reply.broadcast(Event::new(seid).event("joined"));
//!         }
//!         _ => {
//!             let _ = reply.respond(Response::text(404, "not found\n"));
//!         }
//!     })?;
//! let handle = server.handle(); // Clone + Send + Sync: give it to other threads
//! # drop(handle);
//! server.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Answers that come later
//!
//! A handler can [`defer`](Reply::defer) its answer and hand the
//! [`Deferred`] token (`Send`) to another thread, which answers plainly or
//! opens the stream when it is ready; the loop never waits for it. See
//! [`Reply::defer`] and [`Handle`] (which of its calls refuse on the loop's
//! own thread, and why).
//!
//! # The seed's API in Rust
//!
//! | fastify-se | sseloop |
//! |---|---|
//! | `reply.sendEvent(data, event?, id?, retry?)` | [`Reply::send`]`(Event::new(data).event(..).id(..).retry(..))` |
//! | `reply.sendEventBySeid(seid, …)` | [`Streams::send_to`] (a `Reply` derefs to it), [`Handle::send_to`] |
//! | `reply.endEvent()` | [`Reply::end`], [`Handle::end`] |
//! | `req.seid` | [`Reply::seid`] |
//! | `clients` | [`Streams::clients`], [`Streams::client_count`], [`Handle::client_count`] |
//! | `autoGenerateId` | [`Builder::auto_generate_id`] |
//! | `serverTimeout` | [`Builder::server_timeout`] |
//! | `seidGenerator` | [`Builder::seid_generator`] |
//! | `stream` / `streamOptions` | [`Builder::max_queue_bytes`] |

// One call needs `unsafe` (`listen` with a backlog, in `listen.rs`); nothing
// else may.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod auth;
mod conn;
mod core;
mod date;
mod deadlines;
mod directory;
mod error;
pub mod frame;
mod handle;
pub mod http;
mod listen;
mod outbox;
pub mod parse;
mod queue;
mod reply;
mod response;
pub mod seid;
mod server;
mod streams;
pub mod timer;
mod topic;
mod transport;

/// The README's Rust examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use crate::conn::CloseReason;
pub use crate::core::Stats;
pub use crate::error::{AnswerError, SendError, StreamError};
pub use crate::frame::{Event, Frame, FrameError};
pub use crate::handle::Handle;
pub use crate::http::{HttpError, Request, Version};
pub use crate::reply::{Deferred, Reply};
pub use crate::response::Response;
pub use crate::seid::{RandomSeid, SeidError, SeidGenerator};
pub use crate::server::{
    Builder, Handler, Server, DEFAULT_ANSWER_TIMEOUT, DEFAULT_HEAD_TIMEOUT, DEFAULT_MAX_QUEUE,
    DEFAULT_SERVER_TIMEOUT, DEFAULT_SHUTDOWN_GRACE,
};
pub use crate::streams::Streams;
