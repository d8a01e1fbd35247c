//! The publish property, shared by the `publish` fuzz target and the corpus
//! replay test: arbitrary publish requests (query, body, chunked or not) go
//! through the hub's own request handling on a real socket. None panics;
//! a valid one is accepted and reaches a subscriber as exactly the published
//! event; an invalid one gets its 4xx and reaches no one.
//!
//! The including crate must have the tests' `util` module at its root.

use std::sync::{Mutex, OnceLock};

use arbitrary::{Arbitrary, Unstructured};

use crate::util::{Client, EventStream, TestServer};

/// The body limit the hub runs with here, small so the fuzzer reaches it.
const MAX_BODY: usize = 512;

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// No topic: a broadcast.
    Everyone,
    /// The subscriber's topic.
    Subscribed,
    /// A topic nobody here listens to.
    Other,
}

#[derive(Arbitrary, Clone, Debug)]
pub enum Retry {
    Number(u64),
    Text(String),
}

#[derive(Arbitrary, Clone, Debug)]
pub struct PublishInput {
    pub topic: Topic,
    pub event: Option<String>,
    pub id: Option<String>,
    pub retry: Option<Retry>,
    pub body: Vec<u8>,
    /// Chunk sizes for a chunked body; `None` sends `Content-Length`.
    pub chunks: Option<Vec<u8>>,
}

struct Harness {
    _server: TestServer,
    subscriber: EventStream,
    publisher: Client,
    addr: std::net::SocketAddr,
    sentinels: u64,
}

fn harness() -> &'static Mutex<Harness> {
    static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let server = TestServer::start(|builder| {
            let config = sseloop_hub::Config {
                max_body: MAX_BODY,
                ..sseloop_hub::Config::default()
            };
            builder
                .max_body_bytes(MAX_BODY)
                .auto_generate_id(false)
                .build(sseloop_hub::Hub::new(config, 1, None).expect("no keys to refuse"))
        });
        let mut client = server.connect();
        client.get("/events?topic=t");
        let mut subscriber = EventStream::from_client(client);
        assert_eq!(subscriber.next().event, "seid");
        let publisher = server.connect();
        Mutex::new(Harness {
            addr: server.addr,
            _server: server,
            subscriber,
            publisher,
            sentinels: 0,
        })
    })
}

/// Entry point for raw fuzzer bytes.
/// Decodes `data` as the fuzzer does and checks the property; answers
/// whether `data` decoded (an input that does not checks nothing).
pub fn check_bytes(data: &[u8]) -> bool {
    let Ok(inputs) = Vec::<PublishInput>::arbitrary_take_rest(Unstructured::new(data)) else {
        return false;
    };
    for input in inputs.iter().take(8) {
        check(input);
    }
    true
}

fn percent_encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// The status the hub must answer `input` with.
fn expected_status(input: &PublishInput) -> u16 {
    let breaks = |s: &String| s.contains('\r') || s.contains('\n');
    if input.body.len() > MAX_BODY {
        413
    } else if std::str::from_utf8(&input.body).is_err()
        || input.event.as_ref().is_some_and(breaks)
        || input
            .id
            .as_ref()
            .is_some_and(|id| breaks(id) || id.contains('\0'))
        || matches!(&input.retry, Some(Retry::Text(t)) if t.parse::<u64>().is_err())
    {
        400
    } else {
        200
    }
}

fn request_bytes(input: &PublishInput) -> Vec<u8> {
    let mut query = Vec::new();
    match input.topic {
        Topic::Everyone => {}
        Topic::Subscribed => query.push("topic=t".to_owned()),
        Topic::Other => query.push("topic=o".to_owned()),
    }
    if let Some(event) = &input.event {
        query.push(format!("event={}", percent_encode(event)));
    }
    if let Some(id) = &input.id {
        query.push(format!("id={}", percent_encode(id)));
    }
    match &input.retry {
        Some(Retry::Number(n)) => query.push(format!("retry={n}")),
        Some(Retry::Text(t)) => query.push(format!("retry={}", percent_encode(t))),
        None => {}
    }
    let mut out = format!(
        "POST /publish?{} HTTP/1.1\r\nHost: fuzz\r\n",
        query.join("&")
    )
    .into_bytes();
    match &input.chunks {
        None => {
            out.extend_from_slice(
                format!("Content-Length: {}\r\n\r\n", input.body.len()).as_bytes(),
            );
            out.extend_from_slice(&input.body);
        }
        Some(sizes) => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            let mut rest = input.body.as_slice();
            let mut sizes = sizes.iter().cycle();
            while !rest.is_empty() {
                let n = usize::from(sizes.next().copied().unwrap_or(255)).clamp(1, rest.len());
                out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                out.extend_from_slice(&rest[..n]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    out
}

pub fn check(input: &PublishInput) {
    let mut guard = harness().lock().unwrap_or_else(|e| e.into_inner());
    let h = &mut *guard;
    h.publisher.send(&request_bytes(input));
    let (head, body) = h.publisher.read_response();
    let want = expected_status(input);
    assert_eq!(
        head.status,
        want,
        "{input:?}: {}",
        String::from_utf8_lossy(&body)
    );
    if head.header("connection") == Some("close") {
        h.publisher = Client::connect(h.addr);
    }

    // A sentinel to everyone marks the end of what this input may deliver.
    h.sentinels += 1;
    let sentinel = format!("sentinel {}", h.sentinels);
    h.publisher.send(
        format!(
            "POST /publish?event=sentinel HTTP/1.1\r\nHost: fuzz\r\nContent-Length: {}\r\n\r\n{sentinel}",
            sentinel.len()
        )
        .as_bytes(),
    );
    assert_eq!(h.publisher.read_response().0.status, 200);

    // The marker is known by its name and its count together, which an
    // input cannot predict (an input may well name its own event "sentinel").
    let mut delivered = Vec::new();
    loop {
        let m = h.subscriber.next();
        if m.event == "sentinel" && m.data == sentinel {
            break;
        }
        delivered.push(m);
    }
    let reaches_subscriber = want == 200 && input.topic != Topic::Other;
    if !reaches_subscriber {
        assert!(delivered.is_empty(), "{input:?} delivered {delivered:?}");
        return;
    }
    assert_eq!(delivered.len(), 1, "{input:?} delivered {delivered:?}");
    let m = &delivered[0];
    let data = std::str::from_utf8(&input.body).unwrap();
    let name = input
        .event
        .clone()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "message".into());
    assert_eq!(m.data, crate::frames::normalise(data));
    assert_eq!(m.event, name);
    assert_eq!(
        m.last_event_id,
        String::from_utf8(body).unwrap(),
        "the id the hub answered"
    );
    if let Some(id) = &input.id {
        assert_eq!(&m.last_event_id, id);
    }
    match &input.retry {
        Some(Retry::Number(n)) => assert_eq!(h.subscriber.parser.retry(), Some(*n)),
        Some(Retry::Text(t)) => assert_eq!(h.subscriber.parser.retry(), t.parse().ok()),
        None => {}
    }
}
