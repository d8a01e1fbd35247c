//! The hub's routes: subscribe, publish, direct sends, ending a client,
//! replay on reconnect, auth, CORS, health, metrics and the demo page. All
//! stream work goes through the library; this is routing and policy.

use std::net::IpAddr;

use sseloop::auth::bearer_matches;
use sseloop::{Event, Frame, Handler, Reply, Request, Response, SendError, StreamError};

use crate::config::Config;
use crate::history::{History, Replay};

const DEMO_PAGE: &str = include_str!("demo.html");

/// What `/events` answers to, for `Allow`.
const EVENTS_METHODS: &str = "GET, HEAD, OPTIONS";

/// The hub's state between requests.
pub struct Hub {
    config: Config,
    history: History,
    /// The next id the hub assigns. It starts at the start time in
    /// microseconds, so ids also increase across restarts and an id from an
    /// earlier run is never mistaken for one of this run.
    next_id: u64,
    retry_frame: Option<Frame>,
    published: u64,
    replayed: u64,
    resets: u64,
}

impl Hub {
    /// The hub for `config`; the ids it assigns start at `first_id`.
    pub fn new(config: Config, first_id: u64) -> Self {
        let retry_frame = config.retry_ms.map(|ms| {
            Event::default()
                .retry(ms)
                .encode()
                .expect("retry-only frames are valid")
        });
        Hub {
            history: History::new(config.history),
            config,
            next_id: first_id,
            retry_frame,
            published: 0,
            replayed: 0,
            resets: 0,
        }
    }

    fn subscribe(&mut self, req: &Request, reply: &mut Reply<'_>) {
        if let Some(origin) = &self.config.cors_origin {
            let _ = reply.header("Access-Control-Allow-Origin", origin);
        }
        match reply.stream() {
            Ok(_) => {}
            // Answered with the stream's head; there is nothing to send on.
            Err(StreamError::HeadRequest) => return,
            Err(StreamError::TooManyClients) => {
                let _ = reply
                    .respond(Response::text(503, "too many clients\n").header("Retry-After", "5"));
                return;
            }
            Err(e) => {
                let _ = reply.respond(Response::text(500, format!("{e}\n")));
                return;
            }
        }
        if let Some(frame) = &self.retry_frame {
            let _ = reply.send_frame(frame);
        }
        let seid = reply.seid().unwrap_or_default().to_owned();
        // No id: the seid event must not move the client's last event id.
        let _ = reply.send(Event::new(seid).event("seid"));
        let topics: Vec<&str> = req.query_all("topic").filter(|t| !t.is_empty()).collect();
        for topic in &topics {
            let _ = reply.subscribe(topic);
        }
        let last_id = req
            .header("Last-Event-ID")
            .or_else(|| req.query("lastEventId"))
            .filter(|id| !id.is_empty());
        if let Some(last_id) = last_id {
            match self.history.after(last_id, &topics) {
                Replay::Missed(frames) => {
                    for frame in frames {
                        self.replayed += 1;
                        let _ = reply.send_frame(frame);
                    }
                }
                Replay::Unknown => {
                    // Say so rather than let the client silently miss events.
                    self.resets += 1;
                    let _ = reply.send(Event::new(last_id).event("reset"));
                }
            }
        }
    }

    /// `OPTIONS /events`: the methods it takes, and with `--cors-origin`
    /// the answer to a browser's CORS preflight.
    fn options(&self, reply: &mut Reply<'_>) {
        let answer = crate::cors::preflight(self.config.cors_origin.as_deref(), EVENTS_METHODS);
        let _ = reply.respond(answer);
    }

    /// `Ok` when the request may publish or manage clients.
    fn authorize(&self, req: &Request) -> Result<(), Response> {
        match &self.config.publish_token {
            Some(token) => {
                if bearer_matches(req.header_bytes("Authorization"), token.as_bytes()) {
                    Ok(())
                } else {
                    Err(Response::text(401, "a valid bearer token is required\n")
                        .header("WWW-Authenticate", "Bearer"))
                }
            }
            None if is_loopback(req.peer().ip()) => Ok(()),
            None => Err(Response::text(
                403,
                "publishing is open to loopback peers only; set --publish-token\n",
            )),
        }
    }

    /// The event a publish or direct send describes: the body as data, the
    /// query's `event`, `id` and `retry`.
    fn event_from(req: &Request, id: Option<String>) -> Result<Event, Response> {
        let data = std::str::from_utf8(req.body())
            .map_err(|_| Response::text(400, "the body must be UTF-8\n"))?;
        let mut event = Event::new(data);
        if let Some(name) = req.query("event") {
            event = event.event(name);
        }
        if let Some(id) = id {
            event = event.id(id);
        }
        if let Some(retry) = req.query("retry") {
            let ms = retry
                .parse()
                .map_err(|_| Response::text(400, "retry must be a number of milliseconds\n"))?;
            event = event.retry(ms);
        }
        // Not validated here: encoding refuses a bad name or id, and both
        // callers answer that refusal with a 400.
        Ok(event)
    }

    fn publish(&mut self, req: &Request, reply: &mut Reply<'_>) -> Result<Response, Response> {
        self.authorize(req)?;
        let id = match req.query("id") {
            Some(id) => id.to_owned(),
            None => self.next_id.to_string(),
        };
        let event = Self::event_from(req, Some(id.clone()))?;
        let frame = event
            .encode()
            .map_err(|e| Response::text(400, format!("{e}\n")))?;
        if req.query("id").is_none() {
            self.next_id += 1;
        }
        let topic = req.query("topic").filter(|t| !t.is_empty());
        match topic {
            Some(topic) => reply.publish_frame(topic, &frame),
            None => reply.broadcast_frame(&frame),
        };
        self.history.push(id.clone(), topic, frame);
        self.published += 1;
        Ok(Response::text(200, id))
    }

    fn client(
        &mut self,
        req: &Request,
        reply: &mut Reply<'_>,
        seid: &str,
    ) -> Result<Response, Response> {
        self.authorize(req)?;
        let result = match req.method() {
            "POST" => {
                let event = Self::event_from(req, req.query("id").map(str::to_owned))?;
                reply.send_to(seid, event)
            }
            "DELETE" => reply.end_seid(seid),
            _ => return Err(allow("POST, DELETE")),
        };
        match result {
            Ok(()) => Ok(Response::text(200, "ok\n")),
            Err(SendError::UnknownSeid) => {
                Err(Response::text(404, "no live client has this seid\n"))
            }
            Err(e) => Err(Response::text(400, format!("{e}\n"))),
        }
    }

    fn clients(&self, req: &Request, reply: &Reply<'_>) -> Result<Response, Response> {
        self.authorize(req)?;
        let mut seids: Vec<&str> = reply.clients().collect();
        seids.sort_unstable();
        let clients = seids.iter().map(|seid| (*seid, reply.topics_of(seid)));
        let json = crate::json::clients(clients);
        Ok(Response::new(200)
            .header("Content-Type", "application/json")
            .body(json))
    }

    fn metrics(&self, reply: &Reply<'_>) -> Response {
        let counters = crate::metrics::HubCounters {
            published: self.published,
            replayed: self.replayed,
            resets: self.resets,
            history: self.history.len() as u64,
        };
        crate::metrics::render(&reply.stats(), &counters)
    }
}

impl Handler for Hub {
    fn on_request(&mut self, req: &Request, reply: &mut Reply<'_>) {
        // Every GET route takes HEAD too: the library answers a HEAD with
        // the head of what the handler sends, stream or plain, and no body.
        let method = match req.method() {
            "HEAD" => "GET",
            method => method,
        };
        let answer = match (method, req.path()) {
            ("GET", "/") => Ok(Response::new(200)
                .header("Content-Type", "text/html; charset=utf-8")
                .body(DEMO_PAGE)),
            ("GET", "/events") => return self.subscribe(req, reply),
            ("OPTIONS", "/events") => return self.options(reply),
            (_, "/events") => Err(allow(EVENTS_METHODS)),
            ("POST", "/publish") => self.publish(req, reply),
            (_, "/publish") => Err(allow("POST")),
            ("GET", "/clients") => self.clients(req, reply),
            (_, "/clients") => Err(allow("GET, HEAD")),
            (_, path) if path.starts_with("/clients/") => {
                match decode_segment(&path["/clients/".len()..]) {
                    Some(seid) => self.client(req, reply, &seid),
                    None => Err(Response::text(400, "bad seid in path\n")),
                }
            }
            ("GET", "/health") => Ok(Response::text(200, "ok\n")),
            ("GET", "/metrics") => Ok(self.metrics(reply)),
            (_, "/" | "/health" | "/metrics") => Err(allow("GET, HEAD")),
            _ => Err(Response::text(404, "not found\n")),
        };
        let _ = reply.respond(answer.unwrap_or_else(|e| e));
    }
}

fn allow(methods: &str) -> Response {
    Response::text(405, "method not allowed\n").header("Allow", methods)
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Percent-decodes one path segment (`+` stays `+`).
fn decode_segment(segment: &str) -> Option<String> {
    if segment.is_empty() || segment.contains('/') {
        return None;
    }
    sseloop::http::percent_decode(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_peers_publish_without_a_token() {
        // The 403 branch of `authorize`: tests may only connect from
        // 127.0.0.0/8, so the peer check itself is tested here.
        for ip in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "192.168.1.2", "::ffff:10.0.0.1", "2001:db8::1"] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn path_segments() {
        assert_eq!(decode_segment("%40user-1").as_deref(), Some("@user-1"));
        assert_eq!(decode_segment("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_segment("a/b"), None);
        assert_eq!(decode_segment(""), None);
    }
}
