//! CORS: the headers a browser on another origin needs before it may read
//! the hub's streams and answers.

use sseloop::Response;

/// The answer to `OPTIONS` on a route taking `methods`: `204` with `Allow`
/// and, when an origin is allowed, the answer to a browser's CORS preflight.
/// Without one, a preflight gets no `Access-Control-Allow-Origin`, so the
/// browser refuses, as it should.
pub fn preflight(origin: Option<&str>, methods: &str) -> Response {
    let answer = Response::new(204).header("Allow", methods);
    let Some(origin) = origin else {
        return answer;
    };
    answer
        .header("Access-Control-Allow-Origin", origin)
        .header("Access-Control-Allow-Methods", "GET")
        .header(
            "Access-Control-Allow-Headers",
            "Last-Event-ID, Cache-Control",
        )
        .header("Access-Control-Max-Age", "86400")
}
