//! The Mercure protocol's routes (draft-dunglas-mercure-07, with the
//! reference hub's 0.x behaviour where the draft leaves room): subscribe
//! and publish on `/.well-known/mercure`, and the subscriptions API.
//!
//! Both interfaces share one topic space and one history: an update
//! published here reaches native `/events` subscribers of one of its topics
//! (if it is public), and a native publish reaches Mercure subscribers whose
//! selectors match its topic.
//!
//! When a subscriber's `Last-Event-ID` is not in the history (too old,
//! from before a restart), sseloop does what it does on `/events`: the
//! stream's first event is of type `reset`, its data the id as sent, so a
//! client can tell it missed updates and refetch its state (a Mercure client
//! listens for it with `addEventListener('reset', …)`; `onmessage` ignores
//! it). The reference hub sends nothing in that case.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sseloop::{Reply, Request, Response};

use crate::history::EARLIEST;
use crate::hub::{allow, last_event_id, too_many_selectors, Answer, Hub, Routed, Then};
use crate::subscribers::Audience;
use crate::subscription::Subscription;
use crate::update::Entry;

pub use crate::subscription::PATH;

/// What `/.well-known/mercure` answers to, for `Allow`.
const METHODS: &str = "GET, HEAD, POST, OPTIONS";

/// Answers a request to [`PATH`] or below it.
pub(crate) fn route(hub: &mut Hub, method: &str, req: &Request, reply: &mut Reply<'_>) {
    let path = req.path();
    if path == PATH {
        match method {
            "GET" => subscribe(hub, req, reply),
            "POST" => publish(hub, req, reply)
                .unwrap_or_else(Answer::Now)
                .give(reply),
            "OPTIONS" => {
                let _ = reply.respond(hub.cors.preflight(req, METHODS));
            }
            _ => {
                let _ = reply.respond(allow(METHODS));
            }
        }
        return;
    }
    let subscriptions = path
        .strip_prefix(PATH)
        .and_then(|rest| rest.strip_prefix("/subscriptions"))
        .filter(|rest| rest.is_empty() || rest.starts_with('/'));
    let answer = match (subscriptions, method) {
        (Some(rest), "GET") if hub.config.subscriptions => {
            crate::subscriptions::answer(hub, req, reply, rest)
        }
        (Some(_), "GET") => Answer::Now(Response::text(
            404,
            "the subscriptions API is off (--subscriptions)\n",
        )),
        (Some(_), _) => Answer::Now(allow("GET, HEAD")),
        (None, _) => Answer::Now(Response::text(404, "not found\n")),
    };
    answer.give(reply);
}

/// `GET /.well-known/mercure?topic=…`: a Mercure subscriber's stream.
fn subscribe(hub: &mut Hub, req: &Request, reply: &mut Reply<'_>) {
    let grant = match hub.keys.subscriber_grant(req, hub.config.anonymous) {
        Ok(grant) => grant,
        Err(refusal) => {
            let answer = hub.refuse(req, &refusal);
            let _ = reply.respond(answer);
            return;
        }
    };
    let topics: Vec<String> = req.query_all("topic").map(str::to_owned).collect();
    if topics.is_empty() {
        let _ = reply.respond(Response::text(400, "Missing \"topic\" parameter.\n"));
        return;
    }
    if topics.len() > hub.config.max_selectors {
        let answer = too_many_selectors(topics.len(), hub.config.max_selectors);
        let _ = reply.respond(answer);
        return;
    }
    let claims = grant.as_ref().map(|g| &g.claims);
    let allowed = claims.and_then(|c| c.mercure.subscribe.clone());
    let exp = claims.and_then(|c| c.exp);
    let payload = claims.and_then(|c| c.mercure.payload.clone());
    let selectors = topics.clone();
    let then: Then = Box::new(move |hub, req, reply, audience| {
        open_stream(hub, req, reply, audience, topics, exp, payload);
    });
    hub.subscribe_with(req, reply, selectors, allowed, then);
}

/// Opens a Mercure subscriber's stream once its selectors are interned in
/// `audience`: its head, what it missed, its subscription.
fn open_stream(
    hub: &mut Hub,
    req: &Request,
    reply: &mut Reply<'_>,
    audience: Audience,
    topics: Vec<String>,
    exp: Option<u64>,
    payload: Option<serde_json::Value>,
) {
    let last_id = last_event_id(req);
    hub.cors.apply(req, reply);
    // The reference hub's headers: no cache anywhere, no proxy buffering
    // (the library's stream head already says `X-Accel-Buffering: no`).
    let _ = reply.header(
        "Cache-Control",
        "private, no-cache, no-store, must-revalidate, max-age=0",
    );
    let _ = reply.header("Pragma", "no-cache");
    let _ = reply.header("Expires", "0");
    if last_id.is_some() {
        // The id the stream is now at: the newest update kept.
        let at = hub.history.last_id().unwrap_or(EARLIEST).to_owned();
        let _ = reply.header("Last-Event-ID", &at);
    }
    // A comment at once, so `EventSource.onopen` fires before any update.
    let comment = hub.open_comment.clone();
    let Some(seid) = hub.open(reply, Some(&comment)) else {
        hub.groups.discard(audience);
        return;
    };
    hub.attach(reply, &seid, audience, last_id);
    if let Some(exp) = exp {
        // The token was valid just now, so `exp` is still ahead.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let left = Duration::from_secs(exp).saturating_sub(now);
        let _ = reply.end_after(left);
    }
    let subscription = Subscription {
        subscriber: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        topics,
        payload,
    };
    crate::subscriptions::connected(hub, reply, &seid, subscription);
}

/// `POST /.well-known/mercure`: publish an update from a form.
fn publish(hub: &mut Hub, req: &Request, reply: &mut Reply<'_>) -> Routed {
    let form = Form::parse(req)?;
    let topics: Vec<String> = form.all("topic").map(str::to_owned).collect();
    if topics.is_empty() {
        return Err(Response::text(400, "Missing \"topic\" parameter.\n"));
    }
    if topics.len() > hub.config.max_publish_topics {
        return Err(Response::text(
            400,
            format!(
                "{} topics; the hub takes at most {} per publish (--max-publish-topics)\n",
                topics.len(),
                hub.config.max_publish_topics
            ),
        ));
    }
    hub.cors.apply(req, reply);
    let wanted: Vec<&str> = topics.iter().map(String::as_str).collect();
    let publisher = if hub.keys.publisher.is_some() {
        match hub
            .keys
            .may_publish(req, &wanted, &hub.config.publish_origin)
        {
            Ok(publisher) => publisher.identity,
            Err(refusal) => return Err(hub.refuse(req, &refusal)),
        }
    } else {
        hub.authorize_without_jwt(req)?
    };
    let bad = |what: &str| Response::text(400, format!("{what}\n"));
    let given = form.first("id").filter(|id| !id.is_empty());
    if given.is_some_and(|id| id.contains(['\r', '\n', '\0'])) {
        return Err(bad("id must not contain CR, LF or NUL"));
    }
    if given == Some(EARLIEST) {
        return Err(bad(
            "the id \"earliest\" is reserved: it asks a hub for every update it keeps",
        ));
    }
    let event = form.first("type").filter(|t| !t.is_empty());
    if event.is_some_and(|t| t.contains(['\r', '\n'])) {
        return Err(bad("type must not contain CR or LF"));
    }
    let retry = match form.first("retry") {
        Some(retry) => Some(
            retry
                .parse()
                .map_err(|_| bad("retry must be a number of milliseconds"))?,
        ),
        None => None,
    };
    let entry = Entry {
        // Mercure updates always carry an id: the publisher's, or a new one.
        id: Some(given.map_or_else(
            || format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            str::to_owned,
        )),
        topics,
        private: form.first("private").is_some(),
        event: event.map(str::to_owned),
        data: form.first("data").unwrap_or_default().to_owned(),
        retry,
    };
    let idempotency =
        crate::broker::idempotency_key(&publisher, req.header("Idempotency-Key"), given);
    let cors = hub.cors.headers(req);
    hub.publish_entry(reply, entry, idempotency, cors)
}

/// An `application/x-www-form-urlencoded` body, decoded.
struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// The form `req` carries (its `Content-Type` may add `;charset=…`).
    fn parse(req: &Request) -> Result<Form, Response> {
        let media = req
            .header("Content-Type")
            .and_then(|t| t.split(';').next())
            .map(str::trim);
        if !media.is_some_and(|m| m.eq_ignore_ascii_case("application/x-www-form-urlencoded")) {
            return Err(Response::text(
                400,
                "the body must be application/x-www-form-urlencoded\n",
            ));
        }
        let bad = || Response::text(400, "the body is not a valid UTF-8 form\n");
        let text = std::str::from_utf8(req.body()).map_err(|_| bad())?;
        // In a form, `+` is a space and a real plus is `%2B`: turn the
        // pluses into spaces first, then decode the escapes.
        let decode = |s: &str| sseloop::http::percent_decode(&s.replace('+', " "));
        let fields = text
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((decode(name)?, decode(value)?))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        Ok(Form { fields })
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn first<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).next()
    }
}
