//! The event loop: the only module that touches a socket. It accepts,
//! reads, hands complete requests to the handler, runs commands from other
//! threads, fires timers, and writes what the connections queued. Every
//! decision about a connection is its state machine's (`conn.rs`), reached
//! through `core.rs`; this module carries out the I/O those decisions need.
//!
//! Data flows one way: socket → `http` (parse) → `conn` (state) → handler →
//! `frame` (encode) → `queue` → socket. A publish to a topic takes one step
//! more, between encoding and the queue: the frame waits on the topic's log
//! (`topic.rs`) until each subscriber's turn to be written comes.
//!
//! # TLS
//!
//! With the `tls` feature and [`Builder::tls`], each socket is wrapped in a
//! rustls session (`transport.rs`, the other half of this shell): reads
//! hand the session's plaintext to `handle_requests` as a plain socket's
//! bytes, and a flush encrypts the queue into the session and writes its
//! records. The handshake comes before any request, so the head deadline a
//! new connection starts with covers it; a refused handshake closes that
//! connection alone. A broadcast frame is still encoded once, and each
//! session encrypts it once for its client. What the socket refused stays
//! in the session and counts against the queue cap (`Flushed::held`).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::conn::{CloseReason, Input, Timeouts};
use crate::core::{Core, Settings};
use crate::handle::{Command, Handle};
use crate::http::{Limits, Request};
use crate::queue::Chunk;
use crate::reply::Reply;
use crate::seid::{RandomSeid, SeidGenerator};
use crate::streams::Streams;
#[cfg(feature = "tls")]
use crate::transport::TlsAcceptor;
use crate::transport::{Got, Transport};

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
/// The default deadline of a deferred answer: 30 s.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The application's side of the server: called once per request.
///
/// Any `FnMut(&Request, &mut Reply)` is a handler. Implement the trait to
/// also hear when streams close.
pub trait Handler: 'static {
    /// Answers one request (plainly or with a stream) through `reply`.
    fn on_request(&mut self, req: &Request, reply: &mut Reply<'_>);

    /// A stream ended or its client left; its seid is no longer live.
    /// `streams` reaches the others (to tell them, say); what is queued on
    /// them goes out on the loop's next pass.
    fn on_close(&mut self, _seid: &str, _reason: CloseReason, _streams: &mut Streams<'_>) {}

    /// Another thread called [`Handle::wake`]: act on the streams now, on
    /// the loop's thread (deliver what a broker thread received, say).
    /// Wakes are not counted: one call may stand for several.
    fn on_wake(&mut self, _streams: &mut Streams<'_>) {}
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
    answer_timeout: Duration,
    generator: Box<dyn SeidGenerator>,
    #[cfg(feature = "tls")]
    tls: Option<TlsAcceptor>,
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

    /// How long a deferred request ([`Reply::defer`]) waits for its answer
    /// before it is answered `504 Gateway Timeout` (default 30 s).
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self
    }

    /// Where seids come from (default [`RandomSeid`]).
    pub fn seid_generator(mut self, generator: impl SeidGenerator) -> Self {
        self.generator = Box::new(generator);
        self
    }

    /// Serves HTTPS: every connection is TLS, with this rustls
    /// configuration (certificates, versions, the crypto provider). Only
    /// ALPN `http/1.1` is offered, whatever `config` says: the server
    /// speaks nothing else. Handlers, replies and handles work as over
    /// plain TCP; the handshake must finish within the
    /// [head timeout](Builder::head_timeout), like a request head.
    ///
    /// To change certificates while the server runs, give `config` a
    /// certificate resolver ([`rustls::server::ResolvesServerCert`]) that
    /// the program updates: each new connection asks it.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    ///
    /// let certs = CertificateDer::pem_file_iter("cert.pem")?.collect::<Result<Vec<_>, _>>()?;
    /// let key = PrivateKeyDer::from_pem_file("key.pem")?;
    /// let config = rustls::ServerConfig::builder()
    ///     .with_no_client_auth()
    ///     .with_single_cert(certs, key)?;
    /// let server = sseloop::Server::builder()
    ///     .bind("127.0.0.1:8443")?
    ///     .tls(config)
    ///     .build(|_req: &sseloop::Request, reply: &mut sseloop::Reply<'_>| {
    ///         let _ = reply.send(sseloop::Event::new("hello over TLS"));
    ///     })?;
    /// server.run()?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: rustls::ServerConfig) -> Self {
        self.tls = Some(TlsAcceptor::new(config));
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
                answer: ms(self.answer_timeout),
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
            sockets: Vec::new(),
            #[cfg(feature = "tls")]
            tls: self.tls,
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
    /// Each connection's socket (and TLS session), at its key in the
    /// core's slab.
    sockets: Vec<Option<Transport>>,
    /// Makes each new connection's TLS session, when serving HTTPS.
    #[cfg(feature = "tls")]
    tls: Option<TlsAcceptor>,
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
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
            generator: Box::new(RandomSeid::default()),
            #[cfg(feature = "tls")]
            tls: None,
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
        let _ = self
            .core
            .shared
            .loop_thread
            .set(std::thread::current().id());
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
                            self.flush(key);
                        }
                    }
                }
            }
            if self.accept_paused_until.is_some_and(|t| t <= self.core.now) {
                self.accept_paused_until = None;
                self.accept();
            }
            self.core.fire_timers(&mut fired);
            self.flush_urgent();
            self.resume_pipelined();
            self.flush_dirty();
            self.remove_closed();
            if let Some(deadline) = self.shutdown_deadline {
                if self.core.is_empty() || self.core.now >= deadline {
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
        if self.core.has_dirty_streams() {
            return Some(Duration::ZERO); // streams still wait for their write
        }
        let timer = self.core.next_timer();
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
            let (socket, peer) = match listener.accept() {
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
            let key = self.core.add_conn(peer);
            let Some(mut transport) = self.transport_for(socket) else {
                self.core.close(key, CloseReason::IoError);
                continue;
            };
            let interest = Interest::READABLE | Interest::WRITABLE;
            if self
                .poll
                .registry()
                .register(transport.socket(), Token(key), interest)
                .is_err()
            {
                self.core.close(key, CloseReason::IoError);
                continue;
            }
            if self.sockets.len() <= key {
                self.sockets.resize_with(key + 1, || None);
            }
            self.sockets[key] = Some(transport);
        }
    }

    /// The transport of a new connection: a TLS session over `socket` when
    /// serving HTTPS, the socket itself otherwise.
    fn transport_for(&self, socket: TcpStream) -> Option<Transport> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.accept(socket).ok().map(|t| Transport::Tls(Box::new(t)));
        }
        Some(Transport::Plain(socket))
    }

    /// Reads everything the socket has, handling each request as soon as
    /// it is complete, so no more than one read's worth is ever buffered
    /// beyond the request being parsed.
    ///
    /// A plain read that fills less than the buffer has emptied the
    /// socket, and new bytes raise a new edge, so unless `to_eof` it stops
    /// there rather than spend a syscall to hear `WouldBlock`.
    fn read(&mut self, key: usize, to_eof: bool) {
        loop {
            let Some(conn) = self.core.conn(key) else {
                // Not an error: a stale event for a connection already removed.
                return;
            };
            let (true, Some(Some(transport))) = (conn.wants_input(), self.sockets.get_mut(key))
            else {
                break;
            };
            match transport.read(&mut self.read_buf) {
                Ok(Got::Eof) => {
                    self.core.on_eof(key);
                    break;
                }
                Ok(Got::Bytes { n, more }) => {
                    // The handlers cannot reach the read buffer, so it can
                    // be lent out while they run.
                    let read_buf = std::mem::take(&mut self.read_buf);
                    self.handle_requests(key, &read_buf[..n]);
                    self.read_buf = read_buf;
                    if !more && !to_eof {
                        break;
                    }
                }
                Ok(Got::Nothing) => break,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    // A TLS handshake or record the session refused (its
                    // alert is sent): this connection alone closes.
                    self.core.stats.tls_errors += 1;
                    self.core.close(key, CloseReason::BadRequest);
                    return;
                }
                Err(_) => {
                    self.core.close(key, CloseReason::ClientGone);
                    return;
                }
            }
        }
        // A plain answer (or a finite stream already ended) goes out now:
        // only open streams wait for the end of the pass, where the events
        // that pile up meanwhile share their write.
        if self.core.has_answer_queued(key) {
            self.flush(key);
        }
    }

    /// Dispatches every complete request in what the reader holds for `key`
    /// followed by `input` (bytes just read), until one is answered later,
    /// turns the connection into a stream, or more bytes are needed. Only
    /// bytes left over are copied into the connection's reader.
    fn handle_requests(&mut self, key: usize, mut input: &[u8]) {
        let limits = self.core.settings.limits;
        let now = self.core.now;
        loop {
            let Some(conn) = self.core.conn_mut(key) else {
                return;
            };
            match conn.input() {
                Input::Parse => {}
                // What is left waits behind the answer or stream, as if it
                // had been read later.
                Input::Hold => return self.core.hold_input(key, input),
                Input::Discard => return,
            }
            let request = match conn.next_request(&mut input, &limits, now) {
                Ok(Some(request)) => request,
                Ok(None) => {
                    if conn.take_continue() {
                        // curl waits a second for this before sending a body.
                        let go_on = Chunk::Static(b"HTTP/1.1 100 Continue\r\n\r\n");
                        self.core.queue_bytes(key, go_on);
                    }
                    return;
                }
                Err(e) => return self.core.refuse(key, e),
            };
            self.dispatch(key, request);
        }
    }

    /// Calls the handler, then lets the connection's state machine decide
    /// what comes next (a deferral keeps the request).
    fn dispatch(&mut self, key: usize, mut request: Request) {
        if self
            .sockets
            .get(key)
            .and_then(Option::as_ref)
            .is_some_and(Transport::is_tls)
        {
            request.set_secure();
        }
        self.core.on_request(key, &request);
        let mut reply = Reply::new(&mut self.core, &self.handle, key, &request);
        self.handler.on_request(&request, &mut reply);
        let deferred = reply.finish();
        self.core
            .after_answer(key, deferred.map(|id| (id, request)));
        self.flush_urgent();
    }

    /// Runs the commands queued when the waker fired. One sent meanwhile
    /// (a handler that wakes the loop to go on with work later) waits for
    /// the next pass, so sockets are served between.
    fn run_commands(&mut self) {
        let queued: Vec<Command> = self.commands.try_iter().collect();
        for command in queued {
            match command {
                Command::Answer { job, done } => {
                    let outcome = job(&mut self.core, &self.handle);
                    if let Some(done) = done {
                        let _ = done.send(outcome);
                    }
                }
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
                Command::Wake => {
                    let mut streams = Streams::new(&mut self.core, &self.handle);
                    self.handler.on_wake(&mut streams);
                }
            }
            self.flush_urgent();
        }
    }

    /// Stops accepting and ends every stream cleanly; `run` returns once
    /// everything is flushed or the grace period is over.
    fn begin_shutdown(&mut self, grace: Option<Duration>) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        // Any grace, up to Duration::MAX, is a deadline (never an overflow).
        let grace = grace.map_or(self.shutdown_default, |g| {
            u64::try_from(g.as_millis()).unwrap_or(u64::MAX)
        });
        self.shutdown_deadline = Some(self.core.now.saturating_add(grace));
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.core.shutdown_all();
    }

    /// Writes what `key` has queued and hands the outcome to its state
    /// machine; shuts the write side down when it says so.
    fn flush(&mut self, key: usize) {
        self.core.catch_up(key);
        let Some(Some(transport)) = self.sockets.get_mut(key) else {
            return;
        };
        if !self.core.wants_write(key) && !transport.has_held_output() {
            return;
        }
        let Some((queue, spare)) = self.core.queue_of(key) else {
            return;
        };
        let result = transport.flush(queue, spare);
        if self.core.on_flushed(key, result) {
            // Half-close and linger for the client's EOF.
            transport.shutdown_write();
        }
    }

    /// Writes the queues that grew past the early-flush mark, at once.
    fn flush_urgent(&mut self) {
        while let Some(key) = self.core.next_urgent() {
            self.flush(key);
        }
    }

    /// Writes queued output: every plain response, then up to
    /// [`STREAM_FLUSH_BUDGET`](crate::core::STREAM_FLUSH_BUDGET) streams,
    /// oldest first.
    fn flush_dirty(&mut self) {
        while let Some(key) = self.core.next_dirty_response() {
            self.flush(key);
        }
        for _ in 0..crate::core::STREAM_FLUSH_BUDGET {
            let Some(key) = self.core.next_dirty_stream() else {
                break;
            };
            self.flush(key);
        }
    }

    /// Connections free for their next request (a stream ended or a
    /// deferred answer came): handle what they already hold.
    fn resume_pipelined(&mut self) {
        while let Some(key) = self.core.take_resumed() {
            let Some(conn) = self.core.conn_mut(key) else {
                continue;
            };
            if conn.on_resumed() {
                self.handle_requests(key, &[]);
            }
        }
    }

    /// Removes the connections closed during this pass and tells the
    /// handler which streams closed.
    fn remove_closed(&mut self) {
        for (seid, reason) in self.core.take_closed_streams() {
            let mut streams = Streams::new(&mut self.core, &self.handle);
            self.handler.on_close(&seid, reason, &mut streams);
        }
        let (registry, sockets) = (self.poll.registry(), &mut self.sockets);
        self.core.remove_closed(|key| {
            if let Some(mut transport) = sockets.get_mut(key).and_then(Option::take) {
                transport.close();
                let _ = registry.deregister(transport.socket());
            }
        });
    }
}
