//! Mercure's subscriptions API and subscription events (with
//! `--subscriptions`): who is subscribed to what, as JSON-LD, for
//! subscribers whose token allows them to see it; and, as private updates
//! on each subscription's URL, a subscriber connecting (`"active": true`)
//! and leaving (`"active": false`).

use serde::Serialize;
use sseloop::{Reply, Request, Response, Streams};

use crate::auth::Refusal;
use crate::hub::{Answer, Hub};
use crate::subscription::{subscription_filter, subscription_path, Subscription, SubscriptionJson};
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
            hub.announce(streams, &update);
        }
    }
}

/// The subscription events of `sub`: one private update per topic.
fn events(sub: &Subscription, active: bool) -> Vec<Entry> {
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
    let Some(filter) = subscription_filter(rest) else {
        return Answer::Now(Response::text(404, "not found\n"));
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
        let build = move |jsons: Vec<String>| {
            let subs: Vec<Subscription> = jsons
                .iter()
                .filter_map(|j| serde_json::from_str(j).ok())
                .collect();
            document(&path, &filter, &last_event_id, &subs)
        };
        broker.presence.subscriptions(later, Box::new(build));
        return Answer::Later;
    }
    let subs: Vec<Subscription> = hub
        .streams
        .values()
        .filter_map(|s| s.subscription.as_deref().cloned())
        .collect();
    Answer::Now(document(&path, &filter, &last_event_id, &subs))
}

/// The subscriptions API's document for `path` from `subs`: one
/// subscription (with a subscriber in `filter`), or the list.
fn document(
    path: &str,
    (topic, subscriber): &(Option<String>, Option<String>),
    last_event_id: &str,
    subs: &[Subscription],
) -> Response {
    let mut found: Vec<(&Subscription, &str)> = subs
        .iter()
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
            "id": path,
            "type": "Subscriptions",
            "lastEventID": last_event_id,
            "subscriptions": list,
        })
        .to_string()
    };
    Response::new(200)
        .header("Content-Type", "application/ld+json")
        .body(body)
}
