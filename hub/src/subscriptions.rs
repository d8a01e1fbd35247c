//! Mercure's subscriptions API and subscription events (with
//! `--subscriptions`): who is subscribed to what, as JSON-LD, for
//! subscribers whose token allows them to see it; and, as private updates
//! on each subscription's URL, a subscriber connecting (`"active": true`)
//! and leaving (`"active": false`).

use serde::Serialize;
use sseloop::{Event, Handle, Reply, Request, Response};

use crate::auth::Refusal;
use crate::history::Update;
use crate::mercure::{subscription_filter, subscription_path, Subscription, SubscriptionJson};
use crate::routes::Hub;

/// The JSON-LD context of every document here.
const CONTEXT: &str = "https://mercure.rocks/";

/// A subscriber connected: keep its subscription and announce it.
pub(crate) fn connected(hub: &mut Hub, reply: &mut Reply<'_>, seid: &str, sub: Subscription) {
    if !hub.config.subscriptions {
        return;
    }
    for (update, _) in events(&sub, true) {
        hub.deliver(reply, update);
    }
    if let Some(stream) = hub.streams.get_mut(seid) {
        stream.subscription = Some(Box::new(sub));
    }
}

/// A subscriber left: announce it through `handle` (the loop runs the
/// delivery once the current callback returns).
pub(crate) fn disconnected(hub: &mut Hub, handle: &Handle, sub: &Subscription) {
    for (update, event) in events(sub, false) {
        for group in hub.groups.receiving(&update) {
            let _ = handle.publish(&group.topic, event.clone());
        }
        hub.counters.published += 1;
        hub.history.push(std::rc::Rc::new(update));
    }
}

/// The subscription events of `sub`: one private update per topic, with
/// the event it was encoded from.
fn events(sub: &Subscription, active: bool) -> Vec<(Update, Event)> {
    sub.topics
        .iter()
        .filter_map(|topic| {
            let path = subscription_path(topic, &sub.subscriber);
            let json = json_of(sub, topic, active, true);
            let id = format!("urn:uuid:{}", uuid::Uuid::new_v4());
            let event = Event::new(json).id(id.as_str());
            let frame = event.encode().ok()?;
            let update = Update {
                id,
                topics: vec![path],
                private: true,
                frame,
            };
            Some((update, event))
        })
        .collect()
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
pub(crate) fn answer(hub: &mut Hub, req: &Request, _reply: &mut Reply<'_>, rest: &str) -> Response {
    let claims = match hub.keys.subscriber_claims(req, false) {
        Ok(Some(claims)) => claims,
        Ok(None) => return hub.refuse(req, &Refusal::NoToken),
        Err(refusal) => return hub.refuse(req, &refusal),
    };
    let allowed = claims.mercure.subscribe.unwrap_or_default();
    if !crate::topics::matches_any(&allowed, req.path()) {
        let refusal = Refusal::TopicNotCovered(req.path().to_owned());
        return hub.refuse(req, &refusal);
    }
    let Some((topic, subscriber)) = subscription_filter(rest) else {
        return Response::text(404, "not found\n");
    };
    let mut found: Vec<(&Subscription, &str)> = hub
        .streams
        .values()
        .filter_map(|s| s.subscription.as_deref())
        .flat_map(|sub| sub.topics.iter().map(move |t| (sub, t.as_str())))
        .filter(|(sub, t)| {
            topic.as_deref().is_none_or(|want| want == *t)
                && subscriber
                    .as_deref()
                    .is_none_or(|want| want == sub.subscriber)
        })
        .collect();
    found.sort_by(|a, b| (&a.0.subscriber, a.1).cmp(&(&b.0.subscriber, b.1)));
    let last_event_id = hub.history.last_id().unwrap_or(crate::history::EARLIEST);
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
            "id": req.path(),
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
