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
use crate::hub::{allow, too_many_selectors, Answer, Hub, Routed, Then};
use crate::subscribers::Audience;
use crate::subscription::Subscription;
use crate::topics::{Reading, Spec};
use crate::update::Entry;

pub use crate::subscription::PATH;

/// The debugger page (`--debugger`).
const DEBUGGER: &str = include_str!("debug.html");

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
    if let Some("/debug" | "/debug/") = path.strip_prefix(PATH) {
        let answer = match (method, hub.config.debugger) {
            ("GET", true) => Response::new(200)
                .header("Content-Type", "text/html; charset=utf-8")
                .header("Cache-Control", "no-store")
                .body(DEBUGGER),
            ("GET", false) => Response::text(404, "the debugger is off (--debugger)\n"),
            _ => allow("GET, HEAD"),
        };
        let _ = reply.respond(answer);
        return;
    }
    let subscriptions = path
        .strip_prefix(PATH)
        .and_then(|rest| rest.strip_prefix("/subscriptions"))
        .filter(|rest| rest.is_empty() || rest.starts_with('/'));
    let answer = match (subscriptions, method) {
        (Some(rest), "GET") if hub.config.subscriptions => {
            hub.cors.apply(req, reply);
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

/// Which protocol a subscribe speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    /// Mercure 1.0 (draft-08): `match…` parameters.
    V1,
    /// Mercure 0.x (draft-07): `topic` parameters, with `--mercure-compat 0.x`.
    V0,
}

/// The matchers a subscribe asks for, and in which protocol: 1.0's
/// `match`, `match_exact` and `match_urlpattern`; 0.x's `topic` only with
/// the compatibility flag.
fn matchers_of(req: &Request, compat: bool) -> Result<(Version, Vec<Spec>), Response> {
    let mut matchers = Vec::new();
    for (name, value) in req.query_pairs() {
        let reading = match name.as_str() {
            "match" | "match_exact" => Reading::Exact,
            "match_urlpattern" => Reading::UrlPattern,
            // The whole `match` prefix is reserved (draft-08 §Subscription).
            other
                if other
                    .get(..5)
                    .is_some_and(|p| p.eq_ignore_ascii_case("match")) =>
            {
                return Err(Response::text(
                    400,
                    format!("unknown topic matcher parameter {other:?}: the hub takes match, match_exact and match_urlpattern\n"),
                ));
            }
            _ => continue,
        };
        if let Some(bad) = forbidden_char(value) {
            return Err(Response::text(
                400,
                format!("a topic matcher holds the character U+{:04X}: control and format characters are refused\n", u32::from(bad)),
            ));
        }
        matchers.push(Spec::new(reading, value.clone()));
    }
    if !matchers.is_empty() {
        return Ok((Version::V1, matchers));
    }
    let topics: Vec<Spec> = req
        .query_all("topic")
        .map(|t| Spec::new(Reading::Selector, t))
        .collect();
    match (topics.is_empty(), compat) {
        (false, true) => Ok((Version::V0, topics)),
        (false, false) => Err(Response::text(
            400,
            "topic= is Mercure 0.x: subscribe with match= (or match_urlpattern=), or start the hub with --mercure-compat 0.x\n",
        )),
        (true, _) => Err(Response::text(400, "Missing \"match\" parameter.\n")),
    }
}

/// The first character of `value` that draft-08 forbids in topics,
/// matchers, ids and types: a C0 or C1 control, DEL, or a format
/// character (Unicode category Cf).
fn forbidden_char(value: &str) -> Option<char> {
    value.chars().find(|&c| c.is_control() || is_format(c))
}

/// Whether `c` is a Unicode format character (general category Cf), by
/// the Unicode data `icu_properties` carries.
fn is_format(c: char) -> bool {
    use icu_properties::props::GeneralCategory;
    icu_properties::CodePointMapData::<GeneralCategory>::new().get(c) == GeneralCategory::Format
}

/// `GET /.well-known/mercure?match=…` (or, with the compatibility flag,
/// `?topic=…`): a Mercure subscriber's stream.
fn subscribe(hub: &mut Hub, req: &Request, reply: &mut Reply<'_>) {
    if let Err(refused) = hub.admit_stream(req.peer()) {
        let _ = reply.respond(refused);
        return;
    }
    let (version, matchers) = match matchers_of(req, hub.config.compat_0x()) {
        Ok(found) => found,
        Err(refused) => {
            let _ = reply.respond(refused);
            return;
        }
    };
    if matchers.len() > hub.config.max_selectors {
        let answer = too_many_selectors(matchers.len(), hub.config.max_selectors);
        let _ = reply.respond(answer);
        return;
    }
    let grant = match hub.keys.subscriber_grant(req, hub.config.anonymous) {
        Ok(grant) => grant,
        Err(refusal) => {
            let answer = hub.refuse(req, &refusal);
            let _ = reply.respond(answer);
            return;
        }
    };
    let allowed = grant.as_ref().and_then(|g| g.subscribe_specs());
    let exp = grant.as_ref().and_then(|g| g.exp);
    let payloads: Vec<_> = matchers
        .iter()
        .map(|m| grant.as_ref().and_then(|g| g.payload_for(&m.text)))
        .collect();
    let selectors = matchers.clone();
    let then: Then = Box::new(move |hub, req, reply, audience| {
        let opening = Opening {
            version,
            matchers,
            exp,
            payloads,
        };
        open_stream(hub, req, reply, audience, opening);
    });
    hub.subscribe_with(req, reply, selectors, allowed, then);
}

/// What a Mercure stream opens with, once its selectors are interned.
struct Opening {
    version: Version,
    matchers: Vec<Spec>,
    exp: Option<u64>,
    /// The token's payload for each matcher.
    payloads: Vec<Option<serde_json::Value>>,
}

/// The id a reconnecting subscriber sends: the `Last-Event-ID` header,
/// which beats the query's `last_event_id` (0.x: `lastEventID`).
fn last_event_id(req: &Request, version: Version) -> Option<&str> {
    let query = match version {
        Version::V1 => req.query("last_event_id"),
        Version::V0 => req
            .query("lastEventID")
            .or_else(|| req.query("lastEventId")),
    };
    req.header("Last-Event-ID")
        .or(query)
        .filter(|id| !id.is_empty())
}

/// Opens a Mercure subscriber's stream once its selectors are interned in
/// `audience`: its head, what it missed, its subscription.
fn open_stream(
    hub: &mut Hub,
    req: &Request,
    reply: &mut Reply<'_>,
    audience: Audience,
    opening: Opening,
) {
    let Opening {
        version,
        matchers,
        exp,
        payloads,
    } = opening;
    let asked = last_event_id(req, version);
    // Where the replay starts: after the asked id while it is kept (a
    // reused id: its earliest update), else nowhere.
    let known = asked.filter(|id| *id != EARLIEST && hub.history.start_after(id).is_some());
    hub.cors.apply(req, reply);
    // The reference hub's headers: no cache anywhere, no proxy buffering
    // (the library's stream head already says `X-Accel-Buffering: no`).
    let _ = reply.header(
        "Cache-Control",
        "private, no-cache, no-store, must-revalidate, max-age=0",
    );
    let _ = reply.header("Pragma", "no-cache");
    let _ = reply.header("Expires", "0");
    if asked.is_some() {
        // The id of the event before the first one sent: the one asked
        // for, when it is kept; else `earliest` (draft-07 and draft-08).
        let header = match version {
            Version::V1 => "Mercure-Last-Event-ID",
            Version::V0 => "Last-Event-ID",
        };
        let _ = reply.header(header, known.unwrap_or(EARLIEST));
    }
    // A comment at once, so `EventSource.onopen` fires before any update.
    let comment = hub.open_comment.clone();
    let Some(seid) = hub.open(reply, Some(&comment)) else {
        hub.groups.discard(audience);
        return;
    };
    // 0.x streams hear `reset` for an id the hub no longer keeps; 1.0's
    // `Mercure-Last-Event-ID` says so instead.
    let replay_from = match version {
        Version::V1 => known.or(asked.filter(|id| *id == EARLIEST)),
        Version::V0 => asked,
    };
    hub.attach(reply, req.peer(), &seid, audience, replay_from);
    // The stream ends by the token's `exp` and by the hub's longest
    // lifetime, whichever comes first: then the client shows its token again.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let until_exp = exp.map(|exp| Duration::from_secs(exp).saturating_sub(now));
    let lifetime = Some(hub.config.write_timeout)
        .filter(|&secs| secs > 0)
        .map(Duration::from_secs);
    if let Some(left) = until_exp.into_iter().chain(lifetime).min() {
        let _ = reply.end_after(left);
    }
    let subscription = match version {
        Version::V1 => Subscription {
            subscriber: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            match_types: matchers
                .iter()
                .map(|m| m.reading.match_type().unwrap_or("exact").to_owned())
                .collect(),
            topics: matchers.into_iter().map(|m| m.text).collect(),
            payload: None,
            payloads,
        },
        Version::V0 => Subscription {
            subscriber: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            match_types: Vec::new(),
            topics: matchers.into_iter().map(|m| m.text).collect(),
            payload: payloads.into_iter().next().flatten(),
            payloads: Vec::new(),
        },
    };
    crate::subscriptions::connected(hub, reply, &seid, subscription);
}

/// Why a publish's topic is refused whatever the token (draft-08
/// §Publication): `*` is the wildcard, and the hub's own namespace (its
/// URL's path and below, once resolved against it, dot-segments removed and
/// unreserved characters decoded) is for the events it makes.
fn reserved_topic(topic: &str, base: &url::Url) -> Option<String> {
    if topic == "*" {
        return Some("the topic \"*\" is reserved: it is the wildcard matcher".into());
    }
    let url = url::Url::options().base_url(Some(base)).parse(topic).ok()?;
    let path = normalize_path(url.path());
    let hub = PATH;
    let inside = path == hub
        || path
            .strip_prefix(hub)
            .is_some_and(|rest| rest.starts_with('/'));
    inside.then(|| format!("the topic {topic:?} is in the hub's reserved namespace ({hub}/…)"))
}

/// `path` with its percent-encoded unreserved characters decoded and its
/// dot-segments removed (RFC 3986 §6.2.2.2 and §5.2.4).
fn normalize_path(path: &str) -> String {
    let mut decoded = String::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                    decoded.push(c as char);
                    i += 3;
                    continue;
                }
            }
        }
        decoded.push(bytes[i] as char);
        i += 1;
    }
    let mut out: Vec<&str> = Vec::new();
    for segment in decoded.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
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
            413,
            format!(
                "{} topics; the hub takes at most {} per publish (--max-publish-topics)\n",
                topics.len(),
                hub.config.max_publish_topics
            ),
        ));
    }
    let bad = |what: &str| Response::text(400, format!("{what}\n"));
    let base = hub.groups.store.base();
    for topic in &topics {
        if forbidden_char(topic).is_some() {
            return Err(bad("a topic must not hold control or format characters"));
        }
        if let Some(why) = reserved_topic(topic, base) {
            return Err(bad(&why));
        }
    }
    let given = form.first("id").filter(|id| !id.is_empty());
    if given.is_some_and(|id| forbidden_char(id).is_some()) {
        return Err(bad("the id must not hold control or format characters"));
    }
    if given.is_some_and(|id| id.starts_with('#')) {
        return Err(bad("an id must not start with #: those are the hub's own"));
    }
    if given == Some(EARLIEST) {
        return Err(bad(
            "the id \"earliest\" is reserved: it asks a hub for every update it keeps",
        ));
    }
    let event = form.first("type").filter(|t| !t.is_empty());
    if event.is_some_and(|t| forbidden_char(t).is_some()) {
        return Err(bad("the type must not hold control or format characters"));
    }
    if event == Some("mercure") {
        return Err(bad(
            "the type \"mercure\" is reserved for the hub's subscription events",
        ));
    }
    let retry = match form.first("retry") {
        Some(retry) if !retry.is_empty() && retry.bytes().all(|b| b.is_ascii_digit()) => {
            Some(retry.parse().map_err(|_| bad("retry is too large"))?)
        }
        Some(_) => return Err(bad("retry must be a number of milliseconds (ASCII digits)")),
        None => None,
    };
    hub.cors.apply(req, reply);
    let wanted: Vec<&str> = topics.iter().map(String::as_str).collect();
    let publisher = if hub.keys.verifies_publishers() {
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
