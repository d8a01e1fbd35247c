//! Which request goes where, and the native routes (`/events`,
//! `/publish`, `/clients…`): thin adapters over what [`Hub`] shares with
//! the Mercure routes ([`crate::mercure`]).

use sseloop::auth::bearer_matches;
use sseloop::{CloseReason, Event, Handler, Reply, Request, Response, SendError, Streams};

use crate::auth::Refusal;
use crate::hub::{
    allow, last_event_id, selector_refused, too_many_selectors, Answer, Hub, Routed, STATIC_TOKEN,
};
use crate::inbox::Remote;
use crate::page::Page;
use crate::paths::decode_segment;
use crate::subscribers::Audience;
use crate::update::{event_of, Entry};

const DEMO_PAGE: &str = include_str!("demo.html");
/// The event-stream reader the demo page and the debugger share.
const STREAM_READER: &str = include_str!("sse.js");

/// What `/events` answers to, for `Allow`.
const EVENTS_METHODS: &str = "GET, HEAD, OPTIONS";

impl Hub {
    fn subscribe(&mut self, req: &Request, reply: &mut Reply<'_>) {
        self.cors.apply(req, reply);
        if let Err(refused) = self.admit_stream(req.peer()) {
            let _ = reply.respond(refused);
            return;
        }
        let topics: Vec<&str> = req.query_all("topic").filter(|t| !t.is_empty()).collect();
        if topics.len() > self.config.max_selectors {
            let _ = reply.respond(too_many_selectors(topics.len(), self.config.max_selectors));
            return;
        }
        let audience = match Audience::native(&mut self.groups.store, topics) {
            Ok(audience) => audience,
            Err(e) => {
                let _ = reply.respond(selector_refused(&e));
                return;
            }
        };
        let last_id = last_event_id(req);
        let Some(seid) = self.open(reply, None) else {
            self.groups.discard(audience);
            return;
        };
        // No id: the seid event must not move the client's last event id.
        let _ = reply.send(Event::new(seid.as_str()).event("seid"));
        self.attach(reply, req.peer(), &seid, audience, last_id);
    }

    /// Who the request publishes as, when it may publish to `topics`
    /// (none: a broadcast) or manage clients (`topics` is `["*"]`): the
    /// `--publish-token`, or a JWT covering them when a publisher key is
    /// set; without either, loopback peers only.
    fn authorize(&mut self, req: &Request, topics: &[&str]) -> Result<String, Response> {
        if !self.keys.verifies_publishers() {
            return self.authorize_without_jwt(req);
        }
        if let Some(token) = &self.config.publish_token {
            if bearer_matches(req.header_bytes("Authorization"), token.as_bytes()) {
                return Ok(STATIC_TOKEN.to_owned());
            }
        }
        let wanted: &[&str] = if topics.is_empty() { &["*"] } else { topics };
        match self
            .keys
            .may_publish(req, wanted, &self.config.publish_origin)
        {
            Ok(publisher) => Ok(publisher.identity),
            // Not a JWT at all, where a static token is also taken: it was
            // meant for the static token, and is not it.
            Err(Refusal::Malformed) if self.config.publish_token.is_some() => {
                Err(self.refuse(req, &Refusal::WrongStaticToken))
            }
            Err(refusal) => Err(self.refuse(req, &refusal)),
        }
    }

    /// What a publish or direct send describes: the body as data, the
    /// query's `event`, `id` and `retry`.
    fn entry_from(req: &Request) -> Result<Entry, Response> {
        let data = std::str::from_utf8(req.body())
            .map_err(|_| Response::text(400, "the body must be UTF-8\n"))?;
        let retry =
            match req.query("retry") {
                Some(retry) => Some(retry.parse().map_err(|_| {
                    Response::text(400, "retry must be a number of milliseconds\n")
                })?),
                None => None,
            };
        Ok(Entry {
            id: req.query("id").map(str::to_owned),
            topics: Vec::new(),
            private: false,
            event: req.query("event").map(str::to_owned),
            data: data.to_owned(),
            retry,
        })
    }

    fn publish(&mut self, req: &Request, reply: &mut Reply<'_>) -> Routed {
        self.cors.apply(req, reply);
        let topic = req.query("topic").filter(|t| !t.is_empty());
        let publisher = self.authorize(req, topic.as_slice())?;
        let mut entry = Self::entry_from(req)?;
        entry.topics = topic.map(str::to_owned).into_iter().collect();
        let idempotency = crate::broker::idempotency_key(
            &publisher,
            req.header("Idempotency-Key"),
            entry.id.as_deref(),
        );
        let cors = self.cors.headers(req);
        self.publish_entry(reply, entry, idempotency, cors)
    }

    /// `POST`/`DELETE /clients/{seid}`: at once, or, for a client another
    /// hub holds, later, when that hub has acted.
    fn client(&mut self, req: &Request, reply: &mut Reply<'_>, seid: &str) -> Routed {
        self.authorize(req, &["*"])?;
        if let (false, Some(broker)) = (reply.is_live(seid), &self.broker) {
            // Another hub may hold it: route the command there.
            let remote = match req.method() {
                "POST" => {
                    let entry = Self::entry_from(req)?;
                    event_of(entry.id.as_deref(), &entry)
                        .validate()
                        .map_err(|e| Response::text(400, format!("{e}\n")))?;
                    Remote::Send {
                        event: entry.event,
                        id: entry.id,
                        data: entry.data,
                        retry: entry.retry,
                    }
                }
                "DELETE" => Remote::End,
                _ => return Err(allow("POST, DELETE")),
            };
            let Ok(later) = reply.defer() else {
                return Err(Response::text(500, "the request was already answered\n"));
            };
            broker.presence.route(seid, remote, later);
            return Ok(Answer::Later);
        }
        let result = match req.method() {
            "POST" => {
                let entry = Self::entry_from(req)?;
                reply.send_to(seid, event_of(entry.id.as_deref(), &entry))
            }
            "DELETE" => reply.end_seid(seid),
            _ => return Err(allow("POST, DELETE")),
        };
        match result {
            Ok(()) => Ok(Answer::Now(Response::text(200, "ok\n"))),
            Err(SendError::UnknownSeid) => {
                Err(Response::text(404, "no live client has this seid\n"))
            }
            Err(e) => Err(Response::text(400, format!("{e}\n"))),
        }
    }

    /// `GET /clients`: every hub's with `--redis` (answered later), else
    /// this one's.
    fn clients(&mut self, req: &Request, reply: &mut Reply<'_>) -> Routed {
        self.authorize(req, &["*"])?;
        let page = Page::of(req)?;
        if let Some(broker) = &self.broker {
            let Ok(later) = reply.defer() else {
                return Err(Response::text(500, "the request was already answered\n"));
            };
            broker.presence.list(later, page);
            return Ok(Answer::Later);
        }
        // By seid; the cursor is the last seid of the page before.
        let (seids, next) = page.select(reply.clients());
        let clients = seids.iter().map(|seid| {
            let topics = self
                .streams
                .get(*seid)
                .and_then(|s| self.groups.get(s.group))
                .map(|g| g.audience.describe(&self.groups.store))
                .unwrap_or_default();
            (*seid, topics)
        });
        let json = crate::json::clients(clients);
        Ok(Answer::Now(page.answer("/clients", json, next.as_deref())))
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
        // A token whose issuer's keys are being fetched waits for them.
        if self.keys.readiness(req) == crate::jwks::Readiness::Wait {
            return self.wait_for_keys(reply);
        }
        let now = |response: Response| Ok(Answer::Now(response));
        let routed: Routed = match (method, req.path()) {
            ("GET", "/") => now(Response::new(200)
                .header("Content-Type", "text/html; charset=utf-8")
                .body(DEMO_PAGE)),
            ("GET", "/sse.js") => now(Response::new(200)
                .header("Content-Type", "text/javascript; charset=utf-8")
                .body(STREAM_READER)),
            ("GET", "/events") => return self.subscribe(req, reply),
            ("OPTIONS", "/events") => now(self.cors.preflight(req, EVENTS_METHODS)),
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
            (_, path) if path == crate::mercure::PATH || path.starts_with(crate::mercure::PATH) => {
                return crate::mercure::route(self, method, req, reply);
            }
            ("GET", crate::metadata::PATH) => {
                let features = crate::metadata::Features {
                    resource: self.keys.trust.resource.as_deref(),
                    cookie: &self.keys.trust.cookie,
                    subscriptions: self.config.subscriptions,
                    authorization_servers: self.keys.set_issuers(),
                };
                let mut answer = crate::metadata::document(req, &features);
                for (name, value) in self.cors.headers(req) {
                    answer = answer.header(name, value);
                }
                now(answer)
            }
            (_, crate::metadata::PATH) => Err(allow("GET, HEAD")),
            ("GET", "/health") => now(Response::text(200, "ok\n")),
            ("GET", "/ready") => now(self.ready()),
            ("GET", "/metrics") => now(self.metrics(reply)),
            (_, "/" | "/health" | "/ready" | "/metrics") => Err(allow("GET, HEAD")),
            _ => Err(Response::text(404, "not found\n")),
        };
        routed.unwrap_or_else(Answer::Now).give(reply);
    }

    fn on_wake(&mut self, streams: &mut Streams<'_>) {
        self.keys_fetched(streams);
        self.go_on(streams, true);
        // What Redis brought stays in its bounded channel while work waits
        // here (its readers wait in turn); it is taken once the queue is
        // empty, on the wake that empties it.
        if self.deliveries.is_empty() {
            self.take_from_log(streams);
        }
    }

    fn on_close(&mut self, seid: &str, reason: CloseReason, streams: &mut Streams<'_>) {
        let Some(stream) = self.streams.remove(seid) else {
            return;
        };
        log::debug!(seid, reason:? = reason; "subscriber left");
        self.stream_ended(stream.client);
        if let Some(broker) = &self.broker {
            broker.presence.left(seid);
        }
        self.groups.leave(stream.group);
        if let Some(sub) = stream.subscription {
            crate::subscriptions::announce(self, streams, &sub, false);
        }
    }
}
