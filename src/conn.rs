//! One connection's state machine: which part of HTTP it is in, what it
//! does with input, when it next needs the loop, and what the loop must do
//! after each thing that happens to it. Pure: no socket, no clock (time is
//! passed in), no I/O; the loop in `server.rs` feeds it events and carries
//! out the [`Step`]s it answers.
//!
//! ```text
//!                on_request + handler           handler opens a stream
//!   ┌──► Reading ──────────────────► (answer) ─────────────────────► Streaming
//!   │      │  ▲                        │   │ handler defers               │
//!   │      │  │ response, keep-alive   │   ▼                              │ on_stream_end
//!   │      │  └────────────────────────┤  Deferred ──(answered later)──►  │ (last chunk;
//!   │      │                           │   │  (deadline: 504)             │  kept alive)
//!   │      │                           │   │                              │
//!   └──────┼───────────────────────────┼───┼──────────────────────────────┘
//!          │ on_refused (4xx/5xx)      │ response, not kept alive; HTTP/1.0 stream end
//!          ▼                           ▼
//!       Draining { linger } ──(queue written)──► linger? ── yes ──► Lingering
//!          │                                      │ no                 │ EOF or LINGER_MS
//!          └──────── EOF / error / timeout ───────┴──► Closed ◄──────┘
//! ```
//!
//! Any state goes to `Closed` on a write error, an eviction (idle, queue
//! full), a shutdown, or the client's EOF while it waits for or holds an
//! answer (`Deferred`, `Streaming`). A closed connection is removed at the
//! end of the loop's pass. Input is parsed only in `Reading`; behind a
//! pending answer or an open stream it is held (a pipelined request waits
//! its turn), and once draining it is discarded.

use std::net::SocketAddr;
use std::rc::Rc;

use crate::deadlines::TimerSlot;
use crate::http::{HttpError, Limits, Request, RequestReader, Version};
use crate::outbox::OutboxMark;
use crate::queue::{Flushed, WriteQueue};
use crate::topic::Membership;

/// Where a connection is in its life.
#[derive(Debug)]
enum State {
    /// Waiting for a request, reading one (its head, then any body), or
    /// handing one to the handler.
    Reading,
    /// The handler deferred its answer; `id` names this deferral (no other
    /// deferral, on this or any connection, has it), and the request waits
    /// here for whoever answers.
    Deferred {
        id: u64,
        request: Option<Box<Request>>,
    },
    /// An SSE response is open; `chunked` on HTTP/1.1. It ends cleanly at
    /// `until` (`u64::MAX`: when the application or the client ends it).
    Streaming {
        chunked: bool,
        until: u64,
        stream: Stream,
    },
    /// Nothing more will be read; close once the queue is written, after a
    /// lingering half-close if `linger`.
    Draining { linger: bool },
    /// Everything is written and the write side shut down; waiting briefly
    /// for the client's EOF, so unread input it still sends does not turn the
    /// close into a reset that destroys the response in flight.
    Lingering,
    /// Finished; removed at the end of the pass.
    Closed,
}

/// What only an open stream has: the seid it is reached by and its topic
/// memberships. It lives in [`State::Streaming`]; the transition that
/// leaves that state hands it back ([`Step::Close`],
/// [`Conn::on_stream_end`]) for the loop to take off its indexes, so no
/// seid or membership outlives its stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stream {
    pub seid: Rc<str>,
    pub topics: Vec<Membership>,
}

/// Why a connection was closed; also the eviction reasons in the stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side or reset the connection.
    ClientGone,
    /// The response ended and the connection was not kept alive.
    Done,
    /// Nothing was written to the stream for the server timeout.
    Idle,
    /// The client fell further behind than the send-queue cap.
    QueueFull,
    /// The server shut down.
    Shutdown,
    /// The request head or body did not arrive within the deadline.
    HeadTimeout,
    /// The request was refused with a 4xx/5xx and the connection closed.
    BadRequest,
    /// A socket error other than the client leaving.
    IoError,
    /// The stream reached the end of its lifetime
    /// ([`Reply::end_after`](crate::Reply::end_after)), such as its
    /// credentials' expiry, and was ended cleanly.
    Expired,
}

/// The timeouts a connection's deadlines are computed from, in ms.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// A request head (or body) must arrive within this.
    pub head: u64,
    /// A stream on which nothing was written for this long is closed.
    pub idle: u64,
    /// Send a heartbeat comment after this long without a write.
    pub heartbeat: Option<u64>,
    /// A deferred answer must come within this, or the request gets `504`.
    pub answer: u64,
}

/// How long a lingering connection waits for the client's EOF.
pub(crate) const LINGER_MS: u64 = 2_000;

/// What the loop must do after a transition.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing more for now.
    Wait,
    /// The connection is closed for this reason: forget its stream (if it
    /// had one, here), drop its queue, remove it at the end of the pass.
    Close(CloseReason, Option<Stream>),
    /// Shut down the socket's write side (a lingering close has begun).
    ShutdownWrite,
    /// The connection is free for its next request: parse what it holds.
    ResumeReading,
}

/// What a connection does with bytes it reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// Parse them into requests.
    Parse,
    /// Keep them for later: a pipelined request behind an answer.
    Hold,
    /// Drop them: nothing more will be answered.
    Discard,
}

/// What a connection needs when its timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing yet: look again at this time.
    Later(u64),
    /// Write a heartbeat comment.
    Heartbeat,
    /// A request was begun and did not arrive whole in time: answer `408`,
    /// then close.
    RequestTimeout,
    /// A kept-alive connection began no request in time (or a TLS client
    /// did not finish its handshake): close, with nothing to say.
    KeepAliveOver,
    /// Nobody answered the deferred request in time: `504`.
    AnswerTimeout,
    /// Nothing could be written for the idle timeout.
    Idle,
    /// The stream's lifetime is over: end it cleanly.
    Expired,
    /// A lingering close waited long enough for the client's EOF.
    LingerOver,
}

/// What a shutdown does to a connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ShutdownStep {
    /// End the stream cleanly (the last chunk), then close.
    EndStream,
    /// Answer the pending request `503`, then close.
    RefuseDeferred,
    /// Write what is queued, then close.
    Drain,
    /// Close now.
    Close,
    /// Already on its way out.
    Nothing,
}

/// One connection's state.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Distinguishes this connection from earlier ones in the same slab slot.
    pub generation: u64,
    pub peer: SocketAddr,
    state: State,
    /// The request parser and the bytes it has not consumed. Empty (and
    /// unallocated) on an idle stream.
    reader: RequestReader,
    pub queue: WriteQueue,
    /// Whether the connection stays open after the current response.
    keep_alive: bool,
    /// The version of the current request (how to answer it).
    version: Version,
    /// When the current state began or, reading a body, last made progress.
    since: u64,
    /// When bytes last went out on the socket.
    last_write: u64,
    /// The client will send nothing more.
    read_closed: bool,
    /// The connection's timer, which only `deadlines.rs` reads or writes.
    pub timer: TimerSlot,
    /// Whether it is on a list of output to write, which only `outbox.rs`
    /// reads or writes.
    pub mark: OutboxMark,
}

impl Conn {
    pub(crate) fn new(generation: u64, peer: SocketAddr, now: u64) -> Self {
        Conn {
            generation,
            peer,
            state: State::Reading,
            reader: RequestReader::new(),
            queue: WriteQueue::default(),
            keep_alive: true,
            version: Version::Http11,
            since: now,
            last_write: now,
            read_closed: false,
            timer: TimerSlot::default(),
            mark: OutboxMark::default(),
        }
    }

    fn enter(&mut self, state: State, now: u64) {
        self.state = state;
        self.since = now;
    }

    // ---- what the loop may ask ----

    /// Whether an SSE response is open.
    pub(crate) fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming { .. })
    }

    /// Whether the open stream is chunked (`None` when not streaming).
    pub(crate) fn stream_chunked(&self) -> Option<bool> {
        match self.state {
            State::Streaming { chunked, .. } => Some(chunked),
            _ => None,
        }
    }

    /// The open stream's seid.
    pub(crate) fn seid(&self) -> Option<&Rc<str>> {
        match &self.state {
            State::Streaming { stream, .. } => Some(&stream.seid),
            _ => None,
        }
    }

    /// The open stream's topic memberships (none when not streaming).
    pub(crate) fn topics(&self) -> &[Membership] {
        match &self.state {
            State::Streaming { stream, .. } => &stream.topics,
            _ => &[],
        }
    }

    /// An open stream's topic memberships, its write queue and whether it
    /// is chunked: what a catch-up on its topics needs at once.
    pub(crate) fn stream_output(&mut self) -> Option<(&[Membership], &mut WriteQueue, bool)> {
        match &self.state {
            State::Streaming {
                stream, chunked, ..
            } => Some((&stream.topics, &mut self.queue, *chunked)),
            _ => None,
        }
    }

    /// Whether the connection is closed (it gets no more output).
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether reading the socket can still bring anything.
    pub(crate) fn wants_input(&self) -> bool {
        !self.read_closed && !self.is_closed()
    }

    /// What to do with bytes just read.
    pub(crate) fn input(&self) -> Input {
        match self.state {
            State::Reading => Input::Parse,
            State::Deferred { .. } | State::Streaming { .. } => Input::Hold,
            State::Draining { .. } | State::Lingering | State::Closed => Input::Discard,
        }
    }

    /// Whether the current request asked to keep the connection open (and
    /// nothing since has decided otherwise).
    pub(crate) fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The version of the current request.
    pub(crate) fn version(&self) -> Version {
        self.version
    }

    /// The deferral pending on this connection, if any.
    pub(crate) fn deferred_id(&self) -> Option<u64> {
        match self.state {
            State::Deferred { id, .. } => Some(id),
            _ => None,
        }
    }

    // ---- transitions ----

    /// A complete request arrived and goes to the handler now.
    pub(crate) fn on_request(&mut self, request: &Request, now: u64) {
        debug_assert!(matches!(self.state, State::Reading));
        self.keep_alive = request.keep_alive();
        self.version = request.version();
        self.since = now;
    }

    /// Parses the next request out of what the reader holds followed by
    /// `input` (consumed as far as it is used). Bytes of a body move its
    /// deadline: it counts from the last progress, not the head.
    pub(crate) fn next_request(
        &mut self,
        input: &mut &[u8],
        limits: &Limits,
        now: u64,
    ) -> Result<Option<Request>, HttpError> {
        let next = self.reader.next_request_in(input, limits, self.peer);
        if matches!(self.state, State::Reading) && self.reader.in_body() {
            self.since = now;
        }
        next
    }

    /// Whether the client waits for `100 Continue` before its body (asked
    /// once: answers true the first time only).
    pub(crate) fn take_continue(&mut self) -> bool {
        self.reader.take_continue()
    }

    /// Bytes arrived behind a pending answer or an open stream: they wait
    /// their turn, as a pipelined request does. More than `max` held (a
    /// request head's worth) is more than pipelining explains: close.
    pub(crate) fn on_input_held(&mut self, bytes: &[u8], max: usize) -> Step {
        self.reader.push(bytes);
        if self.reader.buffered() > max {
            return self.close(CloseReason::BadRequest);
        }
        Step::Wait
    }

    /// The connection is free for its next request again: answers whether
    /// it already holds bytes of one to parse (if not, the read buffer is
    /// given back until more come).
    pub(crate) fn on_resumed(&mut self) -> bool {
        if self.reader.buffered() > 0 {
            return true;
        }
        self.reader.release();
        false
    }

    /// A plain response to the current request was queued.
    pub(crate) fn on_response(&mut self, now: u64) -> Step {
        match self.state {
            State::Reading | State::Deferred { .. } if !self.keep_alive || self.read_closed => {
                self.enter(State::Draining { linger: false }, now);
                if self.queue.is_empty() {
                    return self.close(CloseReason::Done);
                }
                Step::Wait
            }
            State::Deferred { .. } => {
                self.enter(State::Reading, now);
                Step::ResumeReading
            }
            _ => Step::Wait,
        }
    }

    /// A `HEAD` request for a stream was answered with the stream's head
    /// alone. An HTTP/1.0 stream head says `Connection: close`, so that
    /// connection closes after it, as the stream's would.
    pub(crate) fn on_stream_head_only(&mut self, chunked: bool, now: u64) -> Step {
        self.keep_alive &= chunked;
        self.on_response(now)
    }

    /// The handler deferred its answer; it comes later as deferral `id`.
    /// A deferred answer may defer again (its work is not done yet): the
    /// request then waits under the new id, and its answer timeout still
    /// counts from the first deferral, so waiting cannot be made endless.
    pub(crate) fn on_defer(&mut self, id: u64, request: Request, now: u64) {
        let request = Some(Box::new(request));
        match self.state {
            State::Deferred { .. } => self.state = State::Deferred { id, request },
            _ => {
                debug_assert!(matches!(self.state, State::Reading));
                self.enter(State::Deferred { id, request }, now);
            }
        }
    }

    /// Takes the request of deferral `id` to answer it, if that deferral is
    /// still pending here. The connection stays `Deferred` until the answer
    /// is queued ([`on_response`](Conn::on_response),
    /// [`on_stream_open`](Conn::on_stream_open)).
    pub(crate) fn take_deferred(&mut self, id: u64) -> Option<Box<Request>> {
        match &mut self.state {
            State::Deferred {
                id: pending,
                request,
            } if *pending == id => request.take(),
            _ => None,
        }
    }

    /// The answer opens an event stream reached by `seid`; `chunked` on
    /// HTTP/1.1. An HTTP/1.0 stream ends with a close, so it cannot be kept
    /// alive.
    pub(crate) fn on_stream_open(&mut self, chunked: bool, seid: Rc<str>, now: u64) {
        debug_assert!(matches!(
            self.state,
            State::Reading | State::Deferred { .. }
        ));
        self.keep_alive &= chunked;
        let until = u64::MAX;
        let stream = Stream {
            seid,
            topics: Vec::new(),
        };
        self.enter(
            State::Streaming {
                chunked,
                until,
                stream,
            },
            now,
        );
        self.last_write = now;
        // An idle stream keeps no read buffer (unless a request waits in it).
        if self.reader.buffered() == 0 {
            self.reader.release();
        }
    }

    /// The open stream must end by `at` (the earlier of this and any end
    /// already set wins).
    pub(crate) fn on_lifetime(&mut self, at: u64) {
        if let State::Streaming { until, .. } = &mut self.state {
            *until = (*until).min(at);
        }
    }

    /// The stream joined a topic.
    pub(crate) fn on_join(&mut self, membership: Membership) {
        if let State::Streaming { stream, .. } = &mut self.state {
            stream.topics.push(membership);
        }
    }

    /// The stream ended cleanly (its last chunk, if any, is queued); answers
    /// the stream, to take off the indexes, and what comes next: on a
    /// kept-alive HTTP/1.1 connection the next request may follow. `None`
    /// if no stream was open.
    pub(crate) fn on_stream_end(&mut self, now: u64) -> Option<(Stream, Step)> {
        let State::Streaming { chunked, .. } = self.state else {
            return None;
        };
        let reuse = chunked && self.keep_alive && !self.read_closed;
        let next = if reuse {
            State::Reading
        } else {
            State::Draining { linger: false }
        };
        let State::Streaming { stream, .. } = std::mem::replace(&mut self.state, next) else {
            unreachable!("checked above");
        };
        self.since = now;
        let step = if reuse {
            Step::ResumeReading
        } else if self.queue.is_empty() {
            self.close(CloseReason::Done)
        } else {
            Step::Wait
        };
        Some((stream, step))
    }

    /// The request was refused with an error response (queued): close after
    /// it, lingering, since the client may still be sending.
    pub(crate) fn on_refused(&mut self, now: u64) {
        self.keep_alive = false;
        self.reader = RequestReader::new();
        self.enter(State::Draining { linger: true }, now);
    }

    /// The client sent EOF: it will send nothing more.
    pub(crate) fn on_eof(&mut self, now: u64) -> Step {
        self.read_closed = true;
        match self.state {
            // Nothing will read what we write, or the answer is moot.
            State::Streaming { .. } | State::Deferred { .. } => self.close(CloseReason::ClientGone),
            // A request that can now never complete, or an idle keep-alive
            // connection: write the answers to earlier requests, then close.
            State::Reading => {
                self.keep_alive = false;
                if self.queue.is_empty() {
                    self.close(CloseReason::ClientGone)
                } else {
                    self.enter(State::Draining { linger: false }, now);
                    Step::Wait
                }
            }
            State::Draining { .. } if self.queue.is_empty() => self.close(CloseReason::Done),
            State::Draining { .. } => Step::Wait,
            State::Lingering => self.close(CloseReason::Done),
            State::Closed => Step::Wait,
        }
    }

    /// A write pass took `done.bytes` of the queue. A client still behind
    /// by more than `max_queue` (what is queued and what the transport
    /// holds) is evicted; once nothing is left, a draining connection ends.
    pub(crate) fn on_flushed(&mut self, done: &Flushed, max_queue: usize, now: u64) -> Step {
        if done.bytes > 0 {
            self.last_write = now;
        }
        if self.queue.len() + done.held > max_queue {
            return self.close(CloseReason::QueueFull);
        }
        if !self.queue.is_empty() || done.held > 0 {
            return Step::Wait;
        }
        match self.state {
            State::Draining { linger } if linger && !self.read_closed => {
                self.enter(State::Lingering, now);
                Step::ShutdownWrite
            }
            State::Draining { .. } => self.close(CloseReason::Done),
            _ => Step::Wait,
        }
    }

    /// A write failed.
    pub(crate) fn on_write_error(&mut self, kind: std::io::ErrorKind) -> Step {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        let reason = match kind {
            BrokenPipe | ConnectionReset | ConnectionAborted => CloseReason::ClientGone,
            _ => CloseReason::IoError,
        };
        self.close(reason)
    }

    /// The server is shutting down.
    pub(crate) fn on_shutdown(&mut self, now: u64) -> ShutdownStep {
        self.keep_alive = false;
        match self.state {
            State::Streaming { .. } => ShutdownStep::EndStream,
            State::Deferred { .. } => ShutdownStep::RefuseDeferred,
            State::Reading if self.queue.is_empty() => ShutdownStep::Close,
            State::Reading => {
                self.enter(State::Draining { linger: false }, now);
                ShutdownStep::Drain
            }
            State::Draining { .. } | State::Lingering | State::Closed => ShutdownStep::Nothing,
        }
    }

    /// Closes the connection. Answers `Step::Close`, with the stream if
    /// one was open, the first time, and `Step::Wait` if it was already
    /// closed.
    pub(crate) fn close(&mut self, reason: CloseReason) -> Step {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Closed => Step::Wait,
            State::Streaming { stream, .. } => Step::Close(reason, Some(stream)),
            _ => Step::Close(reason, None),
        }
    }

    // ---- time ----

    /// When the connection next needs attention (`u64::MAX`: never).
    pub(crate) fn deadline(&self, t: &Timeouts) -> u64 {
        match self.state {
            State::Reading => self.since + t.head,
            State::Deferred { .. } => self.since + t.answer,
            State::Streaming { until, .. } => {
                let idle = self.last_write + t.idle;
                let due = match t.heartbeat {
                    // A heartbeat is only worth queueing behind nothing.
                    Some(h) if self.queue.is_empty() => idle.min(self.last_write + h),
                    _ => idle,
                };
                due.min(until)
            }
            State::Draining { .. } => self.last_write + t.idle,
            State::Lingering => self.since + LINGER_MS.min(t.idle),
            State::Closed => u64::MAX,
        }
    }

    /// What the connection needs at time `now` (its timer fired).
    pub(crate) fn on_timeout(&self, now: u64, t: &Timeouts) -> Due {
        let at = self.deadline(t);
        if at > now {
            return Due::Later(at);
        }
        match self.state {
            State::Reading if self.reader.is_idle() => Due::KeepAliveOver,
            State::Reading => Due::RequestTimeout,
            State::Deferred { .. } => Due::AnswerTimeout,
            State::Streaming { until, .. } if until <= now => Due::Expired,
            State::Streaming { .. } if self.last_write + t.idle > now => Due::Heartbeat,
            State::Lingering => Due::LingerOver,
            _ => Due::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Limits;
    use crate::queue::{Chunk, SpareBuffers};

    const T: Timeouts = Timeouts {
        head: 10,
        idle: 100,
        heartbeat: Some(30),
        answer: 50,
    };

    fn conn() -> Conn {
        Conn::new(1, SocketAddr::from(([127, 0, 0, 1], 1)), 0)
    }

    /// Parses one request out of `raw` with a fresh reader.
    fn request(raw: &str) -> Request {
        let mut reader = RequestReader::new();
        reader.push(raw.as_bytes());
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        reader
            .next_request(&Limits::default(), peer)
            .unwrap()
            .unwrap()
    }

    const GET_11: &str = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    const GET_11_CLOSE: &str = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    const GET_10: &str = "GET / HTTP/1.0\r\n\r\n";

    /// The queue cap of these tests.
    const CAP: usize = 1 << 20;

    /// A write pass that took `bytes` and left nothing in the transport.
    fn wrote(bytes: usize) -> Flushed {
        Flushed {
            bytes,
            ..Flushed::default()
        }
    }

    fn seid() -> Rc<str> {
        Rc::from("s")
    }

    /// Ends the open stream; answers the step (the stream is checked to
    /// come back with its seid).
    fn ended(c: &mut Conn, now: u64) -> Step {
        let (stream, step) = c.on_stream_end(now).expect("a stream was open");
        assert_eq!(stream.seid, seid());
        step
    }

    fn queue_something(c: &mut Conn) {
        c.queue
            .push(Chunk::Static(b"x"), &mut SpareBuffers::default());
    }

    #[test]
    fn deadlines_by_state() {
        let mut c = conn();
        assert_eq!(c.on_timeout(5, &T), Due::Later(10));
        assert_eq!(c.on_timeout(10, &T), Due::KeepAliveOver);
        c.on_request(&request(GET_11), 10);
        c.on_stream_open(true, seid(), 10);
        assert_eq!(c.on_timeout(20, &T), Due::Later(40));
        assert_eq!(c.on_timeout(40, &T), Due::Heartbeat);
        // Stalled: output is queued, so no more heartbeats; idle decides.
        queue_something(&mut c);
        assert_eq!(c.on_timeout(40, &T), Due::Later(110));
        assert_eq!(c.on_timeout(110, &T), Due::Idle);
    }

    #[test]
    fn a_stream_with_a_lifetime_expires_before_its_heartbeat() {
        let mut c = conn();
        c.on_request(&request(GET_11), 0);
        c.on_stream_open(true, seid(), 0);
        c.on_lifetime(25);
        c.on_lifetime(90); // a later end does not postpone an earlier one
        assert_eq!(c.on_timeout(10, &T), Due::Later(25));
        assert_eq!(c.on_timeout(25, &T), Due::Expired);
        assert_eq!(ended(&mut c, 25), Step::ResumeReading);
    }

    #[test]
    fn a_plain_response_keeps_or_drains_the_connection() {
        let mut c = conn();
        c.on_request(&request(GET_11), 1);
        queue_something(&mut c);
        assert_eq!(c.on_response(1), Step::Wait);
        assert_eq!(c.input(), Input::Parse, "kept alive: the next request");

        let mut c = conn();
        c.on_request(&request(GET_11_CLOSE), 1);
        queue_something(&mut c);
        assert_eq!(c.on_response(1), Step::Wait);
        assert_eq!(c.input(), Input::Discard);
        // Written out: closed, done, without lingering.
        c.queue.clear(&mut SpareBuffers::default());
        assert_eq!(
            c.on_flushed(&wrote(1), CAP, 2),
            Step::Close(CloseReason::Done, None)
        );
        assert!(c.is_closed());
        assert_eq!(
            c.on_flushed(&wrote(0), CAP, 3),
            Step::Wait,
            "closing twice says nothing"
        );
    }

    #[test]
    fn a_deferred_answer_holds_input_and_resumes_reading() {
        let mut c = conn();
        c.on_request(&request(GET_11), 1);
        c.on_defer(7, request(GET_11), 1);
        assert_eq!(c.input(), Input::Hold, "a pipelined request waits its turn");
        assert_eq!(c.deferred_id(), Some(7));
        assert_eq!(c.on_timeout(50, &T), Due::Later(51));
        assert_eq!(c.on_timeout(51, &T), Due::AnswerTimeout);
        assert!(c.take_deferred(8).is_none(), "another deferral's answer");
        assert!(c.take_deferred(7).is_some());
        assert!(c.take_deferred(7).is_none(), "answered once");
        queue_something(&mut c);
        assert_eq!(c.on_response(60), Step::ResumeReading);
        assert_eq!(c.input(), Input::Parse);
        assert_eq!(c.deferred_id(), None);
    }

    #[test]
    fn a_deferred_answer_may_defer_again_within_the_first_timeout() {
        let mut c = conn();
        c.on_request(&request(GET_11), 1);
        c.on_defer(7, request(GET_11), 1);
        let taken = c.take_deferred(7).unwrap();
        c.on_defer(8, *taken, 30);
        assert_eq!(c.deferred_id(), Some(8));
        assert!(c.take_deferred(7).is_none(), "the old id is spent");
        assert_eq!(
            c.on_timeout(50, &T),
            Due::Later(51),
            "from the first deferral"
        );
        assert_eq!(c.on_timeout(51, &T), Due::AnswerTimeout);
        assert!(c.take_deferred(8).is_some());
    }

    #[test]
    fn eof_while_an_answer_is_pending_closes() {
        let mut c = conn();
        c.on_request(&request(GET_11), 1);
        c.on_defer(1, request(GET_11), 1);
        assert_eq!(c.on_eof(2), Step::Close(CloseReason::ClientGone, None));
        assert!(!c.wants_input());
        assert!(c.take_deferred(1).is_none(), "nothing is left to answer");
    }

    #[test]
    fn a_deferred_stream_and_its_end() {
        let mut c = conn();
        c.on_request(&request(GET_11), 1);
        c.on_defer(1, request(GET_11), 1);
        c.take_deferred(1).unwrap();
        c.on_stream_open(true, seid(), 5);
        assert_eq!(c.stream_chunked(), Some(true));
        assert_eq!(ended(&mut c, 9), Step::ResumeReading);
        assert_eq!(c.input(), Input::Parse);
    }

    #[test]
    fn an_http10_stream_ends_with_a_close() {
        let mut c = conn();
        c.on_request(&request(GET_10), 1);
        c.on_stream_open(false, seid(), 1);
        assert!(!c.keep_alive());
        queue_something(&mut c);
        assert_eq!(ended(&mut c, 2), Step::Wait);
        assert_eq!(c.input(), Input::Discard);
        c.queue.clear(&mut SpareBuffers::default());
        assert_eq!(
            c.on_flushed(&wrote(1), CAP, 3),
            Step::Close(CloseReason::Done, None)
        );
    }

    #[test]
    fn eof_on_a_stream_is_the_client_leaving() {
        let mut c = conn();
        c.on_request(&request(GET_11), 1);
        c.on_stream_open(true, seid(), 1);
        let stream = Stream {
            seid: seid(),
            topics: Vec::new(),
        };
        assert_eq!(
            c.on_eof(2),
            Step::Close(CloseReason::ClientGone, Some(stream))
        );
    }

    #[test]
    fn eof_while_reading_writes_earlier_answers_first() {
        let mut c = conn();
        assert_eq!(c.on_eof(1), Step::Close(CloseReason::ClientGone, None));

        let mut c = conn();
        c.on_request(&request(GET_11), 1);
        queue_something(&mut c);
        c.on_response(1);
        assert_eq!(c.on_eof(2), Step::Wait, "the answer is still queued");
        assert!(!c.keep_alive());
        c.queue.clear(&mut SpareBuffers::default());
        assert_eq!(
            c.on_flushed(&wrote(1), CAP, 3),
            Step::Close(CloseReason::Done, None)
        );
    }

    #[test]
    fn a_refusal_lingers_for_the_clients_eof() {
        let mut c = conn();
        c.on_refused(1);
        queue_something(&mut c);
        assert_eq!(c.on_flushed(&wrote(0), CAP, 2), Step::Wait);
        c.queue.clear(&mut SpareBuffers::default());
        assert_eq!(c.on_flushed(&wrote(1), CAP, 2), Step::ShutdownWrite);
        assert_eq!(c.on_timeout(3, &T), Due::Later(2 + LINGER_MS.min(T.idle)));
        assert_eq!(c.on_timeout(102, &T), Due::LingerOver);
        assert_eq!(c.on_eof(5), Step::Close(CloseReason::Done, None));

        // A client that already closed its side is not waited for.
        let mut c = conn();
        assert_eq!(c.on_eof(1), Step::Close(CloseReason::ClientGone, None));
        let mut c = conn();
        c.on_refused(1);
        c.read_closed = true;
        assert_eq!(
            c.on_flushed(&wrote(1), CAP, 2),
            Step::Close(CloseReason::Done, None)
        );
    }

    #[test]
    fn shutdown_by_state() {
        let mut c = conn();
        assert_eq!(c.on_shutdown(1), ShutdownStep::Close);
        let mut c = conn();
        queue_something(&mut c);
        assert_eq!(c.on_shutdown(1), ShutdownStep::Drain);
        assert_eq!(c.input(), Input::Discard);
        let mut c = conn();
        c.on_request(&request(GET_11), 1);
        c.on_stream_open(true, seid(), 1);
        assert_eq!(c.on_shutdown(1), ShutdownStep::EndStream);
        assert_eq!(ended(&mut c, 1), Step::Close(CloseReason::Done, None));
        let mut c = conn();
        c.on_request(&request(GET_11), 1);
        c.on_defer(3, request(GET_11), 1);
        assert_eq!(c.on_shutdown(1), ShutdownStep::RefuseDeferred);
        c.close(CloseReason::Shutdown);
        assert_eq!(c.on_shutdown(1), ShutdownStep::Nothing);
    }

    #[test]
    fn write_errors_name_who_left() {
        let mut c = conn();
        let reset = std::io::ErrorKind::ConnectionReset;
        assert_eq!(
            c.on_write_error(reset),
            Step::Close(CloseReason::ClientGone, None)
        );
        let mut c = conn();
        let other = std::io::ErrorKind::Other;
        assert_eq!(
            c.on_write_error(other),
            Step::Close(CloseReason::IoError, None)
        );
        assert_eq!(
            c.deadline(&T),
            u64::MAX,
            "a closed connection needs no timer"
        );
    }

    #[test]
    fn a_begun_request_gets_408_and_an_idle_connection_closes_quietly() {
        let limits = Limits::default();
        let mut begun = conn();
        let mut input: &[u8] = b"GET / HTTP/1.1\r\nHo";
        assert!(matches!(
            begun.next_request(&mut input, &limits, 0),
            Ok(None)
        ));
        assert_eq!(begun.on_timeout(10, &T), Due::RequestTimeout);
        // Nothing begun (an idle keep-alive, a TLS handshake never finished).
        assert_eq!(conn().on_timeout(10, &T), Due::KeepAliveOver);
    }

    #[test]
    fn a_body_that_keeps_coming_keeps_its_deadline() {
        let limits = Limits::default();
        let mut c = conn();
        let mut input: &[u8] = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc";
        assert!(matches!(c.next_request(&mut input, &limits, 5), Ok(None)));
        assert_eq!(c.deadline(&T), 15, "counted from the body's last bytes");
        let mut more: &[u8] = b"def";
        assert!(matches!(c.next_request(&mut more, &limits, 12), Ok(None)));
        assert_eq!(c.deadline(&T), 22);
        let mut rest: &[u8] = b"ghij";
        let request = c.next_request(&mut rest, &limits, 14).unwrap().unwrap();
        assert_eq!(request.body(), b"abcdefghij");
    }

    #[test]
    fn input_held_past_a_head_is_refused() {
        let mut c = conn();
        c.on_request(&request(GET_11), 0);
        c.on_stream_open(true, seid(), 0);
        assert_eq!(c.on_input_held(&[b'x'; 10], 16), Step::Wait);
        match c.on_input_held(&[b'x'; 10], 16) {
            Step::Close(CloseReason::BadRequest, Some(stream)) => assert_eq!(stream.seid, seid()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn closing_a_stream_hands_back_its_seid_and_topics() {
        let mut c = conn();
        c.on_request(&request(GET_11), 0);
        c.on_stream_open(true, seid(), 0);
        c.on_join((1, 2));
        c.on_join((4, 0));
        assert_eq!(c.seid(), Some(&seid()));
        assert_eq!(c.topics(), &[(1, 2), (4, 0)]);
        let step = c.close(CloseReason::Idle);
        let stream = Stream {
            seid: seid(),
            topics: vec![(1, 2), (4, 0)],
        };
        assert_eq!(step, Step::Close(CloseReason::Idle, Some(stream)));
        assert_eq!(c.seid(), None);
        assert!(c.topics().is_empty());
    }

    #[test]
    fn a_client_behind_by_more_than_the_cap_is_evicted_counting_what_tls_holds() {
        let mut c = conn();
        c.on_request(&request(GET_11), 0);
        c.on_stream_open(true, seid(), 0);
        queue_something(&mut c); // one byte still queued
        assert_eq!(c.on_flushed(&wrote(0), 10, 1), Step::Wait);
        let held = Flushed {
            held: 10,
            ..Flushed::default()
        };
        // One byte queued and ten in the TLS session: past a cap of ten.
        assert!(matches!(
            c.on_flushed(&held, 10, 2),
            Step::Close(CloseReason::QueueFull, Some(_))
        ));
    }

    #[test]
    fn a_draining_connection_waits_for_what_its_transport_holds() {
        let mut c = conn();
        c.on_request(&request(GET_11_CLOSE), 0);
        queue_something(&mut c);
        assert_eq!(c.on_response(1), Step::Wait);
        c.queue.clear(&mut SpareBuffers::default());
        let held = Flushed {
            bytes: 1,
            held: 30,
            ..Flushed::default()
        };
        assert_eq!(c.on_flushed(&held, CAP, 2), Step::Wait, "not closed yet");
        assert_eq!(
            c.on_flushed(&wrote(0), CAP, 3),
            Step::Close(CloseReason::Done, None)
        );
    }
}
