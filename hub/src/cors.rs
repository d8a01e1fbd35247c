//! CORS: the headers a browser on another origin needs before it may read
//! the hub's streams and answers. Credentials are allowed (a browser sends
//! the `mercureAuthorization` cookie with `withCredentials`), so the allowed
//! origin is echoed, never `*`.

use sseloop::{Reply, Request, Response};

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

    /// The `Access-Control-Allow-Origin` value for `req`, if any: its
    /// `Origin` when allowed; for a request without one (not a browser's
    /// cross-origin request), the one configured origin, if there is one.
    fn allowed(&self, req: &Request) -> Option<String> {
        match req.header("Origin") {
            Some(origin) => self
                .origins
                .iter()
                .any(|o| o == "*" || o == origin)
                .then(|| origin.to_owned()),
            None => match self.origins.as_slice() {
                [only] if only != "*" => Some(only.clone()),
                _ => None,
            },
        }
    }

    /// Adds the CORS headers for `req` to a stream or response `reply`.
    pub fn apply(&self, req: &Request, reply: &mut Reply<'_>) {
        if let Some(origin) = self.allowed(req) {
            let _ = reply.header("Access-Control-Allow-Origin", &origin);
            let _ = reply.header("Access-Control-Allow-Credentials", "true");
            let _ = reply.header("Vary", "Origin");
        }
    }

    /// The answer to `OPTIONS` on a route taking `methods`: `204` with
    /// `Allow` and, for an allowed origin, the answer to a browser's CORS
    /// preflight. For another origin, a preflight gets no
    /// `Access-Control-Allow-Origin`, so the browser refuses, as it should.
    pub fn preflight(&self, req: &Request, methods: &str) -> Response {
        let answer = Response::new(204).header("Allow", methods);
        let Some(origin) = self.allowed(req) else {
            return answer;
        };
        answer
            .header("Access-Control-Allow-Origin", origin)
            .header("Access-Control-Allow-Credentials", "true")
            .header("Access-Control-Allow-Methods", methods)
            .header(
                "Access-Control-Allow-Headers",
                "Authorization, Last-Event-ID, Cache-Control, Content-Type",
            )
            .header("Access-Control-Max-Age", "86400")
            .header("Vary", "Origin")
    }
}
