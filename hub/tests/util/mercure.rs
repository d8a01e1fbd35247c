//! A Mercure client's requests, for the hub's integration tests: topics
//! and forms percent-encoded, a subscribe, a form publish.
#![allow(dead_code)] // each test crate uses part of it

use crate::hub_process::HubProcess;
use crate::util::{Client, EventStream, Head};

/// Where the hub is.
pub const HUB: &str = "/.well-known/mercure";
/// A form body's media type.
pub const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// Percent-encodes everything but unreserved characters.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `?topic=a&topic=b` (and any `extra` pairs), encoded.
pub fn query(topics: &[&str], extra: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = topics
        .iter()
        .map(|t| format!("topic={}", enc(t)))
        .chain(extra.iter().map(|(k, v)| format!("{k}={}", enc(v))))
        .collect();
    format!("?{}", pairs.join("&"))
}

/// Sends `GET target` with `headers` on a new connection.
pub fn send_get(hub: &HubProcess, target: &str, headers: &[(&str, &str)]) -> Client {
    let mut client = hub.connect();
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: t\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    client.send(head.as_bytes());
    client
}

/// A Mercure subscriber's stream on `topics`, with request `headers`.
pub fn subscribe(hub: &HubProcess, topics: &[&str], headers: &[(&str, &str)]) -> EventStream {
    EventStream::from_client(send_get(
        hub,
        &format!("{HUB}{}", query(topics, &[])),
        headers,
    ))
}

/// Publishes the form `fields` with `headers`; answers status and body.
pub fn publish(
    hub: &HubProcess,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (Head, String) {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    let mut all = vec![FORM];
    all.extend_from_slice(headers);
    let (head, body) = hub.request("POST", HUB, &all, body.join("&").as_bytes());
    (head, String::from_utf8(body).unwrap())
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every page of the subscriptions API at `path`, `limit` at a time,
/// following `Link: …; rel="next"`: each page's subscribers (one entry per
/// subscription).
pub fn subscription_pages(
    hub: &HubProcess,
    path: &str,
    token: &str,
    limit: usize,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut target = format!("{path}?limit={limit}");
    loop {
        let (head, body) = hub.request("GET", &target, &[("Authorization", &bearer(token))], b"");
        assert_eq!(head.status, 200, "{}", String::from_utf8_lossy(&body));
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        pages.push(
            doc["subscriptions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["subscriber"].as_str().unwrap().to_owned())
                .collect(),
        );
        match head.next_page() {
            Some(next) => target = next,
            None => return pages,
        }
    }
}
