//! One connection to Redis with deadlines, and the `503` a publish gets
//! when Redis fails it: what the writer, the reader and the presence
//! thread share.

use std::time::Duration;

use sseloop::Response;

/// A connection whose every call gives up after `timeout`.
pub(crate) fn connect(
    client: &redis::Client,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// `503` with `Retry-After`, saying why.
pub(crate) fn unavailable(why: &str) -> Response {
    Response::text(503, format!("{why}\n")).header("Retry-After", "1")
}
