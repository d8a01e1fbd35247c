//! The event loop: the only module that does I/O. It accepts, reads, hands
//! complete requests to the handler, runs commands from other threads, fires
//! timers, and writes everything queued once per pass.

use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::conn::{Chunk, CloseReason, Conn, Due, Phase, Timeouts};
use crate::core::{Core, Entry, Settings, TICK_MS};
use crate::handle::{Command, Handle};
use crate::http::{HttpError, Limits, Request, RequestReader};
use crate::reply::{Reply, Response};
use crate::seid::{RandomSeid, SeidGenerator};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

/// How long to stop accepting after the process runs out of file
/// descriptors (EMFILE/ENFILE), so the loop does not spin on a listener
/// that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Bytes read per `read` call, into one buffer the whole loop shares.
const READ_CHUNK: usize = 16 * 1024;

/// The default server timeout, as in the seed: 120 000 ms.
pub const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_millis(120_000);
/// The default request-head deadline: 10 s.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The default per-client send-queue cap: 1 MiB.
pub const DEFAULT_MAX_QUEUE: usize = 1024 * 1024;
/// The default grace period of a shutdown: 5 s.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The application's side of the server: called once per request.
///
/// Any `FnMut(&Request, &mut Reply)` is a handler. Implement the trait to
/// also hear when streams close.
pub trait Handler: 'static {
    /// Answers one request (plainly or with a stream) through `reply`.
    fn on_request(&mut self, req: &Request, reply: &mut Reply<'_>);

    /// A stream ended or its client left; its seid is no longer live.
    fn on_close(&mut self, _seid: &str, _reason: CloseReason) {}
}

impl<F: FnMut(&Request, &mut Reply<'_>) + 'static> Handler for F {
    fn on_request(&mut self, req: &Request, reply: &mut Reply<'_>) {
        self(req, reply)
    }
}

/// Configures a [`Server`]; start with [`Server::builder`].
pub struct Builder {
    addr: Option<SocketAddr>,
    listener: Option<std::net::TcpListener>,
    backlog: u32,
    server_timeout: Duration,
    head_timeout: Duration,
    heartbeat: Option<Duration>,
    max_queue: usize,
    max_clients: Option<usize>,
    limits: Limits,
    auto_generate_id: bool,
    shutdown_grace: Duration,
    generator: Box<dyn SeidGenerator>,
}

impl Builder {
    /// Listens on `addr` (resolved now; the first address is used).
    ///
    /// # Errors
    /// When `addr` does not resolve.
    pub fn bind(mut self, addr: impl ToSocketAddrs) -> io::Result<Self> {
        self.addr = addr.to_socket_addrs()?.next();
        if self.addr.is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no address"));
        }
        Ok(self)
    }

    /// Uses a listener the program already bound. Its backlog is set to
    /// [`backlog`](Builder::backlog) too.
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// How many connections the kernel may hold, handshake done, until the
    /// loop accepts them (default 1024; Linux caps it at
    /// `net.core.somaxconn`). std and mio would leave 128, which a burst of
    /// subscribers overflows while the loop is busy: the overflow is not
    /// refused but stalled or reset.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog.max(1);
        self
    }

    /// Closes a stream on which nothing could be written for this long
    /// (the seed's `serverTimeout`; default 120 000 ms). Heartbeats count as
    /// writes, so with heartbeats on this catches stalled clients.
    pub fn server_timeout(mut self, timeout: Duration) -> Self {
        self.server_timeout = timeout;
        self
    }

    /// Closes a connection that has not sent a complete request head (or
    /// made progress on its body) within this (default 10 s; slowloris).
    pub fn head_timeout(mut self, timeout: Duration) -> Self {
        self.head_timeout = timeout;
        self
    }

    /// Writes a comment (`:`) on a stream after this long without a write,
    /// so proxies do not close quiet streams (off by default; the spec
    /// suggests about 15 s).
    pub fn heartbeat(mut self, every: Option<Duration>) -> Self {
        self.heartbeat = every;
        self
    }

    /// The most bytes queued for one client before it is evicted as too slow
    /// (default 1 MiB). Other clients never wait for it. Set it well above
    /// the largest event you send: a healthy client can have the rest of one
    /// event still queued when the next arrives.
    pub fn max_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queue = bytes;
        self
    }

    /// The most live streams (default: no limit). Past it, opening a stream
    /// fails with [`StreamError::TooManyClients`](crate::StreamError::TooManyClients).
    pub fn max_clients(mut self, max: Option<usize>) -> Self {
        self.max_clients = max;
        self
    }

    /// The request-head limit (default 8 KiB; past it, `431`).
    pub fn max_head_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_head = bytes;
        self
    }

    /// The request-body limit (default 1 MiB; past it, `413`).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_body = bytes;
        self
    }

    /// Whether events without an id get one automatically (default on, as in
    /// the seed's `autoGenerateId`). Ids are one counter for the whole
    /// server, so they increase on every stream and a broadcast carries one id.
    pub fn auto_generate_id(mut self, on: bool) -> Self {
        self.auto_generate_id = on;
        self
    }

    /// How long a shutdown may spend flushing before it closes what is left
    /// (default 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Where seids come from (default [`RandomSeid`]).
    pub fn seid_generator(mut self, generator: impl SeidGenerator) -> Self {
        self.generator = Box::new(generator);
        self
    }

    /// Binds (if needed) and builds the server; nothing runs until
    /// [`Server::run`].
    ///
    /// # Errors
    /// Binding or creating the poller failed.
    pub fn build(self, handler: impl Handler) -> io::Result<Server> {
        let mut listener = match (self.listener, self.addr) {
            (Some(l), _) => {
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            }
            // mio sets SO_REUSEADDR, so a restart can bind at once.
            (None, Some(addr)) => TcpListener::bind(addr)?,
            (None, None) => TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 8080)))?,
        };
        crate::listen::set_backlog(&listener, self.backlog)?;
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, commands) = mpsc::channel();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4);
        let settings = Settings {
            timeouts: Timeouts {
                head: ms(self.head_timeout),
                idle: ms(self.server_timeout),
                heartbeat: self.heartbeat.map(ms).filter(|&h| h > 0),
            },
            limits: self.limits,
            max_queue: self.max_queue,
            max_clients: self.max_clients,
            auto_generate_id: self.auto_generate_id,
        };
        let core = Core::new(settings, self.generator);
        let handle = Handle::new(tx, waker, core.shared.clone());
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            commands,
            handle,
            core,
            handler: Box::new(handler),
            started: Instant::now(),
            accept_paused_until: None,
            shutdown_default: ms(self.shutdown_grace),
            shutdown_deadline: None,
            read_buf: vec![0; READ_CHUNK].into_boxed_slice(),
        })
    }
}

/// An SSE server: one `mio` event loop on the thread that calls
/// [`run`](Server::run).
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    commands: mpsc::Receiver<Command>,
    handle: Handle,
    core: Core,
    handler: Box<dyn Handler>,
    started: Instant,
    accept_paused_until: Option<u64>,
    shutdown_default: u64,
    shutdown_deadline: Option<u64>,
    read_buf: Box<[u8]>,
}

impl Server {
    /// A builder with the defaults.
    pub fn builder() -> Builder {
        Builder {
            addr: None,
            listener: None,
            backlog: crate::listen::DEFAULT_BACKLOG,
            server_timeout: DEFAULT_SERVER_TIMEOUT,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            heartbeat: None,
            max_queue: DEFAULT_MAX_QUEUE,
            max_clients: None,
            limits: Limits::default(),
            auto_generate_id: true,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            generator: Box::new(RandomSeid::default()),
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle for other threads.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs the loop until a [`Handle::shutdown`] completes.
    ///
    /// # Errors
    /// Only if the poller itself fails; errors on single connections close
    /// those connections.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut fired = Vec::new();
        loop {
            let timeout = self.poll_timeout();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                // Not an error: a signal interrupted the wait.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.core.now = self.elapsed_ms();
            if self.core.date.is_stale(self.core.now) {
                // Once a second: every response this second shows it.
                self.core.date.set(self.core.now, SystemTime::now());
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => self.run_commands(),
                    Token(key) => {
                        if event.is_read_closed() || event.is_error() {
                            // Read to the end: the EOF raises no further edge.
                            self.read(key, true);
                        } else if event.is_readable() {
                            self.read(key, false);
                        }
                        if event.is_writable() {
                            self.core.flush(key);
                        }
                    }
                }
            }
            if self.accept_paused_until.is_some_and(|t| t <= self.core.now) {
                self.accept_paused_until = None;
                self.accept();
            }
            self.fire_timers(&mut fired);
            self.resume_pipelined();
            self.core.flush_dirty();
            self.remove_closed();
            if let Some(deadline) = self.shutdown_deadline {
                if self.core.conns.is_empty() || self.core.now >= deadline {
                    return Ok(());
                }
            }
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX / 4)
    }

    /// The time to the earliest deadline: a timer, the end of an accept
    /// back-off, or the end of a shutdown's grace.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.core.dirty_streams.is_empty() {
            return Some(Duration::ZERO); // streams still wait for their write
        }
        let timer = self.core.timers.next_expiry().map(|t| t * TICK_MS);
        let earliest = [timer, self.accept_paused_until, self.shutdown_deadline]
            .into_iter()
            .flatten()
            .min()?;
        Some(Duration::from_millis(
            earliest.saturating_sub(self.elapsed_ms()),
        ))
    }

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            let (mut socket, peer) = match listener.accept() {
                Ok(pair) => pair,
                // Not an error: every pending connection has been accepted.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // Not an error: a signal arrived mid-call.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The peer gave up before we accepted; try the next one.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(_) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the listener stays
                    // readable, so accepting again now would spin. Serve the
                    // clients we have and try again after a pause.
                    self.core.stats.accept_errors += 1;
                    self.accept_paused_until =
                        Some(self.core.now + ACCEPT_BACKOFF.as_millis() as u64);
                    return;
                }
            };
            // SSE frames are small and latency matters more than packet count.
            let _ = socket.set_nodelay(true);
            let generation = self.core.next_generation();
            let entry = self.core.conns.vacant_entry();
            let key = entry.key();
            if self
                .poll
                .registry()
                .register(
                    &mut socket,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                continue;
            }
            entry.insert(Entry {
                socket,
                conn: Conn::new(generation, peer, self.core.now),
            });
            self.core.stats.accepted += 1;
            self.core.stats.connections = self.core.conns.len();
            self.core.schedule(key);
        }
    }

    /// Reads everything the socket has, handling each request as soon as
    /// it is complete, so no more than one read's worth is ever buffered
    /// beyond the request being parsed.
    ///
    /// A read that fills less than the buffer has emptied the socket, and
    /// new bytes raise a new edge, so unless `to_eof` it stops there rather
    /// than spend a syscall to hear `WouldBlock`.
    fn read(&mut self, key: usize, to_eof: bool) {
        let max_head = self.core.settings.limits.max_head;
        loop {
            let Some(entry) = self.core.conns.get_mut(key) else {
                // Not an error: a stale event for a connection already removed.
                return;
            };
            let conn = &mut entry.conn;
            if conn.closing.is_some() || conn.read_closed {
                break;
            }
            match entry.socket.read(&mut self.read_buf) {
                Ok(0) => conn.read_closed = true,
                // Nothing more is parsed on a closing connection.
                Ok(_) if matches!(conn.phase, Phase::Draining) => {}
                Ok(n) => {
                    let drained = n < self.read_buf.len() && !to_eof;
                    if conn.reader.in_body() {
                        conn.phase_since = self.core.now; // progress on the body
                    }
                    if conn.is_streaming() {
                        conn.reader.push(&self.read_buf[..n]);
                        if conn.reader.buffered() > max_head {
                            // More than a pipelined request's worth behind a stream.
                            self.core.close(key, CloseReason::BadRequest);
                            return;
                        }
                    } else {
                        // The handlers cannot reach the read buffer, so it can
                        // be lent out while they run.
                        let read_buf = std::mem::take(&mut self.read_buf);
                        self.handle_requests(key, &read_buf[..n]);
                        self.read_buf = read_buf;
                    }
                    if drained {
                        break;
                    }
                }
                // Not an error: the socket has nothing more for now.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Not an error: a signal arrived mid-call.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.core.close(key, CloseReason::ClientGone);
                    return;
                }
            }
        }
        self.on_read_closed(key);
        // A plain answer (or a finite stream already ended) goes out now:
        // only open streams wait for the end of the pass, where the events
        // that pile up meanwhile share their write.
        if self
            .core
            .conns
            .get(key)
            .is_some_and(|e| !e.conn.is_streaming() && e.conn.dirty)
        {
            self.core.flush(key);
        }
    }

    /// The client will send nothing more: decide what is left to do.
    fn on_read_closed(&mut self, key: usize) {
        let Some(entry) = self.core.conns.get_mut(key) else {
            return;
        };
        let conn = &mut entry.conn;
        if !conn.read_closed || conn.closing.is_some() {
            return;
        }
        match conn.phase {
            // A stream's client has gone: nothing will read what we write.
            Phase::Streaming { .. } => self.core.close(key, CloseReason::ClientGone),
            // Still reading a request that can now never complete, or idle:
            // write what is queued (the answers to earlier requests), then close.
            Phase::Reading | Phase::Draining => {
                conn.keep_alive = false;
                if conn.queue.is_empty() {
                    let done = matches!(conn.phase, Phase::Draining);
                    let reason = if done {
                        CloseReason::Done
                    } else {
                        CloseReason::ClientGone
                    };
                    self.core.close(key, reason);
                } else {
                    conn.set_phase(Phase::Draining, self.core.now);
                }
            }
        }
    }

    /// Dispatches every complete request in what the reader holds for `key`
    /// followed by `input` (bytes just read), until one turns the connection
    /// into a stream or more bytes are needed. Only bytes left over are
    /// copied into the connection's reader.
    fn handle_requests(&mut self, key: usize, mut input: &[u8]) {
        let limits = self.core.settings.limits;
        loop {
            let Some(entry) = self.core.conns.get_mut(key) else {
                return;
            };
            let conn = &mut entry.conn;
            if conn.closing.is_some() || !matches!(conn.phase, Phase::Reading) {
                // What is left waits behind the stream (or is dropped with
                // the connection) as if it had been read later.
                conn.reader.push(input);
                return;
            }
            let request = match conn.reader.next_request_in(&mut input, &limits, conn.peer) {
                Ok(Some(request)) => request,
                Ok(None) => {
                    if conn.reader.take_continue() {
                        // curl waits a second for this before sending a body.
                        self.core
                            .queue_bytes(key, Chunk::Static(b"HTTP/1.1 100 Continue\r\n\r\n"));
                    }
                    return;
                }
                Err(e) => return self.refuse(key, e),
            };
            conn.keep_alive = request.keep_alive();
            conn.version = request.version();
            self.dispatch(key, &request);
        }
    }

    /// Calls the handler. The connection is free for the next pipelined
    /// request if it is still reading and kept alive.
    fn dispatch(&mut self, key: usize, request: &Request) {
        self.core.stats.requests += 1;
        let now = self.core.now;
        self.core.conns[key].conn.set_phase(Phase::Reading, now);
        let mut reply = Reply::new(&mut self.core, &self.handle, key, request);
        self.handler.on_request(request, &mut reply);
        if !reply.answered() {
            let _ = reply.respond(Response::text(404, "not found\n"));
        }
        let ready = reply.conn_ready_for_next();
        let conn = &mut self.core.conns[key].conn;
        let keep_alive = conn.keep_alive;
        if ready && !keep_alive {
            conn.set_phase(Phase::Draining, now);
        }
        self.core.schedule(key);
    }

    /// Answers a request the parser refused, then closes.
    fn refuse(&mut self, key: usize, error: HttpError) {
        self.core.stats.bad_requests += 1;
        let conn = &mut self.core.conns[key].conn;
        // Not kept alive: `Connection: close` on HTTP/1.1, the default on 1.0.
        let out = Response::text(error.status(), format!("{error}\n")).encode(
            conn.version,
            &self.core.date,
            &[],
            false,
            false,
        );
        conn.keep_alive = false;
        conn.linger = true;
        conn.reader = RequestReader::new();
        conn.set_phase(Phase::Draining, self.core.now);
        self.core.queue_bytes(key, Chunk::Owned(out));
        self.core.schedule(key);
    }

    fn run_commands(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::SendTo {
                    seid,
                    event,
                    answer,
                } => {
                    let _ = answer.send(self.core.send_to(&seid, &event));
                }
                Command::End { seid, answer } => {
                    let _ = answer.send(self.core.end_seid(&seid));
                }
                Command::Broadcast(event) => {
                    if let Ok(frame) = self.core.encode(&event) {
                        self.core.broadcast_frame(&frame);
                    }
                }
                Command::Publish { topic, event } => {
                    if let Ok(frame) = self.core.encode(&event) {
                        self.core.publish_frame(&topic, &frame);
                    }
                }
                Command::Shutdown { grace } => self.begin_shutdown(grace),
            }
        }
    }

    /// Stops accepting and ends every stream cleanly; `run` returns once
    /// everything is flushed or the grace period is over.
    fn begin_shutdown(&mut self, grace: Option<Duration>) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        let grace = grace.map_or(self.shutdown_default, |g| g.as_millis() as u64);
        self.shutdown_deadline = Some(self.core.now + grace);
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.core.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let conn = &mut self.core.conns[key].conn;
            conn.keep_alive = false;
            match conn.phase {
                Phase::Streaming { .. } => self.core.end_stream(key, CloseReason::Shutdown),
                Phase::Reading => {
                    if conn.queue.is_empty() {
                        self.core.close(key, CloseReason::Shutdown);
                    } else {
                        conn.set_phase(Phase::Draining, self.core.now);
                    }
                }
                Phase::Draining => {}
            }
        }
    }

    fn fire_timers(&mut self, fired: &mut Vec<(usize, u64)>) {
        let now = self.core.now;
        self.core.timers.advance(now / TICK_MS, fired);
        let timeouts = self.core.settings.timeouts;
        for (key, generation) in fired.drain(..) {
            let Some(entry) = self.core.conns.get_mut(key) else {
                continue;
            };
            if entry.conn.generation != generation {
                continue; // a timer of an earlier connection in this slot
            }
            entry.conn.timer = None;
            match entry.conn.due(now, &timeouts) {
                Due::Later(_) => {}
                Due::Heartbeat => {
                    self.core.heartbeat(key);
                    // Write it now so the next deadline counts from it.
                    self.core.flush(key);
                }
                Due::HeadTimeout => {
                    self.core.stats.head_timeouts += 1;
                    if entry.conn.reader.is_idle() {
                        // An idle keep-alive connection: just close it.
                        self.core.close(key, CloseReason::HeadTimeout);
                    } else {
                        self.refuse(key, HttpError::Timeout);
                        continue;
                    }
                }
                Due::Idle => self.core.close(key, CloseReason::Idle),
            }
            self.core.schedule(key);
        }
    }

    /// Connections whose stream ended with a request already buffered behind
    /// it: handle that request now.
    fn resume_pipelined(&mut self) {
        while let Some(key) = self.core.resume.pop() {
            let Some(entry) = self.core.conns.get_mut(key) else {
                continue;
            };
            if entry.conn.reader.buffered() > 0 {
                self.handle_requests(key, &[]);
            } else {
                entry.conn.reader.release();
            }
            self.on_read_closed(key);
        }
    }

    /// Removes the connections closed during this pass.
    fn remove_closed(&mut self) {
        for (seid, reason) in self.core.closed_streams.drain(..) {
            self.handler.on_close(&seid, reason);
        }
        while let Some(key) = self.core.closing.pop() {
            if self
                .core
                .conns
                .get(key)
                .is_none_or(|e| e.conn.closing.is_none())
            {
                continue;
            }
            let mut entry = self.core.conns.remove(key);
            if let Some((timer, _)) = entry.conn.timer {
                self.core.timers.cancel(timer);
            }
            let _ = self.poll.registry().deregister(&mut entry.socket);
        }
        self.core.stats.connections = self.core.conns.len();
    }
}
