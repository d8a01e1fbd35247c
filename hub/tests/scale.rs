//! Several hubs as one through a real Redis (`--redis`), over real
//! sockets: each test starts its own redis-server on a free loopback port
//! and stops it by PID, and starts its hubs as processes. What each
//! subscriber saw is checked event by event.

#[path = "../../tests/util/crowd.rs"]
mod crowd;
#[path = "util/hub_process.rs"]
mod hub_process;
#[path = "util/jwt.rs"]
mod jwt;
#[path = "util/mercure.rs"]
mod mercure;
#[path = "util/redis_server.rs"]
mod redis_server;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use hub_process::HubProcess;
use redis_server::RedisServer;
use serde_json::json;
use util::{EventStream, DEADLINE};

fn hub(redis: &RedisServer, extra: &[&str]) -> HubProcess {
    let url = redis.url();
    let mut args = vec!["--redis", url.as_str()];
    args.extend_from_slice(extra);
    HubProcess::start_0x(&args)
}

/// The next `n` events' (id, data).
fn take(stream: &mut EventStream, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|_| {
            let m = stream.next();
            (m.last_event_id, m.data)
        })
        .collect()
}

/// Polls `path` on `hub` until it answers `status` (reading with a
/// deadline); answers how long that took.
fn until_status(hub: &HubProcess, path: &str, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (head, _) = hub.request("GET", path, &[], b"");
        if head.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} still {} after {within:?}",
            head.status
        );
        std::thread::sleep(Duration::from_millis(20)); // polling a status, not synchronising
    }
}

#[test]
fn a_thousand_concurrent_publishes_reach_every_hub_once_in_one_order() {
    let Some(redis) = RedisServer::start("a_thousand_concurrent_publishes") else {
        return;
    };
    let hubs = [hub(&redis, &[]), hub(&redis, &[]), hub(&redis, &[])];
    let mut streams: Vec<EventStream> = hubs
        .iter()
        .map(|h| h.subscribe("/events?topic=t").0)
        .collect();
    let per_hub = [334, 333, 333];
    std::thread::scope(|scope| {
        for (h, (hub, count)) in hubs.iter().zip(per_hub).enumerate() {
            let addr = hub.addr;
            scope.spawn(move || {
                // One kept-alive connection per hub, publishing in turn.
                let mut client = util::Client::connect(addr);
                for i in 0..count {
                    let body = format!("hub{h}-{i}");
                    client.send(
                        format!(
                            "POST /publish?topic=t HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    let (head, id) = client.read_response();
                    assert_eq!(head.status, 200, "{}", String::from_utf8_lossy(&id));
                }
            });
        }
    });
    let seen: Vec<Vec<(String, String)>> = streams.iter_mut().map(|s| take(s, 1000)).collect();
    assert_eq!(seen[0], seen[1], "hubs A and B: same ids, same order");
    assert_eq!(seen[0], seen[2], "hubs A and C: same ids, same order");
    let mut ids: Vec<&str> = seen[0].iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "every event once, each with its own id");
    for (h, count) in per_hub.iter().enumerate() {
        let mine: Vec<&str> = seen[0]
            .iter()
            .map(|(_, data)| data.as_str())
            .filter(|d| d.starts_with(&format!("hub{h}-")))
            .collect();
        let want: Vec<String> = (0..*count).map(|i| format!("hub{h}-{i}")).collect();
        assert_eq!(mine, want, "hub {h}'s publishes in the order it made them");
    }
}

#[test]
fn a_hub_killed_and_restarted_replays_what_its_clients_missed() {
    let Some(redis) = RedisServer::start("a_hub_killed_and_restarted") else {
        return;
    };
    let a = hub(&redis, &[]);
    let mut c = hub(&redis, &[]);
    let (mut on_c, _) = c.subscribe("/events?topic=t");
    for i in 0..3 {
        assert_eq!(a.publish("?topic=t", &format!("before {i}")).0, 200);
    }
    let before = take(&mut on_c, 3);
    let last_seen = before[2].0.clone();
    let _ = c.child.kill();
    let _ = c.child.wait();
    drop(on_c);
    let mut missed = Vec::new();
    for i in 0..5 {
        let (status, id) = a.publish("?topic=t", &format!("missed {i}"));
        assert_eq!(status, 200);
        missed.push((id, format!("missed {i}")));
    }
    c = hub(&redis, &[]);
    // Reconnecting to the restarted hub, or to another one: the same five.
    for target in [&c, &a] {
        let mut client = target.connect();
        client.send(
            format!(
                "GET /events?topic=t HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {last_seen}\r\n\r\n"
            )
            .as_bytes(),
        );
        let mut stream = EventStream::from_client(client);
        assert_eq!(stream.next().event, "seid");
        assert_eq!(take(&mut stream, 5), missed);
        assert_eq!(a.publish("?topic=t", "live").0, 200);
        assert_eq!(stream.next().data, "live", "nothing more was replayed");
    }
}

#[test]
fn a_frozen_redis_delays_nothing_but_publishes_which_get_503_and_never_appear() {
    let Some(redis) = RedisServer::start("a_frozen_redis") else {
        return;
    };
    let a = hub(&redis, &[]);
    let b = hub(&redis, &[]);
    let (mut on_b, _) = b.subscribe("/events?topic=t");
    assert_eq!(a.publish("?topic=t", "before").0, 200);
    assert_eq!(on_b.next().data, "before");
    until_status(&a, "/ready", 200, DEADLINE);

    redis.freeze();
    for hub in [&a, &b] {
        let started = Instant::now();
        let (head, _) = hub.request("GET", "/health", &[], b"");
        assert_eq!(head.status, 200);
        // Blocking on Redis would take its 1.5 s deadline; a busy shared
        // machine may take some of a second without any bug.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "/health took {:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    let (head, body) = a.request("POST", "/publish?topic=t", &[], b"during");
    let took = started.elapsed();
    assert_eq!(head.status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(head.header("retry-after").is_some());
    assert!(took <= Duration::from_secs(2), "503 after {took:?}");
    until_status(&b, "/ready", 503, Duration::from_secs(5));
    // Open streams stay open, and a new subscriber is accepted.
    let (mut new_on_a, _) = a.subscribe("/events?topic=t");

    redis.thaw();
    until_status(&a, "/ready", 200, Duration::from_secs(10));
    let mut status = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while status != 200 && Instant::now() < deadline {
        status = a.publish("?topic=t", "after").0;
    }
    assert_eq!(status, 200);
    // The refused publish never shows up, not even once Redis woke up.
    assert_eq!(on_b.next().data, "after");
    assert_eq!(new_on_a.next().data, "after");
    assert!(
        super_metric(&a, "sseloop_redis_publishes_refused_total ") >= 1,
        "the refusal is counted"
    );
}

#[test]
fn under_concurrent_publishers_a_frozen_redis_answers_each_503_within_its_deadline() {
    let Some(redis) = RedisServer::start("concurrent_publishers_frozen") else {
        return;
    };
    let a = hub(&redis, &[]);
    let (mut on_a, _) = a.subscribe("/events?topic=t");
    assert_eq!(a.publish("?topic=t", "before").0, 200);
    assert_eq!(on_a.next().data, "before");
    redis.freeze();
    let took: Vec<(u16, Duration)> = std::thread::scope(|scope| {
        let publishers: Vec<_> = (0..4)
            .map(|p| {
                let addr = a.addr;
                scope.spawn(move || {
                    (0..4)
                        .map(|i| {
                            let started = Instant::now();
                            let body = format!("frozen-{p}-{i}");
                            let mut client = util::Client::connect(addr);
                            client.send(
                                format!(
                                    "POST /publish?topic=t HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                                    body.len()
                                )
                                .as_bytes(),
                            );
                            let (head, _) = client.read_response();
                            (head.status, started.elapsed())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        publishers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect()
    });
    redis.thaw();
    let slowest = took.iter().map(|(_, t)| *t).max().unwrap();
    eprintln!("16 publishes from 4 publishers against a frozen Redis: slowest answer {slowest:?}");
    for (status, t) in &took {
        assert_eq!(*status, 503);
        assert!(*t <= Duration::from_millis(2200), "a 503 after {t:?}");
    }
    // None of them is ever delivered.
    let mut status = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while status != 200 && Instant::now() < deadline {
        status = a.publish("?topic=t", "after").0;
    }
    assert_eq!(status, 200);
    let m = on_a.next();
    assert_eq!(
        (m.event.as_str(), m.data.as_str()),
        ("message", "after"),
        "a publish answered 503 was delivered"
    );
    assert_eq!(super_metric(&a, "sseloop_redis_late_stores_total "), 0);
}

#[test]
fn a_connection_redis_closed_or_a_restart_costs_no_publish_a_503() {
    let Some(mut redis) = RedisServer::start("a_connection_redis_closed") else {
        return;
    };
    // Redis closes connections idle for a second (its `timeout`).
    assert_eq!(redis.command("CONFIG SET timeout 1"), "+OK");
    let a = hub(&redis, &[]);
    let (mut on_a, _) = a.subscribe("/events?topic=t");
    for round in 0..3 {
        let (status, body) = a.publish("?topic=t", &format!("idle-{round}"));
        assert_eq!(status, 200, "round {round}: {body}");
        assert_eq!(on_a.next().data, format!("idle-{round}"));
        // Idle past Redis's timeout: what is waited for is Redis closing
        // the writer's connection.
        std::thread::sleep(Duration::from_millis(1600));
    }
    // Restarted (empty): the next publish reconnects rather than fail.
    redis.restart();
    until_status(&a, "/ready", 200, DEADLINE);
    let (status, body) = a.publish("?topic=t", "after a restart");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        super_metric(&a, "sseloop_redis_publishes_refused_total "),
        0
    );
}

#[test]
fn a_sentinel_failover_is_followed_and_publishing_resumes_on_the_new_master() {
    let Some(mut master) = RedisServer::start("a_sentinel_failover") else {
        return;
    };
    let replica = RedisServer::replica_of(&master);
    let sentinel = RedisServer::sentinel_for(&master, "mymaster");
    let url = format!("redis+sentinel://127.0.0.1:{}/mymaster", sentinel.port);
    let a = HubProcess::start_0x(&["--redis", &url]);
    let (mut on_a, _) = a.subscribe("/events?topic=t");
    assert_eq!(a.publish("?topic=t", "before").0, 200);
    assert_eq!(on_a.next().data, "before");
    // The replica has the log too before the master goes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while replica.command("XLEN sseloop:log") != ":1" {
        assert!(Instant::now() < deadline, "the replica never caught up");
        std::thread::sleep(Duration::from_millis(20)); // polling replication, not synchronising
    }
    master.stop();
    // Sentinel promotes the replica; the hub's next connection asks it.
    let started = Instant::now();
    let mut status = 0;
    while status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "publishing did not resume after the failover"
        );
        status = a.publish("?topic=t", "after").0;
    }
    eprintln!(
        "publishing resumed {:?} after the master was killed",
        started.elapsed()
    );
    assert_eq!(
        replica.command("ROLE").as_str(),
        "*3",
        "the replica is the master now"
    );
    let m = on_a.next();
    assert_eq!(
        (m.event.as_str(), m.data.as_str()),
        ("message", "after"),
        "no reset: the log survived"
    );
    until_status(&a, "/ready", 200, Duration::from_secs(10));
}

#[test]
fn rediss_with_a_certificate_the_hub_trusts_and_not_with_one_it_does_not() {
    let Some((redis, ca)) = RedisServer::start_tls("rediss") else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let ca = ca.to_string_lossy().into_owned();
    // The test's CA, as a system's trust store would hold it.
    let trusting = HubProcess::start_0x_with_env(&["--redis", &url], &[("SSL_CERT_FILE", &ca)]);
    until_status(&trusting, "/ready", 200, DEADLINE);
    let (mut stream, _) = trusting.subscribe("/events?topic=t");
    let (status, body) = trusting.publish("?topic=t", "over TLS");
    assert_eq!(status, 200, "{body}");
    assert_eq!(stream.next().data, "over TLS");
    // Without the CA the certificate is not trusted: nothing is published.
    let empty = std::env::temp_dir().join(format!("sseloop-no-ca-{}.pem", redis.port));
    std::fs::write(&empty, "").unwrap();
    let doubting = HubProcess::start_0x_with_env(
        &["--redis", &url],
        &[("SSL_CERT_FILE", &empty.to_string_lossy())],
    );
    let (status, _) = doubting.publish("?topic=t", "not trusted");
    assert_eq!(status, 503);
    let (head, _) = doubting.request("GET", "/ready", &[], b"");
    assert_eq!(head.status, 503);
    let _ = std::fs::remove_file(empty);
    assert_eq!(trusting.publish("?topic=t", "next").0, 200);
    assert_eq!(
        stream.next().data,
        "next",
        "the refused publish never appears"
    );
}

#[test]
fn a_wrong_redis_password_is_logged_as_one() {
    let Some(redis) = RedisServer::start("a_wrong_redis_password") else {
        return;
    };
    assert_eq!(redis.command("CONFIG SET requirepass right"), "+OK");
    let url = format!("redis://:wrong@127.0.0.1:{}/0", redis.port);
    let a = HubProcess::start_0x(&["--redis", &url]);
    let (status, _) = a.publish("?topic=t", "x");
    assert_eq!(status, 503);
    let said = std::iter::from_fn(|| a.stderr_line(DEADLINE))
        .find(|line| line.contains("refused the hub's credentials"))
        .expect("a line that names the credentials");
    assert!(said.contains("--redis"), "{said}");
    assert!(
        !said.contains("wrong"),
        "the password stays out of the log: {said}"
    );
}

#[test]
fn requests_waiting_on_a_frozen_redis_are_bounded_and_the_rest_refused_at_once() {
    const ASKING: usize = 1_100;
    let Some(redis) = RedisServer::start("requests_waiting_bounded") else {
        return;
    };
    let a = hub(&redis, &[]);
    until_status(&a, "/ready", 200, DEADLINE);
    redis.freeze();
    let mut crowd = crowd::Crowd::new();
    crowd.connect(a.addr, ASKING, b"GET /clients HTTP/1.1\r\nHost: t\r\n\r\n");
    // 1 024 wait for Redis (the first maybe in its hands); the others are
    // refused as soon as they are read, long before any Redis deadline.
    let refused = |c: &crowd::Crowd| {
        c.members
            .iter()
            .filter(|m| {
                m.got(b"HTTP/1.1 503")
                    && m.received
                        .windows(b"too many requests".len())
                        .any(|w| w == b"too many requests")
            })
            .count()
    };
    let started = Instant::now();
    let all_refused = crowd.run_until(Duration::from_secs(5), |c| refused(c) >= ASKING - 1_024 - 1);
    let took = started.elapsed();
    // "At once" means before Redis had a say: none of the waiting listings
    // (each held by the frozen Redis for its 1.5 s deadline) has been
    // answered yet when the last refusal arrives. An ordering, not a
    // wall-clock bound a busy machine could break.
    let answered_otherwise = crowd
        .members
        .iter()
        .filter(|m| !m.received.is_empty())
        .count()
        - refused(&crowd);
    redis.thaw();
    assert!(all_refused, "only {} refused at once", refused(&crowd));
    assert!(
        refused(&crowd) <= ASKING - 1_024,
        "{} refused",
        refused(&crowd)
    );
    eprintln!(
        "{} of {ASKING} listings refused within {took:?}, {answered_otherwise} others answered by then",
        refused(&crowd)
    );
    assert_eq!(
        answered_otherwise, 0,
        "the refusals waited for Redis ({took:?})"
    );
}

/// Every page of `GET /clients` on `hub`, following `Link: …; rel="next"`:
/// the seids listed, and the slowest page's time.
fn list_all_clients(hub: &HubProcess) -> (Vec<String>, Duration) {
    let mut seids = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut target = "/clients".to_owned();
    loop {
        let started = Instant::now();
        let (head, body) = hub.request("GET", &target, &[], b"");
        slowest = slowest.max(started.elapsed());
        assert_eq!(head.status, 200, "{}", String::from_utf8_lossy(&body));
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        seids.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|c| c["seid"].as_str().unwrap().to_owned()),
        );
        match head.next_page() {
            Some(next) => target = next,
            None => return (seids, slowest),
        }
    }
}

#[test]
fn clients_across_hubs_are_listed_page_by_page_each_page_fast() {
    const PER_HUB: usize = 7_500;
    let Some(redis) = RedisServer::start("clients_page_by_page") else {
        return;
    };
    let hubs = [hub(&redis, &[]), hub(&redis, &[])];
    let mut crowd = crowd::Crowd::new();
    for h in &hubs {
        crowd.connect(
            h.addr,
            PER_HUB,
            b"GET /events?topic=t HTTP/1.1\r\nHost: t\r\n\r\n",
        );
    }
    let all_open = crowd.run_until(Duration::from_secs(60), |c| {
        c.received_at_least(20) == 2 * PER_HUB
    });
    assert!(all_open, "{} streams open", crowd.received_at_least(20));
    // The burst of 15 000 joins is written in a few round trips: the
    // listing, queued behind it, is whole within seconds, not minutes.
    let started = Instant::now();
    let (mut seids, slowest) = loop {
        let (seids, slowest) = list_all_clients(&hubs[0]);
        if seids.len() >= 2 * PER_HUB {
            break (seids, slowest);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} of {} clients listed after {:?}",
            seids.len(),
            2 * PER_HUB,
            started.elapsed()
        );
        crowd.run_until(Duration::from_millis(100), |_| false);
    };
    let whole_after = started.elapsed();
    let pages = seids.len().div_ceil(1000);
    seids.sort_unstable();
    seids.dedup();
    eprintln!(
        "{} clients on two Redis-backed hubs: all listed {whole_after:?} after the streams opened, in {pages} pages, the slowest {slowest:?}",
        seids.len()
    );
    assert_eq!(seids.len(), 2 * PER_HUB, "each client listed once");
    assert!(
        slowest < Duration::from_millis(250),
        "a page took {slowest:?}"
    );
}

fn super_metric(hub: &HubProcess, line_start: &str) -> u64 {
    let (_, body) = hub.request("GET", "/metrics", &[], b"");
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in /metrics"))
}

#[test]
fn every_update_acknowledged_after_redis_restarted_empty_is_delivered_live_everywhere() {
    let Some(mut redis) = RedisServer::start("acknowledged_after_a_restart") else {
        return;
    };
    let a = hub(&redis, &[]);
    let b = hub(&redis, &[]);
    let (mut on_a, _) = a.subscribe("/events?topic=t");
    let (mut on_b, _) = b.subscribe("/events?topic=t");
    assert_eq!(a.publish("?topic=t", "before").0, 200);
    assert_eq!(on_a.next().data, "before");
    assert_eq!(on_b.next().data, "before");
    redis.restart();
    // Publish at once, as fast as answers come: some are stored before a
    // hub's reader has noticed the new log.
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while acknowledged.len() < 30 && Instant::now() < deadline {
        let data = format!("after-{}", acknowledged.len());
        let (status, id) = a.publish("?topic=t", &data);
        if status == 200 {
            acknowledged.push((id, data));
        }
    }
    assert_eq!(acknowledged.len(), 30, "publishing works on the new log");
    for (name, stream) in [("A", &mut on_a), ("B", &mut on_b)] {
        assert_eq!(
            stream.next().event,
            "reset",
            "{name} hears of the lost log once"
        );
        for (id, data) in &acknowledged {
            let m = stream.next();
            assert_eq!((&m.last_event_id, &m.data), (id, data), "{name}");
        }
    }
}

#[test]
fn redis_restarted_empty_resets_instead_of_replaying_other_events() {
    let Some(mut redis) = RedisServer::start("redis_restarted_empty") else {
        return;
    };
    let a = hub(&redis, &[]);
    let (mut live, _) = a.subscribe("/events?topic=t");
    let mut last = String::new();
    for i in 0..3 {
        let (status, id) = a.publish("?topic=t", &format!("old {i}"));
        assert_eq!(status, 200);
        last = id;
    }
    assert_eq!(take(&mut live, 3).last().unwrap().0, last);

    redis.restart();
    // The live stream hears, once, that it may have missed events.
    let m = live.next();
    assert_eq!(
        (m.event.as_str(), m.data.as_str()),
        ("reset", last.as_str())
    );
    // Publishing works on the new log.
    until_status(&a, "/ready", 200, Duration::from_secs(10));
    let mut status = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while status != 200 && Instant::now() < deadline {
        status = a.publish("?topic=t", "new").0;
    }
    assert_eq!(status, 200);
    assert_eq!(live.next().data, "new", "one reset, then the new log");
    // A client coming back with an id from before gets reset, and no replay
    // of anything else.
    let mut client = a.connect();
    client.send(
        format!("GET /events?topic=t HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {last}\r\n\r\n")
            .as_bytes(),
    );
    let mut back = EventStream::from_client(client);
    assert_eq!(back.next().event, "seid");
    let m = back.next();
    assert_eq!(
        (m.event.as_str(), m.data.as_str()),
        ("reset", last.as_str())
    );
    assert_eq!(a.publish("?topic=t", "next").0, 200);
    assert_eq!(back.next().data, "next");
}

#[test]
fn a_private_update_published_on_one_hub_never_reaches_the_unauthorized_on_another() {
    let Some(redis) = RedisServer::start("a_private_update_across_hubs") else {
        return;
    };
    let args = ["--jwt-key", jwt::SECRET, "--anonymous"];
    let a = hub(&redis, &args);
    let b = hub(&redis, &args);
    let subscribe = |token: Option<String>| {
        let mut client = b.connect();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        client.send(
            format!("GET /.well-known/mercure?topic=%2Fbooks%2F%7Bid%7D HTTP/1.1\r\nHost: t\r\n{auth}\r\n")
                .as_bytes(),
        );
        EventStream::from_client(client)
    };
    let mut anonymous = subscribe(None);
    let mut other = subscribe(Some(jwt::dev(
        &json!({ "mercure": { "subscribe": ["/users/{id}"] } }),
    )));
    let mut entitled = subscribe(Some(jwt::dev(
        &json!({ "mercure": { "subscribe": ["/books/1"] } }),
    )));
    let publisher = jwt::dev(&json!({ "mercure": { "publish": ["*"] } }));
    for body in [
        "topic=%2Fbooks%2F1&data=secret&private=on",
        "topic=%2Fbooks%2F1&data=public",
    ] {
        let (head, _) = a.request(
            "POST",
            "/.well-known/mercure",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", &format!("Bearer {publisher}")),
            ],
            body.as_bytes(),
        );
        assert_eq!(head.status, 200);
    }
    assert_eq!(entitled.next().data, "secret");
    assert_eq!(entitled.next().data, "public");
    assert_eq!(anonymous.next().data, "public");
    assert_eq!(other.next().data, "public");
}

#[test]
fn a_retried_publish_with_an_idempotency_key_appears_once() {
    let Some(redis) = RedisServer::start("a_retried_publish") else {
        return;
    };
    let a = hub(&redis, &[]);
    let b = hub(&redis, &[]);
    let (mut on_b, _) = b.subscribe("/events?topic=t");
    let key = [("Idempotency-Key", "order-42")];
    let (first, id1) = a.request("POST", "/publish?topic=t", &key, b"once");
    let (again, id2) = b.request("POST", "/publish?topic=t", &key, b"once");
    assert_eq!((first.status, again.status), (200, 200));
    assert_eq!(id1, id2, "the retry answers the first attempt's id");
    assert_eq!(a.publish("?topic=t", "next").0, 200);
    assert_eq!(on_b.next().data, "once");
    assert_eq!(on_b.next().data, "next", "the retry was not stored again");
}

#[test]
fn idempotency_is_scoped_to_the_publisher_and_compares_whole_keys() {
    let Some(redis) = RedisServer::start("idempotency_is_scoped") else {
        return;
    };
    let a = hub(&redis, &["--jwt-key", jwt::SECRET, "--anonymous"]);
    let b = hub(&redis, &["--jwt-key", jwt::SECRET, "--anonymous"]);
    let token = |sub: &str, selector: &str| {
        mercure::bearer(&jwt::dev(
            &json!({ "sub": sub, "mercure": { "publish": [selector] } }),
        ))
    };
    let attacker = token("attacker", "/attacker/{id}");
    let victim = token("victim", "/victim/{id}");
    let mut watching = mercure::subscribe(&b, &["/victim/{id}"], &[]);
    // A publisher scoped elsewhere takes the victim's id first...
    let (head, _) = mercure::publish(
        &a,
        &[
            ("topic", "/attacker/1"),
            ("id", "order-42"),
            ("data", "first"),
        ],
        &[("Authorization", &attacker)],
    );
    assert_eq!(head.status, 200);
    // ...and the victim's own update with that id is still its own.
    let (head, id) = mercure::publish(
        &a,
        &[("topic", "/victim/1"), ("id", "order-42"), ("data", "mine")],
        &[("Authorization", &victim)],
    );
    assert_eq!((head.status, id.as_str()), (200, "order-42"));
    let m = watching.next();
    assert_eq!(
        (m.last_event_id.as_str(), m.data.as_str()),
        ("order-42", "mine")
    );
    // Two keys equal in their first 200 characters are two keys.
    let long = "k".repeat(200);
    for (tail, data) in [("a", "one"), ("b", "two")] {
        let key = format!("{long}{tail}");
        let (head, _) = mercure::publish(
            &a,
            &[("topic", "/victim/2"), ("data", data)],
            &[("Authorization", &victim), ("Idempotency-Key", &key)],
        );
        assert_eq!(head.status, 200);
        assert_eq!(watching.next().data, data, "{key} was taken for another");
    }
    // A Mercure retry without an id answers the first attempt's id, on any
    // hub, and is delivered once.
    let retry = [
        ("Authorization", victim.as_str()),
        ("Idempotency-Key", "retry-1"),
    ];
    let fields = [("topic", "/victim/3"), ("data", "retried")];
    let (_, first) = mercure::publish(&a, &fields, &retry);
    let (head, second) = mercure::publish(&b, &fields, &retry);
    assert_eq!(head.status, 200);
    assert!(first.starts_with("urn:uuid:"), "{first}");
    assert_eq!(first, second, "the retry answers the first attempt's id");
    let (_, after) = mercure::publish(
        &a,
        &[("topic", "/victim/4"), ("data", "next")],
        &[("Authorization", &victim)],
    );
    let m = watching.next();
    assert_eq!(
        (m.last_event_id.as_str(), m.data.as_str()),
        (first.as_str(), "retried")
    );
    let m = watching.next();
    assert_eq!(
        (m.last_event_id.as_str(), m.data.as_str()),
        (after.as_str(), "next"),
        "stored once"
    );
}

#[test]
fn a_direct_send_and_an_end_made_on_one_hub_reach_a_client_on_another() {
    let Some(redis) = RedisServer::start("a_direct_send_across_hubs") else {
        return;
    };
    let a = hub(&redis, &[]);
    let c = hub(&redis, &[]);
    let (mut on_c, seid) = c.subscribe("/events?topic=news");
    // Presence is written by a thread of C's: list until A sees the client.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (head, body) = a.request("GET", "/clients", &[], b"");
        assert_eq!(head.status, 200);
        let clients: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let listed = clients
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["seid"] == seid.as_str() && c["topics"] == json!(["news"]));
        if listed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A never listed C's client: {clients}"
        );
        std::thread::sleep(Duration::from_millis(20)); // polling a listing, not synchronising
    }
    let (head, _) = a.request(
        "POST",
        &format!("/clients/{seid}?event=dm"),
        &[],
        b"just for you",
    );
    assert_eq!(head.status, 200);
    let m = on_c.next();
    assert_eq!((m.event.as_str(), m.data.as_str()), ("dm", "just for you"));
    let (head, _) = a.request("DELETE", &format!("/clients/{seid}"), &[], b"");
    assert_eq!(head.status, 200);
    assert!(on_c.rest().is_empty(), "the stream ended cleanly");
    // No hub holds these: 404.
    let (head, _) = a.request("POST", "/clients/nobody-has-this", &[], b"x");
    assert_eq!(head.status, 404);
    let (head, _) = a.request("DELETE", "/clients/nobody-has-this", &[], b"");
    assert_eq!(head.status, 404);
}

#[test]
fn the_subscriptions_api_and_events_span_every_hub() {
    let Some(redis) = RedisServer::start("the_subscriptions_api_spans_hubs") else {
        return;
    };
    let args = ["--jwt-key", jwt::SECRET, "--subscriptions"];
    let a = hub(&redis, &args);
    let b = hub(&redis, &args);
    let api = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
    let watcher = jwt::dev(&json!({ "mercure": { "subscribe": [api] } }));
    let mut client = a.connect();
    client.send(
        format!(
            "GET /.well-known/mercure?topic=%2F.well-known%2Fmercure%2Fsubscriptions%7B%2Ftopic%7D%7B%2Fsubscriber%7D HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {watcher}\r\n\r\n"
        )
        .as_bytes(),
    );
    let mut events = EventStream::from_client(client);
    // The watcher's own subscription comes first (it is entitled to it).
    let own: serde_json::Value = serde_json::from_str(&events.next().data).unwrap();
    assert_eq!(own["topic"], api);

    // A subscriber on B: A's watcher hears of it, through the shared log.
    let member = jwt::dev(&json!({ "mercure": { "subscribe": ["*"], "payload": { "on": "b" } } }));
    let mut on_b = b.connect();
    on_b.send(
        format!("GET /.well-known/mercure?topic=%2Froom HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {member}\r\n\r\n")
            .as_bytes(),
    );
    let on_b = EventStream::from_client(on_b);
    let active: serde_json::Value = serde_json::from_str(&events.next().data).unwrap();
    assert_eq!(
        (active["topic"].clone(), active["active"].clone()),
        (json!("/room"), json!(true))
    );
    assert_eq!(active["payload"]["on"], "b");

    // A's subscriptions API lists B's subscriber (presence is written by a
    // thread of B's: list until it shows).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (head, body) = a.request(
            "GET",
            "/.well-known/mercure/subscriptions",
            &[("Authorization", &format!("Bearer {watcher}"))],
            b"",
        );
        assert_eq!(head.status, 200);
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let topics: Vec<&str> = list["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["topic"].as_str())
            .collect();
        if topics.contains(&"/room") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A never listed B's subscriber: {list}"
        );
        std::thread::sleep(Duration::from_millis(20)); // polling a listing, not synchronising
    }
    drop(on_b);
    let gone: serde_json::Value = serde_json::from_str(&events.next().data).unwrap();
    assert_eq!(
        (gone["id"].clone(), gone["active"].clone()),
        (active["id"].clone(), json!(false))
    );
}

#[test]
fn a_client_whose_departure_redis_refused_is_unlisted_at_the_next_beat() {
    let Some(redis) = RedisServer::start("departure_refused") else {
        return;
    };
    let a = hub(&redis, &[]);
    until_status(&a, "/ready", 200, DEADLINE);
    let (stream, seid) = a.subscribe("/events?topic=t");
    let listed = |seid: &str| list_all_clients(&a).0.iter().any(|s| s == seid);
    let started = Instant::now();
    while !listed(&seid) {
        assert!(started.elapsed() < DEADLINE, "{seid} never listed");
        std::thread::sleep(Duration::from_millis(50)); // polling a listing
    }
    // Redis refuses the hub's HDEL (as a failover or a lost connection
    // would lose it), and says so in its ACL log once it has.
    assert_eq!(redis.command("ACL SETUSER default -hdel"), "+OK");
    drop(stream);
    let started = Instant::now();
    while redis.command("ACL LOG") == "*0" {
        assert!(started.elapsed() < DEADLINE, "the hub never tried HDEL");
        std::thread::sleep(Duration::from_millis(50)); // polling Redis's log
    }
    assert_eq!(redis.command("ACL SETUSER default +hdel"), "+OK");
    assert!(listed(&seid), "the refused HDEL left {seid} listed");
    // The next beat (every 5 s) replaces the hub's hash with what it holds.
    let started = Instant::now();
    while listed(&seid) {
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "{seid} still listed {:?} after it left",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100)); // polling a listing
    }
}

#[test]
fn the_subscriptions_api_across_hubs_is_paged() {
    let Some(redis) = RedisServer::start("subscriptions_paged") else {
        return;
    };
    let args = ["--jwt-key", jwt::SECRET, "--subscriptions"];
    let hubs = [hub(&redis, &args), hub(&redis, &args)];
    let api = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
    let watcher = jwt::dev(&json!({ "mercure": { "subscribe": [api] } }));
    let member = jwt::dev(&json!({ "mercure": { "subscribe": ["*"] } }));
    let _members: Vec<EventStream> = (0..26)
        .map(|i| {
            mercure::subscribe(
                &hubs[i % 2],
                &[&format!("/room/{i}")],
                &[("Authorization", &mercure::bearer(&member))],
            )
        })
        .collect();
    // Presence is written by each hub's thread: page until all show.
    let started = Instant::now();
    loop {
        let pages = mercure::subscription_pages(
            &hubs[0],
            "/.well-known/mercure/subscriptions",
            &watcher,
            10,
        );
        let mut all: Vec<&String> = pages.iter().flatten().collect();
        let listed = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), listed, "a subscriber listed twice: {pages:?}");
        if listed == 26 {
            assert!(pages.len() >= 2, "one page for 26 with limit 10: {pages:?}");
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{listed} of 26 subscribers listed: {pages:?}"
        );
        std::thread::sleep(Duration::from_millis(50)); // polling a listing
    }
}
