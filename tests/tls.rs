//! The library over real TLS on 127.0.0.1: certificates made here
//! (rcgen), rustls' own client (nobody here wrote it), and hostile or
//! broken handshakes that must cost their own connection and nothing else.
#![cfg(feature = "tls")]

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sseloop::{Event, Reply, Request, Response};
use util::tls::TestCa;
use util::{Client, EventStream, TestServer, DEADLINE};

/// `/events` opens a stream that first says `hello`; `/stats` answers the
/// loop's TLS error and head timeout counts; other paths `404`.
fn handler(req: &Request, reply: &mut Reply<'_>) {
    match req.path() {
        "/events" => {
            reply.send(Event::new("hello").event("greeting")).unwrap();
        }
        "/burst" => {
            // Many events in one handler call: one write pass for each stream.
            for i in 0..200 {
                reply.broadcast(Event::new(format!("burst {i}"))).unwrap();
            }
            reply.respond(Response::text(200, "sent\n")).unwrap();
        }
        "/scheme" => {
            let scheme = if req.is_secure() { "https" } else { "http" };
            reply.respond(Response::text(200, scheme)).unwrap();
        }
        "/stats" => {
            let s = reply.stats();
            let body = format!(
                "tls_errors={} head_timeouts={} connections={} evicted_queue_full={}",
                s.tls_errors, s.head_timeouts, s.connections, s.evicted_queue_full
            );
            reply.respond(Response::text(200, body)).unwrap();
        }
        _ => {
            reply.respond(Response::text(404, "not found\n")).unwrap();
        }
    }
}

/// A TLS server with a certificate of `ca`'s and `configure` applied.
fn tls_server(ca: &TestCa, configure: fn(sseloop::Builder) -> sseloop::Builder) -> TestServer {
    let config = ca.leaf("server").server_config();
    TestServer::start(move |b| configure(b.tls(config)).build(handler))
}

fn tls_client(server: &TestServer, ca: &TestCa) -> Client {
    Client::connect_tls(server.addr, ca.client_config(&[]), "localhost")
}

/// The server's counters, read over a TLS request of its own.
fn stats(server: &TestServer, ca: &TestCa) -> String {
    let mut client = tls_client(server, ca);
    client.get("/stats");
    let (head, body) = client.read_response();
    assert_eq!(head.status, 200);
    String::from_utf8(body).unwrap()
}

#[test]
fn a_stream_over_https_decodes_every_event_and_speaks_http_1_1() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |b| b.auto_generate_id(false));
    // The client offers HTTP/2 first: the server must choose HTTP/1.1.
    let config = ca.client_config(&[b"h2", b"http/1.1"]);
    let mut client = Client::connect_tls(server.addr, config, "localhost");
    client.get("/events");
    let mut stream = EventStream::from_client(client);
    let alpn = stream.client.tls.as_ref().unwrap().alpn_protocol();
    assert_eq!(alpn, Some(&b"http/1.1"[..]));
    let hello = stream.next();
    assert_eq!(
        (hello.event.as_str(), hello.data.as_str()),
        ("greeting", "hello")
    );

    // Events of every shape, many at once (several records per write pass).
    let big = "x".repeat(40_000);
    let sent: Vec<String> = (0..300)
        .map(|i| match i % 3 {
            0 => format!("line {i}\nsecond\r\nthird"),
            1 => big.clone(),
            _ => format!("ünïcødé {i}"),
        })
        .collect();
    for (i, data) in sent.iter().enumerate() {
        let event = Event::new(data.as_str()).id(i.to_string());
        server.handle().broadcast(event).unwrap();
    }
    for (i, data) in sent.iter().enumerate() {
        let m = stream.next();
        assert_eq!(m.data, data.replace("\r\n", "\n"), "event {i}");
        assert_eq!(m.last_event_id, i.to_string());
    }
}

#[test]
fn pipelined_requests_over_tls_are_answered_in_order() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |b| b);
    let mut client = tls_client(&server, &ca);
    // Four requests in one TLS record: three plain answers, then a stream.
    client.send(
        b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /stats HTTP/1.1\r\nHost: t\r\n\r\nGET /scheme HTTP/1.1\r\nHost: t\r\n\r\nGET /events HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let (first, _) = client.read_response();
    assert_eq!(first.status, 404);
    let (second, body) = client.read_response();
    assert_eq!(second.status, 200);
    assert!(String::from_utf8(body).unwrap().starts_with("tls_errors=0"));
    assert_eq!(client.read_response().1, b"https", "Request::is_secure");
    let mut stream = EventStream::from_client(client);
    assert_eq!(stream.next().data, "hello");
}

#[test]
fn a_stalled_handshake_is_cut_at_the_head_timeout_while_others_are_served() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |b| b.head_timeout(Duration::from_millis(400)));
    // Half a ClientHello, then nothing: a slowloris on the handshake.
    let hello = client_hello(&ca);
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    let started = Instant::now();
    stalled.write_all(&hello[..hello.len() / 2]).unwrap();
    // Meanwhile another client is served in full.
    let mut client = tls_client(&server, &ca);
    client.get("/events");
    assert_eq!(EventStream::from_client(client).next().data, "hello");
    // The stalled one is closed at its deadline: not before, and not long after.
    stalled.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "cut after {took:?}");
    assert!(took < DEADLINE, "still open after {took:?}");
    assert!(stats(&server, &ca).contains("head_timeouts=1"));
}

#[test]
fn garbage_instead_of_a_client_hello_closes_that_connection_alone() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |b| b);
    let mut open = tls_client(&server, &ca);
    open.get("/events");
    let mut open = EventStream::from_client(open);
    assert_eq!(open.next().data, "hello");

    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..], // a handshake record of nonsense
        &[0xff; 600][..],
    ] {
        let mut raw = TcpStream::connect(server.addr).unwrap();
        raw.set_read_timeout(Some(DEADLINE)).unwrap();
        raw.write_all(garbage).unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        let _ = raw.read_to_end(&mut answer);
        assert!(started.elapsed() < DEADLINE, "not closed");
        // At most a TLS alert record comes back, never an HTTP answer.
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert!(stats(&server, &ca).contains("tls_errors=3"));
    // The open stream lost nothing.
    server.handle().broadcast(Event::new("after")).unwrap();
    assert_eq!(open.next().data, "after");
}

#[test]
fn a_client_that_vanishes_mid_handshake_costs_nothing() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |b| b);
    let before = stats(&server, &ca);
    for _ in 0..20 {
        let raw = TcpStream::connect(server.addr).unwrap();
        (&raw).write_all(&client_hello(&ca)).unwrap();
        // Reset at once (SO_LINGER 0): the server's reply meets a dead socket.
        socket2::SockRef::from(&raw)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(raw);
    }
    // Every one of them is gone: the server holds only the asking client.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = stats(&server, &ca);
        if now.contains("connections=1 ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still held: {now} (before: {before})"
        );
    }
    let mut client = tls_client(&server, &ca);
    client.get("/events");
    assert_eq!(EventStream::from_client(client).next().data, "hello");
}

#[test]
fn a_slow_tls_reader_gets_everything_in_order() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |b| b.max_queue_bytes(8 << 20));
    let mut client = Client::connect_with_recv_buffer(server.addr, 4096);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    client.tls = Some(rustls::ClientConnection::new(ca.client_config(&[]), name).unwrap());
    client.get("/events");
    let mut stream = EventStream::from_client(client);
    assert_eq!(stream.next().data, "hello");
    // 2 MiB at once: far more than the socket takes, so most of it waits
    // in the queue and in the session's records between write passes.
    let data = "y".repeat(16 * 1024);
    for i in 0..128 {
        server
            .handle()
            .broadcast(Event::new(data.as_str()).id(i.to_string()))
            .unwrap();
    }
    for i in 0..128 {
        let m = stream.next();
        assert_eq!(
            (m.last_event_id.as_str(), m.data.len()),
            (i.to_string().as_str(), data.len())
        );
    }
}

#[test]
fn a_tls_reader_that_stops_is_evicted_at_the_cap() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |b| b.max_queue_bytes(256 * 1024));
    let mut stuck = tls_client(&server, &ca);
    stuck.get("/events");
    let mut stuck = EventStream::from_client(stuck);
    assert_eq!(stuck.next().data, "hello");
    let data = "z".repeat(32 * 1024);
    for _ in 0..256 {
        let _ = server.handle().broadcast(Event::new(data.as_str()));
    }
    // 8 MiB against a 256 KiB cap and a client that reads nothing: evicted.
    let deadline = Instant::now() + DEADLINE;
    while !stats(&server, &ca).contains("evicted_queue_full=1") {
        assert!(Instant::now() < deadline, "{}", stats(&server, &ca));
    }
}

#[test]
fn a_response_that_closes_ends_with_close_notify() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |b| b);
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = rustls::ClientConnection::new(ca.client_config(&[]), name).unwrap();
    let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
    stream
        .write_all(b"GET /nothing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    // read_to_end fails with UnexpectedEof on a TCP close that no
    // close_notify came before: a truncation the client could not tell.
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("a clean TLS end");
    assert!(answer.starts_with(b"HTTP/1.1 404"), "{answer:?}");
}

#[test]
fn a_burst_goes_out_in_a_few_records_not_one_per_event() {
    let ca = TestCa::new();
    let server = tls_server(&ca, |b| b.auto_generate_id(false));
    // The subscriber reads raw TCP and counts the TLS records itself, then
    // hands the bytes to rustls' client to decrypt.
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = rustls::ClientConnection::new(ca.client_config(&[]), name).unwrap();
    rustls::Stream::new(&mut tls, &mut tcp)
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut plaintext = Vec::new();
    let mut records = 0;
    let mut raw = Vec::new();
    // Until the hello event has arrived: the stream is open.
    let mut read_until = |want: &str, plaintext: &mut Vec<u8>, records: &mut usize| {
        let deadline = Instant::now() + DEADLINE;
        while !String::from_utf8_lossy(plaintext).contains(want) {
            assert!(Instant::now() < deadline, "no {want:?} in time");
            let mut chunk = [0u8; 16 * 1024];
            let n = tcp.read(&mut chunk).unwrap();
            assert!(n > 0, "closed");
            raw.extend_from_slice(&chunk[..n]);
            // Whole records only: type, version, length, then the body.
            while raw.len() >= 5 {
                let len = usize::from(u16::from_be_bytes([raw[3], raw[4]]));
                if raw.len() < 5 + len {
                    break;
                }
                let record: Vec<u8> = raw.drain(..5 + len).collect();
                if record[0] == 0x17 {
                    *records += 1;
                }
                // read_tls takes at most a few KiB a call: feed it all.
                let mut rest = &record[..];
                while !rest.is_empty() {
                    tls.read_tls(&mut rest).unwrap();
                    tls.process_new_packets().unwrap();
                    let _ = tls.reader().read_to_end(plaintext);
                }
            }
        }
    };
    read_until("data: hello", &mut plaintext, &mut records);
    let before = records;
    let mut trigger = tls_client(&server, &ca);
    trigger.get("/burst");
    assert_eq!(trigger.read_response().0.status, 200);
    read_until("data: burst 199\n", &mut plaintext, &mut records);
    let burst = records - before;
    let text = String::from_utf8_lossy(&plaintext);
    for i in 0..200 {
        assert!(
            text.contains(&format!("data: burst {i}\n")),
            "burst {i} missing"
        );
    }
    // 200 events of about 25 bytes, 5 KiB: one record for a write pass
    // (two if the burst spans two passes), where a record per event would
    // be 200, and one per writev of 64 slices 4.
    assert!(burst <= 2, "{burst} records for 200 events");
}

/// The bytes of a real ClientHello for `localhost`.
fn client_hello(ca: &TestCa) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = rustls::ClientConnection::new(ca.client_config(&[]), name).unwrap();
    let mut hello = Vec::new();
    tls.write_tls(&mut hello).unwrap();
    hello
}
