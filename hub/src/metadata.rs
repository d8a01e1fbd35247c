//! The hub as an OAuth 2.0 protected resource: its resource identifier,
//! and the metadata document RFC 9728 has clients discover it by (at
//! `/.well-known/oauth-protected-resource` followed by the hub's path).

use sseloop::{Request, Response};

use crate::subscription::PATH as HUB_PATH;

/// Where the metadata of the hub at `/.well-known/mercure` is served.
pub const PATH: &str = "/.well-known/oauth-protected-resource/.well-known/mercure";

/// The hub's resource identifier for `req`: the configured `resource`, else
/// the hub's URL as the request reached it (`https` over the hub's own TLS
/// or when a proxy in front says it ended TLS, `http` otherwise).
pub fn resource_for(req: &Request, resource: Option<&str>) -> String {
    if let Some(resource) = resource {
        return resource.to_owned();
    }
    format!("{}{HUB_PATH}", origin_of(req))
}

/// The URL of the metadata document for `req` (the challenge's
/// `resource_metadata`): RFC 9728 §3.1 puts the well-known segment between
/// the identifier's host and its path.
pub fn url_for(req: &Request, resource: Option<&str>) -> String {
    let Some(resource) = resource.and_then(|r| url::Url::parse(r).ok()) else {
        return format!("{}{PATH}", origin_of(req));
    };
    let path = resource.path().trim_end_matches('/');
    format!(
        "{}/.well-known/oauth-protected-resource{path}",
        resource.origin().ascii_serialization()
    )
}

fn origin_of(req: &Request) -> String {
    let forwarded = req.header("X-Forwarded-Proto");
    let scheme = if req.is_secure() || forwarded.is_some_and(|p| p.eq_ignore_ascii_case("https")) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", crate::paths::host_of(req))
}

/// What the document says of the hub.
pub struct Features<'a> {
    /// The configured resource identifier, if any.
    pub resource: Option<&'a str>,
    /// The cookie it reads access tokens from.
    pub cookie: &'a str,
    /// Whether it serves the subscriptions API and events.
    pub subscriptions: bool,
    /// The issuers whose keys it takes from their JWK Sets: authorization
    /// servers (a self-issuing publisher's issuer, with a configured key, is
    /// not listed).
    pub authorization_servers: Vec<String>,
}

/// The metadata document (RFC 9728 §2, with draft-08's Mercure members).
pub fn document(req: &Request, features: &Features<'_>) -> Response {
    let mut doc = serde_json::json!({
        "resource": resource_for(req, features.resource),
        "authorization_details_types_supported": [crate::auth::DETAIL_TYPE],
        "bearer_methods_supported": ["header"],
        "mercure_cookie": features.cookie,
        "mercure_matcher_types_supported": ["exact", "urlpattern"],
    });
    if !features.authorization_servers.is_empty() {
        doc["authorization_servers"] = serde_json::json!(features.authorization_servers);
    }
    if features.subscriptions {
        doc["mercure_subscriptions"] = serde_json::Value::Bool(true);
    }
    Response::new(200)
        .header("Content-Type", "application/json")
        .body(doc.to_string())
}
