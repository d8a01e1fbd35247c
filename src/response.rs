//! Response heads and bodies on the wire: the status line, `Date`, the
//! handler's headers, framing and connection headers, and the shared heads of
//! event streams. Pure: what goes out is built here as bytes, next to
//! `http.rs`, which parses what comes in.

use std::rc::Rc;

use crate::date::HttpDate;
use crate::error::StreamError;
use crate::http::{reason, valid_header, Version};

/// A plain (non-stream) response: a status, headers and a body. It is sent
/// with `Content-Length`, except a `1xx`, `204` or `304`: those end with
/// their head (RFC 9112 §6.3), so they go without a body or a length.
///
/// ```
/// use sseloop::Response;
/// let r = Response::text(404, "no such client\n").header("X-Reason", "unknown seid");
/// # drop(r);
/// ```
#[derive(Clone, Debug)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A response with `status` and no body. The status must be a final
    /// one (200–599); [`Reply::respond`](crate::Reply::respond) refuses any
    /// other with [`StreamError::InvalidStatus`] and sends `500` instead.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into().into_bytes())
    }

    /// Adds a header. Invalid names or values (CR, LF, NUL) make
    /// [`Reply::respond`](crate::Reply::respond) fail with [`StreamError::InvalidHeader`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether this response can be written as it is: a final status
    /// (200–599) and headers that cannot split the head.
    ///
    /// # Errors
    /// [`StreamError::InvalidStatus`] or [`StreamError::InvalidHeader`].
    pub(crate) fn check(&self) -> Result<(), StreamError> {
        if !(200..=599).contains(&self.status) {
            return Err(StreamError::InvalidStatus(self.status));
        }
        match self.headers.iter().find(|(n, v)| !valid_header(n, v)) {
            Some((name, _)) => Err(StreamError::InvalidHeader(name.clone())),
            None => Ok(()),
        }
    }

    /// The response's bytes for a request of `version`: the status line,
    /// `Date`, the reply's `extra` headers and then its own, the framing
    /// and connection headers, and the body unless `head_only` (a `HEAD`).
    /// Every plain response, the handler's or the loop's refusal, is made
    /// here.
    pub(crate) fn encode(
        &self,
        version: Version,
        date: &HttpDate,
        extra: &[(String, String)],
        keep_alive: bool,
        head_only: bool,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        push_status_line(&mut out, version, self.status);
        push_header(&mut out, "Date", date.value());
        for (name, value) in extra.iter().chain(&self.headers) {
            push_header(&mut out, name, value.as_bytes());
        }
        // A body after these would be read as the next response, and a
        // length is forbidden on 1xx and 204 (RFC 9110 §8.6).
        let bodiless = matches!(self.status, 100..=199 | 204 | 304);
        if !bodiless {
            push_header(
                &mut out,
                "Content-Length",
                itoa::Buffer::new().format(self.body.len()).as_bytes(),
            );
        }
        match (version, keep_alive) {
            (Version::Http11, false) => push_header(&mut out, "Connection", b"close"),
            (Version::Http10, true) => push_header(&mut out, "Connection", b"keep-alive"),
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
        if !head_only && !bodiless {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The stream response heads, but for `Date`: it and any extra headers go
/// before the final CRLF.
pub(crate) const STREAM_HEAD_11: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
X-Accel-Buffering: no\r\n\
Transfer-Encoding: chunked\r\n\r\n";
pub(crate) const STREAM_HEAD_10: &[u8] = b"HTTP/1.0 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
X-Accel-Buffering: no\r\n\
Connection: close\r\n\r\n";

/// This second's stream heads, `Date` included. A head differs from the
/// next stream's only when the second changes, so the streams opened in one
/// second queue one shared copy, built when the first of them opens.
#[derive(Default)]
pub(crate) struct StreamHeads {
    /// The second they show, once built.
    second: Option<u64>,
    http11: Rc<[u8]>,
    http10: Rc<[u8]>,
}

impl StreamHeads {
    pub(crate) fn get(&mut self, date: &HttpDate, version: Version) -> Rc<[u8]> {
        if self.second != Some(date.second()) {
            self.http11 = stream_head(STREAM_HEAD_11, date, &[], false).into();
            self.http10 = stream_head(STREAM_HEAD_10, date, &[], false).into();
            self.second = Some(date.second());
        }
        match version {
            Version::Http11 => self.http11.clone(),
            Version::Http10 => self.http10.clone(),
        }
    }
}

/// `whole` (one of the stream heads) with `Date`, the `extra` headers and,
/// if `close`, `Connection: close`.
pub(crate) fn stream_head(
    whole: &[u8],
    date: &HttpDate,
    extra: &[(String, String)],
    close: bool,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(whole.len() + 64);
    head.extend_from_slice(&whole[..whole.len() - 2]);
    push_header(&mut head, "Date", date.value());
    for (name, value) in extra {
        push_header(&mut head, name, value.as_bytes());
    }
    if close {
        push_header(&mut head, "Connection", b"close");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Writes a status line (`HTTP/1.1 200 OK\r\n`).
pub(crate) fn push_status_line(out: &mut Vec<u8>, version: Version, status: u16) {
    out.extend_from_slice(match version {
        Version::Http10 => b"HTTP/1.0 ",
        Version::Http11 => b"HTTP/1.1 ",
    });
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes one header line.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
