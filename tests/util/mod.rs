//! Shared helpers for the integration tests: a server fixture that shuts
//! down in `Drop`, and a blocking client whose every read has a deadline.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sseloop::parse::{Message, Parser};
use sseloop::{Builder, Handle, Server};

pub mod tls;

/// How long any single expectation may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// A server running on its own thread, on 127.0.0.1 and a free port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: Handle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    /// Builds the server on its thread (it is not `Send`) with `build`, which
    /// gets a builder already bound to 127.0.0.1:0.
    pub fn start(build: impl FnOnce(Builder) -> io::Result<Server> + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let builder = Server::builder().bind("127.0.0.1:0")?;
            let server = build(builder)?;
            tx.send((server.local_addr(), server.handle())).unwrap();
            server.run()
        });
        let (addr, handle) = rx.recv_timeout(DEADLINE).expect("server did not start");
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Shuts down and waits for `run` to return; answers how long it took.
    pub fn stop(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(thread) = self.thread.take() {
            let _ = self.handle.shutdown();
            thread
                .join()
                .expect("server thread panicked")
                .expect("run failed");
        }
        started.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.thread.is_some() && !std::thread::panicking() {
            self.stop();
        }
    }
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The target of a `Link: <…>; rel="next"` (the next page of a
    /// listing), if there is one; any other `Link` fails the test.
    pub fn next_page(&self) -> Option<String> {
        let link = self.header("link")?;
        let target = link
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel=\"next\""))
            .map(|(url, _)| url.to_owned());
        Some(target.unwrap_or_else(|| panic!("a Link that is not next: {link}")))
    }
}

/// A blocking client; bytes read and not yet consumed stay in `buf`.
pub struct Client {
    pub stream: TcpStream,
    /// The client's TLS session when it speaks HTTPS (rustls' own client).
    pub tls: Option<rustls::ClientConnection>,
    buf: Vec<u8>,
    /// Set once the server closed the connection.
    pub eof: bool,
    /// How long a read for a head, chunk or response may wait.
    patience: Duration,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
        Self::from_stream(stream)
    }

    /// A client whose receive buffer is `bytes` (set before connecting, so
    /// the window stays small): a reader that cannot absorb much.
    pub fn connect_with_recv_buffer(addr: SocketAddr, bytes: usize) -> Self {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        socket
            .connect_timeout(&addr.into(), DEADLINE)
            .expect("connect");
        Self::from_stream(socket.into())
    }

    /// A client that speaks HTTPS to `addr`, trusting `roots` and asking
    /// for `server_name`. The handshake runs with the first write or read.
    pub fn connect_tls(
        addr: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Self {
        let mut client = Self::connect(addr);
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
        client.tls = Some(rustls::ClientConnection::new(config, name).expect("a TLS client"));
        client
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            tls: None,
            buf: Vec::new(),
            eof: false,
            patience: DEADLINE,
        }
    }

    /// The same client, waiting up to `patience` for what it reads (for a
    /// peer slower than the servers under test, such as a browser starting).
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.set_read_timeout(Some(DEADLINE)).unwrap();
        match &mut self.tls {
            Some(tls) => {
                let mut stream = rustls::Stream::new(tls, &mut self.stream);
                stream.write_all(bytes).expect("write");
                stream.flush().expect("flush");
            }
            None => self.stream.write_all(bytes).expect("write"),
        }
    }

    pub fn get(&mut self, target: &str) {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }

    /// Reads more bytes, waiting until `deadline`. Answers false on timeout.
    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 16 * 1024];
        let read = match &mut self.tls {
            Some(tls) => rustls::Stream::new(tls, &mut self.stream).read(&mut chunk),
            None => self.stream.read(&mut chunk),
        };
        match read {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                false
            }
            // A TLS peer that closed TCP without close_notify.
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionReset
                    || e.kind() == io::ErrorKind::UnexpectedEof =>
            {
                self.eof = true;
                false
            }
            // A signal (a fuzzer's timer, say) cut the wait short: wait again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.fill(deadline),
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Reads until `want` says how many buffered bytes it consumes.
    fn read_until<T>(
        &mut self,
        what: &str,
        mut want: impl FnMut(&[u8]) -> Option<(T, usize)>,
    ) -> T {
        let deadline = Instant::now() + self.patience;
        loop {
            if let Some((value, used)) = want(&self.buf) {
                self.buf.drain(..used);
                return value;
            }
            if !self.fill(deadline) {
                panic!(
                    "timed out or closed waiting for {what}; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    pub fn read_head(&mut self) -> Head {
        let text = self.read_until("a response head", |buf| {
            let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
            Some((String::from_utf8_lossy(&buf[..end]).into_owned(), end + 4))
        });
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap().to_owned();
        let status = parts.next().unwrap().parse().unwrap();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.to_owned(), v.trim().to_owned())
            })
            .collect();
        Head {
            version,
            status,
            headers,
        }
    }

    /// Reads a whole plain response; answers its head and body.
    pub fn read_response(&mut self) -> (Head, Vec<u8>) {
        let head = self.read_head();
        let body = self.read_body(&head);
        (head, body)
    }

    /// Reads the body of a plain response whose `head` was read.
    pub fn read_body(&mut self, head: &Head) -> Vec<u8> {
        if matches!(head.status, 100..=199 | 204 | 304) {
            // These end with their head, and must not claim a length.
            assert_eq!(
                head.header("content-length"),
                None,
                "a {} with a length",
                head.status
            );
            return Vec::new();
        }
        let len: usize = head
            .header("content-length")
            .expect("content-length")
            .parse()
            .unwrap();
        self.read_until("a body", |buf| {
            (buf.len() >= len).then(|| (buf[..len].to_vec(), len))
        })
    }

    /// Reads one HTTP/1.1 chunk; `None` for the last chunk. Strict: the
    /// size line and the CRLF after the data must be exact.
    pub fn read_chunk(&mut self) -> Option<Vec<u8>> {
        self.read_until("a chunk", |buf| {
            let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&buf[..line_end]).expect("chunk size is ASCII");
            let size = usize::from_str_radix(size_text, 16).expect("chunk size is hex");
            let start = line_end + 2;
            if size == 0 {
                if buf.len() < start + 2 {
                    return None;
                }
                assert_eq!(
                    &buf[start..start + 2],
                    b"\r\n",
                    "last chunk must end in CRLF"
                );
                return Some((None, start + 2));
            }
            if buf.len() < start + size + 2 {
                return None;
            }
            assert_eq!(
                &buf[start + size..start + size + 2],
                b"\r\n",
                "chunk must end in CRLF"
            );
            Some((Some(buf[start..start + size].to_vec()), start + size + 2))
        })
    }

    /// Waits for the server to close the connection; answers the bytes
    /// that came before the close.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + DEADLINE;
        while !self.eof {
            if !self.fill(deadline) && !self.eof {
                panic!("server did not close within {DEADLINE:?}");
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Whether the server closes the connection before `within` passes.
    pub fn closes_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.eof {
            if !self.fill(deadline) && !self.eof {
                return false;
            }
        }
        true
    }

    /// Everything that arrives within `within` (and was not read yet).
    pub fn read_for(&mut self, within: Duration) -> Vec<u8> {
        let deadline = Instant::now() + within;
        while self.fill(deadline) {}
        std::mem::take(&mut self.buf)
    }

    /// Answers whether nothing at all arrives within `quiet`.
    pub fn quiet_for(&mut self, quiet: Duration) -> bool {
        let deadline = Instant::now() + quiet;
        !self.fill(deadline) && self.buf.is_empty() && !self.eof
    }
}

/// An SSE stream on a client: decodes chunk framing (if chunked) and then
/// the event stream with the spec's parser.
pub struct EventStream {
    pub client: Client,
    pub head: Head,
    chunked: bool,
    pub parser: Parser,
    pending: std::collections::VecDeque<Message>,
    /// Set once the last chunk (or the close, for HTTP/1.0) arrived.
    pub ended: bool,
}

impl EventStream {
    /// Sends `GET target` and reads the stream's head, checking the headers
    /// every SSE response must have.
    pub fn open(server: &TestServer, target: &str) -> Self {
        let mut client = server.connect();
        client.get(target);
        Self::from_client(client)
    }

    pub fn from_client(mut client: Client) -> Self {
        let head = client.read_head();
        assert_eq!(head.status, 200, "{head:?}");
        assert_eq!(head.header("content-type"), Some("text/event-stream"));
        assert_eq!(head.header("cache-control"), Some("no-cache"));
        assert_eq!(head.header("x-accel-buffering"), Some("no"));
        assert_eq!(head.header("content-encoding"), None);
        let chunked = head.header("transfer-encoding") == Some("chunked");
        EventStream {
            client,
            head,
            chunked,
            parser: Parser::new(),
            pending: Default::default(),
            ended: false,
        }
    }

    /// Reads stream bytes once (one chunk, or whatever arrives).
    fn pump(&mut self) {
        if self.chunked {
            match self.client.read_chunk() {
                Some(bytes) => {
                    let mut out = Vec::new();
                    self.parser.feed(&bytes, &mut out);
                    self.pending.extend(out);
                }
                None => self.ended = true,
            }
        } else {
            let deadline = Instant::now() + DEADLINE;
            if !self.client.fill(deadline) {
                if self.client.eof {
                    self.ended = true;
                } else {
                    panic!("timed out waiting for stream bytes");
                }
            }
            let bytes = std::mem::take(&mut self.client.buf);
            let mut out = Vec::new();
            self.parser.feed(&bytes, &mut out);
            self.pending.extend(out);
        }
    }

    /// The next event; panics if none arrives within the deadline or the
    /// stream ends first.
    pub fn next(&mut self) -> Message {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return m;
            }
            assert!(!self.ended, "stream ended while waiting for an event");
            self.pump();
        }
    }

    /// Reads to the end of the stream; answers the events that came first.
    pub fn rest(&mut self) -> Vec<Message> {
        while !self.ended {
            self.pump();
        }
        self.pending.drain(..).collect()
    }
}
