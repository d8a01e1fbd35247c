//! The library over real sockets on 127.0.0.1: framing through a
//! spec-conformant parser, HTTP edge cases, seids, timers, eviction, the
//! cross-thread handle and shutdown.

#[path = "util/crowd.rs"]
mod crowd;
mod util;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use sseloop::{Event, FrameError, Reply, Request, Response, SendError, StreamError};
use util::{Client, EventStream, TestServer, DEADLINE};

/// A handler whose `/events` opens a stream, announces its seid as the first
/// event (`event: seid`) and subscribes to `?topic=`; other paths 404.
fn announce(req: &Request, reply: &mut Reply<'_>) -> bool {
    if req.path() != "/events" {
        return false;
    }
    let seid = reply.stream().unwrap().to_owned();
    reply.send(Event::new(seid).event("seid")).unwrap();
    for topic in req.query_all("topic") {
        reply.subscribe(topic).unwrap();
    }
    true
}

fn quiet_server() -> TestServer {
    TestServer::start(|b| {
        b.auto_generate_id(false)
            .build(|req: &Request, reply: &mut Reply<'_>| {
                announce(req, reply);
            })
    })
}

#[test]
fn round_trip_through_a_spec_parser() {
    // (what the handler sends, what the client must decode).
    let cases: Vec<(Event, &str, &str, &str)> = vec![
        (Event::new("plain"), "message", "plain", ""),
        (Event::new("a\nb"), "message", "a\nb", ""),
        (Event::new("a\rb"), "message", "a\nb", ""),
        (Event::new("a\r\nb"), "message", "a\nb", ""),
        (
            Event::new("mixed\r\n\r\r\n\nend"),
            "message",
            "mixed\n\n\n\nend",
            "",
        ),
        (Event::new(""), "message", "", ""),
        (Event::new("\n"), "message", "\n", ""),
        (Event::new("trailing\n"), "message", "trailing\n", ""),
        (Event::new("ünïcødé ✓ 𝄞"), "message", "ünïcødé ✓ 𝄞", ""),
        (Event::new("nul\0inside"), "message", "nul\0inside", ""),
        (
            Event::new("  two leading spaces"),
            "message",
            "  two leading spaces",
            "",
        ),
        (Event::new(":colon first"), "message", ":colon first", ""),
        (Event::new("named").event("update"), "update", "named", ""),
        (Event::new("with id").id("42"), "message", "with id", "42"),
        (Event::new("keeps id"), "message", "keeps id", "42"),
        (Event::new("id zero").id("0"), "message", "id zero", "0"),
    ];
    let to_send: Vec<Event> = cases.iter().map(|c| c.0.clone()).collect();
    let server = TestServer::start(move |b| {
        b.auto_generate_id(false)
            .build(move |_req: &Request, reply: &mut Reply<'_>| {
                for event in &to_send {
                    reply.send(event.clone()).unwrap();
                }
                // Retry 0 and an id-only frame, then a marker event.
                reply.send(Event::new("retry").retry(0)).unwrap();
                reply.send(Event::id_only("only-id")).unwrap();
                reply.send(Event::new("after id-only")).unwrap();
                reply.end().unwrap();
            })
    });
    let mut stream = EventStream::open(&server, "/events");
    for (_, event, data, id) in &cases {
        let m = stream.next();
        assert_eq!(
            (m.event.as_str(), m.data.as_str(), m.last_event_id.as_str()),
            (*event, *data, *id)
        );
    }
    let m = stream.next();
    assert_eq!(m.data, "retry");
    assert_eq!(stream.parser.retry(), Some(0));
    // The id-only frame fired nothing but moved the last event id.
    let m = stream.next();
    assert_eq!(
        (m.data.as_str(), m.last_event_id.as_str()),
        ("after id-only", "only-id")
    );
    assert!(stream.rest().is_empty());
}

#[test]
fn refuses_line_breaks_and_nul_in_event_and_id() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(move |b| {
        b.build(move |_req: &Request, reply: &mut Reply<'_>| {
            let results = [
                reply.send(Event::new("x").event("a\nevent: injected")),
                reply.send(Event::new("x").event("a\r")),
                reply.send(Event::new("x").id("1\ndata: injected")),
                reply.send(Event::new("x").id("1\r2")),
                reply.send(Event::new("x").id("1\u{0}2")),
            ];
            tx.send(results.to_vec()).unwrap();
            reply.send(Event::new("clean").id("ok")).unwrap();
            reply.end().unwrap();
        })
    });
    let mut stream = EventStream::open(&server, "/events");
    let m = stream.next();
    assert_eq!((m.data.as_str(), m.last_event_id.as_str()), ("clean", "ok"));
    assert!(
        stream.rest().is_empty(),
        "refused events must write nothing"
    );
    let results = rx.recv_timeout(DEADLINE).unwrap();
    use FrameError::*;
    let want = [
        EventHasLineBreak,
        EventHasLineBreak,
        IdHasLineBreak,
        IdHasLineBreak,
        IdHasNul,
    ];
    assert_eq!(results, want.map(|e| Err(SendError::Frame(e))).to_vec());
}

#[test]
fn request_in_one_byte_writes() {
    let server = quiet_server();
    let mut client = server.connect();
    for b in b"GET /events?topic=t HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n" {
        client.send(std::slice::from_ref(b));
    }
    let mut stream = EventStream::from_client(client);
    assert_eq!(stream.next().event, "seid");
}

#[test]
fn two_pipelined_requests() {
    let server = TestServer::start(|b| {
        b.build(|req: &Request, reply: &mut Reply<'_>| {
            let body = format!("{} {}", req.method(), req.path());
            reply.respond(Response::text(200, body)).unwrap();
        })
    });
    let mut client = server.connect();
    client.send(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    let (head, body) = client.read_response();
    assert_eq!((head.status, body.as_slice()), (200, &b"GET /one"[..]));
    let (head, body) = client.read_response();
    assert_eq!((head.status, body.as_slice()), (200, &b"POST /two"[..]));
    // Kept alive for a third.
    client.get("/three");
    assert_eq!(client.read_response().1, b"GET /three");
}

#[test]
fn pipelined_request_after_a_finite_stream() {
    let server = TestServer::start(|b| {
        b.auto_generate_id(false)
            .build(|req: &Request, reply: &mut Reply<'_>| {
                reply.send(Event::new(req.path())).unwrap();
                reply.end().unwrap();
            })
    });
    let mut client = server.connect();
    client.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut first = EventStream::from_client(client);
    assert_eq!(first.next().data, "/a");
    assert!(first.rest().is_empty());
    let mut second = EventStream::from_client(first.client);
    assert_eq!(second.next().data, "/b");
    assert!(second.rest().is_empty());
}

#[test]
fn head_request_gets_the_head_alone_even_from_a_handler_that_streams() {
    // The handler routes on the path alone, as the README's does. A body
    // after a HEAD's response would be read as the next response.
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(move |b| {
        b.auto_generate_id(false)
            .build(
                move |req: &Request, reply: &mut Reply<'_>| match req.path() {
                    "/events" => {
                        reply.header("X-Extra", "kept").unwrap();
                        tx.send(reply.send(Event::new("body"))).unwrap();
                        tx.send(reply.end()).unwrap();
                    }
                    path => reply.respond(Response::text(200, path)).unwrap(),
                },
            )
    });
    let mut client = server.connect();
    client.send(
        b"HEAD /events HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /plain HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /after HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let head = client.read_head();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.header("x-extra"), Some("kept"));
    // A plain answer to HEAD keeps the length its body would have had.
    let head = client.read_head();
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("6"))
    );
    // The third response follows with nothing in between.
    let (head, body) = client.read_response();
    assert_eq!((head.status, body.as_slice()), (200, &b"/after"[..]));
    assert_eq!(
        rx.recv_timeout(DEADLINE).unwrap(),
        Err(SendError::Open(StreamError::HeadRequest))
    );
    assert_eq!(
        rx.recv_timeout(DEADLINE).unwrap(),
        Err(SendError::NotStreaming)
    );

    // The HTTP/1.0 stream head says `Connection: close`, and the server
    // keeps to it, with nothing after the head.
    let mut client = server.connect();
    client.send(b"HEAD /events HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let head = client.read_head();
    assert_eq!(
        (head.version.as_str(), head.header("connection")),
        ("HTTP/1.0", Some("close"))
    );
    assert!(client.read_to_close().is_empty());
}

/// Checks that `date` is an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`)
/// whose time of day is the wall clock's, within a few seconds.
fn assert_current_http_date(date: Option<&str>) {
    let date = date.expect("a Date header");
    let fields: Vec<&str> = date.split(' ').collect();
    assert_eq!(fields.len(), 6, "{date:?}");
    assert!(["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"].contains(&fields[0]));
    assert!(
        fields[1].len() == 2 && fields[3].len() == 4 && fields[5] == "GMT",
        "{date:?}"
    );
    let hms: Vec<u64> = fields[4].split(':').map(|n| n.parse().unwrap()).collect();
    let shown = hms[0] * 3600 + hms[1] * 60 + hms[2];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 86_400;
    let apart = shown.abs_diff(now).min(86_400 - shown.abs_diff(now));
    assert!(apart <= 5, "{date:?} is {apart} s from the wall clock");
}

#[test]
fn every_response_carries_the_date() {
    let server = TestServer::start(|b| {
        b.build(|req: &Request, reply: &mut Reply<'_>| match req.path() {
            "/plain" => reply.respond(Response::text(200, "x")).unwrap(),
            // A HEAD gets `Err(Open(HeadRequest))`: answered with the head.
            "/stream" => drop(reply.end()),
            _ => {
                reply.header("X-Extra", "1").unwrap();
                reply.end().unwrap();
            }
        })
    });
    let mut client = server.connect();
    client.send(
        b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (head, _) = client.read_response();
    assert_current_http_date(head.header("date"));
    assert_current_http_date(client.read_head().header("date"));
    let head = client.read_head();
    assert_current_http_date(head.header("date"));
    assert_eq!(client.read_chunk(), None);
    client.get("/extra");
    let head = client.read_head();
    assert_current_http_date(head.header("date"));
    assert_eq!(head.header("x-extra"), Some("1"));
    assert_eq!(client.read_chunk(), None);
    // Refused requests too.
    let mut client = server.connect();
    client.send(b"GET / HTTP/1.1\r\n\r\n");
    let (head, _) = client.read_response();
    assert_eq!(head.status, 400);
    assert_current_http_date(head.header("date"));
}

#[test]
fn no_body_or_length_on_204_and_304() {
    let server = TestServer::start(|b| {
        b.build(|req: &Request, reply: &mut Reply<'_>| {
            let status = req.path()[1..].parse().unwrap();
            // A handler's body on these would be read as the next response.
            reply.respond(Response::text(status, "dropped")).unwrap();
        })
    });
    let mut client = server.connect();
    client.send(b"GET /204 HTTP/1.1\r\nHost: x\r\n\r\nGET /304 HTTP/1.1\r\nHost: x\r\n\r\nGET /200 HTTP/1.1\r\nHost: x\r\n\r\n");
    for status in [204, 304] {
        let head = client.read_head();
        assert_eq!((head.status, head.header("content-length")), (status, None));
    }
    let (head, body) = client.read_response();
    assert_eq!((head.status, body.as_slice()), (200, &b"dropped"[..]));
}

#[test]
fn oversized_head_gets_431_and_malformed_gets_400() {
    let server = quiet_server();
    let mut client = server.connect();
    let big = format!(
        "GET /events HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    client.send(big.as_bytes());
    let head = client.read_head();
    assert_eq!(head.status, 431);
    assert_eq!(head.header("connection"), Some("close"));
    assert!(client.closes_within(DEADLINE));

    let mut client = server.connect();
    client.send(b"GET /events HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    assert_eq!(client.read_head().status, 400);
    assert!(client.closes_within(DEADLINE));

    let mut client = server.connect();
    client.send(b"\x00\x01\x02 garbage\r\n\r\n");
    assert_eq!(client.read_head().status, 400);
    assert!(client.closes_within(DEADLINE));

    // The server is still there for everyone else.
    let mut stream = EventStream::open(&server, "/events");
    assert_eq!(stream.next().event, "seid");
}

#[test]
fn http10_stream_is_unchunked_and_ends_with_close() {
    let server = TestServer::start(|b| {
        b.auto_generate_id(false)
            .build(|_req: &Request, reply: &mut Reply<'_>| {
                reply.send(Event::new("one\ntwo").event("e")).unwrap();
                reply.send(Event::new("three")).unwrap();
                reply.end().unwrap();
            })
    });
    let mut client = server.connect();
    client.send(b"GET /events HTTP/1.0\r\n\r\n");
    let mut stream = EventStream::from_client(client);
    assert!(stream.head.version == "HTTP/1.0");
    assert_eq!(stream.head.header("transfer-encoding"), None);
    let m = stream.next();
    assert_eq!((m.event.as_str(), m.data.as_str()), ("e", "one\ntwo"));
    assert_eq!(stream.next().data, "three");
    assert!(stream.rest().is_empty());
    assert!(stream.client.eof, "an HTTP/1.0 stream ends with a close");
}

#[test]
fn a_stream_on_a_connection_asked_to_close_says_so_and_closes() {
    let server = TestServer::start(|b| {
        b.auto_generate_id(false)
            .build(|_req: &Request, reply: &mut Reply<'_>| {
                let _ = reply.send(Event::new("only"));
                let _ = reply.end();
            })
    });
    for method in ["GET", "HEAD"] {
        let mut client = server.connect();
        client.send(
            format!("{method} /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let head = client.read_head();
        assert_eq!(head.header("connection"), Some("close"), "{method}");
        if method == "GET" {
            assert!(client.read_chunk().is_some());
            assert_eq!(client.read_chunk(), None);
        }
        assert!(
            client.read_to_close().is_empty(),
            "{method}: nothing after the response"
        );
    }
}

#[test]
fn send_to_another_client_by_seid() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(move |b| {
        b.auto_generate_id(false)
            .build(move |req: &Request, reply: &mut Reply<'_>| {
                if announce(req, reply) {
                    return;
                }
                let to = req.query("to").unwrap_or_default();
                let result = reply.send_to(to, Event::new("psst").event("private"));
                tx.send(result.clone()).unwrap();
                let status = if result.is_ok() { 200 } else { 404 };
                reply.respond(Response::new(status)).unwrap();
            })
    });
    let mut alice = EventStream::open(&server, "/events");
    let mut bob = EventStream::open(&server, "/events");
    let alice_seid = alice.next().data;
    let bob_seid = bob.next().data;
    assert_ne!(alice_seid, bob_seid);

    let mut client = server.connect();
    client.get(&format!("/send?to={bob_seid}"));
    assert_eq!(client.read_response().0.status, 200);
    let m = bob.next();
    assert_eq!((m.event.as_str(), m.data.as_str()), ("private", "psst"));
    // Anything sent to alice before it would come before this broadcast
    // (a quiet spell alone proves nothing on a slow machine).
    server.handle().broadcast(Event::new("marker")).unwrap();
    assert_eq!(
        alice.next().data,
        "marker",
        "alice must not get bob's event"
    );

    client.get("/send?to=nobody");
    assert_eq!(client.read_response().0.status, 404);
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), Ok(()));
    assert_eq!(
        rx.recv_timeout(DEADLINE).unwrap(),
        Err(SendError::UnknownSeid)
    );
}

#[test]
fn a_stream_is_subscribed_by_seid_from_another_request() {
    let server = TestServer::start(move |b| {
        b.auto_generate_id(false)
            .build(move |req: &Request, reply: &mut Reply<'_>| {
                if announce(req, reply) {
                    return;
                }
                let status = match req.path() {
                    "/join" => {
                        let seid = req.query("seid").unwrap_or_default();
                        match reply.subscribe_seid(seid, "news") {
                            Ok(()) => 200,
                            Err(SendError::UnknownSeid) => 404,
                            Err(_) => 500,
                        }
                    }
                    _ => {
                        reply.publish("news", "hello").unwrap();
                        200
                    }
                };
                reply.respond(Response::new(status)).unwrap();
            })
    });
    let mut alice = EventStream::open(&server, "/events");
    let mut bob = EventStream::open(&server, "/events");
    let alice_seid = alice.next().data;
    bob.next();
    let mut client = server.connect();
    client.get(&format!("/join?seid={alice_seid}"));
    assert_eq!(client.read_response().0.status, 200);
    client.get("/join?seid=nobody");
    assert_eq!(client.read_response().0.status, 404);
    client.get("/publish");
    assert_eq!(client.read_response().0.status, 200);
    assert_eq!(alice.next().data, "hello");
    // Had bob joined, "hello" would come before this broadcast.
    server.handle().broadcast(Event::new("marker")).unwrap();
    assert_eq!(bob.next().data, "marker", "bob never joined news");
}

#[test]
fn end_then_send_is_an_error() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(move |b| {
        b.build(move |_req: &Request, reply: &mut Reply<'_>| {
            reply.send("before").unwrap();
            reply.end().unwrap();
            tx.send((reply.send("after"), reply.end())).unwrap();
        })
    });
    let mut stream = EventStream::open(&server, "/events");
    assert_eq!(stream.next().data, "before");
    assert!(stream.rest().is_empty());
    assert_eq!(
        rx.recv_timeout(DEADLINE).unwrap(),
        (Err(SendError::Ended), Err(SendError::Ended))
    );
}

#[test]
fn end_before_any_send_still_answers() {
    let server = TestServer::start(|b| {
        b.build(|_req: &Request, reply: &mut Reply<'_>| {
            reply.end().unwrap();
        })
    });
    let mut stream = EventStream::open(&server, "/events");
    assert!(stream.rest().is_empty());
    // The connection is kept alive for the next request.
    stream.client.get("/again");
    let mut again = EventStream::from_client(stream.client);
    assert!(again.rest().is_empty());
}

#[test]
fn stale_seid_after_its_client_left() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(move |b| {
        b.build(move |req: &Request, reply: &mut Reply<'_>| {
            if announce(req, reply) {
                return;
            }
            let to = req.query("to").unwrap_or_default();
            tx.send((reply.send_to(to, "hello?"), reply.client_count()))
                .unwrap();
            reply.respond(Response::new(204)).unwrap();
        })
    });
    let mut gone = EventStream::open(&server, "/events");
    let seid = gone.next().data;
    drop(gone);
    // Keep opening streams so the departed client's slab slot is reused.
    let mut others: Vec<EventStream> = (0..3)
        .map(|_| EventStream::open(&server, "/events"))
        .collect();
    for s in &mut others {
        assert_ne!(s.next().data, seid);
    }
    let mut client = server.connect();
    // The server notices the close on its next pass; poll until it has.
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        client.get(&format!("/send?to={seid}"));
        client.read_response();
        let (result, count) = rx.recv_timeout(DEADLINE).unwrap();
        if result == Err(SendError::UnknownSeid) {
            assert_eq!(count, 3);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "seid still live after its client left"
        );
    }
    // What a stale seid reached would come before this broadcast.
    server.handle().broadcast(Event::new("marker")).unwrap();
    for s in &mut others {
        assert_eq!(
            s.next().data,
            "marker",
            "a stale seid reached another client"
        );
    }
}

#[test]
fn idle_stream_is_evicted() {
    let server = TestServer::start(|b| {
        b.server_timeout(Duration::from_millis(300)).build(
            |req: &Request, reply: &mut Reply<'_>| {
                announce(req, reply);
            },
        )
    });
    let started = std::time::Instant::now();
    let mut stream = EventStream::open(&server, "/events");
    stream.next();
    assert!(stream.client.closes_within(DEADLINE));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "evicted too early: {took:?}"
    );
}

#[test]
fn heartbeats_keep_a_quiet_stream_alive() {
    let server = TestServer::start(|b| {
        b.heartbeat(Some(Duration::from_millis(100)))
            .server_timeout(Duration::from_millis(400))
            .build(|req: &Request, reply: &mut Reply<'_>| {
                announce(req, reply);
            })
    });
    let mut stream = EventStream::open(&server, "/events");
    stream.next();
    // 1 s is over twice the idle timeout: only heartbeats keep it open.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut heartbeats = 0;
    while std::time::Instant::now() < deadline {
        let chunk = stream.client.read_chunk().expect("stream ended");
        assert_eq!(chunk, b":\n\n", "a heartbeat is a bare comment");
        heartbeats += 1;
    }
    // Some came (the stream lived past its timeout on them alone), and not
    // a flood: the exact count is the machine's timing, not the loop's.
    assert!(
        (3..=20).contains(&heartbeats),
        "{heartbeats} heartbeats in 1 s at 100 ms"
    );
    // And they fire no event: the next thing the parser sees is real data.
    server.handle().broadcast(Event::new("real")).unwrap();
    assert_eq!(stream.next().data, "real");
}

#[test]
fn slow_client_is_evicted_at_its_cap_while_another_gets_everything() {
    const BATCHES: usize = 100;
    const PER_BATCH: usize = 100;
    const CAP: usize = 256 * 1024;
    let server = TestServer::start(|b| {
        b.auto_generate_id(false).max_queue_bytes(CAP).build(
            |req: &Request, reply: &mut Reply<'_>| {
                if announce(req, reply) {
                    return;
                }
                let from: usize = req.query("from").unwrap().parse().unwrap();
                let n: usize = req.query("n").unwrap().parse().unwrap();
                let payload = "x".repeat(1000);
                for i in from..from + n {
                    reply
                        .publish("t", Event::new(format!("{i} {payload}")))
                        .unwrap();
                }
                let evicted = reply.stats().evicted_queue_full;
                reply
                    .respond(Response::text(200, evicted.to_string()))
                    .unwrap();
            },
        )
    });
    // The slow client asks for the stream and never reads again.
    let mut slow = Client::connect_with_recv_buffer(server.addr, 4096);
    slow.get("/events?topic=t");
    let mut good = EventStream::open(&server, "/events?topic=t");
    good.next();

    // 10 MB in batches well under the cap, so only a client that stops
    // reading can fall that far behind.
    let mut publisher = server.connect();
    let mut evicted = String::new();
    for batch in 0..BATCHES {
        publisher.get(&format!(
            "/publish?from={}&n={PER_BATCH}",
            batch * PER_BATCH
        ));
        let (head, body) = publisher.read_response();
        assert_eq!(head.status, 200);
        evicted = String::from_utf8(body).unwrap();
        for i in batch * PER_BATCH..(batch + 1) * PER_BATCH {
            let m = good.next();
            let (n, rest) = m.data.split_once(' ').unwrap();
            assert_eq!(n.parse::<usize>().unwrap(), i, "lost or out of order");
            assert_eq!(rest.len(), 1000);
        }
    }
    assert_eq!(evicted, "1", "exactly the slow client was evicted");
    // The slow client was cut off: its connection ends (after whatever the
    // kernel had already taken for it).
    assert!(slow.closes_within(DEADLINE));
}

#[test]
fn handle_sends_from_another_thread() {
    let server = quiet_server();
    let mut alice = EventStream::open(&server, "/events?topic=news");
    let mut bob = EventStream::open(&server, "/events");
    let alice_seid = alice.next().data;
    bob.next();
    let handle = server.handle.clone();
    let seid = alice_seid.clone();
    std::thread::spawn(move || {
        assert_eq!(handle.client_count(), 2);
        handle.send_to(&seid, Event::new("direct")).unwrap();
        assert_eq!(handle.send_to("nobody", "x"), Err(SendError::UnknownSeid));
        assert_eq!(
            handle.send_to(&seid, Event::new("x").id("bad\n")),
            Err(SendError::Frame(FrameError::IdHasLineBreak))
        );
        handle.publish("news", Event::new("headline")).unwrap();
        handle.broadcast(Event::new("to all")).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(alice.next().data, "direct");
    assert_eq!(alice.next().data, "headline");
    assert_eq!(alice.next().data, "to all");
    assert_eq!(bob.next().data, "to all");
    server.handle.end(&alice_seid).unwrap();
    assert!(alice.rest().is_empty());
}

#[test]
fn graceful_shutdown_ends_every_stream() {
    let mut server = quiet_server();
    let mut streams: Vec<EventStream> = (0..5)
        .map(|_| EventStream::open(&server, "/events"))
        .collect();
    for s in &mut streams {
        s.next();
    }
    server.handle.broadcast(Event::new("last words")).unwrap();
    let took = server.stop();
    assert!(took < DEADLINE, "shutdown took {took:?}");
    for s in &mut streams {
        assert_eq!(s.next().data, "last words");
        assert!(s.rest().is_empty(), "each stream ends with its last chunk");
    }
    assert_eq!(server.handle.broadcast("late"), Err(SendError::Stopped));
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "no longer accepting"
    );
}

#[test]
fn auto_generated_ids_increase_and_can_be_turned_off() {
    let server = TestServer::start(|b| {
        b.build(|_req: &Request, reply: &mut Reply<'_>| {
            reply.send("a").unwrap();
            reply.send(Event::new("b").id("own")).unwrap();
            // Refused, so it must not use up an id.
            assert!(reply.send(Event::new("x").event("bad\nname")).is_err());
            reply.send("c").unwrap();
            reply.end().unwrap();
        })
    });
    let mut stream = EventStream::open(&server, "/events");
    let ids: Vec<String> = [stream.next(), stream.next(), stream.next()]
        .into_iter()
        .map(|m| m.last_event_id)
        .collect();
    let first: u64 = ids[0].parse().unwrap();
    assert_eq!(ids[1], "own");
    assert!(ids[2].parse::<u64>().unwrap() > first);
    assert_eq!(
        ids[2].parse::<u64>().unwrap(),
        first + 1,
        "ids have no gaps"
    );

    let server = quiet_server();
    let mut stream = EventStream::open(&server, "/events");
    assert_eq!(stream.next().last_event_id, "");
}

#[test]
fn custom_seid_generator_and_duplicates() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(move |b| {
        b.seid_generator(|| "same".to_owned()).build(
            move |_req: &Request, reply: &mut Reply<'_>| match reply.stream() {
                Ok(seid) => {
                    let seid = seid.to_owned();
                    reply.send(seid).unwrap();
                }
                Err(e) => {
                    tx.send(e.clone()).unwrap();
                    reply.respond(Response::text(500, e.to_string())).unwrap();
                }
            },
        )
    });
    let mut first = EventStream::open(&server, "/events");
    assert_eq!(first.next().data, "same");
    let mut second = server.connect();
    second.get("/events");
    assert_eq!(second.read_response().0.status, 500);
    assert_eq!(
        rx.recv_timeout(DEADLINE).unwrap(),
        StreamError::Seid(sseloop::SeidError::InUse("same".into()))
    );
}

#[test]
fn slow_request_heads_get_408_and_idle_keep_alive_closes() {
    let server = TestServer::start(|b| {
        b.head_timeout(Duration::from_millis(200))
            .build(|_req: &Request, reply: &mut Reply<'_>| {
                reply.respond(Response::text(200, "ok")).unwrap();
            })
    });
    // Slowloris: a head that never completes.
    let mut slow = server.connect();
    slow.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    let head = slow.read_head();
    assert_eq!(head.status, 408);
    assert!(slow.closes_within(DEADLINE));

    // A keep-alive connection that sends nothing after its response.
    let mut idle = server.connect();
    idle.get("/");
    assert_eq!(idle.read_response().0.status, 200);
    assert!(idle.closes_within(DEADLINE));

    // A connection that never sends a byte.
    let mut silent = server.connect();
    assert!(silent.closes_within(DEADLINE));
    assert!(
        silent.read_to_close().is_empty(),
        "an idle close sends nothing"
    );
}

#[test]
fn queued_frames_go_out_in_one_write() {
    let server = TestServer::start(|b| {
        b.build(|req: &Request, reply: &mut Reply<'_>| {
            if announce(req, reply) {
                return;
            }
            if req.path() == "/burst" {
                for i in 0..50 {
                    reply.publish("t", Event::new(i.to_string())).unwrap();
                }
            }
            let calls = reply.stats().write_calls;
            reply
                .respond(Response::text(200, calls.to_string()))
                .unwrap();
        })
    });
    let mut sub = EventStream::open(&server, "/events?topic=t");
    sub.next();
    let mut client = server.connect();
    let mut write_calls = |target: &str| -> u64 {
        client.get(target);
        String::from_utf8(client.read_response().1)
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = write_calls("/stats");
    write_calls("/burst");
    let after = write_calls("/stats");
    for i in 0..50 {
        assert_eq!(sub.next().data, i.to_string());
    }
    // The first /stats response, the 50 events to the subscriber, and the
    // /burst response: three writes.
    assert_eq!(after - before, 3);
}

#[test]
fn half_closed_client_still_gets_its_answer() {
    let server = TestServer::start(|b| {
        b.build(|req: &Request, reply: &mut Reply<'_>| {
            reply
                .respond(Response::text(200, req.path().to_owned()))
                .unwrap();
        })
    });
    let mut client = server.connect();
    client.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(client.read_response().1, b"/a");
    assert_eq!(client.read_response().1, b"/b");
    assert!(client.closes_within(DEADLINE));
}

#[test]
fn a_burst_of_connections_while_the_loop_is_busy_waits_in_the_backlog() {
    // 600 clients connect while the loop is stuck in a slow handler. The
    // kernel holds them in the listen backlog (sseloop asks for 1024; std
    // and mio leave 128), so every one is answered as soon as the loop is
    // free. Past a full backlog Linux drops the connection and counts a
    // listen overflow (TcpExt ListenOverflows): the count tells them apart,
    // not the clock (the client would retry only after a second).
    const BURST: usize = 600;
    let (busy_tx, busy_rx) = mpsc::channel();
    let server = TestServer::start(move |b| {
        b.build(move |req: &Request, reply: &mut Reply<'_>| {
            if req.path() == "/busy" {
                busy_tx.send(()).unwrap();
                // A stand-in for a long fan-out: the loop does nothing else.
                std::thread::sleep(Duration::from_millis(300));
            }
            let _ = reply.respond(Response::text(200, "ok\n"));
        })
    });
    let mut busy = server.connect();
    busy.get("/busy");
    busy_rx.recv_timeout(DEADLINE).expect("the loop took /busy");
    let started = Instant::now();
    let overflows_before = listen_overflows();
    let mut crowd = crowd::Crowd::new();
    crowd.connect(server.addr, BURST, b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    let answered = |c: &crowd::Crowd| c.members.iter().filter(|m| m.got(b"HTTP/1.1 200")).count();
    let all = crowd.run_until(DEADLINE, |c| answered(c) == BURST);
    assert!(
        all,
        "{} of {BURST} answered {:?} after the burst began; {} reset",
        answered(&crowd),
        started.elapsed(),
        crowd.members.iter().filter(|m| m.error.is_some()).count()
    );
    // Machine-wide, so another process's overflow could show here too; on
    // a test machine that is rare, and this burst alone overflows a 128
    // backlog every time.
    assert_eq!(
        listen_overflows() - overflows_before,
        0,
        "the listen backlog overflowed ({:?} to answer all)",
        started.elapsed()
    );
    assert_eq!(busy.read_response().0.status, 200);
}

/// Linux's count of connections dropped because a listen backlog was full.
fn listen_overflows() -> u64 {
    let netstat = std::fs::read_to_string("/proc/net/netstat").unwrap();
    let mut tcp_ext = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next().unwrap(), tcp_ext.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")
        .expect("TcpExt ListenOverflows");
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[test]
fn a_stream_ends_cleanly_at_the_end_of_its_lifetime() {
    struct Timed(mpsc::Sender<sseloop::CloseReason>);
    impl sseloop::Handler for Timed {
        fn on_request(&mut self, _req: &Request, reply: &mut Reply<'_>) {
            reply.send(Event::new("until soon")).unwrap();
            reply.end_after(Duration::from_millis(150)).unwrap();
        }
        fn on_close(
            &mut self,
            _seid: &str,
            reason: sseloop::CloseReason,
            _streams: &mut sseloop::Streams<'_>,
        ) {
            self.0.send(reason).unwrap();
        }
    }
    let (tx, closed) = mpsc::channel();
    let server = TestServer::start(move |b| b.auto_generate_id(false).build(Timed(tx)));
    let started = Instant::now();
    let mut stream = EventStream::open(&server, "/events");
    assert_eq!(stream.next().data, "until soon");
    // The last chunk comes at the deadline: a clean end, not a reset.
    assert!(stream.rest().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(140));
    assert_eq!(
        closed.recv_timeout(DEADLINE).unwrap(),
        sseloop::CloseReason::Expired
    );
}

#[test]
fn a_status_that_is_not_final_is_refused_and_answered_500() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(move |b| {
        b.build(move |req: &Request, reply: &mut Reply<'_>| {
            let status = req.query("status").unwrap().parse().unwrap();
            tx.send(reply.respond(Response::new(status))).unwrap();
        })
    });
    for status in [42u16, 101, 600] {
        let mut client = server.connect();
        client.get(&format!("/?status={status}"));
        let (head, _) = client.read_response();
        assert_eq!(head.status, 500, "{status}");
        assert_eq!(
            rx.recv_timeout(DEADLINE).unwrap(),
            Err(StreamError::InvalidStatus(status))
        );
    }
    let mut client = server.connect();
    client.get("/?status=299");
    assert_eq!(client.read_response().0.status, 299);
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), Ok(()));
}

#[test]
fn topics_direct_sends_and_the_end_keep_the_order_they_were_made_in() {
    // Publishes go on the topics' logs and reach a subscriber's queue only
    // when it is written; a direct send or an end made meanwhile must still
    // come after them, and two topics must interleave as published.
    let server = TestServer::start(|b| {
        b.auto_generate_id(false)
            .build(|req: &Request, reply: &mut Reply<'_>| {
                if announce(req, reply) {
                    return;
                }
                let to = req.query("to").unwrap_or_default().to_owned();
                reply.publish("a", "a1").unwrap();
                reply.send_to(&to, "direct 1").unwrap();
                reply.publish("b", "b1").unwrap();
                reply.publish("a", "a2").unwrap();
                reply.publish("b", "b2").unwrap();
                reply.send_to(&to, "direct 2").unwrap();
                reply.publish("a", "a3").unwrap();
                reply.end_seid(&to).unwrap();
                // Published after the end: reaches only the other stream.
                reply.publish("a", "a4").unwrap();
                reply.respond(Response::new(204)).unwrap();
            })
    });
    let mut both = EventStream::open(&server, "/events?topic=a&topic=b");
    let mut only_a = EventStream::open(&server, "/events?topic=a");
    let seid = both.next().data;
    only_a.next();
    let mut client = server.connect();
    client.get(&format!("/mix?to={seid}"));
    assert_eq!(client.read_response().0.status, 204);
    let got: Vec<String> = both.rest().into_iter().map(|m| m.data).collect();
    assert_eq!(
        got,
        ["a1", "direct 1", "b1", "a2", "b2", "direct 2", "a3"],
        "one stream in two topics, with direct sends and an end between publishes"
    );
    let got: Vec<String> = (0..4).map(|_| only_a.next().data).collect();
    assert_eq!(got, ["a1", "a2", "a3", "a4"]);
}

#[test]
fn a_shutdown_with_the_longest_grace_ends_streams_cleanly() {
    let mut server = quiet_server();
    let mut stream = EventStream::open(&server, "/events");
    stream.next();
    // The loop's clock past zero, so an overflow would show.
    std::thread::sleep(Duration::from_millis(20));
    server.handle().send_to("nobody", "x").unwrap_err();
    // Duration::MAX is a deadline far away, not an overflow.
    server.handle().shutdown_within(Duration::MAX).unwrap();
    assert!(
        stream.client.closes_within(DEADLINE),
        "the stream was not ended"
    );
    // Every stream ended and flushed: `run` returns without waiting.
    assert!(server.stop() < DEADLINE);
}
