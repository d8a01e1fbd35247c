//! What a handler can do with one request: answer it plainly, or turn it into
//! an event stream and send on it; and, like the seed's `reply`, reach every
//! other stream by seid or topic.

use std::fmt;
use std::rc::Rc;

use crate::conn::{Chunk, CloseReason, Phase};
use crate::core::{Core, SendError, Stats};
use crate::date::HttpDate;
use crate::frame::{Event, Frame};
use crate::handle::Handle;
use crate::http::{push_header, push_status_line, valid_header, Request, Version};
use crate::seid::SeidError;

/// A plain (non-stream) response: a status, headers and a body. It is sent
/// with `Content-Length`, except a `1xx`, `204` or `304`: those end with
/// their head (RFC 9112 §6.3), so they go without a body or a length.
///
/// ```
/// use sseloop::Response;
/// let r = Response::text(404, "no such client\n").header("X-Reason", "unknown seid");
/// # drop(r);
/// ```
#[derive(Clone, Debug)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A response with `status` and no body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into().into_bytes())
    }

    /// Adds a header. Invalid names or values (CR, LF, NUL) make
    /// [`Reply::respond`] fail with [`StreamError::InvalidHeader`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response's bytes for a request of `version`: the status line,
    /// `Date`, the reply's `extra` headers and then its own, the framing
    /// and connection headers, and the body unless `head_only` (a `HEAD`).
    /// Every plain response, the handler's or the loop's refusal, is made
    /// here.
    pub(crate) fn encode(
        &self,
        version: Version,
        date: &HttpDate,
        extra: &[(String, String)],
        keep_alive: bool,
        head_only: bool,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        push_status_line(&mut out, version, self.status);
        push_header(&mut out, "Date", date.value());
        for (name, value) in extra.iter().chain(&self.headers) {
            push_header(&mut out, name, value.as_bytes());
        }
        // A body after these would be read as the next response, and a
        // length is forbidden on 1xx and 204 (RFC 9110 §8.6).
        let bodiless = matches!(self.status, 100..=199 | 204 | 304);
        if !bodiless {
            push_header(
                &mut out,
                "Content-Length",
                itoa::Buffer::new().format(self.body.len()).as_bytes(),
            );
        }
        match (version, keep_alive) {
            (Version::Http11, false) => push_header(&mut out, "Connection", b"close"),
            (Version::Http10, true) => push_header(&mut out, "Connection", b"keep-alive"),
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
        if !head_only && !bodiless {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Errors from answering a request or opening its stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The request was already answered (a response, or a stream).
    AlreadyAnswered,
    /// A header name or value is invalid (it would split the response head).
    InvalidHeader(String),
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
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::AlreadyAnswered => f.write_str("the request was already answered"),
            StreamError::InvalidHeader(h) => write!(f, "invalid header {h:?}"),
            StreamError::Seid(e) => e.fmt(f),
            StreamError::Generator(e) => write!(f, "seid generator failed: {e}"),
            StreamError::TooManyClients => f.write_str("too many clients"),
            StreamError::HeadRequest => {
                f.write_str("a HEAD request gets the stream's head and no stream")
            }
        }
    }
}

impl std::error::Error for StreamError {}

/// Where the reply is in answering its request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Unanswered,
    Responded,
    Streaming(Rc<str>),
    Ended,
}

/// The stream response heads, but for `Date`: it and any extra headers go
/// before the final CRLF.
const STREAM_HEAD_11: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
X-Accel-Buffering: no\r\n\
Transfer-Encoding: chunked\r\n\r\n";
const STREAM_HEAD_10: &[u8] = b"HTTP/1.0 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
X-Accel-Buffering: no\r\n\
Connection: close\r\n\r\n";

/// This second's stream heads, `Date` included. A head differs from the
/// next stream's only when the second changes, so the streams opened in one
/// second queue one shared copy, built when the first of them opens.
#[derive(Default)]
pub(crate) struct StreamHeads {
    /// The second they show, once built.
    second: Option<u64>,
    http11: Rc<[u8]>,
    http10: Rc<[u8]>,
}

impl StreamHeads {
    fn get(&mut self, date: &HttpDate, version: Version) -> Rc<[u8]> {
        if self.second != Some(date.second()) {
            self.http11 = stream_head(STREAM_HEAD_11, date, &[], false).into();
            self.http10 = stream_head(STREAM_HEAD_10, date, &[], false).into();
            self.second = Some(date.second());
        }
        match version {
            Version::Http11 => self.http11.clone(),
            Version::Http10 => self.http10.clone(),
        }
    }
}

/// `whole` (one of the stream heads) with `Date`, the `extra` headers and,
/// if `close`, `Connection: close`.
fn stream_head(whole: &[u8], date: &HttpDate, extra: &[(String, String)], close: bool) -> Vec<u8> {
    let mut head = Vec::with_capacity(whole.len() + 64);
    head.extend_from_slice(&whole[..whole.len() - 2]);
    push_header(&mut head, "Date", date.value());
    for (name, value) in extra {
        push_header(&mut head, name, value.as_bytes());
    }
    if close {
        push_header(&mut head, "Connection", b"close");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A handler's answer to one request.
///
/// Open an event stream with [`stream`](Reply::stream) (or implicitly with
/// the first [`send`](Reply::send)), or answer plainly with
/// [`respond`](Reply::respond). A request the handler leaves unanswered gets
/// `404 Not Found`.
///
/// A `HEAD` request is answered like a `GET` without the body, whatever the
/// handler does: a plain response keeps its headers (and the
/// `Content-Length` its body would have had), and opening a stream sends the
/// stream's head and opens nothing ([`StreamError::HeadRequest`]), so a
/// handler that routes on the path alone cannot put a body after a `HEAD`'s
/// response, where the client would read it as the next response.
pub struct Reply<'a> {
    core: &'a mut Core,
    handle: &'a Handle,
    key: usize,
    version: Version,
    head_request: bool,
    headers: Vec<(String, String)>,
    state: State,
}

impl<'a> Reply<'a> {
    pub(crate) fn new(core: &'a mut Core, handle: &'a Handle, key: usize, req: &Request) -> Self {
        Reply {
            core,
            handle,
            key,
            version: req.version(),
            head_request: req.method() == "HEAD",
            headers: Vec::new(),
            state: State::Unanswered,
        }
    }

    /// Adds a header to whatever response this reply sends, stream or plain
    /// (`Access-Control-Allow-Origin`, say).
    ///
    /// # Errors
    /// [`StreamError::InvalidHeader`] for a name or value that could split the
    /// response head; [`StreamError::AlreadyAnswered`] once answered.
    pub fn header(&mut self, name: &str, value: &str) -> Result<(), StreamError> {
        if self.state != State::Unanswered {
            return Err(StreamError::AlreadyAnswered);
        }
        if !valid_header(name, value) {
            return Err(StreamError::InvalidHeader(name.to_owned()));
        }
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    /// Answers with a plain response.
    ///
    /// # Errors
    /// [`StreamError::AlreadyAnswered`], or [`StreamError::InvalidHeader`]
    /// (then a `500` is sent instead).
    pub fn respond(&mut self, response: Response) -> Result<(), StreamError> {
        if self.state != State::Unanswered {
            return Err(StreamError::AlreadyAnswered);
        }
        if let Some((name, _)) = response.headers.iter().find(|(n, v)| !valid_header(n, v)) {
            let name = name.clone();
            self.respond(Response::text(500, "invalid response header\n"))?;
            return Err(StreamError::InvalidHeader(name));
        }
        self.state = State::Responded;
        let keep_alive = self.core.conns[self.key].conn.keep_alive;
        let out = response.encode(
            self.version,
            &self.core.date,
            &self.headers,
            keep_alive,
            self.head_request,
        );
        self.core.queue_bytes(self.key, Chunk::Owned(out));
        Ok(())
    }

    /// Turns the request into an event stream (`200`, `text/event-stream`,
    /// chunked on HTTP/1.1) and answers its seid. Calling it again answers
    /// the same seid.
    ///
    /// # Errors
    /// [`StreamError::AlreadyAnswered`] after a plain response or `end`;
    /// [`StreamError::Seid`] when the generator gave a seid in use or invalid;
    /// [`StreamError::HeadRequest`] for a `HEAD` request, which this call has
    /// answered with the stream's head alone.
    pub fn stream(&mut self) -> Result<&str, StreamError> {
        if self.state == State::Unanswered {
            let chunked = self.version == Version::Http11;
            let whole = if chunked {
                STREAM_HEAD_11
            } else {
                STREAM_HEAD_10
            };
            let close = self.stream_closes_connection();
            if self.head_request {
                return Err(self.answer_head_only(whole, close));
            }
            let head = if self.headers.is_empty() && !close {
                let core = &mut *self.core;
                Chunk::Shared(core.stream_heads.get(&core.date, self.version))
            } else {
                let date = &self.core.date;
                Chunk::Owned(stream_head(whole, date, &self.headers, close))
            };
            let seid = self.core.open_stream(self.key, head, chunked)?;
            self.state = State::Streaming(seid);
        }
        match &self.state {
            State::Streaming(seid) => Ok(seid),
            _ => Err(StreamError::AlreadyAnswered),
        }
    }

    /// Whether an HTTP/1.1 stream head must add `Connection: close`: the
    /// request asked to close (RFC 9112 §9.6). The HTTP/1.0 head already
    /// says it, so that connection is made to close after the response.
    fn stream_closes_connection(&mut self) -> bool {
        let conn = &mut self.core.conns[self.key].conn;
        match self.version {
            Version::Http10 => {
                conn.keep_alive = false;
                false
            }
            Version::Http11 => !conn.keep_alive,
        }
    }

    /// Answers a `HEAD` request for a stream with the stream's head `whole`
    /// and nothing after it. The head's framing headers stay, as a `GET`
    /// would get them (RFC 9110 §9.3.2); the response ends with its head.
    fn answer_head_only(&mut self, whole: &[u8], close: bool) -> StreamError {
        let head = stream_head(whole, &self.core.date, &self.headers, close);
        self.state = State::Responded;
        self.core.queue_bytes(self.key, Chunk::Owned(head));
        StreamError::HeadRequest
    }

    /// The stream's seid (the seed's `req.seid`), once streaming.
    pub fn seid(&self) -> Option<&str> {
        match &self.state {
            State::Streaming(seid) => Some(seid),
            _ => None,
        }
    }

    /// Sends an event on this request's stream, opening it first if needed
    /// (the seed's `sendEvent`).
    ///
    /// # Errors
    /// [`SendError::Ended`] after [`end`](Reply::end); [`SendError::Frame`]
    /// for an event that cannot be encoded (nothing is sent);
    /// [`SendError::NotStreaming`] after a plain response.
    pub fn send(&mut self, event: impl Into<Event>) -> Result<(), SendError> {
        let event = event.into();
        self.check_sendable()?;
        let frame = self.core.encode(&event)?;
        self.send_frame(&frame)
    }

    /// Sends a pre-encoded frame on this request's stream (opening it first
    /// if needed). The frame's bytes go out as they are; no automatic id.
    ///
    /// # Errors
    /// As [`send`](Reply::send).
    pub fn send_frame(&mut self, frame: &Frame) -> Result<(), SendError> {
        self.check_sendable()?;
        self.stream().map_err(SendError::Open)?;
        self.core.queue_frame(self.key, frame);
        Ok(())
    }

    fn check_sendable(&self) -> Result<(), SendError> {
        match self.state {
            State::Ended => Err(SendError::Ended),
            State::Responded => Err(SendError::NotStreaming),
            _ if self.core.conns[self.key].conn.closing.is_some() => Err(SendError::Ended),
            _ => Ok(()),
        }
    }

    /// Ends this request's stream (the seed's `endEvent`). Ending before any
    /// send still answers the request: with an empty stream.
    ///
    /// # Errors
    /// [`SendError::Ended`] if already ended; [`SendError::NotStreaming`]
    /// after a plain response.
    pub fn end(&mut self) -> Result<(), SendError> {
        self.check_sendable()?;
        self.stream().map_err(SendError::Open)?;
        self.core.end_stream(self.key, CloseReason::Done);
        self.state = State::Ended;
        Ok(())
    }

    /// Subscribes this request's stream to `topic` (opening the stream if
    /// needed), so [`publish`](Reply::publish) to that topic reaches it.
    ///
    /// # Errors
    /// As [`send`](Reply::send).
    pub fn subscribe(&mut self, topic: &str) -> Result<(), SendError> {
        self.check_sendable()?;
        self.stream().map_err(SendError::Open)?;
        self.core.subscribe(self.key, topic);
        Ok(())
    }

    /// Sends an event to the stream with `seid` (the seed's `sendEventBySeid`).
    ///
    /// # Errors
    /// [`SendError::UnknownSeid`] when no live stream has that seid;
    /// [`SendError::Frame`] for an event that cannot be encoded.
    pub fn send_to(&mut self, seid: &str, event: impl Into<Event>) -> Result<(), SendError> {
        self.core.send_to(seid, &event.into())
    }

    /// Sends a pre-encoded frame to the stream with `seid`.
    ///
    /// # Errors
    /// [`SendError::UnknownSeid`] when no live stream has that seid.
    pub fn send_frame_to(&mut self, seid: &str, frame: &Frame) -> Result<(), SendError> {
        self.core.send_frame_to(seid, frame)
    }

    /// Ends the stream with `seid`.
    ///
    /// # Errors
    /// [`SendError::UnknownSeid`] when no live stream has that seid.
    pub fn end_seid(&mut self, seid: &str) -> Result<(), SendError> {
        if self.seid() == Some(seid) {
            return self.end();
        }
        self.core.end_seid(seid)
    }

    /// Sends an event to every stream, encoded once; answers how many.
    ///
    /// # Errors
    /// [`SendError::Frame`] for an event that cannot be encoded.
    pub fn broadcast(&mut self, event: impl Into<Event>) -> Result<usize, SendError> {
        let frame = self.core.encode(&event.into())?;
        Ok(self.core.broadcast_frame(&frame))
    }

    /// Queues a pre-encoded frame on every stream; answers how many.
    pub fn broadcast_frame(&mut self, frame: &Frame) -> usize {
        self.core.broadcast_frame(frame)
    }

    /// Sends an event to every stream subscribed to `topic`, encoded once;
    /// answers how many.
    ///
    /// # Errors
    /// [`SendError::Frame`] for an event that cannot be encoded.
    pub fn publish(&mut self, topic: &str, event: impl Into<Event>) -> Result<usize, SendError> {
        let frame = self.core.encode(&event.into())?;
        Ok(self.core.publish_frame(topic, &frame))
    }

    /// Queues a pre-encoded frame on every stream subscribed to `topic`.
    pub fn publish_frame(&mut self, topic: &str, frame: &Frame) -> usize {
        self.core.publish_frame(topic, frame)
    }

    /// How many streams are live (the size of the seed's `clients`).
    pub fn client_count(&self) -> usize {
        self.core.seids.len()
    }

    /// The seids of every live stream (the keys of the seed's `clients`).
    pub fn clients(&self) -> impl Iterator<Item = &str> {
        self.core.seids.iter().map(|(s, _)| s)
    }

    /// The topics the stream with `seid` is subscribed to.
    pub fn topics_of(&self, seid: &str) -> Vec<&str> {
        self.core.topics_of(seid)
    }

    /// Whether a live stream has `seid`.
    pub fn is_live(&self, seid: &str) -> bool {
        self.core.seids.get(seid).is_some()
    }

    /// The loop's counters.
    pub fn stats(&self) -> Stats {
        self.core.stats
    }

    /// A handle to the loop, to keep or give to another thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Whether the handler answered the request in any way.
    pub(crate) fn answered(&self) -> bool {
        self.state != State::Unanswered
    }

    /// Whether the connection is free for the next request.
    pub(crate) fn conn_ready_for_next(&self) -> bool {
        self.core
            .conns
            .get(self.key)
            .is_some_and(|e| e.conn.closing.is_none() && matches!(e.conn.phase, Phase::Reading))
    }
}
