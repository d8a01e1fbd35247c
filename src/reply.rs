//! What a handler can do with one request: answer it plainly, or turn it into
//! an event stream and send on it; and, like the seed's `reply`, reach every
//! other stream by seid or topic.

use std::rc::Rc;

use crate::conn::CloseReason;
use crate::core::Core;
use crate::error::{AnswerError, SendError, StreamError};
use crate::frame::{Event, Frame};
use crate::handle::{Command, Handle};
use crate::http::{valid_header, Request, Version};
use crate::queue::Chunk;
use crate::response::{stream_head, Response, STREAM_HEAD_10, STREAM_HEAD_11};
use crate::streams::Streams;

/// Where the reply is in answering its request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Unanswered,
    Responded,
    Streaming(Rc<str>),
    Ended,
    /// The answer comes later, as this deferral.
    Deferred(u64),
}

impl<'a> std::ops::Deref for Reply<'a> {
    type Target = Streams<'a>;

    /// Every other stream, by seid or topic (the seed's `reply` reaches them
    /// too): [`Streams`]' methods are the reply's.
    fn deref(&self) -> &Streams<'a> {
        &self.streams
    }
}

impl std::ops::DerefMut for Reply<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.streams
    }
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
    /// Every stream, as a handler reaches them; `Reply` derefs to it.
    streams: Streams<'a>,
    key: usize,
    version: Version,
    head_request: bool,
    headers: Vec<(String, String)>,
    state: State,
}

impl<'a> Reply<'a> {
    pub(crate) fn new(core: &'a mut Core, handle: &'a Handle, key: usize, req: &Request) -> Self {
        Reply {
            streams: Streams::new(core, handle),
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
    /// [`StreamError::AlreadyAnswered`]; [`StreamError::InvalidHeader`] or
    /// [`StreamError::InvalidStatus`] (then a `500` is sent instead).
    pub fn respond(&mut self, response: Response) -> Result<(), StreamError> {
        if self.state != State::Unanswered {
            return Err(StreamError::AlreadyAnswered);
        }
        if let Err(e) = response.check() {
            self.respond(Response::text(500, "invalid response\n"))?;
            return Err(e);
        }
        self.state = State::Responded;
        let (key, head_only) = (self.key, self.head_request);
        self.streams
            .core
            .respond(key, &response, &self.headers, head_only);
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
                let core = &mut *self.streams.core;
                Chunk::Shared(core.stream_heads.get(&core.date, self.version))
            } else {
                let date = &self.streams.core.date;
                Chunk::Owned(stream_head(whole, date, &self.headers, close))
            };
            let seid = self.streams.core.open_stream(self.key, head, chunked)?;
            self.state = State::Streaming(seid);
        }
        match &self.state {
            State::Streaming(seid) => Ok(seid),
            _ => Err(StreamError::AlreadyAnswered),
        }
    }

    /// Whether an HTTP/1.1 stream head must add `Connection: close`: the
    /// request asked to close (RFC 9112 §9.6). The HTTP/1.0 head already
    /// says it (such a stream ends with a close).
    fn stream_closes_connection(&self) -> bool {
        let keep_alive = self
            .streams
            .core
            .conn(self.key)
            .is_some_and(|c| c.keep_alive());
        self.version == Version::Http11 && !keep_alive
    }

    /// Answers a `HEAD` request for a stream with the stream's head `whole`
    /// and nothing after it. The head's framing headers stay, as a `GET`
    /// would get them (RFC 9110 §9.3.2); the response ends with its head.
    fn answer_head_only(&mut self, whole: &[u8], close: bool) -> StreamError {
        let head = stream_head(whole, &self.streams.core.date, &self.headers, close);
        self.state = State::Responded;
        self.streams.core.queue_bytes(self.key, Chunk::Owned(head));
        let chunked = self.version == Version::Http11;
        self.streams
            .core
            .answered_with_stream_head(self.key, chunked);
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
        let frame = self.streams.core.encode(&event)?;
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
        self.streams.core.queue_frame(self.key, frame);
        Ok(())
    }

    fn check_sendable(&self) -> Result<(), SendError> {
        match self.state {
            State::Ended => Err(SendError::Ended),
            State::Responded => Err(SendError::NotStreaming),
            State::Deferred(_) => Err(SendError::NotStreaming),
            _ if self
                .streams
                .core
                .conn(self.key)
                .is_none_or(|c| c.is_closed()) =>
            {
                Err(SendError::Ended)
            }
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
        self.streams.core.end_stream(self.key, CloseReason::Done);
        self.state = State::Ended;
        Ok(())
    }

    /// Subscribes this request's stream to `topic` (opening the stream if
    /// needed), so [`publish`](Streams::publish) to that topic reaches it.
    ///
    /// # Errors
    /// As [`send`](Reply::send).
    pub fn subscribe(&mut self, topic: &str) -> Result<(), SendError> {
        self.check_sendable()?;
        self.stream().map_err(SendError::Open)?;
        self.streams.core.subscribe(self.key, topic);
        Ok(())
    }

    /// Ends this request's stream cleanly once `after` has passed (opening
    /// the stream if needed), unless it ends sooner: for a stream whose
    /// credentials expire, say. It ends as [`end`](Reply::end) would, with
    /// [`CloseReason::Expired`](crate::CloseReason::Expired) for `on_close`.
    ///
    /// # Errors
    /// As [`send`](Reply::send).
    pub fn end_after(&mut self, after: std::time::Duration) -> Result<(), SendError> {
        self.check_sendable()?;
        self.stream().map_err(SendError::Open)?;
        let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        self.streams.core.end_after(self.key, ms);
        Ok(())
    }

    /// Ends the stream with `seid`.
    ///
    /// # Errors
    /// [`SendError::UnknownSeid`] when no live stream has that seid.
    pub fn end_seid(&mut self, seid: &str) -> Result<(), SendError> {
        if self.seid() == Some(seid) {
            return self.end();
        }
        self.streams.end_seid(seid)
    }

    /// Answers later: the request waits, with the connection's later
    /// requests behind it, until the [`Deferred`] token this returns answers
    /// it from any thread (or from a later handler call), and the loop goes
    /// on serving everyone else meanwhile. Nobody answering within
    /// [`Builder::answer_timeout`](crate::Builder::answer_timeout) (30 s by
    /// default) answers `504`; a client that leaves first frees everything,
    /// and the token's answer then fails with [`AnswerError::Gone`].
    ///
    /// ```no_run
    /// use sseloop::{Reply, Request, Response, Server};
    /// let server = Server::builder().bind("127.0.0.1:0")?.build(|_req: &Request, reply: &mut Reply<'_>| {
    ///     let Ok(later) = reply.defer() else { return };
    ///     std::thread::spawn(move || {
    ///         let answer = Response::text(200, "looked up\n"); // after a slow lookup, say
    ///         let _ = later.respond(answer);
    ///     });
    /// })?;
    /// # drop(server);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`StreamError::AlreadyAnswered`] once answered.
    pub fn defer(&mut self) -> Result<Deferred, StreamError> {
        if self.state != State::Unanswered {
            return Err(StreamError::AlreadyAnswered);
        }
        let id = self.streams.core.next_deferral();
        self.state = State::Deferred(id);
        Ok(Deferred {
            handle: self.streams.handle.clone(),
            key: self.key,
            id,
        })
    }

    /// Ends the handler's turn: an unanswered request gets `404`; answers
    /// the deferral made, if any.
    pub(crate) fn finish(mut self) -> Option<u64> {
        match self.state {
            State::Unanswered => {
                let _ = self.respond(Response::text(404, "not found\n"));
                None
            }
            State::Deferred(id) => Some(id),
            _ => None,
        }
    }
}

/// A request whose answer comes later: the token [`Reply::defer`] gives.
///
/// It is `Send`, so any thread can answer, after a round trip to a database
/// or a broker, say; it carries a [`Handle`] to reach the loop. Each token
/// answers its own request once: a token whose client has left, whose
/// deadline passed, or whose connection slot now serves another client gets
/// [`AnswerError::Gone`], never someone else's request. Dropping it unused
/// leaves the request to its deadline (`504`).
#[derive(Debug)]
#[must_use = "the request waits for this token's answer (or its deadline)"]
pub struct Deferred {
    handle: Handle,
    key: usize,
    id: u64,
}

impl Deferred {
    /// Answers with a plain response and waits until the loop has queued it.
    ///
    /// # Errors
    /// [`AnswerError::Gone`], [`AnswerError::Stopped`], or
    /// [`AnswerError::OnLoopThread`] (use
    /// [`answer_nowait`](Deferred::answer_nowait) there).
    pub fn respond(self, response: Response) -> Result<(), AnswerError> {
        self.answer(move |_req: &Request, reply: &mut Reply<'_>| {
            let _ = reply.respond(response);
        })
    }

    /// Runs `answer` on the loop with the request and a [`Reply`] for it,
    /// exactly as a handler would (respond, or open the stream and send on
    /// it, subscribe it, defer again), and waits until it has run.
    ///
    /// # Errors
    /// [`AnswerError::Gone`] when the request can no longer be answered (its
    /// client left, its deadline passed, the server is shutting down; then
    /// `answer` does not run); [`AnswerError::Stopped`];
    /// [`AnswerError::OnLoopThread`] when called on the loop's own thread,
    /// where waiting would never end.
    pub fn answer<F>(self, answer: F) -> Result<(), AnswerError>
    where
        F: FnOnce(&Request, &mut Reply<'_>) + Send + 'static,
    {
        if self.handle.on_loop_thread() {
            return Err(AnswerError::OnLoopThread);
        }
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.submit(answer, Some(done))?;
        result.recv().unwrap_or(Err(AnswerError::Stopped))
    }

    /// As [`answer`](Deferred::answer), without waiting: from the loop's own
    /// thread (a later handler call), or from a thread that must not wait. If
    /// the request can no longer be answered when the loop gets to it,
    /// `answer` is dropped unrun.
    ///
    /// # Errors
    /// [`AnswerError::Stopped`].
    pub fn answer_nowait<F>(self, answer: F) -> Result<(), AnswerError>
    where
        F: FnOnce(&Request, &mut Reply<'_>) + Send + 'static,
    {
        self.submit(answer, None)
    }

    /// Runs `answer` now, on the loop's own thread, with the request and a
    /// [`Reply`] for it: for a handler that deferred a request to finish
    /// its work over several passes (see [`Handler::on_wake`]) and now
    /// answers it with its own state at hand, which `answer` may borrow.
    ///
    /// # Errors
    /// [`AnswerError::Gone`] when the request can no longer be answered
    /// (then `answer` does not run).
    ///
    /// [`Handler::on_wake`]: crate::Handler::on_wake
    pub fn answer_here<F>(self, streams: &mut Streams<'_>, answer: F) -> Result<(), AnswerError>
    where
        F: FnOnce(&Request, &mut Reply<'_>),
    {
        let core = &mut *streams.core;
        let Some(request) = core.take_deferred(self.key, self.id) else {
            return Err(AnswerError::Gone);
        };
        let mut reply = Reply::new(core, streams.handle, self.key, &request);
        answer(&request, &mut reply);
        let deferred = reply.finish();
        core.after_answer(self.key, deferred.map(|id| (id, *request)));
        Ok(())
    }

    fn submit<F>(
        self,
        answer: F,
        done: Option<std::sync::mpsc::SyncSender<Result<(), AnswerError>>>,
    ) -> Result<(), AnswerError>
    where
        F: FnOnce(&Request, &mut Reply<'_>) + Send + 'static,
    {
        let (key, id) = (self.key, self.id);
        let job = Box::new(move |core: &mut Core, handle: &Handle| {
            let Some(request) = core.take_deferred(key, id) else {
                return Err(AnswerError::Gone);
            };
            let mut reply = Reply::new(core, handle, key, &request);
            answer(&request, &mut reply);
            let deferred = reply.finish();
            core.after_answer(key, deferred.map(|id| (id, *request)));
            Ok(())
        });
        self.handle
            .submit(Command::Answer { job, done })
            .map_err(|_| AnswerError::Stopped)
    }
}
