//! Deferred answers over real sockets on 127.0.0.1: a handler says "later",
//! another thread (or a later handler call) answers through the token, and
//! the loop serves everyone else meanwhile. Also the `Handle` calls that
//! wait for the loop, made from inside a handler, refuse instead of hanging.

mod util;

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use sseloop::{AnswerError, Deferred, Event, Reply, Request, Response, SendError};
use util::{Client, EventStream, TestServer, DEADLINE};

/// A server whose `/later…` requests are deferred and their tokens sent to
/// the test; `/now` answers at once with `now`; `/connections` answers how
/// many connections are open. Every path dispatched is logged.
struct Deferring {
    server: TestServer,
    tokens: mpsc::Receiver<(String, Deferred)>,
    log: Arc<Mutex<Vec<String>>>,
}

fn deferring(answer_timeout: Duration) -> Deferring {
    let (tx, tokens) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let server = TestServer::start(move |b| {
        b.auto_generate_id(false)
            .answer_timeout(answer_timeout)
            .build(move |req: &Request, reply: &mut Reply<'_>| {
                seen.lock().unwrap().push(req.path().to_owned());
                match req.path() {
                    "/now" => reply.respond(Response::text(200, "now")).unwrap(),
                    "/connections" => {
                        let open = reply.stats().connections.to_string();
                        reply.respond(Response::text(200, open)).unwrap();
                    }
                    path if path.starts_with("/later") => {
                        let token = reply.defer().unwrap();
                        tx.send((path.to_owned(), token)).unwrap();
                    }
                    _ => {}
                }
            })
    });
    Deferring {
        server,
        tokens,
        log,
    }
}

impl Deferring {
    fn token(&self) -> (String, Deferred) {
        self.tokens
            .recv_timeout(DEADLINE)
            .expect("no request was deferred")
    }

    /// Waits (reading with a deadline, no sleeps) until the server has
    /// `want` connections open besides `probe`, the one asking; `probe`
    /// stays open, so it takes no slab slot another connection freed.
    fn wait_for_connections(&self, probe: &mut Client, want: usize) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            probe.get("/connections");
            let (_, body) = probe.read_response();
            let open: usize = String::from_utf8(body).unwrap().parse().unwrap();
            if open == want + 1 {
                return;
            }
            assert!(Instant::now() < deadline, "{open} connections stay open");
        }
    }
}

fn body_of(client: &mut Client) -> (u16, String) {
    let (head, body) = client.read_response();
    (head.status, String::from_utf8(body).unwrap())
}

#[test]
fn answered_from_another_thread_in_request_order_while_others_are_served() {
    let d = deferring(Duration::from_secs(30));
    let mut client = d.server.connect();
    client.send(
        b"GET /later/1 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /now HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /later/2 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (path, first) = d.token();
    assert_eq!(path, "/later/1");

    // While the first answer is pending, another client is served at once,
    // and the pipelined requests behind the pending one wait their turn.
    let mut other = d.server.connect();
    other.get("/now");
    assert_eq!(body_of(&mut other), (200, "now".into()));
    assert_eq!(*d.log.lock().unwrap(), ["/later/1", "/now"]);
    assert!(client.quiet_for(Duration::from_millis(100)));

    let worker = std::thread::spawn(move || first.respond(Response::text(200, "first")));
    assert_eq!(worker.join().unwrap(), Ok(()));
    let (path, second) = d.token();
    assert_eq!(path, "/later/2");
    std::thread::spawn(move || second.respond(Response::text(201, "second")))
        .join()
        .unwrap()
        .unwrap();

    assert_eq!(body_of(&mut client), (200, "first".into()));
    assert_eq!(body_of(&mut client), (200, "now".into()));
    assert_eq!(body_of(&mut client), (201, "second".into()));
}

#[test]
fn a_deferred_answer_can_open_the_stream_and_send_on_it() {
    let d = deferring(Duration::from_secs(30));
    let mut client = d.server.connect();
    client.get("/later/events");
    let (_, token) = d.token();
    let (seid_tx, seid_rx) = mpsc::channel();
    std::thread::spawn(move || {
        token.answer(move |req: &Request, reply: &mut Reply<'_>| {
            assert_eq!(req.path(), "/later/events");
            let seid = reply.stream().unwrap().to_owned();
            reply.send(Event::new("welcome").id("1")).unwrap();
            reply.subscribe("news").unwrap();
            seid_tx.send(seid).unwrap();
        })
    })
    .join()
    .unwrap()
    .unwrap();
    let seid = seid_rx.recv_timeout(DEADLINE).unwrap();
    let mut stream = EventStream::from_client(client);
    assert_eq!(stream.next().data, "welcome");
    // The stream is a stream like any other: by seid, by topic.
    d.server
        .handle()
        .send_to(&seid, Event::new("direct"))
        .unwrap();
    d.server
        .handle()
        .publish("news", Event::new("topic"))
        .unwrap();
    assert_eq!(stream.next().data, "direct");
    assert_eq!(stream.next().data, "topic");
    d.server.handle().end(&seid).unwrap();
    assert!(stream.rest().is_empty());
}

#[test]
fn nobody_answers_in_time_504_and_the_token_is_stale_after() {
    let d = deferring(Duration::from_millis(200));
    let mut client = d.server.connect();
    client.send(
        b"GET /later/slow HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /now HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (_, token) = d.token();
    let started = Instant::now();
    let (status, body) = body_of(&mut client);
    assert_eq!(status, 504);
    assert!(body.contains("no answer"), "{body}");
    assert!(started.elapsed() >= Duration::from_millis(150));
    // The connection stays alive and the next request is answered.
    assert_eq!(body_of(&mut client), (200, "now".into()));
    assert_eq!(
        token.respond(Response::text(200, "too late")),
        Err(AnswerError::Gone)
    );
    assert!(client.quiet_for(Duration::from_millis(100)));

    // A later deferral on the very same connection: the first token is
    // still stale, and never answers the new request.
    let old = token_again(&d, &mut client);
    let (_, fresh) = d.token();
    assert_eq!(
        old.respond(Response::text(200, "old")),
        Err(AnswerError::Gone)
    );
    fresh.respond(Response::text(200, "fresh")).unwrap();
    assert_eq!(body_of(&mut client), (200, "fresh".into()));
}

/// Defers `/later/first` on `client` and lets its deadline pass (`504`);
/// answers its now stale token, then sends `/later/second`.
fn token_again(d: &Deferring, client: &mut Client) -> Deferred {
    client.get("/later/first");
    let (_, token) = d.token();
    assert_eq!(body_of(client).0, 504);
    client.get("/later/second");
    token
}

#[test]
fn a_client_gone_before_its_answer_frees_everything_and_a_stale_token_never_delivers() {
    let d = deferring(Duration::from_secs(30));
    let mut probe = d.server.connect();
    let mut first = d.server.connect();
    first.get("/later/a");
    let (_, stale) = d.token();
    drop(first);
    // The loop notices the EOF and removes the connection.
    d.wait_for_connections(&mut probe, 0);

    // The only free slab slot is the first client's, so this client takes
    // it; the old token must never reach it.
    let mut second = d.server.connect();
    second.get("/later/b");
    let (path, fresh) = d.token();
    assert_eq!(path, "/later/b");
    assert_eq!(
        stale.respond(Response::text(200, "for a")),
        Err(AnswerError::Gone)
    );
    let late = stale_nowait_probe(&d, &mut probe);
    assert_eq!(late, Ok(()), "answer_nowait only reports a stopped server");
    fresh.respond(Response::text(200, "for b")).unwrap();
    assert_eq!(body_of(&mut second), (200, "for b".into()));
}

/// A token answered without waiting after its client left: the answer is
/// dropped unrun (the next request on the connection sees nothing of it).
fn stale_nowait_probe(d: &Deferring, probe: &mut Client) -> Result<(), AnswerError> {
    let mut gone = d.server.connect();
    gone.get("/later/c");
    let (_, token) = d.token();
    drop(gone);
    d.wait_for_connections(probe, 1);
    token.answer_nowait(|_req: &Request, _reply: &mut Reply<'_>| {
        panic!("an answer for a connection that is gone must not run")
    })
}

#[test]
fn a_client_that_disconnects_with_a_pending_answer_and_pipelined_requests_frees_them() {
    let d = deferring(Duration::from_secs(30));
    let mut client = d.server.connect();
    client.send(
        b"GET /later/x HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /now HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (_, token) = d.token();
    let mut probe = d.server.connect();
    drop(client);
    d.wait_for_connections(&mut probe, 0);
    assert_eq!(token.respond(Response::new(200)), Err(AnswerError::Gone));
    assert_eq!(d.log.lock().unwrap().first().unwrap(), "/later/x");
    assert!(
        !d.log.lock().unwrap().iter().any(|p| p == "/now"),
        "the request held behind the pending answer was never dispatched"
    );
}

#[test]
fn handle_calls_made_inside_a_handler_refuse_or_act_without_hanging() {
    let (results_tx, results) = mpsc::channel();
    let (parked_tx, parked_rx) = mpsc::channel();
    let parked: Arc<Mutex<Vec<Deferred>>> = Arc::default();
    let server = TestServer::start(move |b| {
        b.auto_generate_id(false)
            .build(
                move |req: &Request, reply: &mut Reply<'_>| match req.path() {
                    "/events" => {
                        let seid = reply.stream().unwrap().to_owned();
                        let handle = reply.handle();
                        // Both would wait for this very thread: refused.
                        let sent = handle.send_to(&seid, Event::new("x"));
                        let ended = handle.end(&seid);
                        // Not waiting: queued, runs once the handler returns.
                        let broadcast = handle.broadcast(Event::new("from a handler"));
                        results_tx.send((sent, ended, broadcast)).unwrap();
                    }
                    // Long polling: park the request until another one wakes it.
                    "/wait" | "/wait-blocking" => {
                        parked.lock().unwrap().push(reply.defer().unwrap());
                        parked_tx.send(()).unwrap();
                    }
                    "/wake" => {
                        let token = parked.lock().unwrap().pop().unwrap();
                        let answered = token.answer_nowait(|_req, reply| {
                            let _ = reply.respond(Response::text(200, "woken"));
                        });
                        reply
                            .respond(Response::text(200, format!("{answered:?}")))
                            .unwrap();
                    }
                    "/answer-blocking" => {
                        let token = parked.lock().unwrap().pop().unwrap();
                        let refused = token.respond(Response::text(200, "never"));
                        reply
                            .respond(Response::text(200, format!("{refused:?}")))
                            .unwrap();
                    }
                    _ => {}
                },
            )
    });

    let mut stream = EventStream::open(&server, "/events");
    let (sent, ended, broadcast) = results.recv_timeout(DEADLINE).unwrap();
    assert_eq!(sent, Err(SendError::OnLoopThread));
    assert_eq!(ended, Err(SendError::OnLoopThread));
    assert_eq!(broadcast, Ok(()));
    assert_eq!(stream.next().data, "from a handler");

    let mut waiter = server.connect();
    waiter.get("/wait");
    parked_rx.recv_timeout(DEADLINE).unwrap();
    let mut waker = server.connect();
    waker.get("/wake");
    assert_eq!(body_of(&mut waker), (200, "Ok(())".into()));
    assert_eq!(body_of(&mut waiter), (200, "woken".into()));

    // A waiting answer from the loop's own thread is refused, not a hang;
    // the request it would have answered stays pending (until its deadline
    // or, here, the server's shutdown).
    let mut waiter = server.connect();
    waiter.get("/wait-blocking");
    parked_rx.recv_timeout(DEADLINE).unwrap();
    let mut asker = server.connect();
    asker.get("/answer-blocking");
    assert_eq!(body_of(&mut asker), (200, "Err(OnLoopThread)".into()));
    // Still pending: the shutdown answers it 503 (an answer given before
    // would be read here first).
    let mut server = server;
    server.stop();
    assert_eq!(body_of(&mut waiter).0, 503);
}

#[test]
fn a_shutdown_answers_pending_requests_503() {
    let mut d = deferring(Duration::from_secs(30));
    let mut client = d.server.connect();
    client.get("/later/x");
    let (_, token) = d.token();
    d.server.stop();
    let (status, body) = body_of(&mut client);
    assert_eq!(status, 503, "{body}");
    assert!(client.closes_within(DEADLINE));
    assert_eq!(token.respond(Response::new(200)), Err(AnswerError::Stopped));
}

/// Wakes itself on every wake, forever: work done a slice per pass.
struct SelfWaking {
    wakes: Arc<std::sync::atomic::AtomicU64>,
}

impl sseloop::Handler for SelfWaking {
    fn on_request(&mut self, _req: &Request, reply: &mut Reply<'_>) {
        let _ = reply.respond(Response::text(200, "served"));
    }

    fn on_wake(&mut self, streams: &mut sseloop::Streams<'_>) {
        self.wakes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = streams.handle().wake();
    }
}

#[test]
fn a_handler_that_wakes_itself_on_every_wake_still_lets_the_loop_serve_sockets() {
    let wakes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = wakes.clone();
    let server = TestServer::start(move |b| b.build(SelfWaking { wakes: counted }));
    server.handle().wake().unwrap();
    // A wake sent while wakes run waits for the loop's next pass: between
    // passes, sockets are served (before, the loop ran wakes forever).
    for _ in 0..3 {
        let mut client = server.connect();
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let (head, body) = client.read_response();
        assert_eq!((head.status, body.as_slice()), (200, &b"served"[..]));
    }
    assert!(
        wakes.load(std::sync::atomic::Ordering::Relaxed) > 1,
        "it went on waking"
    );
}

/// Defers `/later` and answers it on its next wake, from its own state.
struct AnswersOnWake {
    waiting: Vec<Deferred>,
    answered: usize,
}

impl sseloop::Handler for AnswersOnWake {
    fn on_request(&mut self, _req: &Request, reply: &mut Reply<'_>) {
        self.waiting.push(reply.defer().unwrap());
        let _ = reply.handle().wake();
    }

    fn on_wake(&mut self, streams: &mut sseloop::Streams<'_>) {
        for deferred in std::mem::take(&mut self.waiting) {
            let answered = &mut self.answered;
            let _ = deferred.answer_here(streams, |req, reply| {
                *answered += 1;
                let body = format!("{} answered {answered}", req.path());
                let _ = reply.respond(Response::text(200, body));
            });
        }
    }
}

#[test]
fn a_deferred_request_is_answered_on_the_loop_with_the_handlers_state() {
    let server = TestServer::start(|b| {
        b.build(AnswersOnWake {
            waiting: Vec::new(),
            answered: 0,
        })
    });
    for n in 1..=2 {
        let mut client = server.connect();
        client.send(b"GET /later HTTP/1.1\r\nHost: t\r\n\r\n");
        let (head, body) = client.read_response();
        assert_eq!(head.status, 200);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("/later answered {n}")
        );
    }
}

/// Defers every request, and on its first wake defers it again from its
/// own deferred answer (its work is not done); answers on the second.
struct DefersTwice {
    first: Vec<Deferred>,
    second: Vec<Deferred>,
}

impl sseloop::Handler for DefersTwice {
    fn on_request(&mut self, _req: &Request, reply: &mut Reply<'_>) {
        self.first.push(reply.defer().unwrap());
        let _ = reply.handle().wake();
    }

    fn on_wake(&mut self, streams: &mut sseloop::Streams<'_>) {
        for deferred in std::mem::take(&mut self.second) {
            let _ = deferred.answer_here(streams, |req, reply| {
                let _ = reply.respond(Response::text(200, format!("{} at last", req.path())));
            });
        }
        for deferred in std::mem::take(&mut self.first) {
            let second = &mut self.second;
            let _ = deferred.answer_here(streams, |_req, reply| {
                second.push(reply.defer().unwrap());
                let _ = reply.handle().wake();
            });
        }
    }
}

#[test]
fn a_deferred_answer_may_defer_again() {
    let server = TestServer::start(|b| {
        b.build(DefersTwice {
            first: Vec::new(),
            second: Vec::new(),
        })
    });
    // Twice on one connection: the second request waits its turn, and the
    // connection serves it once the first is answered.
    let mut client = server.connect();
    client.send(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n");
    for path in ["/a", "/b"] {
        let (head, body) = client.read_response();
        assert_eq!(head.status, 200);
        assert_eq!(String::from_utf8(body).unwrap(), format!("{path} at last"));
    }
}
