//! Everything the loop knows apart from `mio` itself: the connections, the
//! seid and topic indexes, the timers, the counters; and the operations on
//! them that a handler ([`Reply`](crate::Reply)) and another thread
//! ([`Handle`](crate::Handle)) share, so both go through one path.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mio::net::TcpStream;
use slab::Slab;

use crate::conn::{Chunk, CloseReason, Conn, Phase, SpareBuffers, Timeouts};
use crate::date::HttpDate;
use crate::frame::{Event, Frame, FrameError, LAST_CHUNK};
use crate::reply::StreamHeads;
use crate::seid::{SeidGenerator, SeidIndex};
use crate::timer::TimerWheel;

/// Milliseconds per timer-wheel tick.
pub(crate) const TICK_MS: u64 = 10;

/// A queue past this is written at once instead of at the end of the pass,
/// so a burst cannot grow a healthy client's queue to its cap.
const FLUSH_EARLY: usize = 64 * 1024;

/// The most streams written per pass of the loop. The rest wait, in order,
/// for the next pass, which comes at once (a zero poll timeout) after
/// reading whatever arrived meanwhile. Under a fan-out that keeps the loop
/// busy, events published meanwhile join the waiting streams' queues and go
/// out in the same write, instead of one syscall per client per event; an
/// idle loop still writes everything as fast as before, just in several
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

/// Counters the loop keeps; read them with [`Reply::stats`](crate::Reply::stats)
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
    /// Requests handed to the handler.
    pub requests: u64,
    /// Requests refused by the parser (4xx/5xx).
    pub bad_requests: u64,
    /// Streams opened.
    pub streams_opened: u64,
    /// Streams closed or ended, for any reason.
    pub streams_closed: u64,
    /// Frames queued to clients (a broadcast to N clients counts N).
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
}

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
    /// Opening the stream failed (see [`StreamError`](crate::StreamError)).
    Open(crate::reply::StreamError),
    /// The server has stopped; only from a [`Handle`](crate::Handle).
    Stopped,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Ended => f.write_str("the stream has ended"),
            SendError::NotStreaming => f.write_str("the request was answered without a stream"),
            SendError::UnknownSeid => f.write_str("no live stream has this seid"),
            SendError::Frame(e) => write!(f, "cannot encode event: {e}"),
            SendError::Open(e) => write!(f, "cannot open stream: {e}"),
            SendError::Stopped => f.write_str("the server has stopped"),
        }
    }
}

impl std::error::Error for SendError {}

impl From<FrameError> for SendError {
    fn from(e: FrameError) -> Self {
        SendError::Frame(e)
    }
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

/// A connection and its socket.
pub(crate) struct Entry {
    pub socket: TcpStream,
    pub conn: Conn,
}

/// State shared with other threads without a round trip through the loop.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub clients: AtomicUsize,
}

pub(crate) struct Core {
    pub conns: Slab<Entry>,
    pub seids: SeidIndex,
    pub topics: HashMap<Rc<str>, Slab<usize>>,
    pub timers: TimerWheel<(usize, u64)>,
    pub settings: Settings,
    pub stats: Stats,
    pub shared: Arc<Shared>,
    pub generator: Box<dyn SeidGenerator>,
    /// The last id given by `auto_generate_id`.
    pub last_auto_id: u64,
    /// Milliseconds since the loop started, read once per pass.
    pub now: u64,
    /// Streams with output queued and not yet written, oldest first.
    pub dirty_streams: VecDeque<usize>,
    /// Other connections with output queued (plain responses): written
    /// first, every pass, so an answer never waits behind a fan-out.
    pub dirty_responses: Vec<usize>,
    /// Connections to remove at the end of the pass.
    pub closing: Vec<usize>,
    /// Connections back in `Head` that may hold a pipelined request.
    pub resume: Vec<usize>,
    /// Streams that ended or closed this pass: (seid, reason), for `on_close`.
    pub closed_streams: Vec<(Rc<str>, CloseReason)>,
    /// Scratch for the keys a broadcast or publish reaches.
    fanout_keys: Vec<usize>,
    /// Write-queue buffers the streams lend each other.
    spare: SpareBuffers,
    next_generation: u64,
    /// This second's `Date` value, for every response head.
    pub date: HttpDate,
    /// This second's stream heads, shared by the streams opened in it.
    pub stream_heads: StreamHeads,
}

impl Core {
    pub(crate) fn new(settings: Settings, generator: Box<dyn SeidGenerator>) -> Self {
        Core {
            conns: Slab::new(),
            seids: SeidIndex::default(),
            topics: HashMap::new(),
            timers: TimerWheel::new(0),
            settings,
            stats: Stats::default(),
            shared: Arc::default(),
            generator,
            last_auto_id: 0,
            now: 0,
            dirty_streams: VecDeque::new(),
            dirty_responses: Vec::new(),
            closing: Vec::new(),
            resume: Vec::new(),
            closed_streams: Vec::new(),
            fanout_keys: Vec::new(),
            spare: SpareBuffers::default(),
            next_generation: 0,
            date: HttpDate::new(),
            stream_heads: StreamHeads::default(),
        }
    }

    pub(crate) fn next_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// Encodes `event` once, with the next automatic id when enabled.
    pub(crate) fn encode(&mut self, event: &Event) -> Result<Frame, FrameError> {
        if self.settings.auto_generate_id && !event.has_id() && event.data_str().is_some() {
            // The id is used up only by an event that encodes.
            let id = self.last_auto_id + 1;
            let frame = event.encode_with_auto_id(Some(id))?;
            self.last_auto_id = id;
            Ok(frame)
        } else {
            event.encode()
        }
    }

    /// Notes that `key` has output to write this pass (or the next).
    fn mark_dirty(&mut self, key: usize) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        if !entry.conn.dirty {
            entry.conn.dirty = true;
            if entry.conn.is_streaming() {
                self.dirty_streams.push_back(key);
            } else {
                self.dirty_responses.push(key);
            }
        }
    }

    /// Writes queued output: every plain response, then up to
    /// [`STREAM_FLUSH_BUDGET`] streams, oldest first.
    pub(crate) fn flush_dirty(&mut self) {
        let mut responses = std::mem::take(&mut self.dirty_responses);
        for &key in &responses {
            self.flush(key);
        }
        responses.clear();
        self.dirty_responses = responses;
        for _ in 0..STREAM_FLUSH_BUDGET {
            let Some(key) = self.dirty_streams.pop_front() else {
                break;
            };
            self.flush(key);
        }
    }

    /// Queues raw bytes (a response head or body) on a connection.
    pub(crate) fn queue_bytes(&mut self, key: usize, chunk: Chunk) {
        if let Some(entry) = self.conns.get_mut(key) {
            entry.conn.queue.push(chunk, &mut self.spare);
            self.mark_dirty(key);
        }
    }

    /// Queues a frame on a stream, evicting the client if that takes its
    /// queue past the cap.
    pub(crate) fn queue_frame(&mut self, key: usize, frame: &Frame) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Streaming { chunked } = entry.conn.phase else {
            return;
        };
        entry
            .conn
            .queue
            .push(Chunk::Frame(frame.clone(), chunked), &mut self.spare);
        let queued = entry.conn.queue.len();
        self.stats.frames_queued += 1;
        self.mark_dirty(key);
        let queued = if queued > FLUSH_EARLY {
            self.flush(key);
            self.conns.get(key).map_or(0, |e| e.conn.queue.len())
        } else {
            queued
        };
        if queued > self.settings.max_queue {
            self.close(key, CloseReason::QueueFull);
        }
    }

    /// Sends `event` to the stream with `seid`.
    pub(crate) fn send_to(&mut self, seid: &str, event: &Event) -> Result<(), SendError> {
        let key = self.seids.get(seid).ok_or(SendError::UnknownSeid)?;
        let frame = self.encode(event)?;
        self.queue_frame(key, &frame);
        Ok(())
    }

    /// Queues `frame` on the stream with `seid`.
    pub(crate) fn send_frame_to(&mut self, seid: &str, frame: &Frame) -> Result<(), SendError> {
        let key = self.seids.get(seid).ok_or(SendError::UnknownSeid)?;
        self.queue_frame(key, frame);
        Ok(())
    }

    /// Queues `frame` on every stream; answers how many.
    pub(crate) fn broadcast_frame(&mut self, frame: &Frame) -> usize {
        let mut keys = std::mem::take(&mut self.fanout_keys);
        keys.extend(self.seids.iter().map(|(_, k)| k));
        self.queue_frame_on(&mut keys, frame)
    }

    /// Queues `frame` on every stream subscribed to `topic`; answers how many.
    pub(crate) fn publish_frame(&mut self, topic: &str, frame: &Frame) -> usize {
        let Some(members) = self.topics.get(topic) else {
            return 0;
        };
        let mut keys = std::mem::take(&mut self.fanout_keys);
        keys.extend(members.iter().map(|(_, &k)| k));
        self.queue_frame_on(&mut keys, frame)
    }

    /// Queues `frame` on each of `keys` (taken from `fanout_keys`, whose
    /// allocation is given back, so a fan-out allocates nothing).
    fn queue_frame_on(&mut self, keys: &mut Vec<usize>, frame: &Frame) -> usize {
        // Collected first: queueing can evict, which edits the indexes.
        for &key in keys.iter() {
            self.queue_frame(key, frame);
        }
        let count = keys.len();
        keys.clear();
        self.fanout_keys = std::mem::take(keys);
        count
    }

    /// Adds the stream on `key` to `topic`.
    pub(crate) fn subscribe(&mut self, key: usize, topic: &str) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        if entry.conn.seid.is_none() || entry.conn.topics.iter().any(|(t, _)| &**t == topic) {
            return;
        }
        let name: Rc<str> = match self.topics.get_key_value(topic) {
            Some((name, _)) => name.clone(),
            None => Rc::from(topic),
        };
        let slot = self.topics.entry(name.clone()).or_default().insert(key);
        entry.conn.topics.push((name, slot));
    }

    /// The topics the stream with `seid` is subscribed to.
    pub(crate) fn topics_of(&self, seid: &str) -> Vec<&str> {
        self.seids
            .get(seid)
            .and_then(|k| self.conns.get(k))
            .map(|e| e.conn.topics.iter().map(|(t, _)| &**t).collect())
            .unwrap_or_default()
    }

    /// Opens a stream on `key`: claims a seid and writes the response head.
    pub(crate) fn open_stream(
        &mut self,
        key: usize,
        head: Chunk,
        chunked: bool,
    ) -> Result<Rc<str>, crate::reply::StreamError> {
        use crate::reply::StreamError;
        if self
            .settings
            .max_clients
            .is_some_and(|max| self.seids.len() >= max)
        {
            return Err(StreamError::TooManyClients);
        }
        let seid = self
            .generator
            .generate()
            .map_err(|e| StreamError::Generator(e.to_string()))?;
        let seid = self.seids.claim(seid, key).map_err(StreamError::Seid)?;
        let now = self.now;
        let entry = &mut self.conns[key];
        entry.conn.set_phase(Phase::Streaming { chunked }, now);
        entry.conn.last_write = now;
        entry.conn.seid = Some(seid.clone());
        // An idle stream keeps no read buffer.
        entry.conn.reader.release();
        self.stats.streams_opened += 1;
        self.set_clients();
        self.queue_bytes(key, head);
        self.schedule(key);
        Ok(seid)
    }

    /// Ends the stream on `key` cleanly: the last chunk on HTTP/1.1 (and the
    /// connection stays for the next request if kept alive), a close on 1.0.
    pub(crate) fn end_stream(&mut self, key: usize, reason: CloseReason) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Streaming { chunked } = entry.conn.phase else {
            return;
        };
        if chunked {
            entry
                .conn
                .queue
                .push(Chunk::Static(LAST_CHUNK), &mut self.spare);
        }
        let now = self.now;
        if chunked && entry.conn.keep_alive && !entry.conn.read_closed {
            entry.conn.set_phase(Phase::Reading, now);
            self.resume.push(key);
        } else {
            entry.conn.set_phase(Phase::Draining, now);
        }
        if entry.conn.queue.is_empty() {
            if matches!(entry.conn.phase, Phase::Draining) {
                self.close(key, CloseReason::Done);
            }
        } else {
            self.mark_dirty(key);
        }
        self.forget_stream(key, reason);
        self.schedule(key);
    }

    /// Ends the stream with `seid`.
    pub(crate) fn end_seid(&mut self, seid: &str) -> Result<(), SendError> {
        let key = self.seids.get(seid).ok_or(SendError::UnknownSeid)?;
        self.end_stream(key, CloseReason::Done);
        Ok(())
    }

    /// Removes a stream from the seid and topic indexes (it can no longer
    /// be addressed) and notes it for `on_close`.
    fn forget_stream(&mut self, key: usize, reason: CloseReason) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let Some(seid) = entry.conn.seid.take() else {
            return;
        };
        self.seids.release(&seid);
        for (topic, slot) in entry.conn.topics.drain(..) {
            if let Some(members) = self.topics.get_mut(&topic) {
                members.remove(slot);
                if members.is_empty() {
                    self.topics.remove(&topic);
                }
            }
        }
        entry.conn.topics = Vec::new();
        self.stats.streams_closed += 1;
        match reason {
            CloseReason::Idle => self.stats.evicted_idle += 1,
            CloseReason::QueueFull => self.stats.evicted_queue_full += 1,
            CloseReason::Shutdown => self.stats.evicted_shutdown += 1,
            _ => {}
        }
        self.closed_streams.push((seid, reason));
        self.set_clients();
    }

    fn set_clients(&mut self) {
        self.stats.clients = self.seids.len();
        self.shared
            .clients
            .store(self.stats.clients, Ordering::Relaxed);
    }

    /// Marks `key` for removal at the end of the pass; from now on it is
    /// unreachable by seid and gets no more output.
    pub(crate) fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        if entry.conn.closing.is_some() {
            return;
        }
        entry.conn.closing = Some(reason);
        entry.conn.queue.clear(&mut self.spare);
        self.closing.push(key);
        self.forget_stream(key, reason);
    }

    /// Writes what `key` has queued.
    pub(crate) fn flush(&mut self, key: usize) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        entry.conn.dirty = false;
        if entry.conn.closing.is_some() || entry.conn.queue.is_empty() {
            return;
        }
        match entry.conn.queue.flush(&mut entry.socket, &mut self.spare) {
            Ok(done) => {
                if done.bytes > 0 {
                    entry.conn.last_write = self.now;
                }
                self.stats.bytes_written += done.bytes as u64;
                self.stats.write_calls += done.syscalls as u64;
                self.stats.frames_written += done.frames as u64;
                if !entry.conn.queue.is_empty() {
                    return;
                }
                if matches!(entry.conn.phase, Phase::Draining) {
                    if !entry.conn.linger || entry.conn.read_closed {
                        self.close(key, CloseReason::Done);
                        return;
                    }
                    // Half-close and linger for the client's EOF.
                    let _ = entry.socket.shutdown(std::net::Shutdown::Write);
                }
                // An empty queue can bring the deadline closer (a heartbeat
                // is only due behind nothing; a drained close lingers briefly).
                self.schedule(key);
            }
            Err(e) => {
                let reason = match e.kind() {
                    std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted => CloseReason::ClientGone,
                    _ => CloseReason::IoError,
                };
                self.close(key, reason);
            }
        }
    }

    /// Makes sure `key`'s timer fires no later than its deadline. Timers are
    /// lazy: writes do not move them; a timer that fires early is set again.
    pub(crate) fn schedule(&mut self, key: usize) {
        let timeouts = self.settings.timeouts;
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let at = entry.conn.deadline(&timeouts);
        if let Some((timer, set_at)) = entry.conn.timer {
            if set_at <= at {
                return;
            }
            self.timers.cancel(timer);
        }
        let tick = at.div_ceil(TICK_MS);
        let timer = self.timers.insert(tick, (key, entry.conn.generation));
        entry.conn.timer = Some((timer, at));
    }

    /// Queues a heartbeat comment on a stream.
    pub(crate) fn heartbeat(&mut self, key: usize) {
        if let Some(Phase::Streaming { chunked }) = self.conns.get(key).map(|e| &e.conn.phase) {
            let bytes = if *chunked { HEARTBEAT_CHUNK } else { HEARTBEAT };
            self.stats.heartbeats += 1;
            self.queue_bytes(key, Chunk::Static(bytes));
        }
    }
}
