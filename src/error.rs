//! The errors of answering a request, sending on a stream, and answering a
//! deferred request later. Each operation has its own small enum with a
//! `Display` that says why, so a caller can match on what it can handle.

use std::fmt;

use crate::frame::FrameError;
use crate::seid::SeidError;

/// Errors from answering a request or opening its stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The request was already answered (a response, a stream, or a
    /// deferral).
    AlreadyAnswered,
    /// A header name or value is invalid (it would split the response head).
    InvalidHeader(String),
    /// The status is not a final status code (200 to 599): an informational
    /// `1xx` would leave the client waiting for the real answer, and anything
    /// outside 100–599 is not HTTP.
    InvalidStatus(u16),
    /// The seid generator gave a seid that cannot be used.
    Seid(SeidError),
    /// The seid generator failed.
    Generator(String),
    /// As many streams are live as [`Builder::max_clients`](crate::Builder::max_clients)
    /// allows; answer `503` with `Retry-After`, say.
    TooManyClients,
    /// The request is a `HEAD`: it was answered with the head a `GET` would
    /// get, and a response to `HEAD` has no body, so no stream was opened.
    HeadRequest,
    /// The connection has closed (its client left, or it was evicted):
    /// nothing can answer it any more.
    Closed,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::AlreadyAnswered => f.write_str("the request was already answered"),
            StreamError::InvalidHeader(h) => write!(f, "invalid header {h:?}"),
            StreamError::InvalidStatus(s) => {
                write!(f, "{s} is not a final HTTP status (200 to 599)")
            }
            StreamError::Seid(e) => e.fmt(f),
            StreamError::Generator(e) => write!(f, "seid generator failed: {e}"),
            StreamError::TooManyClients => f.write_str("too many clients"),
            StreamError::HeadRequest => {
                f.write_str("a HEAD request gets the stream's head and no stream")
            }
            StreamError::Closed => f.write_str("the connection has closed"),
        }
    }
}

impl std::error::Error for StreamError {}

/// Errors from sending to a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The stream was ended (`end()`); nothing more can be sent on it.
    Ended,
    /// The request was answered with a plain response, not a stream.
    NotStreaming,
    /// No live stream has this seid (it never existed or its client left).
    UnknownSeid,
    /// The event cannot be encoded; nothing was sent.
    Frame(FrameError),
    /// Opening the stream failed (see [`StreamError`]).
    Open(StreamError),
    /// The server has stopped; only from a [`Handle`](crate::Handle).
    Stopped,
    /// A [`Handle`](crate::Handle) call that waits for the loop was made on
    /// the loop's own thread (from a handler, say), where it would wait for
    /// itself forever. Use the [`Reply`](crate::Reply) method of the same
    /// name there, or a call that does not wait.
    OnLoopThread,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Ended => f.write_str("the stream has ended"),
            SendError::NotStreaming => f.write_str("the request was answered without a stream"),
            SendError::UnknownSeid => f.write_str("no live stream has this seid"),
            SendError::Frame(e) => write!(f, "cannot encode event: {e}"),
            SendError::Open(e) => write!(f, "cannot open stream: {e}"),
            SendError::Stopped => f.write_str("the server has stopped"),
            SendError::OnLoopThread => f.write_str(
                "this call waits for the event loop and was made on the loop's own thread",
            ),
        }
    }
}

impl std::error::Error for SendError {}

impl From<FrameError> for SendError {
    fn from(e: FrameError) -> Self {
        SendError::Frame(e)
    }
}

/// Errors from answering a deferred request ([`Deferred`](crate::Deferred)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// The request can no longer be answered: its client left, its deadline
    /// passed (it was answered `504`), or the server is shutting down. Never
    /// a delivery to another request: each deferral has its own identity.
    Gone,
    /// The server has stopped.
    Stopped,
    /// [`Deferred::answer`](crate::Deferred::answer) waits for the loop, and
    /// was called on the loop's own thread; use
    /// [`Deferred::answer_nowait`](crate::Deferred::answer_nowait) there.
    OnLoopThread,
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::Gone => f.write_str(
                "the deferred request can no longer be answered (client gone, deadline passed, or shutting down)",
            ),
            AnswerError::Stopped => f.write_str("the server has stopped"),
            AnswerError::OnLoopThread => f.write_str(
                "Deferred::answer waits for the event loop and was called on the loop's own thread",
            ),
        }
    }
}

impl std::error::Error for AnswerError {}
