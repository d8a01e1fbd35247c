//! A Mercure subscription as the subscriptions API shows it: who, which
//! selectors, the token's payload, and the URL each subscription has.

use serde::{Deserialize, Serialize};

use crate::paths::{decode_segment, encode_segment};

/// Where the hub is, as Mercure clients expect it.
pub const PATH: &str = "/.well-known/mercure";

/// A Mercure subscriber, for the subscriptions API and its events (kept in
/// Redis as JSON with `--redis`, so every hub can list it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Subscription {
    /// The subscriber's id (`urn:uuid:…`).
    pub subscriber: String,
    /// The topic selectors (0.x) or matchers (1.0) it subscribed with.
    pub topics: Vec<String>,
    /// Mercure 1.0: each matcher's type (`exact`, `urlpattern`); empty for
    /// a 0.x subscriber.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_types: Vec<String>,
    /// Its 0.x token's `mercure.payload`.
    pub payload: Option<serde_json::Value>,
    /// Mercure 1.0: the payload its token gives each matcher.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payloads: Vec<Option<serde_json::Value>>,
}

impl Subscription {
    /// Whether it was made with Mercure 1.0's matchers.
    pub fn is_v1(&self) -> bool {
        !self.match_types.is_empty()
    }
}

/// The JSON of one Mercure 1.0 subscription (draft-08 §Subscription
/// Events), as the subscriptions API and the subscription events show it.
#[derive(Serialize)]
pub(crate) struct MatchJson<'a> {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub match_type: &'a str,
    #[serde(rename = "match")]
    pub matcher: &'a str,
    pub subscriber: &'a str,
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a serde_json::Value>,
}

/// The topic (and API path) of a 1.0 subscription: the hub's path, then
/// `/subscriptions/{match_type}/{match}/{subscriber}`, each variable
/// percent-encoded once as a whole.
pub(crate) fn match_path(match_type: &str, matcher: &str, subscriber: &str) -> String {
    format!(
        "{PATH}/subscriptions/{match_type}/{}/{}",
        encode_segment(matcher),
        encode_segment(subscriber)
    )
}

/// The JSON-LD of one subscription, as the subscriptions API and the
/// subscription events show it.
#[derive(Serialize)]
pub(crate) struct SubscriptionJson<'a> {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub subscriber: &'a str,
    pub topic: &'a str,
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a serde_json::Value>,
}

/// The URL path of the subscription of `subscriber` to `topic`: each part
/// percent-encoded as one path segment.
pub(crate) fn subscription_path(topic: &str, subscriber: &str) -> String {
    format!(
        "{PATH}/subscriptions/{}/{}",
        encode_segment(topic),
        encode_segment(subscriber)
    )
}

/// The path segments after `/subscriptions` (`""`, `/{topic}` or
/// `/{topic}/{subscriber}`), decoded; `None` for any other shape.
pub(crate) fn subscription_filter(rest: &str) -> Option<(Option<String>, Option<String>)> {
    let parts: Vec<&str> = rest.split('/').skip(1).collect();
    match parts.as_slice() {
        [] => Some((None, None)),
        [topic] => Some((Some(decode_segment(topic)?), None)),
        [topic, subscriber] => Some((
            Some(decode_segment(topic)?),
            Some(decode_segment(subscriber)?),
        )),
        _ => None,
    }
}
