//! Many client connections at once, driven by one mio poll with deadlines,
//! and what /proc says about a server process. For the hostile-client tests.
#![allow(dead_code)] // each test crate uses part of it

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// One connection of a crowd: what it sent, what it got, whether it closed.
pub struct Member {
    pub stream: Option<TcpStream>,
    pub received: Vec<u8>,
    pub closed_at: Option<Instant>,
    pub opened_at: Instant,
    /// The error that ended the connection, if it did not end in an EOF.
    pub error: Option<io::ErrorKind>,
}

/// A crowd of non-blocking connections to one server.
pub struct Crowd {
    poll: Poll,
    pub members: Vec<Member>,
    /// Requests not yet written: (member, bytes).
    unsent: Vec<(usize, Vec<u8>)>,
}

impl Crowd {
    pub fn new() -> Self {
        Crowd {
            poll: Poll::new().unwrap(),
            members: Vec::new(),
            unsent: Vec::new(),
        }
    }

    /// Connects `n` more clients (from 127.0.0.2…127.0.0.9, so ephemeral
    /// ports never run out) that each send `request` once connected.
    pub fn connect(&mut self, addr: SocketAddr, n: usize, request: &[u8]) {
        for _ in 0..n {
            let index = self.members.len();
            let source = Ipv4Addr::new(127, 0, 0, 2 + (index % 8) as u8);
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.set_nonblocking(true).unwrap();
            socket
                .bind(&SocketAddr::new(IpAddr::V4(source), 0).into())
                .unwrap();
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(115) => {} // EINPROGRESS
                Err(e) => panic!("connect: {e}"),
            }
            let mut stream = TcpStream::from_std(socket.into());
            self.poll
                .registry()
                .register(
                    &mut stream,
                    Token(index),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .unwrap();
            self.members.push(Member {
                stream: Some(stream),
                received: Vec::new(),
                closed_at: None,
                opened_at: Instant::now(),
                error: None,
            });
            self.pending_request(index, request);
        }
    }

    /// Connects one client per request in `requests`, each sending its own.
    pub fn connect_each(&mut self, addr: SocketAddr, requests: impl IntoIterator<Item = Vec<u8>>) {
        for request in requests {
            self.connect(addr, 1, &request);
        }
    }

    /// Closes every member's connection.
    pub fn close_all(&mut self) {
        for member in &mut self.members {
            if member.stream.is_some() {
                member.close_now();
            }
        }
    }

    /// How many members have received at least `bytes` bytes.
    pub fn received_at_least(&self, bytes: usize) -> usize {
        self.members
            .iter()
            .filter(|m| m.received.len() >= bytes)
            .count()
    }

    fn pending_request(&mut self, index: usize, request: &[u8]) {
        // Written on the first writable event; kept here until then.
        self.unsent.push((index, request.to_vec()));
    }

    /// Waits for events until `done(self)` holds or `within` passes;
    /// answers whether `done` held.
    pub fn run_until(&mut self, within: Duration, mut done: impl FnMut(&Crowd) -> bool) -> bool {
        let deadline = Instant::now() + within;
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if done(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.poll
                .poll(&mut events, Some(left.min(Duration::from_millis(50))))
                .unwrap();
            for event in events.iter() {
                let i = event.token().0;
                if event.is_writable() {
                    if let Some(pos) = self.unsent.iter().position(|(j, _)| *j == i) {
                        let (_, bytes) = self.unsent.swap_remove(pos);
                        if let Some(s) = self.members[i].stream.as_mut() {
                            if s.write_all(&bytes).is_err() {
                                self.unsent.push((i, bytes));
                            }
                        }
                    }
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.drain(i, &mut buf);
                }
            }
        }
    }

    fn drain(&mut self, i: usize, buf: &mut [u8]) {
        let member = &mut self.members[i];
        let Some(stream) = member.stream.as_mut() else {
            return;
        };
        loop {
            match stream.read(buf) {
                Ok(0) => break member.close_now(),
                Ok(n) => member.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    member.error = Some(e.kind());
                    break member.close_now();
                }
            }
        }
    }

    /// Writes `bytes` to every open member (ignoring the ones the server
    /// has closed).
    pub fn send_all(&mut self, bytes: &[u8]) {
        for member in &mut self.members {
            if let Some(stream) = member.stream.as_mut() {
                let _ = stream.write(bytes);
            }
        }
    }

    pub fn closed(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.closed_at.is_some())
            .count()
    }
}

impl Default for Crowd {
    fn default() -> Self {
        Crowd::new()
    }
}

impl Member {
    fn close_now(&mut self) {
        self.stream = None;
        self.closed_at = Some(Instant::now());
    }

    /// Whether what it received starts with `prefix`.
    pub fn got(&self, prefix: &[u8]) -> bool {
        self.received.starts_with(prefix)
    }
}

/// A line of /proc/PID/status, in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} for {pid}"))
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// CPU time a process has used (user + system), from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" that ends the command name; utime and stime are
    // the 14th and 15th fields of the line, in clock ticks (100 per second).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}
