//! Mercure's subscriptions API and subscription events (with
//! `--subscriptions`): who is subscribed to what, as JSON-LD, for
//! subscribers whose token allows them to see it; and, as private updates
//! on each subscription's URL, a subscriber connecting (`"active": true`)
//! and leaving (`"active": false`).

use serde::Serialize;
use sseloop::{Reply, Request, Response, Streams};

use crate::auth::Refusal;
use crate::hub::{Answer, Hub};
use crate::page::Page;
use crate::subscription::{
    match_path, subscription_filter, subscription_path, MatchJson, Subscription, SubscriptionJson,
};
use crate::update::{Entry, Update};

/// The JSON-LD context of every document here.
const CONTEXT: &str = "https://mercure.rocks/";

/// A subscriber connected: keep its subscription and announce it.
pub(crate) fn connected(hub: &mut Hub, reply: &mut Reply<'_>, seid: &str, sub: Subscription) {
    if !hub.config.subscriptions {
        return;
    }
    if let Some(broker) = hub.broker() {
        broker
            .presence
            .subscribed(seid, serde_json::to_string(&sub).unwrap_or_default());
    }
    announce(hub, reply, &sub, true);
    if let Some(stream) = hub.streams.get_mut(seid) {
        stream.subscription = Some(Box::new(sub));
    }
}

/// Announces `sub`'s subscription events (`active` or not), live and never
/// kept for replay: with `--redis` on every hub's announcements channel, so
/// every hub's subscribers hear of them, else at once.
pub(crate) fn announce(hub: &mut Hub, streams: &mut Streams<'_>, sub: &Subscription, active: bool) {
    for entry in events(sub, active) {
        if let Some(broker) = hub.broker() {
            broker.presence.announce(&entry);
        } else if let Some(update) = update_of(entry) {
            hub.deliver(streams, update, crate::deliveries::Kind::Announced);
        }
    }
}

/// The subscription events of `sub`: one private update per topic (0.x)
/// or matcher (1.0, of the reserved type `mercure`).
fn events(sub: &Subscription, active: bool) -> Vec<Entry> {
    if sub.is_v1() {
        return (0..sub.topics.len())
            .map(|i| {
                let (path, json) = match_json(sub, i, active);
                Entry {
                    id: Some(format!("urn:uuid:{}", uuid::Uuid::new_v4())),
                    topics: vec![path],
                    private: true,
                    event: Some("mercure".to_owned()),
                    data: json.to_string(),
                    ..Entry::default()
                }
            })
            .collect();
    }
    sub.topics
        .iter()
        .map(|topic| Entry {
            id: Some(format!("urn:uuid:{}", uuid::Uuid::new_v4())),
            topics: vec![subscription_path(topic, &sub.subscriber)],
            private: true,
            data: json_of(sub, topic, active, true),
            ..Entry::default()
        })
        .collect()
}

/// The update an entry with an id makes, encoded.
fn update_of(entry: Entry) -> Option<Update> {
    let id = entry.id.clone()?;
    Update::new(id, entry).ok()
}

/// The path and JSON document of `sub`'s `i`th 1.0 subscription.
fn match_json(sub: &Subscription, i: usize, active: bool) -> (String, serde_json::Value) {
    let match_type = sub.match_types.get(i).map_or("exact", String::as_str);
    let matcher = &sub.topics[i];
    let path = match_path(match_type, matcher, &sub.subscriber);
    let doc = MatchJson {
        id: path.clone(),
        kind: "subscription",
        match_type,
        matcher,
        subscriber: &sub.subscriber,
        active,
        payload: sub.payloads.get(i).and_then(Option::as_ref),
    };
    (path, serde_json::to_value(doc).unwrap_or_default())
}

fn json_of(sub: &Subscription, topic: &str, active: bool, context: bool) -> String {
    let doc = SubscriptionJson {
        id: subscription_path(topic, &sub.subscriber),
        kind: "Subscription",
        subscriber: &sub.subscriber,
        topic,
        active,
        payload: sub.payload.as_ref(),
    };
    if context {
        #[derive(Serialize)]
        struct WithContext<'a> {
            #[serde(rename = "@context")]
            context: &'static str,
            #[serde(flatten)]
            doc: SubscriptionJson<'a>,
        }
        serde_json::to_string(&WithContext {
            context: CONTEXT,
            doc,
        })
    } else {
        serde_json::to_string(&doc)
    }
    .unwrap_or_default()
}

/// `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`, for
/// a subscriber whose token's `mercure.subscribe` selects the URL asked for.
/// With `--redis`, answered later with every hub's subscriptions.
pub(crate) fn answer(hub: &mut Hub, req: &Request, reply: &mut Reply<'_>, rest: &str) -> Answer {
    let grant = match hub.keys.subscriber_grant(req, false) {
        Ok(Some(grant)) => grant,
        Ok(None) => return Answer::Now(hub.refuse(req, &Refusal::NoToken)),
        Err(refusal) => return Answer::Now(hub.refuse(req, &refusal)),
    };
    match grant.may_subscribe_to(req.path()) {
        Ok(true) => {}
        Ok(false) => {
            let refusal = Refusal::NotSubscribable(req.path().to_owned());
            return Answer::Now(hub.refuse(req, &refusal));
        }
        Err(refusal) => return Answer::Now(hub.refuse(req, &refusal)),
    }
    let v1 = grant.is_access_token();
    let filter = if v1 {
        match_filter(rest)
    } else {
        subscription_filter(rest).map(|(topic, subscriber)| Filter {
            match_type: None,
            matcher: topic,
            subscriber,
        })
    };
    let Some(filter) = filter else {
        return Answer::Now(Response::text(404, "not found\n"));
    };
    // A list is paged by subscriber (a page holds up to `limit`
    // subscribers' subscriptions); one subscription is looked for on every
    // page.
    let page = match filter.subscriber {
        Some(_) => None,
        None => match Page::of(req) {
            Ok(page) => Some(page),
            Err(refused) => return Answer::Now(refused),
        },
    };
    let path = req.path().to_owned();
    let last_event_id = hub
        .history
        .last_id()
        .unwrap_or(crate::history::EARLIEST)
        .to_owned();
    if let Some(broker) = hub.broker() {
        let Ok(later) = reply.defer() else {
            return Answer::Now(Response::text(500, "the request was already answered\n"));
        };
        let wanted = page.clone();
        let build = move |jsons: Vec<String>, next: Option<String>| {
            let subs: Vec<Subscription> = jsons
                .iter()
                .filter_map(|j| serde_json::from_str(j).ok())
                .collect();
            let listing = Listing {
                path: &path,
                filter: &filter,
                last_event_id: &last_event_id,
                v1,
            };
            listing.document(&subs, wanted.as_ref().zip(next.as_deref()))
        };
        broker.presence.subscriptions(later, page, Box::new(build));
        return Answer::Later;
    }
    let listing = Listing {
        path: &path,
        filter: &filter,
        last_event_id: &last_event_id,
        v1,
    };
    let held = hub
        .streams
        .iter()
        .filter(|(_, stream)| stream.subscription.is_some())
        .map(|(seid, _)| seid.as_str());
    let (seids, next) = match &page {
        Some(page) => page.select(held),
        None => (held.collect(), None),
    };
    let subs: Vec<Subscription> = seids
        .iter()
        .filter_map(|seid| hub.streams.get(*seid)?.subscription.as_deref().cloned())
        .collect();
    Answer::Now(listing.document(&subs, page.as_ref().zip(next.as_deref())))
}

/// Which subscriptions a request to the API asked for.
struct Filter {
    /// 1.0: the matcher type in the URL.
    match_type: Option<String>,
    /// The topic (0.x) or matcher (1.0) in the URL.
    matcher: Option<String>,
    /// The subscriber in the URL.
    subscriber: Option<String>,
}

/// The 1.0 path segments after `/subscriptions` (`""`,
/// `/{match_type}/{match}` or `/{match_type}/{match}/{subscriber}`),
/// decoded; `None` for any other shape or an unknown matcher type.
fn match_filter(rest: &str) -> Option<Filter> {
    let parts: Vec<&str> = rest.split('/').skip(1).collect();
    let known = |t: &str| crate::topics::Reading::of_match_type(t).is_some();
    match parts.as_slice() {
        [] => Some(Filter {
            match_type: None,
            matcher: None,
            subscriber: None,
        }),
        [t, m] if known(t) => Some(Filter {
            match_type: Some((*t).to_owned()),
            matcher: Some(crate::paths::decode_segment(m)?),
            subscriber: None,
        }),
        [t, m, s] if known(t) => Some(Filter {
            match_type: Some((*t).to_owned()),
            matcher: Some(crate::paths::decode_segment(m)?),
            subscriber: Some(crate::paths::decode_segment(s)?),
        }),
        _ => None,
    }
}

/// What a subscriptions request asked for.
struct Listing<'a> {
    path: &'a str,
    filter: &'a Filter,
    last_event_id: &'a str,
    /// Whether to answer in Mercure 1.0's shape (else 0.x's JSON-LD).
    v1: bool,
}

impl Listing<'_> {
    /// The subscriptions API's document from `subs`: one subscription
    /// (with a subscriber in the filter), or the list, with a `Link` to
    /// the page after it when `next` names one.
    fn document(&self, subs: &[Subscription], next: Option<(&Page, &str)>) -> Response {
        if self.v1 {
            return self.document_v1(subs, next);
        }
        let (topic, subscriber) = (&self.filter.matcher, &self.filter.subscriber);
        let mut found: Vec<(&Subscription, &str)> = subs
            .iter()
            .filter(|sub| !sub.is_v1())
            .flat_map(|sub| sub.topics.iter().map(move |t| (sub, t.as_str())))
            .filter(|(sub, t)| {
                topic.as_deref().is_none_or(|want| want == *t)
                    && subscriber
                        .as_deref()
                        .is_none_or(|want| want == sub.subscriber)
            })
            .collect();
        found.sort_by(|a, b| (&a.0.subscriber, a.1).cmp(&(&b.0.subscriber, b.1)));
        let body = if subscriber.is_some() {
            let Some((sub, topic)) = found.first() else {
                return Response::text(404, "no such subscription\n");
            };
            json_of(sub, topic, true, true)
        } else {
            let list: Vec<serde_json::Value> = found
                .iter()
                .filter_map(|(sub, t)| serde_json::from_str(&json_of(sub, t, true, false)).ok())
                .collect();
            serde_json::json!({
                "@context": CONTEXT,
                "id": self.path,
                "type": "Subscriptions",
                "lastEventID": self.last_event_id,
                "subscriptions": list,
            })
            .to_string()
        };
        let answer = Response::new(200)
            .header("Content-Type", "application/ld+json")
            .body(body);
        match next {
            Some((page, cursor)) => answer.header("Link", page.link(self.path, cursor)),
            None => answer,
        }
    }

    /// The document in Mercure 1.0's shape (draft-08 §Subscription API):
    /// JSON, the reconciliation cursor on the `rel="mercure"` link.
    fn document_v1(&self, subs: &[Subscription], next: Option<(&Page, &str)>) -> Response {
        let f = self.filter;
        let mut found: Vec<(&Subscription, usize)> = subs
            .iter()
            .filter(|sub| sub.is_v1())
            .flat_map(|sub| (0..sub.topics.len()).map(move |i| (sub, i)))
            .filter(|(sub, i)| {
                f.match_type
                    .as_deref()
                    .is_none_or(|t| sub.match_types.get(*i).is_some_and(|m| m == t))
                    && f.matcher.as_deref().is_none_or(|m| sub.topics[*i] == m)
                    && f.subscriber.as_deref().is_none_or(|s| s == sub.subscriber)
            })
            .collect();
        found.sort_by(|a, b| (&a.0.subscriber, a.1).cmp(&(&b.0.subscriber, b.1)));
        let body = if f.subscriber.is_some() {
            let Some((sub, i)) = found.first() else {
                return Response::text(404, "no such subscription\n");
            };
            match_json(sub, *i, true).1
        } else {
            let list: Vec<serde_json::Value> = found
                .iter()
                .map(|(sub, i)| match_json(sub, *i, true).1)
                .collect();
            serde_json::json!({
                "id": self.path,
                "type": "subscriptions",
                "subscriptions": list,
            })
        };
        let cursor = self.last_event_id.replace(['"', '\\'], "");
        let answer = Response::new(200)
            .header("Content-Type", "application/json")
            .header(
                "Link",
                format!(
                    "<{}>; rel=\"mercure\"; last-event-id=\"{cursor}\"; type=\"mercure\"; content-type=\"application/json\"",
                    crate::subscription::PATH
                ),
            )
            .header("Cache-Control", "must-revalidate")
            .body(body.to_string());
        match next {
            Some((page, cursor)) => answer.header("Link", page.link(self.path, cursor)),
            None => answer,
        }
    }
}
