//! The `sseloop` hub binary over real sockets: every route, every error,
//! auth, CORS, replay, metrics, limits and signals.

#[path = "util/hub_process.rs"]
mod hub_process;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use hub_process::HubProcess;
use util::DEADLINE;

#[test]
fn subscribe_gets_its_seid_first_and_topics_filter() {
    let hub = HubProcess::start(&[]);
    let (mut news, news_seid) = hub.subscribe("/events?topic=news");
    let (mut both, _) = hub.subscribe("/events?topic=news&topic=sport");
    let (mut none, _) = hub.subscribe("/events");
    assert_eq!(news_seid.len(), 22);

    assert_eq!(hub.publish("?topic=sport", "goal").0, 200);
    assert_eq!(hub.publish("?topic=news", "headline").0, 200);
    assert_eq!(hub.publish("", "to everyone").0, 200);

    assert_eq!(news.next().data, "headline");
    assert_eq!(news.next().data, "to everyone");
    assert_eq!(both.next().data, "goal");
    assert_eq!(both.next().data, "headline");
    assert_eq!(both.next().data, "to everyone");
    // No topic: broadcasts only.
    assert_eq!(none.next().data, "to everyone");
}

#[test]
fn publish_carries_event_id_retry_and_multiline_data_exactly() {
    let hub = HubProcess::start(&[]);
    let (mut sub, _) = hub.subscribe("/events");
    let (status, id) = hub.publish("?event=update&id=abc&retry=2500", "one\r\ntwo\rthree\n");
    assert_eq!((status, id.as_str()), (200, "abc"));
    let m = sub.next();
    assert_eq!(
        (m.event.as_str(), m.data.as_str(), m.last_event_id.as_str()),
        ("update", "one\ntwo\nthree\n", "abc")
    );
    assert_eq!(sub.parser.retry(), Some(2500));

    // Assigned ids increase; empty data still fires.
    let (_, first) = hub.publish("", "");
    let (_, second) = hub.publish("", "x");
    assert!(second.parse::<u64>().unwrap() > first.parse::<u64>().unwrap());
    let m = sub.next();
    assert_eq!(
        (m.data.as_str(), m.last_event_id.as_str()),
        ("", first.as_str())
    );
    assert_eq!(sub.next().last_event_id, second);

    // Percent-encoded names arrive decoded.
    hub.publish("?event=a%20b", "y");
    assert_eq!(sub.next().event, "a b");

    // A NUL in an event name is accepted and kept (WHATWG's parser keeps it
    // in the name; only a NUL in an id makes clients ignore the id).
    assert_eq!(hub.publish("?event=a%00b", "z").0, 200);
    assert_eq!(sub.next().event, "a\0b");
}

#[test]
fn publish_refuses_what_would_inject_or_cannot_be_sent() {
    let hub = HubProcess::start(&["--max-body", "1000"]);
    let (mut sub, _) = hub.subscribe("/events");
    for query in [
        "?event=a%0Adata:%20x",
        "?event=a%0Db",
        "?id=1%0A2",
        "?id=1%0D",
        "?id=1%002",
        "?retry=soon",
        "?retry=-1",
    ] {
        assert_eq!(hub.publish(query, "never").0, 400, "{query}");
    }
    let (head, _) = hub.request("POST", "/publish", &[], b"\xff\xfe not utf-8");
    assert_eq!(head.status, 400);
    let (head, _) = hub.request("POST", "/publish", &[], &[b'x'; 1001]);
    assert_eq!(head.status, 413);

    // Both Content-Length and Transfer-Encoding: 400 (smuggling).
    let mut c = hub.connect();
    c.send(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnever\r\n0\r\n\r\n");
    assert_eq!(c.read_head().status, 400);

    // Chunked bodies are accepted.
    let mut c = hub.connect();
    c.send(b"POST /publish?event=chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nchun\r\n3\r\nked\r\n0\r\n\r\n");
    assert_eq!(c.read_response().0.status, 200);
    // An absurd Content-Length is refused before any of it is read.
    let mut c = hub.connect();
    c.send(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n");
    assert_eq!(c.read_head().status, 413);

    // Nothing refused reached the subscriber; the chunked one did.
    let m = sub.next();
    assert_eq!((m.event.as_str(), m.data.as_str()), ("chunked", "chunked"));
}

#[test]
fn expect_continue_publish_like_curl() {
    let hub = HubProcess::start(&[]);
    let (mut sub, _) = hub.subscribe("/events");
    let mut c = hub.connect();
    c.send(
        b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let head = c.read_head();
    assert_eq!(head.status, 100);
    c.send(b"hello");
    assert_eq!(c.read_response().0.status, 200);
    assert_eq!(sub.next().data, "hello");
}

#[test]
fn direct_send_end_and_list_clients() {
    let hub = HubProcess::start(&[]);
    let (mut alice, alice_seid) = hub.subscribe("/events?topic=t1&topic=t2");
    let (mut bob, bob_seid) = hub.subscribe("/events");

    let (head, _) = hub.request(
        "POST",
        &format!("/clients/{alice_seid}?event=dm&id=7"),
        &[],
        b"hi alice",
    );
    assert_eq!(head.status, 200);
    let m = alice.next();
    assert_eq!(
        (m.event.as_str(), m.data.as_str(), m.last_event_id.as_str()),
        ("dm", "hi alice", "7")
    );

    let (head, body) = hub.request("GET", "/clients", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("application/json"));
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut seen: Vec<(String, Vec<String>)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let topics = c["topics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            (c["seid"].as_str().unwrap().to_owned(), topics)
        })
        .collect();
    seen.sort();
    let mut want = vec![
        (alice_seid.clone(), vec!["t1".into(), "t2".into()]),
        (bob_seid.clone(), vec![]),
    ];
    want.sort();
    assert_eq!(seen, want);

    assert_eq!(
        hub.request("POST", "/clients/nobody", &[], b"x").0.status,
        404
    );
    assert_eq!(
        hub.request("DELETE", "/clients/nobody", &[], b"").0.status,
        404
    );
    assert_eq!(
        hub.request("DELETE", &format!("/clients/{bob_seid}"), &[], b"")
            .0
            .status,
        200
    );
    assert!(bob.rest().is_empty(), "bob's stream ends cleanly");
    assert_eq!(
        hub.request("POST", &format!("/clients/{bob_seid}"), &[], b"x")
            .0
            .status,
        404
    );
    assert_eq!(
        hub.request(
            "POST",
            &format!("/clients/{alice_seid}?id=a%0Ab"),
            &[],
            b"x"
        )
        .0
        .status,
        400
    );
}

#[test]
fn replay_after_reconnect_is_exactly_what_was_missed() {
    let hub = HubProcess::start(&[]);
    let (mut sub, _) = hub.subscribe("/events?topic=t");
    hub.publish("?topic=t", "seen");
    let last = sub.next().last_event_id;
    drop(sub);

    let mut missed = Vec::new();
    for i in 0..5 {
        let (status, id) = hub.publish("?topic=t", &format!("missed {i}"));
        assert_eq!(status, 200);
        missed.push(id);
        hub.publish("?topic=other", "not for this client");
    }
    // Reconnect as a browser does, with the Last-Event-ID header.
    let mut c = hub.connect();
    c.send(
        format!("GET /events?topic=t HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {last}\r\n\r\n")
            .as_bytes(),
    );
    let mut sub = util::EventStream::from_client(c);
    assert_eq!(sub.next().event, "seid");
    for (i, id) in missed.iter().enumerate() {
        let m = sub.next();
        assert_eq!((m.data, &m.last_event_id), (format!("missed {i}"), id));
    }
    // Exactly those five: the next event is a new one.
    hub.publish("?topic=t", "live");
    assert_eq!(sub.next().data, "live");

    // The query parameter works the same (browsers cannot set the header on
    // a first connect).
    let (mut sub, _) = hub.subscribe(&format!("/events?topic=t&lastEventId={}", missed[3]));
    assert_eq!(sub.next().data, "missed 4");
    assert_eq!(sub.next().data, "live");
}

#[test]
fn unknown_last_event_id_is_reported_not_ignored() {
    let hub = HubProcess::start(&["--history", "2"]);
    let (_, first) = hub.publish("", "1");
    hub.publish("", "2");
    hub.publish("", "3");
    // `first` fell out of a history of 2.
    let (mut sub, _) = hub.subscribe(&format!("/events?lastEventId={first}"));
    let m = sub.next();
    assert_eq!(
        (m.event.as_str(), m.data.as_str()),
        ("reset", first.as_str())
    );
}

#[test]
fn token_auth_guards_publish_and_clients() {
    let hub = HubProcess::start(&["--publish-token", "s3cret"]);
    let (mut sub, seid) = hub.subscribe("/events");
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cre"),
        Some("Bearer s3cret!"),
        Some("s3cret"),
        Some("Basic s3cret"),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let (head, _) = hub.request("POST", "/publish", &headers, b"nope");
        assert_eq!(head.status, 401, "{auth:?}");
        assert_eq!(head.header("www-authenticate"), Some("Bearer"));
        assert_eq!(hub.request("GET", "/clients", &headers, b"").0.status, 401);
        assert_eq!(
            hub.request("POST", &format!("/clients/{seid}"), &headers, b"x")
                .0
                .status,
            401
        );
        assert_eq!(
            hub.request("DELETE", &format!("/clients/{seid}"), &headers, b"")
                .0
                .status,
            401
        );
    }
    let good = [("Authorization", "Bearer s3cret")];
    assert_eq!(hub.request("POST", "/publish", &good, b"yes").0.status, 200);
    assert_eq!(sub.next().data, "yes");
    // Subscribing needs no token.
    hub.subscribe("/events");
}

#[test]
fn token_from_the_environment() {
    let hub = HubProcess::start_with_env(&[], &[("SSELOOP_PUBLISH_TOKEN", "envtok")]);
    assert_eq!(hub.publish("", "x").0, 401);
    let (head, _) = hub.request(
        "POST",
        "/publish",
        &[("Authorization", "Bearer envtok")],
        b"x",
    );
    assert_eq!(head.status, 200);
}

#[test]
fn cors_header_and_preflight() {
    let hub = HubProcess::start(&["--cors-origin", "https://app.example"]);
    let (sub, _) = hub.subscribe("/events");
    assert_eq!(
        sub.head.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let (head, _) = hub.request(
        "OPTIONS",
        "/events",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Headers", "last-event-id"),
        ],
        b"",
    );
    assert_eq!(head.status, 204);
    assert_eq!(
        head.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(head
        .header("access-control-allow-headers")
        .unwrap()
        .contains("Last-Event-ID"));

    // Without the flag, no CORS header.
    let hub = HubProcess::start(&[]);
    let (sub, _) = hub.subscribe("/events");
    assert_eq!(sub.head.header("access-control-allow-origin"), None);
}

#[test]
fn head_is_get_without_a_body_and_options_lists_the_methods() {
    let hub = HubProcess::start(&[]);
    let mut client = hub.connect();
    // A stream, the metrics and the health check on one connection: the
    // two HEADs must leave nothing between their heads and the GET's answer.
    client.send(
        b"HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /health HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let head = client.read_head();
    assert_eq!(
        (head.status, head.header("content-type")),
        (200, Some("text/event-stream"))
    );
    let head = client.read_head();
    assert_eq!(head.status, 200);
    let length: usize = head.header("content-length").unwrap().parse().unwrap();
    assert!(
        length > 100,
        "the length the metrics would have had: {length}"
    );
    let (head, body) = client.read_response();
    assert_eq!((head.status, body.as_slice()), (200, &b"ok\n"[..]));
    // The HEAD opened no stream.
    assert_eq!(hub.request("GET", "/clients", &[], b"").1, b"[]\n");

    let (head, _) = hub.request("OPTIONS", "/events", &[], b"");
    assert_eq!(
        (head.status, head.header("allow")),
        (204, Some("GET, HEAD, OPTIONS"))
    );
    assert_eq!(head.header("access-control-allow-origin"), None);
    let (head, _) = hub.request("PUT", "/events", &[], b"");
    assert_eq!(
        (head.status, head.header("allow")),
        (405, Some("GET, HEAD, OPTIONS"))
    );
    let (head, _) = hub.request("POST", "/metrics", &[], b"");
    assert_eq!(
        (head.status, head.header("allow")),
        (405, Some("GET, HEAD"))
    );
}

#[test]
fn retry_flag_sends_retry_first() {
    let hub = HubProcess::start(&["--retry", "1500"]);
    let (sub, _) = hub.subscribe("/events");
    assert_eq!(sub.parser.retry(), Some(1500));
}

#[test]
fn health_metrics_page_and_unknown_routes() {
    let hub = HubProcess::start(&[]);
    let (head, body) = hub.request("GET", "/health", &[], b"");
    assert_eq!((head.status, body.as_slice()), (200, &b"ok\n"[..]));

    let (mut sub, _) = hub.subscribe("/events");
    hub.publish("", "counted");
    sub.next();
    let (head, body) = hub.request("GET", "/metrics", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(body).unwrap();
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert_eq!(value("sseloop_clients"), 1);
    assert_eq!(value("sseloop_events_published_total"), 1);
    assert!(value("sseloop_streams_opened_total") >= 1);
    assert!(value("sseloop_bytes_written_total") > 0);
    assert!(value("sseloop_frames_written_total") >= 2);
    for reason in ["idle", "queue_full", "shutdown"] {
        assert_eq!(
            value(&format!("sseloop_evictions_total{{reason=\"{reason}\"}}")),
            0
        );
    }
    assert_eq!(value("sseloop_replayed_events_total"), 0);

    let (head, body) = hub.request("GET", "/", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = String::from_utf8(body).unwrap();
    assert!(
        page.contains("followStream(\"/events\""),
        "the page follows /events"
    );
    // Its one script is the hub's own stream reader, from the same origin.
    let sources: Vec<&str> = page.split("src=").skip(1).collect();
    assert_eq!(sources.len(), 1, "one script");
    assert!(sources[0].starts_with("\"/sse.js\""), "{}", sources[0]);
    assert!(!page.contains("href="), "no external styles or fonts");
    let (head, reader) = hub.request("GET", "/sse.js", &[], b"");
    assert_eq!(
        head.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(String::from_utf8(reader)
        .unwrap()
        .contains("function followStream("));
    // The debugger is off unless asked for, and says how to turn it on.
    let (head, body) = hub.request("GET", "/.well-known/mercure/debug/", &[], b"");
    assert_eq!(head.status, 404);
    assert!(String::from_utf8(body).unwrap().contains("--debugger"));
    let debugging = HubProcess::start(&["--debugger"]);
    let (head, body) = debugging.request("GET", "/.well-known/mercure/debug/", &[], b"");
    assert_eq!(head.status, 200);
    let debugger = String::from_utf8(body).unwrap();
    assert!(
        !debugger.contains("http://") && !debugger.contains("https://fonts"),
        "nothing from elsewhere"
    );
    assert_eq!(debugger.matches("src=").count(), 1, "only /sse.js");

    assert_eq!(hub.request("GET", "/nope", &[], b"").0.status, 404);
    let (head, _) = hub.request("GET", "/publish", &[], b"");
    assert_eq!((head.status, head.header("allow")), (405, Some("POST")));
    assert_eq!(hub.request("DELETE", "/events", &[], b"").0.status, 405);
}

#[test]
fn max_clients_answers_503_with_retry_after() {
    let hub = HubProcess::start(&["--max-clients", "2"]);
    let (_a, _) = hub.subscribe("/events");
    let (b, _) = hub.subscribe("/events");
    let (head, _) = hub.request("GET", "/events", &[], b"");
    assert_eq!(head.status, 503);
    assert!(head.header("retry-after").is_some());
    // A slot frees up when a client leaves.
    drop(b);
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let mut c = hub.connect();
        c.get("/events");
        let head = c.read_head();
        if head.status == 200 {
            break;
        }
        assert_eq!(head.status, 503);
        assert!(std::time::Instant::now() < deadline, "the slot never freed");
    }
}

#[test]
fn sigterm_ends_every_stream_cleanly_and_exits_0() {
    let mut hub = HubProcess::start(&[]);
    let mut subs: Vec<_> = (0..3).map(|_| hub.subscribe("/events").0).collect();
    hub.publish("", "before shutdown");
    for s in &mut subs {
        assert_eq!(s.next().data, "before shutdown");
    }
    let status = hub.terminate();
    assert!(status.success(), "{status:?}");
    for s in &mut subs {
        assert!(s.rest().is_empty(), "each stream ends with its last chunk");
    }
}

#[test]
fn help_and_bad_flags() {
    let bin = env!("CARGO_BIN_EXE_sseloop");
    let out = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--heartbeat",
        "--timeout",
        "--history",
        "--max-clients",
        "--max-queue",
        "--publish-token",
        "--cors-origin",
        "--retry",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    assert!(help.contains("127.0.0.1:8080") && help.contains("120000") && help.contains("1024"));
    for bad in [
        &["--timeout", "soon"][..],
        &["--listen", "nowhere"],
        &["--frobnicate", "1"],
        &["--history"],
    ] {
        let out = std::process::Command::new(bin).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    }
    // A bad value from the environment names its variable; a bad Redis URL
    // is a bad value like any other (exit 2).
    let out = std::process::Command::new(bin)
        .env("SSELOOP_HEARTBEAT", "abc")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("SSELOOP_HEARTBEAT") && err.lines().count() == 1,
        "{err}"
    );
    let out = std::process::Command::new(bin)
        .args(["--redis", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // An address in use is named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(bin)
        .args(["--listen", &at])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success() && err.contains(&format!("cannot listen on {at}")),
        "{err}"
    );
    // Help piped into a reader that has gone (`sseloop --help | head -1`):
    // no panic, exit 0.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(bin)
        .arg("--help")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success() && err.is_empty(),
        "{:?}: {err}",
        out.status
    );
}

#[test]
fn idle_streams_time_out_and_heartbeats_can_be_turned_off() {
    let beat = |rest: &[u8]| rest.windows(HEARTBEAT.len()).any(|w| w == HEARTBEAT);
    // Heartbeats every second from the environment: one comes (the check
    // below can see them)...
    let beating = HubProcess::start_with_env(&["--timeout", "2500"], &[("SSELOOP_HEARTBEAT", "1")]);
    let (mut sub, _) = beating.subscribe("/events");
    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut rest = Vec::new();
    while !beat(&rest) && Instant::now() < deadline {
        rest.extend(sub.client.read_for(Duration::from_millis(100)));
    }
    assert!(beat(&rest), "no heartbeat within 2.5 s at one a second");
    // ...and `--heartbeat 0` over the same environment turns them off: the
    // stream is quiet until its 2.5 s timeout closes it.
    let quiet = HubProcess::start_with_env(
        &["--timeout", "2500", "--heartbeat", "0"],
        &[("SSELOOP_HEARTBEAT", "1")],
    );
    let (mut sub, _) = quiet.subscribe("/events");
    let started = Instant::now();
    let rest = sub.client.read_to_close();
    assert!(
        started.elapsed() >= Duration::from_millis(2000),
        "closed after {:?}, before its timeout",
        started.elapsed()
    );
    assert!(!beat(&rest), "a heartbeat with --heartbeat 0: {rest:?}");
}

/// A heartbeat as the hub's chunked stream carries it.
const HEARTBEAT: &[u8] = b"3\r\n:\n\n\r\n";

#[test]
fn debug_logs_say_who_arrives_and_leaves_and_what_is_published() {
    let hub = HubProcess::start(&["--log-level", "debug"]);
    let mut client = hub.connect();
    client.send(b"GET /events?topic=news&topic=sport HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = client.read_head();
    assert_eq!(head.status, 200);
    let arrived = hub.stderr_line_with("subscriber arrived");
    let peer = client.stream.local_addr().unwrap().to_string();
    assert!(arrived.contains(&format!("peer={peer}")), "{arrived}");
    assert!(
        arrived.contains("seid=") && arrived.contains("news") && arrived.contains("sport"),
        "{arrived}"
    );
    let (status, _) = hub.publish("?topic=news", "hi");
    assert_eq!(status, 200);
    let published = hub.stderr_line_with("published");
    assert!(
        published.contains("news") && published.contains("streams=1"),
        "{published}"
    );
    drop(client);
    let left = hub.stderr_line_with("subscriber left");
    assert!(left.contains("seid=") && left.contains("reason="), "{left}");
}

#[test]
fn json_logs_are_one_object_a_line_with_their_fields() {
    let hub = HubProcess::start(&["--log-level", "debug", "--log-format", "json"]);
    let mut client = hub.connect();
    client.send(b"GET /events?topic=news HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.read_head().status, 200);
    let (status, id) = hub.publish("?topic=news", "hi");
    assert_eq!(status, 200);
    drop(client);
    // Every line up to the departure is one JSON object.
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &serde_json::Value| l["message"] == "subscriber left")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = hub.stderr_line(left).expect("the departure is logged");
        let json: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            json["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        assert!(
            json["level"].is_string() && json["message"].is_string(),
            "{line}"
        );
        seen.push(json);
    }
    let find = |message: &str| {
        seen.iter()
            .find(|l| l["message"] == message)
            .unwrap()
            .clone()
    };
    let arrived = find("subscriber arrived");
    assert_eq!(arrived["matchers"], serde_json::json!(["news"]));
    assert_eq!(arrived["level"], "DEBUG");
    let published = find("published");
    assert_eq!(published["topics"], serde_json::json!(["news"]));
    assert_eq!(
        (published["id"].as_str(), published["streams"].as_u64()),
        (Some(id.as_str()), Some(1))
    );
    assert_eq!(find("subscriber left")["seid"], arrived["seid"]);
}

#[test]
fn one_address_holds_at_most_max_streams_per_ip() {
    let hub = HubProcess::start(&["--max-streams-per-ip", "2", "--anonymous"]);
    let open = |target: &str| {
        let mut client = hub.connect();
        client.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let head = client.read_head();
        (client, head)
    };
    let (first, head) = open("/events?topic=a");
    assert_eq!(head.status, 200);
    let (_second, head) = open("/.well-known/mercure?match=a");
    assert_eq!(head.status, 200);
    // A third, native or Mercure: 429, naming the flag.
    for target in ["/events?topic=a", "/.well-known/mercure?match=a"] {
        let (mut client, head) = open(target);
        assert_eq!(head.status, 429, "{target}");
        assert_eq!(head.header("retry-after"), Some("5"));
        let body = String::from_utf8(client.read_body(&head)).unwrap();
        assert!(body.contains("--max-streams-per-ip 2"), "{body}");
    }
    // One leaves: room for one more (read until the hub has let it go).
    drop(first);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_client, head) = open("/events?topic=a");
        if head.status == 200 {
            break;
        }
        assert_eq!(head.status, 429);
        assert!(
            Instant::now() < deadline,
            "the stream that left still counts"
        );
    }
}
