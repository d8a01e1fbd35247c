//! CORS: the headers a browser on another origin needs before it may read
//! the hub's streams and answers. A listed origin is echoed with
//! credentials allowed (a browser sends the token cookie with
//! `withCredentials`); `*` lets any origin read what needs no credentials,
//! and is sent as `*` without `Access-Control-Allow-Credentials`: browsers
//! refuse credentials with `*`, and echoing any origin with credentials
//! would let every site read cookie-authorized streams.

use sseloop::{Reply, Request, Response};

/// The response headers a page on another origin may read: the
/// reconciliation cursors (draft-08 asks for `Link` on the subscriptions
/// API) and the challenge of a refusal.
const EXPOSED: &str = "Link, Mercure-Last-Event-ID, Last-Event-ID, WWW-Authenticate";

/// The origins allowed to read the hub from a browser.
#[derive(Clone, Debug, Default)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// CORS for `origins` (`*` allows any; none turns CORS off).
    pub fn new(origins: Vec<String>) -> Self {
        Cors { origins }
    }

    /// What `req` is allowed, if anything: its `Origin` with credentials
    /// when listed; `*` without them when any origin is; for a request
    /// without `Origin` (not a browser's cross-origin request), the one
    /// configured origin, if there is one.
    fn allowed(&self, req: &Request) -> Option<Allowed> {
        let any = self.origins.iter().any(|o| o == "*");
        match req.header("Origin") {
            Some(origin) if self.origins.iter().any(|o| o == origin) => {
                Some(Allowed::Credentials(origin.to_owned()))
            }
            Some(_) if any => Some(Allowed::Any),
            Some(_) => None,
            None => match self.origins.as_slice() {
                [only] if only == "*" => Some(Allowed::Any),
                [only] => Some(Allowed::Credentials(only.clone())),
                _ => None,
            },
        }
    }

    /// The CORS headers for `req`'s answer, stream or plain.
    pub fn headers(&self, req: &Request) -> Vec<(&'static str, String)> {
        match self.allowed(req) {
            None => Vec::new(),
            Some(Allowed::Any) => vec![
                ("Access-Control-Allow-Origin", "*".to_owned()),
                ("Access-Control-Expose-Headers", EXPOSED.to_owned()),
            ],
            Some(Allowed::Credentials(origin)) => vec![
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Credentials", "true".to_owned()),
                ("Access-Control-Expose-Headers", EXPOSED.to_owned()),
                ("Vary", "Origin".to_owned()),
            ],
        }
    }

    /// Adds the CORS headers for `req` to a stream or response `reply`.
    pub fn apply(&self, req: &Request, reply: &mut Reply<'_>) {
        for (name, value) in self.headers(req) {
            let _ = reply.header(name, &value);
        }
    }

    /// The answer to `OPTIONS` on a route taking `methods`: `204` with
    /// `Allow` and, for an allowed origin, the answer to a browser's CORS
    /// preflight. For another origin, a preflight gets no
    /// `Access-Control-Allow-Origin`, so the browser refuses, as it should.
    pub fn preflight(&self, req: &Request, methods: &str) -> Response {
        let mut answer = Response::new(204).header("Allow", methods);
        let headers = self.headers(req);
        if headers.is_empty() {
            return answer;
        }
        for (name, value) in headers {
            answer = answer.header(name, value);
        }
        answer
            .header("Access-Control-Allow-Methods", methods)
            .header(
                "Access-Control-Allow-Headers",
                "Authorization, Last-Event-ID, Cache-Control, Content-Type, Idempotency-Key",
            )
            .header("Access-Control-Max-Age", "86400")
    }
}

/// What a request's origin is allowed.
enum Allowed {
    /// Any origin, without credentials (`*`).
    Any,
    /// This origin, with credentials.
    Credentials(String),
}
