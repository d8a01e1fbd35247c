//! Everything the loop knows apart from its sockets, in parts a reader can
//! name: the connections (each one's state machine, `conn.rs`), who a send
//! or publish reaches (`directory.rs`), the output waiting to be written
//! (`outbox.rs`), the timers (`deadlines.rs`), what this pass leaves for
//! its end ([`EndOfPass`]), and the counters. The operations here join
//! them: a connection's transition answers a [`Step`], and [`Core::apply`]
//! carries it out on the other parts. Handlers ([`Reply`](crate::Reply))
//! and other threads ([`Handle`](crate::Handle)) reach streams through
//! these operations, so both go through one path.
//!
//! Pure: no socket type, no clock (`now` is set by the loop once per pass),
//! no I/O. `server.rs` writes a connection's queue to its socket and hands
//! the outcome back to [`Core::on_flushed`].

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

use slab::Slab;

use crate::conn::{CloseReason, Conn, Due, ShutdownStep, Step, Stream, Timeouts};
use crate::date::HttpDate;
use crate::deadlines::Deadlines;
use crate::directory::Directory;
use crate::error::{SendError, StreamError};
use crate::frame::{Event, Frame, FrameError, LAST_CHUNK};
use crate::http::{HttpError, Request};
use crate::outbox::{Entry, Outbox};
use crate::queue::{Chunk, Flushed, SpareBuffers};
use crate::response::{Response, StreamHeads};
use crate::seid::SeidGenerator;

/// A queue past this is written right after the handler call or command
/// that filled it instead of at the end of the pass, so a burst cannot grow
/// a healthy client's queue to its cap.
const FLUSH_EARLY: usize = 64 * 1024;

/// The most streams written per pass of the loop. The rest wait, in order,
/// for the next pass, which comes at once (a zero poll timeout) after
/// reading whatever arrived meanwhile. Under a fan-out that keeps the loop
/// busy, events published meanwhile wait on their topic's log and go out in
/// the same write as the rest when a waiting stream's turn comes, instead
/// of one syscall per client per event; an idle loop still writes everything as fast as before, just in several
/// passes. A pass of 64 writes takes about half a millisecond, so new
/// connections, publishers and plain requests are read that often even in
/// the middle of a fan-out; the poll between passes costs far less.
///
/// Measured (BENCHMARKS.md, "The flush budget, again"): with one sequential
/// publisher to 10 000 subscribers, 64 finished every burst sooner than 256
/// (1.05–1.37× the deliveries/s in nine paired runs), and at a steady 50 or 1
/// events/s the two gave the same latency. The publish-to-delivery p99 of a
/// burst is higher at 64 only because the hub takes the events from the
/// publisher sooner: at 256 they waited in the publisher instead, where that
/// measurement does not see them.
pub(crate) const STREAM_FLUSH_BUDGET: usize = 64;

/// The heartbeat comment, bare and as a chunk.
const HEARTBEAT: &[u8] = b":\n\n";
const HEARTBEAT_CHUNK: &[u8] = b"3\r\n:\n\n\r\n";

/// Counters the loop keeps; read them with [`Streams::stats`](crate::Streams::stats) (a handler's `Reply` derefs to it)
/// (for a `/metrics` route, say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live streams now.
    pub clients: usize,
    /// Open TCP connections now.
    pub connections: usize,
    /// TCP connections accepted.
    pub accepted: u64,
    /// Accept failures (EMFILE and the like), each followed by a back-off.
    pub accept_errors: u64,
    /// Connections closed because their TLS session failed: a handshake
    /// that was not TLS or did not agree, or a record that did not
    /// decrypt (with the `tls` feature).
    pub tls_errors: u64,
    /// Requests handed to the handler.
    pub requests: u64,
    /// Requests refused by the parser (4xx/5xx).
    pub bad_requests: u64,
    /// Streams opened.
    pub streams_opened: u64,
    /// Streams closed or ended, for any reason.
    pub streams_closed: u64,
    /// Frames queued to clients (a broadcast to N clients counts N). A
    /// topic's frame counts when a subscriber takes it from the topic's log
    /// into its queue, just before its write.
    pub frames_queued: u64,
    /// Frames completely written to sockets.
    pub frames_written: u64,
    /// Bytes written to sockets (frames, heads, responses).
    pub bytes_written: u64,
    /// `write`/`writev` calls that wrote something.
    pub write_calls: u64,
    /// Heartbeat comments queued.
    pub heartbeats: u64,
    /// Streams closed because nothing could be written for the server timeout.
    pub evicted_idle: u64,
    /// Streams closed because the client fell behind past the queue cap.
    pub evicted_queue_full: u64,
    /// Streams ended by a shutdown.
    pub evicted_shutdown: u64,
    /// Connections closed for not sending a request in time.
    pub head_timeouts: u64,
    /// Requests whose handler deferred the answer.
    pub deferred: u64,
    /// Deferred requests nobody answered in time (answered `504`).
    pub deferred_timeouts: u64,
}

/// Settings the loop applies to every connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub timeouts: Timeouts,
    pub limits: crate::http::Limits,
    pub max_queue: usize,
    pub max_clients: Option<usize>,
    pub auto_generate_id: bool,
}

/// State shared with other threads without a round trip through the loop.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub clients: AtomicUsize,
    /// The thread running the loop, once it runs: a call that waits for the
    /// loop refuses to run there.
    pub loop_thread: OnceLock<ThreadId>,
}

impl Shared {
    /// Whether the caller is the loop's own thread.
    pub(crate) fn on_loop_thread(&self) -> bool {
        self.loop_thread.get() == Some(&std::thread::current().id())
    }
}

/// What a pass of the loop leaves for its end: connections to remove, to
/// resume reading, and closed streams to tell the handler of.
#[derive(Debug, Default)]
pub(crate) struct EndOfPass {
    /// Connections closed this pass, to remove at its end.
    closing: Vec<usize>,
    /// Connections free for their next request, which may already be
    /// buffered: parse it.
    resume: Vec<usize>,
    /// Streams that ended or closed this pass: (seid, reason), for `on_close`.
    closed_streams: Vec<(Rc<str>, CloseReason)>,
}

/// The numbers the loop gives out, each never given twice.
#[derive(Debug, Default)]
struct Numbers {
    /// The last id given by `auto_generate_id`.
    auto_id: u64,
    /// The last deferral id.
    deferral: u64,
    /// The last connection generation (which tells a connection from
    /// earlier ones in the same slab slot).
    generation: u64,
}

pub(crate) struct Core {
    conns: Slab<Conn>,
    pub directory: Directory,
    outbox: Outbox,
    deadlines: Deadlines,
    end_of_pass: EndOfPass,
    numbers: Numbers,
    /// Scratch: the keys a broadcast reaches, the (key, generation) pairs
    /// a publish wakes; kept so a fan-out allocates nothing.
    fanout_keys: Vec<usize>,
    woken: Vec<Entry>,
    generator: Box<dyn SeidGenerator>,
    pub settings: Settings,
    pub stats: Stats,
    pub shared: Arc<Shared>,
    /// Milliseconds since the loop started, set once per pass.
    pub now: u64,
    /// This second's `Date` value, for every response head.
    pub date: HttpDate,
    /// This second's stream heads, shared by the streams opened in it.
    pub stream_heads: StreamHeads,
}

impl Core {
    pub(crate) fn new(settings: Settings, generator: Box<dyn SeidGenerator>) -> Self {
        Core {
            conns: Slab::new(),
            directory: Directory::default(),
            outbox: Outbox::default(),
            deadlines: Deadlines::new(),
            end_of_pass: EndOfPass::default(),
            numbers: Numbers::default(),
            fanout_keys: Vec::new(),
            woken: Vec::new(),
            generator,
            settings,
            stats: Stats::default(),
            shared: Arc::default(),
            now: 0,
            date: HttpDate::new(),
            stream_heads: StreamHeads::default(),
        }
    }

    // ---- connections ----

    /// A new connection from `peer`; answers its key.
    pub(crate) fn add_conn(&mut self, peer: SocketAddr) -> usize {
        self.numbers.generation += 1;
        let key = self
            .conns
            .insert(Conn::new(self.numbers.generation, peer, self.now));
        self.stats.accepted += 1;
        self.stats.connections = self.conns.len();
        self.schedule(key);
        key
    }

    pub(crate) fn conn(&self, key: usize) -> Option<&Conn> {
        self.conns.get(key)
    }

    pub(crate) fn conn_mut(&mut self, key: usize) -> Option<&mut Conn> {
        self.conns.get_mut(key)
    }

    /// Every connection's key (for a shutdown).
    pub(crate) fn keys(&self) -> Vec<usize> {
        self.conns.iter().map(|(k, _)| k).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Whether streams wait for their write in a later pass.
    pub(crate) fn has_dirty_streams(&self) -> bool {
        self.outbox.has_streams()
    }

    /// When the next timer is due, in ms since the loop started.
    pub(crate) fn next_timer(&self) -> Option<u64> {
        self.deadlines.next()
    }

    /// Carries out what a transition of `key` asked for, as far as the
    /// indexes and lists go. Answers whether the socket's write side must be
    /// shut down (the only step that needs the socket).
    fn apply(&mut self, key: usize, step: Step) -> bool {
        match step {
            Step::Wait => {}
            Step::Close(reason, stream) => self.closed(key, reason, stream),
            Step::ResumeReading => self.end_of_pass.resume.push(key),
            Step::ShutdownWrite => return true,
        }
        self.schedule(key);
        false
    }

    /// Bookkeeping for a connection that just closed (with its `stream`, if
    /// one was open): from now on it is unreachable by seid and gets no
    /// more output.
    fn closed(&mut self, key: usize, reason: CloseReason, stream: Option<Stream>) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.queue.clear(&mut self.outbox.spare);
        }
        self.end_of_pass.closing.push(key);
        if let Some(stream) = stream {
            self.forget_stream(stream, reason);
        }
    }

    /// Closes `key` for `reason` (if it is not closed already).
    pub(crate) fn close(&mut self, key: usize, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(key) {
            let step = conn.close(reason);
            self.apply(key, step);
        }
    }

    /// The client of `key` sent EOF.
    pub(crate) fn on_eof(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            let step = conn.on_eof(self.now);
            self.apply(key, step);
        }
    }

    /// Keeps `bytes` read behind an answer or a stream for later (the
    /// connection decides how much it holds).
    pub(crate) fn hold_input(&mut self, key: usize, bytes: &[u8]) {
        if let Some(conn) = self.conns.get_mut(key) {
            let step = conn.on_input_held(bytes, self.settings.limits.max_head);
            self.apply(key, step);
        }
    }

    /// Connections free for their next request, to parse what they hold.
    pub(crate) fn take_resumed(&mut self) -> Option<usize> {
        self.end_of_pass.resume.pop()
    }

    /// Removes the connections that closed this pass from the slab,
    /// cancelling their timers, and tells `removed` each one's key (the I/O
    /// shell drops its socket). Their streams' seids and close reasons are
    /// taken separately, by [`take_closed_streams`](Core::take_closed_streams).
    pub(crate) fn remove_closed(&mut self, mut removed: impl FnMut(usize)) {
        while let Some(key) = self.end_of_pass.closing.pop() {
            if !self.conns.get(key).is_some_and(Conn::is_closed) {
                continue;
            }
            let conn = self.conns.remove(key);
            self.deadlines.cancel(conn.timer);
            removed(key);
        }
        self.stats.connections = self.conns.len();
    }

    /// Streams that ended or closed since the last call.
    pub(crate) fn take_closed_streams(&mut self) -> Vec<(Rc<str>, CloseReason)> {
        std::mem::take(&mut self.end_of_pass.closed_streams)
    }

    // ---- requests and answers ----

    /// A complete request for `key` goes to the handler now.
    pub(crate) fn on_request(&mut self, key: usize, request: &Request) {
        self.stats.requests += 1;
        self.conns[key].on_request(request, self.now);
    }

    /// A new deferral id, never given before.
    pub(crate) fn next_deferral(&mut self) -> u64 {
        self.numbers.deferral += 1;
        self.numbers.deferral
    }

    /// After the handler (or a deferred answer) ran for `key`: a deferral it
    /// made keeps `request` until answered.
    pub(crate) fn after_answer(&mut self, key: usize, deferred: Option<(u64, Request)>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some((id, request)) = deferred {
            if !conn.is_closed() {
                conn.on_defer(id, request, self.now);
                self.stats.deferred += 1;
            }
        }
        self.schedule(key);
    }

    /// Takes the request of deferral `id` on `key` to answer it now.
    pub(crate) fn take_deferred(&mut self, key: usize, id: u64) -> Option<Box<Request>> {
        self.conns.get_mut(key)?.take_deferred(id)
    }

    /// Queues a plain response on `key`, as its current request's answer.
    /// `extra` headers go before the response's own; `head_only` leaves out
    /// the body (a `HEAD`).
    pub(crate) fn respond(
        &mut self,
        key: usize,
        response: &Response,
        extra: &[(String, String)],
        head_only: bool,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let out = response.encode(
            conn.version(),
            &self.date,
            extra,
            conn.keep_alive(),
            head_only,
        );
        self.queue_bytes(key, Chunk::Owned(out));
        let step = self.conns[key].on_response(self.now);
        self.apply(key, step);
    }

    /// The current request of `key`, a `HEAD` for a stream, got the
    /// stream's head as its answer (queued already).
    pub(crate) fn answered_with_stream_head(&mut self, key: usize, chunked: bool) {
        if let Some(conn) = self.conns.get_mut(key) {
            let step = conn.on_stream_head_only(chunked, self.now);
            self.apply(key, step);
        }
    }

    /// Answers a request the parser refused, then closes.
    pub(crate) fn refuse(&mut self, key: usize, error: HttpError) {
        self.stats.bad_requests += 1;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.on_refused(self.now);
        // Not kept alive: `Connection: close` on HTTP/1.1, the default on 1.0.
        let response = Response::text(error.status(), format!("{error}\n"));
        let out = response.encode(conn.version(), &self.date, &[], false, false);
        self.queue_bytes(key, Chunk::Owned(out));
        self.schedule(key);
    }

    /// Answers the pending deferral of `key` with `status` (its deadline
    /// passed, or the server is shutting down).
    fn refuse_deferred(&mut self, key: usize, status: u16, why: &str) {
        let Some(id) = self.conns.get(key).and_then(Conn::deferred_id) else {
            return;
        };
        let Some(request) = self.take_deferred(key, id) else {
            return;
        };
        let head_only = request.method() == "HEAD";
        self.respond(key, &Response::text(status, why), &[], head_only);
    }

    // ---- streams ----

    /// Encodes `event` once, with the next automatic id when enabled.
    pub(crate) fn encode(&mut self, event: &Event) -> Result<Frame, FrameError> {
        if self.settings.auto_generate_id && !event.has_id() && event.data_str().is_some() {
            // The id is used up only by an event that encodes.
            let id = self.numbers.auto_id + 1;
            let frame = event.encode_with_auto_id(Some(id))?;
            self.numbers.auto_id = id;
            Ok(frame)
        } else {
            event.encode()
        }
    }

    /// Opens a stream on `key`: claims a seid and queues the response head.
    pub(crate) fn open_stream(
        &mut self,
        key: usize,
        head: Chunk,
        chunked: bool,
    ) -> Result<Rc<str>, StreamError> {
        if self.conns.get(key).is_none_or(Conn::is_closed) {
            return Err(StreamError::Closed);
        }
        if self
            .settings
            .max_clients
            .is_some_and(|max| self.directory.seids.len() >= max)
        {
            return Err(StreamError::TooManyClients);
        }
        let seid = self
            .generator
            .generate()
            .map_err(|e| StreamError::Generator(e.to_string()))?;
        let seid = self
            .directory
            .seids
            .claim(seid, key)
            .map_err(StreamError::Seid)?;
        self.conns[key].on_stream_open(chunked, seid.clone(), self.now);
        self.stats.streams_opened += 1;
        self.set_clients();
        self.queue_bytes(key, head);
        self.schedule(key);
        Ok(seid)
    }

    /// Ends the stream on `key` cleanly: the last chunk on HTTP/1.1 (and the
    /// connection stays for the next request if kept alive), a close on 1.0.
    pub(crate) fn end_stream(&mut self, key: usize, reason: CloseReason) {
        // What was published before the end goes out before it.
        self.catch_up(key);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(chunked) = conn.stream_chunked() else {
            return;
        };
        if chunked {
            conn.queue
                .push(Chunk::Static(LAST_CHUNK), &mut self.outbox.spare);
        }
        let Some((stream, step)) = conn.on_stream_end(self.now) else {
            return;
        };
        if !conn.queue.is_empty() {
            self.mark_dirty(key);
        }
        self.forget_stream(stream, reason);
        self.apply(key, step);
    }

    /// Ends the stream with `seid`.
    pub(crate) fn end_seid(&mut self, seid: &str) -> Result<(), SendError> {
        let key = self
            .directory
            .seids
            .get(seid)
            .ok_or(SendError::UnknownSeid)?;
        self.end_stream(key, CloseReason::Done);
        Ok(())
    }

    /// Takes an ended stream off the seid and topic indexes (it can no
    /// longer be addressed) and notes it for `on_close`.
    fn forget_stream(&mut self, stream: Stream, reason: CloseReason) {
        let seid = self.directory.forget(stream);
        self.stats.streams_closed += 1;
        match reason {
            CloseReason::Idle => self.stats.evicted_idle += 1,
            CloseReason::QueueFull => self.stats.evicted_queue_full += 1,
            CloseReason::Shutdown => self.stats.evicted_shutdown += 1,
            _ => {}
        }
        self.end_of_pass.closed_streams.push((seid, reason));
        self.set_clients();
    }

    fn set_clients(&mut self) {
        self.stats.clients = self.directory.seids.len();
        self.shared
            .clients
            .store(self.stats.clients, Ordering::Relaxed);
    }

    /// Ends the stream on `key` cleanly `after` ms from now, unless it ends
    /// sooner.
    pub(crate) fn end_after(&mut self, key: usize, after: u64) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.on_lifetime(self.now.saturating_add(after));
            self.schedule(key);
        }
    }

    /// Adds the stream on `key` to `topic`.
    pub(crate) fn subscribe(&mut self, key: usize, topic: &str) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.seid().is_none() {
            return;
        }
        let joined = self
            .directory
            .join(conn.topics(), topic, key, conn.generation);
        if let Some(membership) = joined {
            conn.on_join(membership);
        }
    }

    /// The topics the stream with `seid` is subscribed to.
    pub(crate) fn topics_of(&self, seid: &str) -> Vec<&str> {
        self.directory
            .seids
            .get(seid)
            .and_then(|k| self.conns.get(k))
            .map(|c| self.directory.names(c.topics()))
            .unwrap_or_default()
    }

    /// Moves into `key`'s queue what its topics published that it has not
    /// taken yet. Runs before anything else is queued on a stream and
    /// before it is written, so its output keeps the order things happened.
    pub(crate) fn catch_up(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some((topics, queue, chunked)) = conn.stream_output() else {
            return;
        };
        if topics.is_empty() {
            return;
        }
        let spare = &mut self.outbox.spare;
        let taken = self.directory.topics.catch_up(topics, |frame| {
            queue.push(Chunk::Frame(frame.clone(), chunked), spare);
        });
        self.stats.frames_queued += taken as u64;
    }

    // ---- output ----

    /// Notes that `key` has output to write this pass (or the next).
    fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            let (generation, streaming) = (conn.generation, conn.is_streaming());
            self.outbox.mark(&mut conn.mark, key, generation, streaming);
        }
    }

    /// The next connection with a plain response to write.
    pub(crate) fn next_dirty_response(&mut self) -> Option<usize> {
        while let Some(entry) = self.outbox.pop_response() {
            if let Some(key) = self.take_listed(entry) {
                return Some(key);
            }
        }
        None
    }

    /// The next stream with output to write, oldest first.
    pub(crate) fn next_dirty_stream(&mut self) -> Option<usize> {
        while let Some(entry) = self.outbox.pop_stream() {
            if let Some(key) = self.take_listed(entry) {
                return Some(key);
            }
        }
        None
    }

    /// An entry off a list of output to write: its key, off the list, if
    /// it is still its connection's (`None` for one left by a connection
    /// since removed).
    fn take_listed(&mut self, (key, generation): Entry) -> Option<usize> {
        let conn = self.conns.get_mut(key)?;
        if conn.generation != generation {
            return None;
        }
        self.outbox.taken(&mut conn.mark);
        Some(key)
    }

    /// The next queue to write before anything else happens.
    pub(crate) fn next_urgent(&mut self) -> Option<usize> {
        self.outbox.next_urgent()
    }

    /// Whether `key` has output that a write could send now.
    pub(crate) fn wants_write(&self, key: usize) -> bool {
        self.conns
            .get(key)
            .is_some_and(|c| !c.is_closed() && !c.queue.is_empty())
    }

    /// Whether `key` has a plain answer queued (written at once, not at the
    /// end of the pass).
    pub(crate) fn has_answer_queued(&self, key: usize) -> bool {
        self.conns
            .get(key)
            .is_some_and(|c| !c.is_streaming() && self.outbox.is_marked(&c.mark))
    }

    /// The write queue of `key` and the spare buffers it gives back to.
    pub(crate) fn queue_of(
        &mut self,
        key: usize,
    ) -> Option<(&mut crate::queue::WriteQueue, &mut SpareBuffers)> {
        let conn = self.conns.get_mut(key)?;
        Some((&mut conn.queue, &mut self.outbox.spare))
    }

    /// What a write of `key`'s queue did. Answers whether the socket's write
    /// side must be shut down now.
    pub(crate) fn on_flushed(&mut self, key: usize, result: io::Result<Flushed>) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let step = match result {
            Ok(done) => {
                self.stats.bytes_written += done.bytes as u64;
                self.stats.write_calls += done.syscalls as u64;
                self.stats.frames_written += done.frames as u64;
                conn.on_flushed(&done, self.settings.max_queue, self.now)
            }
            Err(e) => conn.on_write_error(e.kind()),
        };
        self.apply(key, step)
    }

    /// Queues raw bytes (a response head or body) on a connection.
    pub(crate) fn queue_bytes(&mut self, key: usize, chunk: Chunk) {
        self.catch_up(key);
        if let Some(conn) = self.conns.get_mut(key) {
            if conn.is_closed() {
                return;
            }
            conn.queue.push(chunk, &mut self.outbox.spare);
            self.mark_dirty(key);
        }
    }

    /// Queues a frame on a stream. A queue past [`FLUSH_EARLY`] (or the cap)
    /// is written as soon as the current handler call or command returns,
    /// and a client still past the cap then is evicted.
    pub(crate) fn queue_frame(&mut self, key: usize, frame: &Frame) {
        self.catch_up(key);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(chunked) = conn.stream_chunked() else {
            return;
        };
        conn.queue
            .push(Chunk::Frame(frame.clone(), chunked), &mut self.outbox.spare);
        self.stats.frames_queued += 1;
        self.mark_dirty(key);
        self.flush_early_if_long(key);
    }

    /// Puts `key` on the urgent list if its queue is past [`FLUSH_EARLY`]
    /// (or the cap).
    fn flush_early_if_long(&mut self, key: usize) {
        let queued = self.conns.get(key).map_or(0, |c| c.queue.len());
        if queued > FLUSH_EARLY.min(self.settings.max_queue) {
            self.outbox.push_urgent(key);
        }
    }

    /// Sends `event` to the stream with `seid`.
    pub(crate) fn send_to(&mut self, seid: &str, event: &Event) -> Result<(), SendError> {
        let key = self
            .directory
            .seids
            .get(seid)
            .ok_or(SendError::UnknownSeid)?;
        let frame = self.encode(event)?;
        self.queue_frame(key, &frame);
        Ok(())
    }

    /// Queues `frame` on the stream with `seid`.
    pub(crate) fn send_frame_to(&mut self, seid: &str, frame: &Frame) -> Result<(), SendError> {
        let key = self
            .directory
            .seids
            .get(seid)
            .ok_or(SendError::UnknownSeid)?;
        self.queue_frame(key, frame);
        Ok(())
    }

    /// Queues `frame` on every stream; answers how many.
    pub(crate) fn broadcast_frame(&mut self, frame: &Frame) -> usize {
        let mut keys = std::mem::take(&mut self.fanout_keys);
        keys.extend(self.directory.seids.iter().map(|(_, k)| k));
        self.queue_frame_on(&mut keys, frame)
    }

    /// Publishes `frame` to every stream subscribed to `topic`; answers how
    /// many. The frame goes on the topic's log once; only the subscribers
    /// that had nothing left to write are put on the list to write (the
    /// others are on it already, and take the frame with the rest).
    pub(crate) fn publish_frame(&mut self, topic: &str, frame: &Frame) -> usize {
        let mut woken = std::mem::take(&mut self.woken);
        let published = self.directory.topics.publish(topic, frame, &mut woken);
        for &entry in &woken {
            let key = entry.0;
            if is_current(&self.conns, entry) {
                self.mark_dirty(key);
            }
        }
        if published.backlog > FLUSH_EARLY.min(self.settings.max_queue) {
            // A burst: rather than let the log hold it until each
            // subscriber's turn, queue it now and write the long queues as
            // soon as this handler call returns, as a direct send would.
            woken.clear();
            self.directory.topics.behind(topic, &mut woken);
            for &entry in &woken {
                let key = entry.0;
                if is_current(&self.conns, entry) {
                    self.catch_up(key);
                    self.flush_early_if_long(key);
                }
            }
        }
        woken.clear();
        self.woken = woken;
        published.reached
    }

    /// Queues `frame` on each of `keys` (taken from `fanout_keys`, whose
    /// allocation is given back, so a fan-out allocates nothing).
    fn queue_frame_on(&mut self, keys: &mut Vec<usize>, frame: &Frame) -> usize {
        for &key in keys.iter() {
            self.queue_frame(key, frame);
        }
        let count = keys.len();
        keys.clear();
        self.fanout_keys = std::mem::take(keys);
        count
    }

    // ---- time ----

    /// Makes sure `key`'s timer fires no later than its deadline.
    pub(crate) fn schedule(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            let at = conn.deadline(&self.settings.timeouts);
            let generation = conn.generation;
            self.deadlines.ensure(&mut conn.timer, key, generation, at);
        }
    }

    /// Fires the timers due by `now`: heartbeats (queued as urgent, so the
    /// next deadline counts from their write), deadlines and evictions.
    pub(crate) fn fire_timers(&mut self, fired: &mut Vec<(usize, u64)>) {
        let now = self.now;
        self.deadlines.fire(now, fired);
        let timeouts = self.settings.timeouts;
        for (key, generation) in fired.drain(..) {
            if !is_current(&self.conns, (key, generation)) {
                continue; // a timer of an earlier connection in this slot
            }
            let conn = &mut self.conns[key];
            self.deadlines.fired(&mut conn.timer);
            match conn.on_timeout(now, &timeouts) {
                Due::Later(_) => {}
                Due::Heartbeat => {
                    self.heartbeat(key);
                    self.outbox.push_urgent(key);
                }
                Due::RequestTimeout => {
                    self.stats.head_timeouts += 1;
                    self.refuse(key, HttpError::Timeout);
                }
                Due::KeepAliveOver => {
                    self.stats.head_timeouts += 1;
                    self.close(key, CloseReason::HeadTimeout);
                }
                Due::AnswerTimeout => {
                    self.stats.deferred_timeouts += 1;
                    let why = "no answer came in time\n";
                    self.refuse_deferred(key, 504, why);
                }
                Due::Idle => self.close(key, CloseReason::Idle),
                Due::Expired => self.end_stream(key, CloseReason::Expired),
                Due::LingerOver => self.close(key, CloseReason::Done),
            }
            self.schedule(key);
        }
    }

    /// Queues a heartbeat comment on a stream.
    fn heartbeat(&mut self, key: usize) {
        if let Some(chunked) = self.conns.get(key).and_then(Conn::stream_chunked) {
            let bytes = if chunked { HEARTBEAT_CHUNK } else { HEARTBEAT };
            self.stats.heartbeats += 1;
            self.queue_bytes(key, Chunk::Static(bytes));
        }
    }

    /// Begins a shutdown on every connection: streams end cleanly, pending
    /// answers get `503`, idle connections close, the rest drain.
    pub(crate) fn shutdown_all(&mut self) {
        for key in self.keys() {
            let now = self.now;
            match self.conns[key].on_shutdown(now) {
                ShutdownStep::EndStream => self.end_stream(key, CloseReason::Shutdown),
                ShutdownStep::RefuseDeferred => {
                    self.refuse_deferred(key, 503, "the server is shutting down\n");
                }
                ShutdownStep::Close => self.close(key, CloseReason::Shutdown),
                ShutdownStep::Drain | ShutdownStep::Nothing => {}
            }
            self.schedule(key);
        }
    }
}

/// Whether `entry` (key, generation) is still its connection.
fn is_current(conns: &Slab<Conn>, (key, generation): Entry) -> bool {
    conns.get(key).is_some_and(|c| c.generation == generation)
}
