//! sseloop's load generator: one mio event loop, so the client is not the
//! bottleneck of what it measures. Four modes, each ending in a one-line
//! summary:
//!
//! ```text
//! loadgen fanout --addr 127.0.0.1:8080 --subscribers 10000 --events 100 [--rate 50] [--spin]
//!        [--idle N --idle-path PATH: N more streams that expect nothing, opened
//!         first, `{i}` in PATH replaced by each one's number]
//!        [--sub-path /events?topic=bench] [--pub-path /publish?topic=bench] [--payload 32]
//!        [--sub-path 'PATH1|PATH2|…' spreads subscribers over several paths]
//!        [--form-topic TOPIC: publish as a Mercure form] [--header 'Name: value']
//! loadgen hold   --addr 127.0.0.1:8080 --pid SERVER_PID --streams 1000,5000,15000 [--sub-path /events]
//!        [--linger SECS: then keep the streams open that long, for another tool to measure]
//! loadgen rps    --addr 127.0.0.1:8081 --connections 50 --seconds 10 [--path /events]
//!        [--new-connection: each request on a connection of its own, `Connection: close`;
//!         with --tls, a full handshake per request]
//! loadgen soak   --addr 127.0.0.1:8080 --pid SERVER_PID --subscribers 1000 --events 1000000
//!        [--reconnect-percent 10] [--rate 20000] [--pipeline 16]
//! ```
//!
//! `--pipeline N` keeps up to N publish requests in flight on the
//! publisher's connection (default 1: each waits for its answer).
//! `--spin` (fanout) polls without sleeping while it measures, so the
//! server's writes never pay for waking the load generator.
//!
//! `soak` keeps `--subscribers` streams on `/events?topic=soak` while it
//! publishes `--events` events; every second `--reconnect-percent` of them
//! drop their connection and reconnect with `Last-Event-ID`. Every subscriber
//! must see every event exactly once, in order (replay included), and the
//! server's closing RSS must be within 10 % of its RSS once warmed up (after
//! the first tenth of the events, when the history is full).
//!
//! `--tls CA.pem` (every mode) speaks HTTPS, trusting the certificates in
//! CA.pem and asking for the name `localhost`; sessions are never resumed,
//! so every connection pays a full handshake.
//!
//! Client sockets are bound to `--sources` loopback source addresses
//! (127.0.0.2, 127.0.0.3, …) so tens of thousands of them never run out of
//! ephemeral ports. Only 127.0.0.0/8 is ever a target.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use sseloop::parse::Parser;

struct Args {
    mode: String,
    addr: SocketAddr,
    subscribers: usize,
    events: usize,
    rate: Option<f64>,
    payload: usize,
    sub_path: String,
    pub_path: String,
    path: String,
    connections: usize,
    seconds: f64,
    streams: Vec<usize>,
    pid: Option<u32>,
    sources: u8,
    connect_batch: usize,
    reconnect_percent: usize,
    pipeline: usize,
    spin: bool,
    /// Publish as a Mercure form (`topic=…&data=…`) to this topic.
    form_topic: Option<String>,
    /// One more request header (`Authorization: Bearer …`, say) on every
    /// subscribe and publish.
    header: Option<String>,
    /// Streams opened before the measured ones and never read: subscribers
    /// a publish must not reach (each with its own path, `{i}` replaced).
    idle: usize,
    idle_path: String,
    /// How long `hold` keeps its streams open once all are open.
    linger: Duration,
    /// rps: a new connection for each request.
    new_connection: bool,
}

impl Args {
    /// The extra header as a request line, or nothing.
    fn header_line(&self) -> String {
        self.header
            .as_ref()
            .map(|h| format!("{h}\r\n"))
            .unwrap_or_default()
    }
}

fn parse_args() -> Args {
    let mut args = Args {
        mode: String::new(),
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        subscribers: 1000,
        events: 100,
        rate: None,
        payload: 32,
        sub_path: "/events?topic=bench".into(),
        pub_path: "/publish?topic=bench".into(),
        path: "/events".into(),
        connections: 50,
        seconds: 10.0,
        streams: vec![1000, 5000, 15000],
        pid: None,
        sources: 8,
        connect_batch: 512,
        reconnect_percent: 10,
        pipeline: 1,
        spin: false,
        form_topic: None,
        header: None,
        idle: 0,
        idle_path: String::new(),
        linger: Duration::ZERO,
        new_connection: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "fanout" | "hold" | "rps" | "soak" => args.mode = flag.clone(),
            "--addr" => args.addr = value().parse().unwrap_or_else(|_| usage("bad --addr")),
            "--subscribers" => args.subscribers = num(&value()),
            "--events" => args.events = num(&value()),
            "--rate" => args.rate = Some(value().parse().unwrap_or_else(|_| usage("bad --rate"))),
            "--payload" => args.payload = num(&value()),
            "--sub-path" => args.sub_path = value(),
            "--pub-path" => args.pub_path = value(),
            "--path" => args.path = value(),
            "--connections" => args.connections = num(&value()),
            "--seconds" => {
                args.seconds = value().parse().unwrap_or_else(|_| usage("bad --seconds"))
            }
            "--streams" => args.streams = value().split(',').map(num).collect(),
            "--pid" => args.pid = Some(num(&value()) as u32),
            "--sources" => args.sources = num(&value()).clamp(1, 250) as u8,
            "--connect-batch" => args.connect_batch = num(&value()).max(1),
            "--reconnect-percent" => args.reconnect_percent = num(&value()).min(100),
            "--pipeline" => args.pipeline = num(&value()).max(1),
            "--spin" => args.spin = true,
            "--form-topic" => args.form_topic = Some(value()),
            "--header" => args.header = Some(value()),
            "--idle" => args.idle = num(&value()),
            "--idle-path" => args.idle_path = value(),
            "--linger" => args.linger = Duration::from_secs(num(&value()) as u64),
            "--new-connection" => args.new_connection = true,
            "--tls" => {
                let config = tls_config(&value()).unwrap_or_else(|e| usage(&format!("--tls: {e}")));
                let _ = TLS.set(config);
            }
            _ => usage(&format!("unknown argument {flag}")),
        }
    }
    if !args.addr.ip().is_loopback() {
        usage("only loopback addresses (127.0.0.0/8) may be loaded");
    }
    args
}

fn num(s: &str) -> usize {
    s.parse()
        .unwrap_or_else(|_| usage(&format!("{s:?} is not a number")))
}

fn usage(message: &str) -> ! {
    eprintln!("loadgen: {message}\nusage: loadgen fanout|hold|rps [flags]; see the top of benches/loadgen.rs");
    std::process::exit(2)
}

fn main() {
    let args = parse_args();
    let result = match args.mode.as_str() {
        "fanout" => fanout(&args),
        "hold" => hold(&args),
        "rps" => rps(&args),
        "soak" => soak(&args),
        _ => usage("name a mode: fanout, hold, rps or soak"),
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

/// With `--tls`: how every connection speaks HTTPS.
static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// A client configuration trusting the certificates in `ca_pem`, never
/// resuming a session (every connection is a full handshake).
fn tls_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls::pki_types::CertificateDer::pem_file_iter(ca_pem).map_err(|e| e.to_string())?
    {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// A TLS session for a new connection, with `--tls`.
fn tls_session() -> Option<Box<rustls::ClientConnection>> {
    let config = TLS.get()?.clone();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
    Some(Box::new(
        rustls::ClientConnection::new(config, name).expect("a TLS client"),
    ))
}

/// A non-blocking connection: the socket, and its TLS session with `--tls`.
/// Reads and writes are plaintext either way.
struct Link {
    tcp: TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Link {
    /// Writes the session's records until it is empty or the socket full.
    fn send_tls(&mut self) -> io::Result<()> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        while tls.wants_write() {
            match tls.write_tls(&mut self.tcp) {
                Ok(_) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::NotConnected =>
                {
                    break
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether a read shorter than the buffer proves the socket empty
    /// (not over TLS: a record's plaintext may be all one read gives).
    fn short_read_drains(&self) -> bool {
        self.tls.is_none()
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.tcp.read(buf);
        }
        loop {
            let tls = self.tls.as_mut().expect("a session");
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket's EOF (rustls remembers it) without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            tls.read_tls(&mut self.tcp)?;
            tls.process_new_packets().map_err(io::Error::other)?;
            self.send_tls()?;
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return self.tcp.write(buf);
        };
        let n = tls.writer().write(buf)?;
        self.send_tls()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_tls()
    }
}

impl mio::event::Source for Link {
    fn register(&mut self, r: &mio::Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.register(r, t, i)
    }
    fn reregister(&mut self, r: &mio::Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.reregister(r, t, i)
    }
    fn deregister(&mut self, r: &mio::Registry) -> io::Result<()> {
        self.tcp.deregister(r)
    }
}

/// A non-blocking connection from one of the loopback source addresses,
/// registered with `poll` under `Token(index)`.
fn connect(poll: &Poll, addr: SocketAddr, index: usize, sources: u8) -> io::Result<Link> {
    let source = Ipv4Addr::new(127, 0, 0, 2 + (index % usize::from(sources)) as u8);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&SocketAddr::new(IpAddr::V4(source), 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {} // EINPROGRESS
        Err(e) => return Err(e),
    }
    let mut stream = Link {
        tcp: TcpStream::from_std(socket.into()),
        tls: tls_session(),
    };
    poll.registry().register(
        &mut stream,
        Token(index),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    Ok(stream)
}

/// An HTTP response read incrementally: the head, then the body bytes
/// (chunked, by length, or until close), handed on as they arrive.
#[derive(Default)]
struct ResponseReader {
    buf: Vec<u8>,
    head: Option<Head>,
    /// Chunked: bytes left in the current chunk; `None` at a size line.
    chunk_left: Option<usize>,
    /// Length-delimited: bytes left.
    length_left: Option<usize>,
    done: bool,
}

#[derive(Clone, Copy)]
struct Head {
    status: u16,
    chunked: bool,
}

impl ResponseReader {
    /// Adds bytes; appends decoded body bytes to `body`. Answers an error
    /// for a malformed response. Walks the buffer with an offset and
    /// compacts it once, so many small chunks in one read cost no more
    /// than one big one.
    fn feed(&mut self, bytes: &[u8], body: &mut Vec<u8>) -> Result<(), String> {
        self.buf.extend_from_slice(bytes);
        let mut pos = 0;
        let result = self.decode(&mut pos, body);
        self.buf.drain(..pos);
        result
    }

    fn decode(&mut self, pos: &mut usize, body: &mut Vec<u8>) -> Result<(), String> {
        if self.head.is_none() {
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Ok(());
            };
            let text = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
            let status = text
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or("bad status line")?;
            let chunked = text.contains("transfer-encoding: chunked");
            self.length_left = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok());
            self.head = Some(Head { status, chunked });
            *pos = end + 4;
            if self.length_left == Some(0) {
                self.done = true;
            }
        }
        let chunked = self.head.is_some_and(|h| h.chunked);
        loop {
            let rest = &self.buf[*pos..];
            if self.done || rest.is_empty() {
                return Ok(());
            }
            if !chunked {
                let n = self.length_left.map_or(rest.len(), |l| l.min(rest.len()));
                body.extend_from_slice(&rest[..n]);
                *pos += n;
                if let Some(left) = self.length_left.as_mut() {
                    *left -= n;
                    self.done = *left == 0;
                }
                continue;
            }
            match self.chunk_left {
                None => {
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        return Ok(());
                    };
                    let size_text =
                        std::str::from_utf8(&rest[..end]).map_err(|_| "bad chunk size")?;
                    let size_text = size_text.split(';').next().unwrap_or_default().trim();
                    let size =
                        usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
                    if size == 0 {
                        if rest.len() < end + 4 {
                            return Ok(());
                        }
                        *pos += end + 4;
                        self.done = true;
                        return Ok(());
                    }
                    *pos += end + 2;
                    self.chunk_left = Some(size);
                }
                Some(0) => {
                    if rest.len() < 2 {
                        return Ok(());
                    }
                    *pos += 2;
                    self.chunk_left = None;
                }
                Some(left) => {
                    let n = left.min(rest.len());
                    body.extend_from_slice(&rest[..n]);
                    *pos += n;
                    self.chunk_left = Some(left - n);
                }
            }
        }
    }

    /// Starts over for the next response on a kept-alive connection; bytes
    /// already read past this response stay.
    fn reset(&mut self) {
        let rest = std::mem::take(&mut self.buf);
        *self = ResponseReader {
            buf: rest,
            ..ResponseReader::default()
        };
    }
}

/// Reads what the socket holds; answers whether the peer closed. A read
/// that comes back short has emptied the socket, so the `WouldBlock` read
/// after it is skipped (new bytes bring a new edge), unless `event` says
/// the peer hung up: then it reads on to the end.
fn read_available(
    stream: &mut Link,
    event: &mio::event::Event,
    scratch: &mut [u8],
    mut each: impl FnMut(&[u8]),
) -> io::Result<bool> {
    if event.is_writable() {
        stream.send_tls()?; // a handshake record the socket refused earlier
    }
    let drain = event.is_read_closed() || event.is_error() || !stream.short_read_drains();
    loop {
        match stream.read(scratch) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                each(&scratch[..n]);
                if n < scratch.len() && !drain {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A benchmark event's data, `"<seq> <sent ns> <padding>"`: its two numbers.
fn seq_and_sent(data: &str) -> Option<(u64, u64)> {
    let mut fields = data.as_bytes().splitn(3, |&b| b == b' ');
    let mut number = || -> Option<u64> {
        let digits = fields.next()?;
        if digits.is_empty() {
            return None;
        }
        digits.iter().try_fold(0u64, |n, &d| {
            let digit = d.checked_sub(b'0').filter(|&d| d < 10)?;
            n.checked_mul(10)?.checked_add(u64::from(digit))
        })
    };
    Some((number()?, number()?))
}

/// One subscriber's view of the stream.
struct Subscriber {
    stream: Link,
    request_sent: bool,
    reader: ResponseReader,
    parser: Parser,
    ready: bool,
    tally: Tally,
    closed: bool,
    /// The id to send as `Last-Event-ID` on the next request (soak).
    last_id_to_send: Option<String>,
}

/// What one subscriber received, by sequence number.
#[derive(Default)]
struct Tally {
    /// The sequence number expected next.
    next_seq: u64,
    received: u64,
    duplicated: u64,
    out_of_order: u64,
}

impl Tally {
    /// Books event `seq`: answers whether it was new (a duplicate is
    /// counted and dropped; a jump ahead counts as out of order).
    fn record(&mut self, seq: u64) -> bool {
        if seq < self.next_seq {
            self.duplicated += 1;
            return false;
        }
        if seq > self.next_seq {
            self.out_of_order += 1;
        }
        self.next_seq = seq + 1;
        self.received += 1;
        true
    }
}

impl Subscriber {
    /// Writes the stream's request once the connection is up.
    fn send_request(&mut self, request: &[u8]) -> io::Result<()> {
        match self.stream.write(request) {
            Ok(n) if n == request.len() => self.request_sent = true,
            Ok(_) => return Err(io::Error::other("short request write")),
            // Not connected yet: the next writable event tries again.
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::NotConnected => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

fn now_ns(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// Opens `count` streams on `path` from `poll`, `batch` connects at a time;
/// answers when each has its response head (and first event, if `first_event`).
fn open_streams(
    args: &Args,
    poll: &mut Poll,
    subs: &mut Vec<Subscriber>,
    count: usize,
    path: &str,
    first_event: bool,
) -> io::Result<()> {
    let mut events = Events::with_capacity(4096);
    let mut scratch = vec![0u8; 64 * 1024];
    // Several paths, `|`-separated, are spread over the subscribers in turn.
    let requests: Vec<String> = path
        .split('|')
        .map(|p| {
            format!(
                "GET {p} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n{}\r\n",
                args.header_line()
            )
        })
        .collect();
    let target = subs.len() + count;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending = 0;
    let mut retries = 0usize;
    while subs.iter().filter(|s| s.ready).count() < target {
        while subs.len() < target && pending < args.connect_batch {
            let index = subs.len();
            let stream = connect(poll, args.addr, index, args.sources)?;
            subs.push(Subscriber {
                stream,
                request_sent: false,
                reader: ResponseReader::default(),
                parser: Parser::new(),
                ready: false,
                tally: Tally::default(),
                closed: false,
                last_id_to_send: None,
            });
            pending += 1;
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "only {} of {target} streams opened in 120 s",
                subs.iter().filter(|s| s.ready).count()
            )));
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            let index = event.token().0;
            let sub = &mut subs[index];
            let mut failed = false;
            if event.is_writable() {
                failed |= sub.stream.send_tls().is_err();
            }
            if event.is_writable() && !sub.request_sent {
                let request = &requests[index % requests.len()];
                failed |= sub.send_request(request.as_bytes()).is_err();
            }
            if event.is_readable() && !sub.ready && !failed {
                let mut body = Vec::new();
                let reader = &mut sub.reader;
                let closed = read_available(&mut sub.stream, event, &mut scratch, |b| {
                    let _ = reader.feed(b, &mut body);
                });
                let mut events_seen = 0;
                sub.parser.feed_with(&body, |_| events_seen += 1);
                let has_head = sub.reader.head.is_some_and(|h| h.status == 200);
                if has_head && (!first_event || events_seen > 0) {
                    sub.ready = true;
                    pending -= 1;
                }
                failed |= !matches!(closed, Ok(false));
            }
            if failed {
                // Refused or reset while connecting (a backlog overflowing
                // under a burst of connects): connect again, a few times.
                retries += 1;
                if retries > count / 10 + 10 {
                    return Err(io::Error::other(format!(
                        "{retries} streams failed while opening"
                    )));
                }
                let _ = poll.registry().deregister(&mut sub.stream);
                sub.stream = connect(poll, args.addr, index, args.sources)?;
                sub.request_sent = false;
                sub.reader = ResponseReader::default();
                sub.parser = Parser::new();
                if sub.ready {
                    sub.ready = false;
                    pending += 1;
                }
            }
        }
    }
    if retries > 0 {
        eprintln!(
            "loadgen: {retries} connections were refused or reset while opening and were retried"
        );
    }
    Ok(())
}

fn fanout(args: &Args) -> io::Result<()> {
    // The idle streams first, on a poll of their own that is never read
    // again: a publish should not reach them, and the measure is what they
    // cost the server.
    let mut idle_poll = Poll::new()?;
    let mut idle = Vec::with_capacity(args.idle);
    if args.idle > 0 {
        let paths: Vec<String> = (0..args.idle)
            .map(|i| args.idle_path.replace("{i}", &i.to_string()))
            .collect();
        let first = args.idle_path.starts_with("/events");
        open_streams(
            args,
            &mut idle_poll,
            &mut idle,
            args.idle,
            &paths.join("|"),
            first,
        )?;
        eprintln!("fanout: {} idle streams open", idle.len());
    }
    let mut poll = Poll::new()?;
    let mut subs = Vec::with_capacity(args.subscribers);
    let opening = Instant::now();
    // sseloop's hub sends a `seid` event first; peers send nothing first.
    let first_event = args.sub_path.starts_with("/events");
    open_streams(
        args,
        &mut poll,
        &mut subs,
        args.subscribers,
        &args.sub_path,
        first_event,
    )?;
    eprintln!(
        "fanout: {} subscribers ready in {:.1?}",
        subs.len(),
        opening.elapsed()
    );

    // The server's CPU from here to the last delivery (with --pid): the cost
    // of the fan-out itself, which a busy shared machine's noise moves far
    // less than the wall-clock rate.
    let cpu_before = args.pid.map(cpu_ms).transpose()?;
    let base = Instant::now();
    let publisher = {
        let (addr, pub_path, events, rate, payload, pipeline) = (
            args.addr,
            args.pub_path.clone(),
            args.events,
            args.rate,
            args.payload,
            args.pipeline,
        );
        let form = Form {
            topic: args.form_topic.clone(),
            header: args.header_line(),
        };
        std::thread::spawn(move || {
            publish_loop(
                addr, &pub_path, events, rate, payload, pipeline, base, &form,
            )
        })
    };

    let total = (args.subscribers * args.events) as u64;
    let mut latencies: Vec<u32> = Vec::with_capacity(total as usize);
    let mut events = Events::with_capacity(4096);
    let mut scratch = vec![0u8; 256 * 1024];
    let mut body = Vec::new();
    let mut delivered = 0u64;
    let mut last_delivery = base;
    let mut publish_end: Option<Instant> = None;
    let mut first_publish: Option<Instant> = None;
    while delivered < total {
        if let Some(end) = publish_end {
            if end.elapsed() > Duration::from_secs(30) {
                eprintln!("fanout: gave up waiting 30 s after the last publish");
                break;
            }
        }
        if publish_end.is_none() && publisher.is_finished() {
            publish_end = Some(Instant::now());
        }
        // `--spin`: never sleep in epoll_wait while measuring. On loopback
        // the server's write pays for waking a sleeping reader (a
        // cross-CPU wake-up, costly on a VM); a spinning reader is never
        // asleep, so the figure is the server's own cost.
        let timeout = if args.spin {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
        };
        poll.poll(&mut events, Some(timeout))?;
        for event in events.iter() {
            let sub = &mut subs[event.token().0];
            if !event.is_readable() || sub.closed {
                continue;
            }
            body.clear();
            let reader = &mut sub.reader;
            let mut bad = None;
            sub.closed = read_available(&mut sub.stream, event, &mut scratch, |b| {
                if let Err(e) = reader.feed(b, &mut body) {
                    bad = Some(e);
                }
            })?;
            if let Some(e) = bad {
                return Err(io::Error::other(e));
            }
            let now = now_ns(base);
            let mut got = 0;
            sub.parser.feed_with(&body, |m| {
                let Some((seq, sent)) = seq_and_sent(m.data) else {
                    return; // not a benchmark event (a seid, say)
                };
                got += 1;
                first_publish.get_or_insert(base + Duration::from_nanos(sent));
                if sub.tally.record(seq) {
                    delivered += 1;
                    latencies.push(((now.saturating_sub(sent)) / 1000) as u32);
                }
            });
            if got > 0 {
                last_delivery = Instant::now();
            }
        }
    }
    let server_cpu = match (args.pid, cpu_before) {
        (Some(pid), Some(before)) => format!(" server_cpu_ms={}", cpu_ms(pid)? - before),
        _ => String::new(),
    };
    let published = publisher
        .join()
        .map_err(|_| io::Error::other("publisher panicked"))??;
    let start = first_publish.unwrap_or(base);
    let secs = last_delivery
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(1e-9);
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let lost = total.saturating_sub(delivered);
    let duplicated: u64 = subs.iter().map(|s| s.tally.duplicated).sum();
    let out_of_order: u64 = subs.iter().map(|s| s.tally.out_of_order).sum();
    let closed = subs.iter().filter(|s| s.closed).count();
    println!(
        "fanout subscribers={} events={} published={} deliveries={} seconds={:.3} deliveries_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} lost={} duplicated={} out_of_order={} closed={}{}",
        args.subscribers,
        args.events,
        published,
        delivered,
        secs,
        delivered as f64 / secs,
        f64::from(pct(0.50)) / 1000.0,
        f64::from(pct(0.99)) / 1000.0,
        f64::from(latencies.last().copied().unwrap_or(0)) / 1000.0,
        lost,
        duplicated,
        out_of_order,
        closed,
        server_cpu,
    );
    Ok(())
}

/// CPU time (user + system) process `pid` has used, in ms.
fn cpu_ms(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
    let (Some(user), Some(system)) = (ticks(14), ticks(15)) else {
        return Err(io::Error::other("unreadable /proc/PID/stat"));
    };
    // The kernel's USER_HZ: 100 on Linux.
    Ok((user + system) * 10)
}

/// How events are published: the body as it is, or a Mercure form.
struct Form {
    /// The form's topic; `None` posts the data as the body.
    topic: Option<String>,
    /// Extra header lines for every request.
    header: String,
}

/// POSTs `events` events on one kept-alive connection, as fast as the
/// server answers or at `rate` per second; answers how many were accepted.
#[allow(clippy::too_many_arguments)]
fn publish_loop(
    addr: SocketAddr,
    path: &str,
    events: usize,
    rate: Option<f64>,
    payload: usize,
    pipeline: usize,
    base: Instant,
    form: &Form,
) -> io::Result<usize> {
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    let mut stream: Box<dyn ReadWrite> = match tls_session() {
        Some(tls) => Box::new(rustls::StreamOwned::new(*tls, tcp)),
        None => Box::new(tcp),
    };
    let padding = "x".repeat(payload.saturating_sub(24));
    let mut reader = ResponseReader::default();
    let mut scratch = vec![0u8; 16 * 1024];
    let started = Instant::now();
    let mut accepted = 0;
    let mut in_flight = 0;
    for seq in 0..events {
        // The time the event is stamped with. At a fixed rate it is when the
        // event was due, not when it could be sent: a server that answers
        // the publisher late then shows the delay in the latency, rather
        // than hiding it by slowing the publisher (coordinated omission).
        let mut stamp = now_ns(base);
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(seq as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait); // pacing the publisher, not synchronising a test
            }
            stamp = due.duration_since(base).as_nanos() as u64;
        }
        let data = format!("{seq} {stamp} {padding}");
        let (kind, body) = match &form.topic {
            // Spaces are `+` in a form; the topic is sent as given (the
            // caller encodes it).
            Some(topic) => (
                "Content-Type: application/x-www-form-urlencoded\r\n",
                format!("topic={topic}&data={}", data.replace(' ', "+")),
            ),
            None => ("", data),
        };
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\n{kind}{}Content-Length: {}\r\n\r\n{body}",
            form.header,
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        in_flight += 1;
        // Up to `pipeline` requests wait for their answers at once.
        while in_flight >= pipeline.max(1) {
            accepted += usize::from(next_response_ok(&mut *stream, &mut reader, &mut scratch)?);
            in_flight -= 1;
        }
    }
    for _ in 0..in_flight {
        accepted += usize::from(next_response_ok(&mut *stream, &mut reader, &mut scratch)?);
    }
    Ok(accepted)
}

/// A blocking connection, plain or TLS.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Reads the next whole response on a kept-alive connection (bytes of the
/// ones after it stay in `reader`); answers whether it was a 2xx.
fn next_response_ok(
    stream: &mut dyn ReadWrite,
    reader: &mut ResponseReader,
    scratch: &mut [u8],
) -> io::Result<bool> {
    let mut body = Vec::new();
    // What an earlier read already brought may hold this whole response.
    reader.feed(&[], &mut body).map_err(io::Error::other)?;
    while !reader.done {
        let n = stream.read(scratch)?;
        if n == 0 {
            return Err(io::Error::other("publisher connection closed"));
        }
        reader
            .feed(&scratch[..n], &mut body)
            .map_err(io::Error::other)?;
    }
    let ok = reader.head.is_some_and(|h| (200..300).contains(&h.status));
    reader.reset();
    Ok(ok)
}

/// The server's resident set size in KiB, from /proc.
fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

fn hold(args: &Args) -> io::Result<()> {
    let pid = args
        .pid
        .unwrap_or_else(|| usage("hold needs --pid SERVER_PID"));
    let mut poll = Poll::new()?;
    let mut subs = Vec::new();
    let baseline = rss_kib(pid)?;
    let first_event = args.sub_path.starts_with("/events");
    let mut summary = Vec::new();
    for &n in &args.streams {
        let more = n.saturating_sub(subs.len());
        open_streams(
            args,
            &mut poll,
            &mut subs,
            more,
            &args.sub_path,
            first_event,
        )?;
        // Let the server finish whatever the last connects started.
        std::thread::sleep(Duration::from_millis(500));
        let rss = rss_kib(pid)?;
        let per_stream = (rss.saturating_sub(baseline) as f64 * 1024.0) / n as f64;
        eprintln!("hold: {n} streams: server RSS {rss} KiB (baseline {baseline} KiB), {per_stream:.0} B per stream");
        summary.push(format!("rss_per_stream_at_{n}={per_stream:.0}B"));
    }
    println!("hold baseline_kib={baseline} {}", summary.join(" "));
    // Held, not read: the server is expected to send nothing (heartbeats
    // off) while another tool measures it.
    std::thread::sleep(args.linger);
    drop(subs);
    Ok(())
}

/// One keep-alive connection in a closed loop of requests.
struct Looper {
    stream: Link,
    reader: ResponseReader,
    in_flight: bool,
}

fn rps(args: &Args) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let close = if args.new_connection {
        "Connection: close\r\n"
    } else {
        ""
    };
    let request = format!("GET {} HTTP/1.1\r\nHost: bench\r\n{close}\r\n", args.path);
    let mut conns: HashMap<usize, Looper> = HashMap::new();
    for i in 0..args.connections {
        let stream = connect(&poll, args.addr, i, args.sources)?;
        conns.insert(
            i,
            Looper {
                stream,
                reader: ResponseReader::default(),
                in_flight: false,
            },
        );
    }
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut body = Vec::new();
    let mut completed = 0u64;
    let mut errors = 0u64;
    let cpu_before = args.pid.map(cpu_ms).transpose()?;
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.seconds);
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for event in events.iter() {
            let Some(c) = conns.get_mut(&event.token().0) else {
                continue;
            };
            if event.is_readable() {
                let reader = &mut c.reader;
                let closed = read_available(&mut c.stream, event, &mut scratch, |b| {
                    body.clear();
                    if reader.feed(b, &mut body).is_err() {
                        errors += 1;
                    }
                })?;
                if c.reader.done {
                    if c.reader.head.is_some_and(|h| h.status == 200) {
                        completed += 1;
                    } else {
                        errors += 1;
                    }
                    c.reader.reset();
                    c.in_flight = false;
                    if args.new_connection {
                        // The next request on a connection (and handshake) of its own.
                        let index = event.token().0;
                        poll.registry().deregister(&mut c.stream)?;
                        c.stream = connect(&poll, args.addr, index, args.sources)?;
                        continue;
                    }
                }
                if closed {
                    errors += 1;
                    conns.remove(&event.token().0);
                    continue;
                }
            }
            if !c.in_flight && Instant::now() < end {
                match c.stream.write(request.as_bytes()) {
                    Ok(n) if n == request.len() => c.in_flight = true,
                    Ok(_) => errors += 1,
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::NotConnected => {}
                    Err(_) => errors += 1,
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // With --pid: the server's CPU per response, which the load
    // generator's own share of the two cores does not move.
    let server_cpu = match (args.pid, cpu_before) {
        (Some(pid), Some(before)) => {
            let ms = cpu_ms(pid)? - before;
            let per = ms as f64 * 1000.0 / completed.max(1) as f64;
            format!(" server_cpu_ms={ms} server_cpu_us_per_response={per:.0}")
        }
        _ => String::new(),
    };
    println!(
        "rps connections={} new_connection={} seconds={secs:.2} responses={completed} responses_per_s={:.0} errors={errors}{server_cpu}",
        args.connections,
        args.new_connection,
        completed as f64 / secs
    );
    Ok(())
}

/// The soak: see the top of this file.
fn soak(args: &Args) -> io::Result<()> {
    let pid = args
        .pid
        .unwrap_or_else(|| usage("soak needs --pid SERVER_PID"));
    let path = "/events?topic=soak";
    let mut poll = Poll::new()?;
    let mut subs = Vec::with_capacity(args.subscribers);
    open_streams(args, &mut poll, &mut subs, args.subscribers, path, true)?;
    eprintln!("soak: {} subscribers ready", subs.len());
    let base = Instant::now();
    let publisher = {
        let (addr, events, rate, pipeline) = (args.addr, args.events, args.rate, args.pipeline);
        std::thread::spawn(move || {
            publish_loop(
                addr,
                "/publish?topic=soak",
                events,
                rate,
                24,
                pipeline,
                base,
                &Form {
                    topic: None,
                    header: String::new(),
                },
            )
        })
    };
    let total = args.events as u64;
    let mut events = Events::with_capacity(4096);
    let mut scratch = vec![0u8; 256 * 1024];
    let mut body = Vec::new();
    let mut next_reconnect = Instant::now() + Duration::from_secs(1);
    let mut reconnects = 0u64;
    let mut resets = 0u64;
    let mut warm_rss = None;
    let mut random = 0x2545_f491_4f6c_dd1du64;
    let mut last_progress = Instant::now();
    let mut next_trace = Instant::now() + Duration::from_secs(20);
    loop {
        let done = subs.iter().all(|s| s.tally.next_seq == total);
        if done {
            break;
        }
        if last_progress.elapsed() > Duration::from_secs(30) {
            eprintln!("soak: no progress for 30 s");
            break;
        }
        let least = subs.iter().map(|s| s.tally.next_seq).min().unwrap_or(0);
        if warm_rss.is_none() && least >= total / 10 {
            warm_rss = Some(rss_kib(pid)?);
        }
        if Instant::now() >= next_trace {
            // The server's memory over time: a leak climbs, a high-water
            // mark levels off.
            next_trace += Duration::from_secs(20);
            eprintln!(
                "soak: t={:.0}s slowest_subscriber_at={least} reconnects={reconnects} rss_kib={}",
                base.elapsed().as_secs_f64(),
                rss_kib(pid)?
            );
        }
        if Instant::now() >= next_reconnect && !publisher.is_finished() {
            next_reconnect += Duration::from_secs(1);
            let count = subs.len() * args.reconnect_percent / 100;
            for _ in 0..count {
                // xorshift: a cheap, repeatable choice of who reconnects.
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                let i = (random % subs.len() as u64) as usize;
                let sub = &mut subs[i];
                poll.registry().deregister(&mut sub.stream)?;
                let stream = connect(&poll, args.addr, i, args.sources)?;
                sub.stream = stream;
                sub.request_sent = false;
                sub.reader = ResponseReader::default();
                // The last id it saw, on this stream or (if this one has not
                // delivered anything yet) on an earlier one.
                let last = sub.parser.last_event_id();
                if !last.is_empty() {
                    sub.last_id_to_send = Some(last.to_owned());
                }
                sub.parser = Parser::new();
                reconnects += 1;
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for event in events.iter() {
            let i = event.token().0;
            let sub = &mut subs[i];
            if event.is_writable() && !sub.request_sent {
                let last = sub.last_id_to_send.clone().unwrap_or_default();
                let request =
                    format!("GET {path} HTTP/1.1\r\nHost: bench\r\nLast-Event-ID: {last}\r\n\r\n");
                sub.send_request(request.as_bytes())?;
            }
            if !event.is_readable() {
                continue;
            }
            body.clear();
            let reader = &mut sub.reader;
            let closed = read_available(&mut sub.stream, event, &mut scratch, |b| {
                let _ = reader.feed(b, &mut body);
            })?;
            if closed {
                return Err(io::Error::other(format!(
                    "subscriber {i} was closed by the server"
                )));
            }
            let tally = &mut sub.tally;
            sub.parser.feed_with(&body, |m| {
                if m.event == "reset" {
                    resets += 1;
                    return;
                }
                let Some((seq, _)) = seq_and_sent(m.data) else {
                    return; // the seid event
                };
                if tally.record(seq) {
                    last_progress = Instant::now();
                }
            });
        }
    }
    let published = publisher
        .join()
        .map_err(|_| io::Error::other("publisher panicked"))??;
    let closing = rss_kib(pid)?;
    let opening = warm_rss.unwrap_or(closing);
    let complete = subs
        .iter()
        .filter(|s| s.tally.next_seq == total && s.tally.received == total)
        .count();
    let duplicated: u64 = subs.iter().map(|s| s.tally.duplicated).sum();
    let gaps: u64 = subs.iter().map(|s| s.tally.out_of_order).sum();
    let growth = (closing as f64 - opening as f64) / opening as f64 * 100.0;
    println!(
        "soak subscribers={} events={} published={published} seconds={:.1} reconnects={reconnects} resets={resets} complete={complete} duplicated={duplicated} gaps={gaps} rss_warm_kib={opening} rss_closing_kib={closing} rss_growth_pct={growth:.1}",
        subs.len(),
        total,
        base.elapsed().as_secs_f64()
    );
    Ok(())
}
