//! The hub as a Mercure hub, over real sockets against the real binary,
//! with tokens signed by an independent JWT implementation
//! (`util/jwt.rs`): subscribe and publish, selectors, private updates,
//! every refusal and its reason, token sources, CSRF, `exp`, replay, the
//! shared topic space with the native routes, and the subscriptions API.

#[path = "util/hub_process.rs"]
mod hub_process;
#[path = "util/jwt.rs"]
mod jwt;
#[path = "util/mercure.rs"]
mod mercure;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::time::Instant;

use hub_process::HubProcess;
use mercure::{bearer, enc, publish, query, send_get, subscribe, HUB};
use serde_json::json;
use util::{EventStream, DEADLINE};

/// A refused request's status, body and `WWW-Authenticate`.
fn refused(hub: &HubProcess, target: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let (head, body) = send_get(hub, target, headers).read_response();
    let challenge = head
        .header("www-authenticate")
        .unwrap_or_default()
        .to_owned();
    (head.status, String::from_utf8(body).unwrap(), challenge)
}

/// A token allowed to publish anywhere.
fn publisher() -> String {
    jwt::dev(&json!({ "mercure": { "publish": ["*"] } }))
}

/// Publishes with the all-powerful publisher token; answers the id.
fn publish_ok(hub: &HubProcess, fields: &[(&str, &str)]) -> String {
    let auth = bearer(&publisher());
    let (head, id) = publish(hub, fields, &[("Authorization", &auth)]);
    assert_eq!(head.status, 200, "{fields:?}: {id}");
    id
}

fn dev_hub(extra: &[&str]) -> HubProcess {
    let mut args = vec!["--jwt-key", jwt::SECRET];
    args.extend_from_slice(extra);
    HubProcess::start_0x(&args)
}

fn metric(hub: &HubProcess, line_start: &str) -> u64 {
    let (_, body) = hub.request("GET", "/metrics", &[], b"");
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_public_update_reaches_an_anonymous_subscriber_with_its_fields() {
    let hub = dev_hub(&["--anonymous"]);
    let mut sub = subscribe(&hub, &["https://example.com/books/1"], &[]);
    // The reference hub's headers.
    assert!(sub.head.header("pragma").is_some());
    let id = publish_ok(
        &hub,
        &[
            ("topic", "https://example.com/books/1"),
            ("data", "{\"title\":\"a\"}\nsecond line"),
            ("type", "book"),
            ("retry", "1500"),
        ],
    );
    assert!(
        id.starts_with("urn:uuid:") && id.len() == "urn:uuid:".len() + 36,
        "{id}"
    );
    let m = sub.next();
    assert_eq!(
        (m.event.as_str(), m.data.as_str(), m.last_event_id.as_str()),
        ("book", "{\"title\":\"a\"}\nsecond line", id.as_str())
    );
    assert_eq!(sub.parser.retry(), Some(1500));
    // An id given by the publisher is honoured.
    let id = publish_ok(
        &hub,
        &[("topic", "https://example.com/books/1"), ("id", "my-id")],
    );
    assert_eq!(id, "my-id");
    assert_eq!(sub.next().last_event_id, "my-id");
}

#[test]
fn private_updates_reach_only_subscribers_entitled_to_one_of_their_topics() {
    let hub = dev_hub(&["--anonymous"]);
    let book = "https://example.com/books/1";
    let entitled =
        jwt::dev(&json!({ "mercure": { "subscribe": ["https://example.com/books/{id}"] } }));
    let other =
        jwt::dev(&json!({ "mercure": { "subscribe": ["https://example.com/users/{id}"] } }));
    let via_alternate =
        jwt::dev(&json!({ "mercure": { "subscribe": ["https://example.com/alt"] } }));
    let mut anonymous = subscribe(&hub, &[book], &[]);
    let mut wrong_claims = subscribe(&hub, &[book], &[("Authorization", &bearer(&other))]);
    let mut allowed = subscribe(&hub, &[book], &[("Authorization", &bearer(&entitled))]);
    let mut alternate = subscribe(&hub, &[book], &[("Authorization", &bearer(&via_alternate))]);
    let mut native =
        EventStream::from_client(send_get(&hub, &format!("/events?topic={}", enc(book)), &[]));
    assert_eq!(native.next().event, "seid");

    publish_ok(
        &hub,
        &[("topic", book), ("data", "secret"), ("private", "on")],
    );
    publish_ok(
        &hub,
        &[
            ("topic", book),
            ("topic", "https://example.com/alt"),
            ("data", "secret 2"),
            ("private", ""),
        ],
    );
    publish_ok(&hub, &[("topic", book), ("data", "public")]);

    assert_eq!(allowed.next().data, "secret");
    assert_eq!(allowed.next().data, "secret 2");
    assert_eq!(allowed.next().data, "public");
    // Entitled through the update's alternate topic only.
    assert_eq!(alternate.next().data, "secret 2");
    assert_eq!(alternate.next().data, "public");
    // Everyone else's next event is the public one: no private one came first.
    for stream in [&mut anonymous, &mut wrong_claims, &mut native] {
        assert_eq!(stream.next().data, "public");
    }
    assert_eq!(metric(&hub, "sseloop_private_deliveries_total "), 3);
}

#[test]
fn template_selectors_with_and_without_slashes_and_alternates_delivered_once() {
    let hub = dev_hub(&["--anonymous"]);
    let mut one_segment = subscribe(&hub, &["https://example.com/books/{id}"], &[]);
    let mut any_path = subscribe(&hub, &["https://example.com/{+path}"], &[]);
    let mut both = subscribe(
        &hub,
        &["https://example.com/a", "https://example.com/b", "*"],
        &[],
    );
    publish_ok(
        &hub,
        &[
            ("topic", "https://example.com/books/1/chapters/2"),
            ("data", "deep"),
        ],
    );
    publish_ok(
        &hub,
        &[("topic", "https://example.com/books/7"), ("data", "book 7")],
    );
    publish_ok(
        &hub,
        &[
            ("topic", "https://example.com/a"),
            ("topic", "https://example.com/b"),
            ("data", "twice?"),
        ],
    );
    publish_ok(
        &hub,
        &[("topic", "https://example.com/books/8"), ("data", "book 8")],
    );
    assert_eq!(one_segment.next().data, "book 7");
    assert_eq!(one_segment.next().data, "book 8");
    let seen: Vec<String> = (0..4).map(|_| any_path.next().data).collect();
    assert_eq!(seen, ["deep", "book 7", "twice?", "book 8"]);
    let seen: Vec<String> = (0..4).map(|_| both.next().data).collect();
    assert_eq!(
        seen,
        ["deep", "book 7", "twice?", "book 8"],
        "each update once"
    );
}

#[test]
fn every_refusal_says_why() {
    let hub = dev_hub(&[]);
    let topic = query(&["t"], &[]);
    let target = format!("{HUB}{topic}");
    let now = jwt::now();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("no token", String::new(), 401, "no token"),
        ("garbage", "Bearer not.a.jwt".into(), 401, "not a valid JWT"),
        (
            "expired",
            bearer(&jwt::dev(
                &json!({ "mercure": { "subscribe": ["*"] }, "exp": now - 10 }),
            )),
            401,
            "expired",
        ),
        (
            "not yet valid",
            bearer(&jwt::dev(
                &json!({ "mercure": { "subscribe": ["*"] }, "nbf": now + 600 }),
            )),
            401,
            "not valid yet",
        ),
        (
            "bad signature",
            bearer(&jwt::hs256(
                "another key",
                &json!({ "mercure": { "subscribe": ["*"] } }),
            )),
            401,
            "signature",
        ),
        (
            "alg none",
            bearer(&jwt::none(&json!({ "mercure": { "subscribe": ["*"] } }))),
            401,
            "algorithm",
        ),
        (
            "another algorithm",
            bearer(&jwt::rs256(
                include_str!("keys/rs256.key"),
                &json!({ "mercure": { "subscribe": ["*"] } }),
            )),
            401,
            "algorithm",
        ),
    ];
    for (what, auth, status, reason) in &cases {
        let headers: Vec<(&str, &str)> = if auth.is_empty() {
            vec![]
        } else {
            vec![("Authorization", auth.as_str())]
        };
        let (got, body, challenge) = refused(&hub, &target, &headers);
        assert_eq!(got, *status, "{what}: {body}");
        assert!(body.contains(reason), "{what}: {body}");
        // RFC 6750 §3 with RFC 9728's pointer: no token, a bare
        // challenge; a bad one, `invalid_token` and why.
        assert!(
            challenge.starts_with("Bearer resource_metadata=\"http://"),
            "{what}: {challenge}"
        );
        if *what == "no token" {
            assert!(!challenge.contains("error"), "{what}: {challenge}");
        } else {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{what}: {challenge}"
            );
            assert!(challenge.contains(reason), "{what}: {challenge}");
        }
    }
    // A good token that does not cover the topic it publishes to: 403.
    let narrow = jwt::dev(&json!({ "mercure": { "publish": ["https://example.com/own/{id}"] } }));
    let (head, body) = publish(
        &hub,
        &[
            ("topic", "https://example.com/own/1"),
            ("topic", "https://example.com/other"),
        ],
        &[("Authorization", &bearer(&narrow))],
    );
    assert_eq!(head.status, 403, "{body}");
    assert!(body.contains("https://example.com/other"), "{body}");
    assert!(head
        .header("www-authenticate")
        .unwrap()
        .contains("insufficient_scope"));
    // Publishing needs a token at all.
    let (head, body) = publish(&hub, &[("topic", "t")], &[]);
    assert_eq!(
        (head.status, body.contains("no token")),
        (401, true),
        "{body}"
    );

    for (label, count) in [
        ("no_token", 2),
        ("malformed", 1),
        ("expired", 1),
        ("not_yet_valid", 1),
        ("bad_signature", 1),
        ("wrong_algorithm", 2),
        ("topic_not_covered", 1),
    ] {
        let line = format!("sseloop_auth_refusals_total{{reason=\"{label}\"}} ");
        assert_eq!(metric(&hub, &line), count, "{label}");
    }
}

#[test]
fn tokens_from_the_query_and_the_cookie_and_csrf_for_cookie_publishes() {
    let hub = dev_hub(&["--publish-origin", "https://app.example"]);
    let subscriber = jwt::dev(&json!({ "mercure": { "subscribe": ["*"] } }));
    let mut by_query = EventStream::from_client(send_get(
        &hub,
        &format!("{HUB}{}", query(&["t"], &[("authorization", &subscriber)])),
        &[],
    ));
    let cookie = format!("other=1; mercureAuthorization={subscriber}");
    let mut by_cookie = subscribe(&hub, &["t"], &[("Cookie", &cookie)]);

    let publisher_cookie = format!("mercureAuthorization={}", publisher());
    let fields = [("topic", "t"), ("data", "from a page"), ("private", "on")];
    let (head, body) = publish(&hub, &fields, &[("Cookie", &publisher_cookie)]);
    assert_eq!(head.status, 403, "no Origin: {body}");
    assert!(body.contains("Origin"), "{body}");
    let evil = [
        ("Cookie", publisher_cookie.as_str()),
        ("Origin", "https://evil.example"),
    ];
    assert_eq!(publish(&hub, &fields, &evil).0.status, 403);
    let good = [
        ("Cookie", publisher_cookie.as_str()),
        ("Origin", "https://app.example"),
    ];
    assert_eq!(publish(&hub, &fields, &good).0.status, 200);
    let referer = [
        ("Cookie", publisher_cookie.as_str()),
        ("Referer", "https://app.example/page"),
    ];
    assert_eq!(publish(&hub, &fields, &referer).0.status, 200);
    for stream in [&mut by_query, &mut by_cookie] {
        assert_eq!(stream.next().data, "from a page");
        assert_eq!(stream.next().data, "from a page");
    }
    assert_eq!(
        metric(&hub, "sseloop_auth_refusals_total{reason=\"csrf\"} "),
        2
    );
}

#[test]
fn a_stream_closes_when_its_token_expires() {
    let hub = dev_hub(&[]);
    let exp = jwt::now() + 2;
    let token = jwt::dev(&json!({ "mercure": { "subscribe": ["*"] }, "exp": exp }));
    let started = Instant::now();
    let mut sub = subscribe(&hub, &["t"], &[("Authorization", &bearer(&token))]);
    publish_ok(&hub, &[("topic", "t"), ("data", "before")]);
    assert_eq!(sub.next().data, "before");
    // The stream ends cleanly (its last chunk) once `exp` has passed.
    assert!(sub.rest().is_empty());
    assert!(jwt::now() >= exp, "closed before exp");
    assert!(started.elapsed() < DEADLINE);
}

#[test]
fn replay_by_header_query_and_earliest() {
    let hub = dev_hub(&["--anonymous"]);
    let first = publish_ok(&hub, &[("topic", "t"), ("data", "1")]);
    publish_ok(&hub, &[("topic", "other"), ("data", "not yours")]);
    publish_ok(&hub, &[("topic", "t"), ("data", "2")]);
    let last = publish_ok(&hub, &[("topic", "t"), ("data", "3"), ("private", "on")]);

    let mut by_header = subscribe(&hub, &["t"], &[("Last-Event-ID", &first)]);
    // draft-07 §Re-Connection: the id of the event before the first one
    // sent, the one asked for while kept (it was the newest id kept).
    assert_eq!(by_header.head.header("last-event-id"), Some(first.as_str()));
    assert_ne!(first, last);
    let target = format!("{HUB}{}", query(&["t"], &[("lastEventID", &first)]));
    let mut by_query = EventStream::from_client(send_get(&hub, &target, &[]));
    let target = format!("{HUB}{}", query(&["t"], &[("lastEventID", "earliest")]));
    let mut earliest = EventStream::from_client(send_get(&hub, &target, &[]));
    publish_ok(&hub, &[("topic", "t"), ("data", "live")]);
    // The private update is not replayed to anonymous subscribers either.
    assert_eq!(by_header.next().data, "2");
    assert_eq!(by_header.next().data, "live");
    assert_eq!(by_query.next().data, "2");
    assert_eq!(by_query.next().data, "live");
    let seen: Vec<String> = (0..3).map(|_| earliest.next().data).collect();
    assert_eq!(seen, ["1", "2", "live"]);

    // An id the hub does not know: a reset event with the id as sent.
    let mut lost = subscribe(&hub, &["t"], &[("Last-Event-ID", "urn:uuid:gone")]);
    let m = lost.next();
    assert_eq!(
        (m.event.as_str(), m.data.as_str()),
        ("reset", "urn:uuid:gone")
    );
}

#[test]
fn native_and_mercure_share_one_topic_space() {
    let hub = dev_hub(&["--anonymous"]);
    let (mut native, _) = hub.subscribe("/events?topic=news");
    let mut mercure = subscribe(&hub, &["{+any}"], &[]);
    // A native publish (with a JWT that covers the topic) reaches both.
    let token = jwt::dev(&json!({ "mercure": { "publish": ["news"] } }));
    let (head, _) = hub.request(
        "POST",
        "/publish?topic=news",
        &[("Authorization", &bearer(&token))],
        b"from native",
    );
    assert_eq!(head.status, 200);
    publish_ok(&hub, &[("topic", "news"), ("data", "from mercure")]);
    assert_eq!(native.next().data, "from native");
    assert_eq!(native.next().data, "from mercure");
    assert_eq!(mercure.next().data, "from native");
    assert_eq!(mercure.next().data, "from mercure");
    // The native routes take the JWT rule too: /clients needs publish "*".
    let (head, _) = hub.request(
        "GET",
        "/clients",
        &[("Authorization", &bearer(&token))],
        b"",
    );
    assert_eq!(head.status, 403);
    let (head, body) = hub.request(
        "GET",
        "/clients",
        &[("Authorization", &bearer(&publisher()))],
        b"",
    );
    assert_eq!(head.status, 200);
    let clients: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(clients.as_array().unwrap().len(), 2);
}

#[test]
fn rs256_and_es256_with_pem_public_keys() {
    for (alg, public, sign) in [
        (
            "RS256",
            include_str!("keys/rs256.pub"),
            jwt::rs256 as fn(&str, &serde_json::Value) -> String,
        ),
        ("ES256", include_str!("keys/es256.pub"), jwt::es256),
    ] {
        let private = if alg == "RS256" {
            include_str!("keys/rs256.key")
        } else {
            include_str!("keys/es256.key")
        };
        let hub =
            HubProcess::start_0x_with_env(&["--jwt-alg", alg], &[("SSELOOP_JWT_KEY", public)]);
        let sub_token = sign(private, &json!({ "mercure": { "subscribe": ["*"] } }));
        let mut sub = subscribe(&hub, &["t"], &[("Authorization", &bearer(&sub_token))]);
        let pub_token = sign(private, &json!({ "mercure": { "publish": ["t"] } }));
        let (head, _) = publish(
            &hub,
            &[("topic", "t"), ("data", alg), ("private", "on")],
            &[("Authorization", &bearer(&pub_token))],
        );
        assert_eq!(head.status, 200, "{alg}");
        assert_eq!(sub.next().data, alg);
        // An HS256 token is another algorithm here.
        let (status, body, _) = refused(
            &hub,
            &format!("{HUB}?topic=t"),
            &[("Authorization", &bearer(&publisher()))],
        );
        assert_eq!(status, 401, "{alg}: {body}");
    }
}

#[test]
fn bad_publishes_are_400_and_reach_no_one() {
    let hub = dev_hub(&["--anonymous"]);
    let mut sub = subscribe(&hub, &["t"], &[]);
    let auth = bearer(&publisher());
    for fields in [
        &[("data", "no topic")][..],
        &[("topic", "t"), ("retry", "soon")],
        &[("topic", "t"), ("id", "a\nb")],
        &[("topic", "t"), ("type", "a\rb")],
    ] {
        let (head, body) = publish(&hub, fields, &[("Authorization", &auth)]);
        assert_eq!(head.status, 400, "{fields:?}: {body}");
    }
    let (head, _) = hub.request("POST", HUB, &[("Authorization", &auth)], b"topic=t&data=x");
    assert_eq!(head.status, 400, "not a form");
    let (head, _) = hub.request(
        "POST",
        HUB,
        &[
            ("Authorization", &auth),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ],
        b"topic=t&data=%zz",
    );
    assert_eq!(head.status, 400, "bad escape");
    let (head, _) = hub.request(
        "POST",
        HUB,
        &[
            ("Authorization", &auth),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            ),
        ],
        b"topic=t&data=a+b%2Bc",
    );
    assert_eq!(head.status, 200, "with a charset");
    assert_eq!(sub.next().data, "a b+c", "nothing refused came first");
    // No topic to subscribe to: 400.
    let (status, _, _) = refused(&hub, HUB, &[]);
    assert_eq!(status, 400);
}

#[test]
fn subscriptions_api_and_events() {
    let hub = dev_hub(&["--subscriptions"]);
    let watcher = jwt::dev(&json!({ "mercure": { "subscribe": [
        "/.well-known/mercure/subscriptions{/topic}{/subscriber}"
    ] } }));
    let mut events = subscribe(
        &hub,
        &["/.well-known/mercure/subscriptions{/topic}{/subscriber}"],
        &[("Authorization", &bearer(&watcher))],
    );
    // The watcher is a subscriber too, entitled to see its own subscription.
    let own: serde_json::Value = serde_json::from_str(&events.next().data).unwrap();
    assert_eq!(
        own["topic"],
        "/.well-known/mercure/subscriptions{/topic}{/subscriber}"
    );
    let subscriber =
        jwt::dev(&json!({ "mercure": { "subscribe": ["*"], "payload": { "user": 7 } } }));
    let member = subscribe(
        &hub,
        &["https://example.com/room"],
        &[("Authorization", &bearer(&subscriber))],
    );
    let active: serde_json::Value = serde_json::from_str(&events.next().data).unwrap();
    assert_eq!(active["type"], "Subscription");
    assert_eq!(active["topic"], "https://example.com/room");
    assert_eq!(active["active"], true);
    assert_eq!(active["payload"]["user"], 7);

    let (head, body) = hub.request(
        "GET",
        "/.well-known/mercure/subscriptions",
        &[("Authorization", &bearer(&watcher))],
        b"",
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("application/ld+json"));
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["type"], "Subscriptions");
    let topics: Vec<&str> = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["topic"].as_str().unwrap())
        .collect();
    assert!(topics.contains(&"https://example.com/room"), "{list}");
    // Without a token that selects the API: refused.
    let (head, _) = hub.request("GET", "/.well-known/mercure/subscriptions", &[], b"");
    assert_eq!(head.status, 401);

    drop(member);
    let gone: serde_json::Value = serde_json::from_str(&events.next().data).unwrap();
    assert_eq!(
        (gone["active"].clone(), gone["id"].clone()),
        (json!(false), active["id"].clone())
    );
}

#[test]
fn the_subscriptions_api_is_paged_by_subscriber() {
    let hub = dev_hub(&["--subscriptions"]);
    let api = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
    let watcher = jwt::dev(&json!({ "mercure": { "subscribe": [api] } }));
    let member = jwt::dev(&json!({ "mercure": { "subscribe": ["*"] } }));
    let _members: Vec<EventStream> = (0..25)
        .map(|i| {
            subscribe(
                &hub,
                &[&format!("/room/{i}")],
                &[("Authorization", &bearer(&member))],
            )
        })
        .collect();
    let pages =
        mercure::subscription_pages(&hub, "/.well-known/mercure/subscriptions", &watcher, 10);
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5], "pages of at most 10 subscribers");
    let mut all: Vec<&String> = pages.iter().flatten().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 25, "each subscriber once");
    // A limit out of range is refused, saying which are allowed.
    let (head, body) = hub.request(
        "GET",
        "/.well-known/mercure/subscriptions?limit=0",
        &[("Authorization", &bearer(&watcher))],
        b"",
    );
    assert_eq!(head.status, 400);
    assert!(String::from_utf8_lossy(&body).contains("limit"));
}
