//! Hostile clients and faults against the hub binary: slowloris, malformed
//! and oversized requests, churn, fd exhaustion, slow consumers, injection
//! and auth. Each test asserts what the server did (its /proc and its
//! metrics) and what the well-behaved clients saw.

#[path = "../../tests/util/crowd.rs"]
mod crowd;
#[path = "util/hub_process.rs"]
mod hub_process;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use crowd::{cpu_time, fd_count, status_kib, Crowd};
use hub_process::HubProcess;
use util::{Client, EventStream, DEADLINE};

/// A metric's value from the hub's /metrics.
fn metric(hub: &HubProcess, name: &str) -> u64 {
    let (_, body) = hub.request("GET", "/metrics", &[], b"");
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name}"))
}

fn pid(hub: &HubProcess) -> u32 {
    hub.child.id()
}

#[test]
fn slowloris_is_cut_at_the_head_deadline_while_subscribers_get_everything() {
    const SLOW: usize = 1000;
    const EVENTS: usize = 12;
    let hub = HubProcess::start(&["--head-timeout", "1000"]);
    let mut subs: Vec<EventStream> = (0..100).map(|_| hub.subscribe("/events").0).collect();

    let mut crowd = Crowd::new();
    crowd.connect(
        hub.addr,
        SLOW,
        b"GET /events HTTP/1.1\r\nHost: x\r\nX-Slow: ",
    );
    let started = Instant::now();
    let mut publisher = hub.connect();
    let mut published = 0;
    // One more header byte from every slow client every 200 ms, and an event
    // to the subscribers each round, until the deadline has cut them all.
    let all_cut = (0..40).any(|_| {
        crowd.send_all(b"a");
        if published < EVENTS {
            publisher.send(
                format!(
                    "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n{}",
                    published % 10
                )
                .as_bytes(),
            );
            assert_eq!(publisher.read_response().0.status, 200);
            published += 1;
        }
        crowd.run_until(Duration::from_millis(200), |c| c.closed() == SLOW)
    });
    assert!(
        all_cut,
        "{} of {SLOW} slow clients still open",
        SLOW - crowd.closed()
    );
    for m in &crowd.members {
        let lived = m.closed_at.unwrap() - m.opened_at;
        assert!(
            lived >= Duration::from_millis(900),
            "cut before the deadline: {lived:?}"
        );
        assert!(
            m.got(b"HTTP/1.1 408"),
            "a slow client is told why; it got {:?} ({:?}) after {lived:?}",
            String::from_utf8_lossy(&m.received),
            m.error
        );
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "cutting {SLOW} took {took:?}"
    );
    while published < EVENTS {
        assert_eq!(hub.publish("", &(published % 10).to_string()).0, 200);
        published += 1;
    }
    for sub in &mut subs {
        for i in 0..EVENTS {
            assert_eq!(
                sub.next().data,
                (i % 10).to_string(),
                "a subscriber lost or reordered an event"
            );
        }
    }
    assert!(metric(&hub, "sseloop_head_timeouts_total") >= SLOW as u64);
    eprintln!(
        "slowloris: {SLOW} cut in {took:?}; 100 subscribers got all {EVENTS} events in order"
    );
}

#[test]
fn malformed_and_oversized_requests_get_4xx_or_a_close() {
    let hub = HubProcess::start(&["--head-timeout", "500"]);
    let (mut sub, _) = hub.subscribe("/events");
    let status_of = |bytes: &[u8]| -> u16 {
        let mut c = hub.connect();
        c.send(bytes);
        let head = c.read_head();
        assert!(
            c.closes_within(DEADLINE) || head.status < 400,
            "refused but kept open"
        );
        head.status
    };
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64 * 1024));
    let mut many_headers = String::from("GET /events HTTP/1.1\r\nHost: x\r\n");
    for i in 0..10_000 {
        many_headers.push_str(&format!("h{i}: v\r\n"));
    }
    many_headers.push_str("\r\n");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("64 KiB request line", long_line.into_bytes(), 431),
        ("10 000 headers", many_headers.into_bytes(), 431),
        ("NUL in path", b"GET /ev\0ents HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("non-UTF-8 in path", b"GET /ev\xffents HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("NUL in a header value", b"GET /events HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n".to_vec(), 400),
        ("non-UTF-8 in a header name", b"GET /events HTTP/1.1\r\nHost: x\r\nX\xff: v\r\n\r\n".to_vec(), 400),
        ("absurd Content-Length", b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 184467440737095516160\r\n\r\n".to_vec(), 413),
        ("Content-Length and Transfer-Encoding", b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        ("two different Content-Lengths", b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(), 400),
        ("chunk size not hex", b"POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n".to_vec(), 400),
        ("negative chunk size", b"POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nab\r\n0\r\n\r\n".to_vec(), 400),
        ("chunk size overflow", b"POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\n".to_vec(), 413),
        ("chunk longer than its size", b"POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n".to_vec(), 400),
        ("unknown transfer coding", b"POST /publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(), 501),
        ("no Host on HTTP/1.1", b"GET /events HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("two Hosts", b"GET /events HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), 400),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), 505),
        ("a request line that is not HTTP", b"THIS IS NOT HTTP\r\n\r\n".to_vec(), 400),
        ("binary garbage", (0..=255u8).cycle().take(4000).collect(), 400),
    ];
    for (what, bytes, want) in cases {
        assert_eq!(status_of(&bytes), want, "{what}");
    }
    // A publish body that never finishes: cut at the deadline, never published.
    let mut c = hub.connect();
    c.send(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b");
    assert_eq!(c.read_head().status, 408);
    assert!(c.closes_within(DEADLINE));

    // Nothing reached the subscriber, and the server is fine.
    assert_eq!(hub.request("GET", "/health", &[], b"").0.status, 200);
    assert_eq!(hub.publish("", "after the storm").0, 200);
    assert_eq!(sub.next().data, "after the storm");
    assert!(metric(&hub, "sseloop_bad_requests_total") >= 17);
}

#[test]
fn churn_of_20000_abrupt_disconnects_leaves_no_trace() {
    const BATCH: usize = 1000;
    const BATCHES: usize = 20;
    // The metrics watcher below idles between its polls; keep it alive.
    let hub = HubProcess::start(&["--head-timeout", "60000"]);
    let pid = pid(&hub);
    let request = b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    let ready = |c: &Crowd| {
        c.members
            .iter()
            .all(|m| m.received.windows(11).any(|w| w == b"event: seid"))
    };
    // One batch: BATCH subscribers, a broadcast while they are connected
    // (so some leave mid-frame), then each one gone abruptly.
    let churn = |publisher: &mut util::Client, batch: usize| {
        let mut crowd = Crowd::new();
        crowd.connect(hub.addr, BATCH, request);
        assert!(
            crowd.run_until(DEADLINE, ready),
            "batch {batch} did not subscribe"
        );
        let body = "x".repeat(2000);
        publisher.send(
            format!(
                "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        assert_eq!(publisher.read_response().0.status, 200);
        for (i, member) in crowd.members.iter_mut().enumerate() {
            let Some(stream) = member.stream.take() else {
                continue;
            };
            match i % 3 {
                // RST: SO_LINGER 0, then close.
                0 => socket2::SockRef::from(&stream)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap(),
                // Half-close first, then close.
                1 => stream.shutdown(std::net::Shutdown::Write).unwrap_or(()),
                // Plain close with the frame unread.
                _ => {}
            }
            drop(stream);
        }
    };
    // One kept-alive connection asks for the metrics; `settled(n)` waits
    // (a read with a deadline each time) until the hub holds `n`
    // connections, so each batch is gone before the next comes, and the
    // connections at once (what the slab and the loop's lists grow to) are
    // one batch's, however slow the machine.
    let mut watcher = hub.connect();
    let mut settled = |n: usize| {
        let deadline = Instant::now() + DEADLINE;
        let want = format!("\nsseloop_connections {n}\n");
        loop {
            watcher.get("/metrics");
            let text = String::from_utf8(watcher.read_response().1).unwrap();
            if text.contains(&want) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "connections never went back down to {n}"
            );
        }
    };
    // Warm up with two whole batches, so one-time growth (slab, index
    // tables, a batch's queues) is in the baseline; then 20 more must add
    // nothing to it. A leak grows with the connections; a high-water mark
    // does not.
    let mut warm_publisher = hub.connect();
    for batch in 0..2 {
        churn(&mut warm_publisher, batch);
        settled(2);
    }
    drop(warm_publisher);
    settled(1);
    let fds_before = fd_count(pid);

    let (mut good, _) = hub.subscribe("/events");
    let mut publisher = hub.connect();
    let mut health = hub.connect();
    settled(4);
    // RSS at the start, after the first half of the batches, and at the end.
    let mut rss = vec![status_kib(pid, "VmRSS")];
    let mut events = 0;
    let mut worst_health = Duration::ZERO;
    for batch in 0..BATCHES {
        churn(&mut publisher, batch);
        events += 1;
        let started = Instant::now();
        health.get("/health");
        assert_eq!(health.read_response().0.status, 200, "/health during churn");
        worst_health = worst_health.max(started.elapsed());
        // The watcher, the good subscriber, the publisher and /health.
        settled(4);
        if batch + 1 == BATCHES / 2 || batch + 1 == BATCHES {
            rss.push(status_kib(pid, "VmRSS"));
        }
    }
    for _ in 0..events {
        assert_eq!(
            good.next().data.len(),
            2000,
            "the good subscriber lost an event"
        );
    }
    drop((good, publisher, health));
    settled(1);
    let fds_after = fd_count(pid);
    eprintln!(
        "churn: {} connections dropped; fds {fds_before} → {fds_after}; RSS {} → {} → {} KiB; slowest /health {worst_health:?}",
        BATCH * BATCHES, rss[0], rss[1], rss[2]
    );
    assert_eq!(fds_after, fds_before, "file descriptors leaked");
    // A loop stalled by the churn would take seconds; a busy machine, some
    // hundreds of milliseconds at worst.
    assert!(
        worst_health < Duration::from_secs(1),
        "/health took {worst_health:?} during the churn"
    );
    // A leak grows with the connections, so it shows in both halves (10 000
    // connections each): 100 B a connection is about 1 MiB a half. The
    // allocator sometimes keeps a freed region of its arena resident under
    // load (a one-off step of about 4 MiB, seen at the base commit too), so
    // one half may step; both may not.
    let halves = [rss[1].saturating_sub(rss[0]), rss[2].saturating_sub(rss[1])];
    let limit = 512 + rss[0] / 40;
    assert!(
        halves.iter().min().is_some_and(|&grew| grew <= limit),
        "RSS grew in both halves of the churn: {rss:?} KiB (limit {limit} KiB a half)"
    );
}

#[test]
fn fd_exhaustion_refuses_without_spinning_and_recovers() {
    let hub = HubProcess::start(&["--heartbeat", "0"]);
    let pid = pid(&hub);
    // A publisher connected before the limit bites.
    let mut publisher = hub.connect();
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=256:256"])
        .status()
        .expect("prlimit");
    assert!(status.success());

    let mut crowd = Crowd::new();
    crowd.connect(hub.addr, 1000, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    let streaming = |c: &Crowd| c.members.iter().filter(|m| m.got(b"HTTP/1.1 200")).count();
    // Give the server a second to take all it can, then count.
    crowd.run_until(Duration::from_secs(1), |_| false);
    let served = streaming(&crowd);
    assert!(
        (200..256).contains(&served),
        "{served} streams under a 256-fd limit"
    );

    // Over a second at the limit, with connections waiting, the server must
    // not spin on accept.
    let cpu_before = cpu_time(pid);
    crowd.run_until(Duration::from_secs(1), |_| false);
    let cpu = cpu_time(pid) - cpu_before;
    assert!(
        // Spinning on accept takes the whole second; waiting out the
        // backoff, a few milliseconds (500 leaves a busy machine room).
        cpu < Duration::from_millis(500),
        "spent {cpu:?} of CPU in 1 s at the fd limit"
    );
    publisher.get("/metrics");
    let metrics = String::from_utf8(publisher.read_response().1).unwrap();
    assert!(
        !metrics.contains("sseloop_accept_errors_total 0\n"),
        "accept errors counted"
    );

    // The clients it has are still served.
    publisher.send(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nstill");
    assert_eq!(publisher.read_response().0.status, 200);
    let got_it = |c: &Crowd| {
        c.members
            .iter()
            .filter(|m| m.got(b"HTTP/1.1 200"))
            .all(|m| m.received.windows(11).any(|w| w == b"data: still"))
    };
    assert!(
        crowd.run_until(DEADLINE, got_it),
        "a served client missed the event"
    );

    // Recovery: when the crowd leaves, new clients get in.
    drop(crowd);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut c = Client::connect(hub.addr);
        c.get("/health");
        if c.closes_within(Duration::from_millis(1)) {
            continue;
        }
        let (head, _) = c.read_response();
        if head.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered");
    }
    let (mut sub, _) = hub.subscribe("/events");
    hub.publish("", "recovered");
    assert_eq!(sub.next().data, "recovered");
    eprintln!(
        "exhaustion: {served} streams at a 256-fd limit; {cpu:?} CPU over 1 s waiting; recovered"
    );
}

#[test]
fn slow_consumers_are_evicted_while_everyone_else_gets_100_mb_in_order() {
    const EVENTS: usize = 100;
    const SIZE: usize = 1_000_000;
    // The cap must sit well above one event: a healthy reader may still be
    // writing one 1 MB event when the next is queued.
    let hub = HubProcess::start(&[
        "--max-queue",
        "4194304",
        "--history",
        "4",
        "--heartbeat",
        "0",
    ]);
    let pid = pid(&hub);
    let mut slow: Vec<Client> = (0..10)
        .map(|_| {
            let mut c = Client::connect_with_recv_buffer(hub.addr, 4096);
            c.get("/events");
            c
        })
        .collect();
    // The good clients read on their own threads and report how many events
    // they have; the broadcast stays at most two events ahead of the slowest
    // of them, as a broadcast its readers keep up with does. (Debug-build
    // readers on a shared 2-core machine are slower than the publisher; one
    // that cannot keep up is a slow consumer and would rightly be evicted.)
    let progress = std::sync::Arc::new((
        std::sync::Mutex::new(vec![0usize; 3]),
        std::sync::Condvar::new(),
    ));
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (mut sub, _) = hub.subscribe("/events");
            let progress = progress.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for _ in 0..EVENTS {
                    let m = sub.next();
                    let (seq, rest) = m.data.split_once(' ').unwrap();
                    assert_eq!(rest.len(), SIZE - 8);
                    seen.push(seq.parse::<usize>().unwrap());
                    progress.0.lock().unwrap()[r] += 1;
                    progress.1.notify_all();
                }
                seen
            })
        })
        .collect();
    let payload = "y".repeat(SIZE - 8);
    for i in 0..EVENTS {
        let (counts, changed) = &*progress;
        let behind = |c: &mut Vec<usize>| c.iter().any(|&n| n + 2 < i);
        let (_counts, wait) = changed
            .wait_timeout_while(counts.lock().unwrap(), DEADLINE, behind)
            .unwrap();
        assert!(
            !wait.timed_out(),
            "a good reader stopped receiving at event {i}"
        );
        let body = format!("{i:07} {payload}");
        assert_eq!(hub.publish("", &body).0, 200);
    }
    for reader in readers {
        assert_eq!(reader.join().unwrap(), (0..EVENTS).collect::<Vec<_>>());
    }
    assert_eq!(
        metric(&hub, "sseloop_evictions_total{reason=\"queue_full\"}"),
        10
    );
    for c in &mut slow {
        assert!(c.closes_within(DEADLINE), "a slow client was not cut off");
    }
    let peak = status_kib(pid, "VmHWM");
    eprintln!(
        "slow consumers: 10 evicted; 3 readers got {} MB in order; peak RSS {peak} KiB",
        EVENTS * SIZE / 1_000_000
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn no_injection_through_event_id_data_or_topic() {
    let hub = HubProcess::start(&[]);
    let (mut sub, _) = hub.subscribe("/events?topic=t");
    for query in [
        "?event=x%0Aevent:%20evil",
        "?event=x%0D%0Adata:%20evil",
        "?id=1%0Aevent:%20evil",
        "?id=1%0D",
        "?id=%00",
    ] {
        assert_eq!(hub.publish(query, "evil").0, 400, "{query}");
    }
    // Data with line breaks and field names stays data.
    let data = "x\n\nevent: evil\ndata: pwned\r\nid: 666\rretry: 1";
    assert_eq!(hub.publish("?topic=t", data).0, 200);
    // A topic with line breaks is only a name; nobody listens to it.
    assert_eq!(hub.publish("?topic=t%0Aevent:%20evil", "nobody").0, 200);
    assert_eq!(hub.publish("?topic=t", "marker").0, 200);
    let m = sub.next();
    assert_eq!(
        (m.event.as_str(), m.data.as_str()),
        (
            "message",
            "x\n\nevent: evil\ndata: pwned\nid: 666\nretry: 1"
        )
    );
    assert_ne!(m.last_event_id, "666");
    assert_eq!(sub.parser.retry(), None);
    assert_eq!(sub.next().data, "marker");
}

#[test]
fn subscribers_cannot_publish_and_wrong_tokens_never_get_in() {
    let token = "correct-horse-battery-staple";
    let hub = HubProcess::start(&["--publish-token", token]);
    let (mut sub, seid) = hub.subscribe("/events");
    // A subscriber's own connection cannot publish through the stream route.
    assert_eq!(hub.request("POST", "/events", &[], b"x").0.status, 405);
    let mut wrong: Vec<String> = (0..token.len()).map(|n| token[..n].to_owned()).collect();
    wrong.extend((0..token.len()).map(|i| {
        let mut t = token.as_bytes().to_vec();
        t[i] ^= 1;
        String::from_utf8(t).unwrap()
    }));
    wrong.push(format!("{token}x"));
    wrong.push(token.to_uppercase());
    for bad in &wrong {
        let auth = format!("Bearer {bad}");
        let headers = [("Authorization", auth.as_str())];
        assert_eq!(
            hub.request("POST", "/publish", &headers, b"x").0.status,
            401,
            "{bad:?}"
        );
        assert_eq!(
            hub.request("DELETE", &format!("/clients/{seid}"), &headers, b"")
                .0
                .status,
            401
        );
    }
    let good = format!("Bearer {token}");
    assert_eq!(
        hub.request("POST", "/publish", &[("Authorization", &good)], b"ok")
            .0
            .status,
        200
    );
    assert_eq!(
        sub.next().data,
        "ok",
        "nothing from the wrong tokens arrived first"
    );
}
