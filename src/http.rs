//! HTTP/1.x on the wire: request heads parsed with `httparse`, request bodies
//! (`Content-Length` or chunked), query decoding. Pure:
//! bytes in, a typed result out; nothing here touches a socket.
//!
//! Every buffer has a limit ([`Limits`]); going past one is an [`HttpError`]
//! whose [`status`](HttpError::status) is the answer to send before closing.

use std::fmt;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::ops::Range;

/// Size limits on what a client may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most bytes in a request head (request line and headers): past it, `431`.
    pub max_head: usize,
    /// Most bytes in a request body: past it, `413`.
    pub max_body: usize,
}

/// The default head limit: 8 KiB, as most servers use.
pub const DEFAULT_MAX_HEAD: usize = 8 * 1024;
/// The default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Most header lines in a request head: past it, `431`.
pub const MAX_HEADERS: usize = 100;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: DEFAULT_MAX_HEAD,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// Why a request was refused; each maps to one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The request head is larger than [`Limits::max_head`] or has more than
    /// [`MAX_HEADERS`] headers (`431`).
    HeadTooLarge,
    /// The request head is not valid HTTP/1.x (`400`).
    Malformed,
    /// The query string does not decode to UTF-8 (`400`).
    BadQuery,
    /// The body's length cannot be determined safely: `Content-Length` with
    /// `Transfer-Encoding`, conflicting or non-numeric lengths, chunked on
    /// HTTP/1.0 (`400`).
    BadFraming,
    /// A chunked body is malformed (`400`).
    BadChunk,
    /// The body is larger than [`Limits::max_body`] (`413`).
    BodyTooLarge,
    /// A transfer coding other than `chunked` (`501`).
    UnsupportedTransferCoding,
    /// Not HTTP/1.0 or HTTP/1.1 (`505`).
    UnsupportedVersion,
    /// An HTTP/1.1 request without `Host`, or any request with more than
    /// one `Host` or one that is not a host and port (`400`, as RFC 9112
    /// §3.2 requires).
    BadHost,
    /// The client did not send a complete request in time (`408`).
    Timeout,
}

impl HttpError {
    /// The status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            HttpError::HeadTooLarge => 431,
            HttpError::Malformed
            | HttpError::BadQuery
            | HttpError::BadFraming
            | HttpError::BadChunk
            | HttpError::BadHost => 400,
            HttpError::BodyTooLarge => 413,
            HttpError::UnsupportedTransferCoding => 501,
            HttpError::UnsupportedVersion => 505,
            HttpError::Timeout => 408,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpError::HeadTooLarge => "request head too large",
            HttpError::Malformed => "malformed request",
            HttpError::BadQuery => "query string is not valid percent-encoded UTF-8",
            HttpError::BadFraming => "ambiguous or invalid message framing",
            HttpError::BadChunk => "malformed chunked body",
            HttpError::BodyTooLarge => "request body too large",
            HttpError::UnsupportedTransferCoding => "unsupported transfer coding",
            HttpError::UnsupportedVersion => "unsupported HTTP version",
            HttpError::BadHost => "missing, repeated or invalid Host header",
            HttpError::Timeout => "request timed out",
        })
    }
}

impl std::error::Error for HttpError {}

/// The HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: streams are not chunked and end with a close.
    Http10,
    /// HTTP/1.1: streams are chunked and the connection can be reused.
    Http11,
}

/// How the request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    None,
    Length(usize),
    Chunked,
}

/// A parsed request, handed to the handler with its body already read.
#[derive(Clone)]
pub struct Request {
    /// The head as received (request line and headers), copied once out of
    /// the read buffer. The method, path and headers are positions in it, so
    /// a request costs the same two allocations however many headers it has.
    head: Box<[u8]>,
    method: Range<usize>,
    path: Range<usize>,
    /// Each header's name and value.
    headers: Vec<(Range<usize>, Range<usize>)>,
    query: Vec<(String, String)>,
    version: Version,
    keep_alive: bool,
    expects_continue: bool,
    pub(crate) framing: BodyFraming,
    body: Vec<u8>,
    peer: SocketAddr,
    /// Whether it came over the server's own TLS.
    secure: bool,
}

impl Request {
    /// The method, as sent (`GET`, `POST`, …).
    pub fn method(&self) -> &str {
        self.text(&self.method)
    }

    /// The path of the request target, without the query, not decoded.
    pub fn path(&self) -> &str {
        self.text(&self.path)
    }

    /// The head's text at `at`: the method, the path or a header name. The
    /// parser handed each of them over as `str` and they are cut at ASCII
    /// delimiters, so they are UTF-8 and the fallback is never taken.
    fn text(&self, at: &Range<usize>) -> &str {
        std::str::from_utf8(&self.head[at.clone()]).unwrap_or_default()
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of query parameter `name`, in order (`?topic=a&topic=b`).
    pub fn query_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every query parameter, decoded, in order.
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    /// The first header named `name` (any case), if its value is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first header named `name` (any case), as raw bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header, in order, with names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .map(|(name, value)| (self.text(name), &self.head[value.clone()]))
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether the connection stays open after this request's response.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The request body (empty without one). Chunked bodies are decoded.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the request came over TLS to this server ([`Builder::tls`](crate::Builder)):
    /// the scheme of its URL is `https`. TLS ended by a proxy in front
    /// shows only in the proxy's headers (`X-Forwarded-Proto`), which are
    /// the proxy's word, not this server's.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Marks the request as received over TLS (the I/O shell knows).
    pub(crate) fn set_secure(&mut self) {
        self.secure = true;
    }

    pub(crate) fn expects_continue(&self) -> bool {
        self.expects_continue
    }

    pub(crate) fn set_body(&mut self, body: Vec<u8>) {
        self.body = body;
    }
}

/// Shows what a handler sees: the method, path, query, headers (values
/// escaped) and body, rather than the head's raw bytes and positions.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, String)> = self
            .headers()
            .map(|(name, value)| (name, value.escape_ascii().to_string()))
            .collect();
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("query", &self.query)
            .field("headers", &headers)
            .field("version", &self.version)
            .field("keep_alive", &self.keep_alive)
            .field("expects_continue", &self.expects_continue)
            .field("framing", &self.framing)
            .field("body", &self.body.escape_ascii().to_string())
            .field("peer", &self.peer)
            .field("secure", &self.secure)
            .finish()
    }
}

/// Parses a request head from the front of `buf`.
///
/// Answers `Ok(None)` while the head is incomplete (read more and call again
/// with the grown buffer), or the request and the head's length in bytes.
///
/// # Errors
/// [`HttpError`] for a head that is too large, malformed, or whose body
/// framing is unsafe.
pub(crate) fn parse_head(
    buf: &[u8],
    limits: &Limits,
    peer: SocketAddr,
) -> Result<Option<(Request, usize)>, HttpError> {
    // Left uninitialised: httparse fills only as many as the head has, and
    // writing all 100 empty headers first (3.2 KB) was most of the parse.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    // Only the first `max_head` bytes can hold a head we accept, so only they
    // are parsed: what lies past the limit cannot change the outcome, which
    // is then the same however the bytes were split across reads.
    let window = &buf[..buf.len().min(limits.max_head)];
    let len = match req.parse_with_uninit_headers(window, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_head {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(httparse::Error::Version) => {
            return match version_error(window) {
                Some(error) => Err(error),
                None if buf.len() > limits.max_head => Err(HttpError::HeadTooLarge),
                None => Ok(None),
            };
        }
        Err(_) => return Err(HttpError::Malformed),
    };
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::UnsupportedVersion),
    };
    // Where a piece of the head lies in `buf`: the parser's slices point
    // into it, and the request keeps positions in its own copy.
    let at = |piece: &[u8]| {
        let start = piece.as_ptr() as usize - buf.as_ptr() as usize;
        debug_assert!(
            start + piece.len() <= len,
            "a piece of the head lies outside it"
        );
        start..start + piece.len()
    };
    let method = at(req.method.ok_or(HttpError::Malformed)?.as_bytes());
    let target = req.path.ok_or(HttpError::Malformed)?;
    let target = origin_form(target).ok_or(HttpError::Malformed)?;
    let (path, query) = split_target(target);
    let query = decode_query(query).ok_or(HttpError::BadQuery)?;

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expects_continue = false;
    let mut has_host = false;
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value, limits)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(HttpError::BadFraming);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if transfer_encoding {
                // Several Transfer-Encoding lines: refuse rather than guess
                // how an upstream proxy combined them.
                return Err(HttpError::BadFraming);
            }
            transfer_encoding = true;
            chunked = parse_transfer_encoding(h.value)?;
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                connection_close |= token.eq_ignore_ascii_case(b"close");
                connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            expects_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if h.name.eq_ignore_ascii_case("host") {
            if has_host || !is_host(h.value.trim_ascii()) {
                return Err(HttpError::BadHost);
            }
            has_host = true;
        }
        headers.push((at(h.name.as_bytes()), at(h.value)));
    }
    let framing = match (content_length, transfer_encoding) {
        (Some(_), true) => return Err(HttpError::BadFraming),
        (_, true) if version == Version::Http10 => return Err(HttpError::BadFraming),
        (None, true) if chunked => BodyFraming::Chunked,
        (None, true) => return Err(HttpError::UnsupportedTransferCoding),
        (Some(0), false) | (None, false) => BodyFraming::None,
        (Some(n), false) => BodyFraming::Length(n),
    };
    if version == Version::Http11 && !has_host {
        return Err(HttpError::BadHost);
    }
    let keep_alive = match version {
        Version::Http11 => !connection_close,
        Version::Http10 => connection_keep_alive && !connection_close,
    };
    let mut head = buf[..len].to_vec();
    let path = if path.is_empty() {
        // `http://host`: its path is `/`, which is not among the bytes sent.
        head.push(b'/');
        len..len + 1
    } else {
        at(path.as_bytes())
    };
    let request = Request {
        head: head.into_boxed_slice(),
        method,
        path,
        query,
        headers,
        version,
        keep_alive,
        expects_continue: expects_continue && version == Version::Http11,
        framing,
        body: Vec::new(),
        peer,
        secure: false,
    };
    Ok(Some((request, len)))
}

/// The path-and-query of a request target: origin form as is, absolute form
/// (`http://host/path`) without its scheme and authority, `*` as is. An
/// absolute form with no path (`http://host`, `http://host?q`) gives an
/// empty path, which stands for `/` (RFC 9112 §3.2.2). Always a slice of
/// `target`.
/// What a request line whose version httparse refused is: `505` when the
/// version is well formed but not 1.0 or 1.1 (`HTTP/2.0`), `400` when the
/// line is not HTTP at all (`THIS IS NOT HTTP`), and `None` while the
/// version read so far could still become either (the answer must not
/// depend on how the bytes were split). RFC 9112 §2.3:
/// `HTTP-version = HTTP-name "/" DIGIT "." DIGIT`.
fn version_error(buf: &[u8]) -> Option<HttpError> {
    let line_end = buf.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or_default();
    let shape = b"HTTP/0.0";
    let fits = version.len() <= shape.len()
        && version.iter().zip(shape).all(|(&b, &want)| match want {
            b'0' => b.is_ascii_digit(),
            want => b == want,
        });
    match (fits, line_end.is_some()) {
        (true, true) if version.len() == shape.len() => Some(HttpError::UnsupportedVersion),
        (true, false) => None,
        _ => Some(HttpError::Malformed),
    }
}

/// The origin form (path and query) of a request target: itself when it
/// already is one (or `*`), the part after the authority of an absolute
/// `http://` or `https://` target (RFC 9112 §3.2.2), else `None`.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') || target == "*" {
        return Some(target);
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    Some(&rest[rest.find(['/', '?']).unwrap_or(rest.len())..])
}

/// A target's path and query (empty without a `?`).
fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    }
}

/// Whether `value` can be a `Host` field: `uri-host [ ":" port ]` (RFC 3986
/// §3.2.2), or empty for a target without an authority. Checked by the bytes
/// those allow: letters, digits, `-._~`, `%`, the sub-delims, and `:[]`.
fn is_host(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b))
}

fn parse_content_length(value: &[u8], limits: &Limits) -> Result<usize, HttpError> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadFraming);
    }
    // Any length past the limit is refused before a byte of it is read, so an
    // absurd length never needs to fit in a usize.
    if value.len() > 19 {
        return Err(HttpError::BodyTooLarge);
    }
    let n: u64 = std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(HttpError::BadFraming)?;
    if n > limits.max_body as u64 {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(n as usize)
}

/// `true` for exactly `chunked`; other codings are not supported.
fn parse_transfer_encoding(value: &[u8]) -> Result<bool, HttpError> {
    let codings: Vec<&[u8]> = value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .collect();
    match codings.as_slice() {
        [only] if only.eq_ignore_ascii_case(b"chunked") => Ok(true),
        // RFC 9112 §6.3: if chunked is not the final coding the length of
        // the body cannot be known: 400.
        [.., last] if !last.eq_ignore_ascii_case(b"chunked") => Err(HttpError::BadFraming),
        _ => Err(HttpError::UnsupportedTransferCoding),
    }
}

/// Decodes `a=1&b=x%20y` into pairs; `+` is a space, as in HTML forms.
/// `None` when a value does not decode to UTF-8 or has a bad `%` escape.
fn decode_query(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            Some((decode(k, true)?, decode(v, true)?))
        })
        .collect()
}

/// Percent-decodes `s` as a path segment (RFC 3986: `+` stays `+`). `None`
/// on a bad escape or non-UTF-8. Query parameters are decoded already, with
/// `+` as a space ([`Request::query`]).
pub fn percent_decode(s: &str) -> Option<String> {
    decode(s, false)
}

/// Percent-decoding, with `+` as a space in form-encoded queries only.
fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Reads requests from a connection's bytes: a push parser. Push what the
/// socket gave with [`push`](RequestReader::push), then take every complete
/// request with [`next_request`](RequestReader::next_request) until it
/// answers `Ok(None)`. Or hand it the bytes just read with
/// [`next_request_in`](RequestReader::next_request_in), which parses them
/// where they lie and keeps only an incomplete rest: a request that arrives
/// whole in one read is never copied into the connection's buffer.
///
/// It holds at most one head's worth of unparsed bytes ([`Limits::max_head`])
/// plus the last push, and a body up to [`Limits::max_body`]; past either,
/// it answers the [`HttpError`] to refuse the request with. Its answers do
/// not depend on how the bytes were split across pushes, nor on which of the
/// two ways they were handed over.
///
/// ```
/// use sseloop::http::{Limits, RequestReader};
/// let peer = "127.0.0.1:1".parse().unwrap();
/// let mut reader = RequestReader::new();
/// reader.push(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nh");
/// assert!(reader.next_request(&Limits::default(), peer).unwrap().is_none());
/// reader.push(b"i");
/// let req = reader.next_request(&Limits::default(), peer).unwrap().unwrap();
/// assert_eq!((req.path(), req.body()), ("/publish", &b"hi"[..]));
/// ```
#[derive(Debug, Default)]
pub struct RequestReader {
    /// Bytes received and not yet parsed. Unallocated when empty and idle.
    buf: Vec<u8>,
    /// What the bytes parsed so far have left unfinished.
    pending: Pending,
}

/// A request reader's state between reads, apart from its buffered bytes.
#[derive(Debug, Default)]
struct Pending {
    /// The request whose body is being read.
    body: Option<Box<(Request, BodyReader)>>,
    /// A head asked for `100 Continue` and it has not been answered yet.
    continue_pending: bool,
}

impl Pending {
    /// Takes the next complete request from the front of `bytes`; answers it
    /// (or `None` if more bytes are needed) and how many bytes it used. A
    /// head and body prefix used without completing a request are kept in
    /// `self`, so the caller drops them either way.
    fn take(
        &mut self,
        bytes: &[u8],
        limits: &Limits,
        peer: SocketAddr,
    ) -> Result<(Option<Request>, usize), HttpError> {
        let mut used = 0;
        if self.body.is_none() {
            let Some((req, len)) = parse_head(bytes, limits, peer)? else {
                return Ok((None, 0));
            };
            used = len;
            if req.framing == BodyFraming::None {
                return Ok((Some(req), used));
            }
            self.continue_pending = req.expects_continue() && bytes.len() == len;
            let reader = BodyReader::new(req.framing, limits);
            self.body = Some(Box::new((req, reader)));
        }
        if let Some((_, reader)) = self.body.as_deref_mut() {
            let fed = reader.feed(&bytes[used..])?;
            used += fed;
            if fed > 0 {
                self.continue_pending = false;
            }
        }
        let Some(body) = self.body.take_if(|body| body.1.is_done()) else {
            return Ok((None, used));
        };
        let (mut req, reader) = *body;
        req.set_body(reader.into_body());
        Ok((Some(req), used))
    }
}

impl RequestReader {
    /// A reader at the start of a connection.
    pub fn new() -> Self {
        RequestReader::default()
    }

    /// Adds bytes received from the client.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete request, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// The [`HttpError`] to refuse the connection's current request with;
    /// after one, the connection should answer it and close.
    pub fn next_request(
        &mut self,
        limits: &Limits,
        peer: SocketAddr,
    ) -> Result<Option<Request>, HttpError> {
        let (request, used) = self.pending.take(&self.buf, limits, peer)?;
        self.buf.drain(..used);
        Ok(request)
    }

    /// The next complete request from what is buffered followed by `input`
    /// (bytes just read), consuming from `input` what it used; `Ok(None)`
    /// once all of `input` is taken and more bytes are needed. With nothing
    /// buffered, `input` is parsed where it lies and only an incomplete rest
    /// is copied into the reader.
    ///
    /// # Errors
    /// As [`next_request`](RequestReader::next_request).
    pub fn next_request_in(
        &mut self,
        input: &mut &[u8],
        limits: &Limits,
        peer: SocketAddr,
    ) -> Result<Option<Request>, HttpError> {
        if !self.buf.is_empty() {
            self.push(input);
            *input = &[];
            return self.next_request(limits, peer);
        }
        let (request, used) = self.pending.take(input, limits, peer)?;
        *input = &input[used..];
        if request.is_none() {
            self.push(input);
            *input = &[];
        }
        Ok(request)
    }

    /// Whether the client should be told `100 Continue` now; answers `true`
    /// once per request that asked for it and has sent none of its body.
    pub fn take_continue(&mut self) -> bool {
        std::mem::take(&mut self.pending.continue_pending)
    }

    /// Bytes held that are not part of a request yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a request's body is being read.
    pub fn in_body(&self) -> bool {
        self.pending.body.is_some()
    }

    /// Whether nothing of a next request has arrived.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.pending.body.is_none()
    }

    /// Gives back the buffer's memory when it holds nothing, so an idle
    /// connection keeps no read buffer.
    pub fn release(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }
}

/// Reads a request body incrementally, `Content-Length` or chunked, within
/// a size limit.
#[derive(Debug)]
pub(crate) struct BodyReader {
    state: BodyState,
    body: Vec<u8>,
    max_body: usize,
    /// Bytes of the current chunk-size or trailer line seen so far.
    line_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// `remaining` bytes of a `Content-Length` body.
    Length(usize),
    /// In a chunk-size line; `size` so far, `digits` seen, `in_ext` past `;`.
    ChunkSize {
        size: usize,
        digits: u8,
        in_ext: bool,
    },
    /// Saw CR at the end of a chunk-size line.
    ChunkSizeLf {
        size: usize,
    },
    /// `remaining` bytes of chunk data.
    ChunkData(usize),
    /// Expecting the CR after chunk data.
    ChunkDataCr,
    /// Expecting the LF after chunk data.
    ChunkDataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// In a trailer line; `cr` when the last byte was CR.
    Trailer {
        cr: bool,
    },
    /// Saw CR of the final empty line.
    FinalLf,
    Done,
}

/// The longest chunk-size line or trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;

impl BodyReader {
    pub(crate) fn new(framing: BodyFraming, limits: &Limits) -> Self {
        let state = match framing {
            BodyFraming::None => BodyState::Done,
            BodyFraming::Length(n) => BodyState::Length(n),
            BodyFraming::Chunked => BodyState::ChunkSize {
                size: 0,
                digits: 0,
                in_ext: false,
            },
        };
        let capacity = match framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        BodyReader {
            state,
            body: Vec::with_capacity(capacity),
            max_body: limits.max_body,
            line_len: 0,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == BodyState::Done
    }

    /// Consumes body bytes from the front of `buf`; answers how many it used.
    /// Bytes past the end of the body (a pipelined request) are left.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < buf.len() {
            match self.state {
                BodyState::Done => break,
                BodyState::Length(remaining) | BodyState::ChunkData(remaining) => {
                    let n = remaining.min(buf.len() - i);
                    self.body.extend_from_slice(&buf[i..i + n]);
                    i += n;
                    let left = remaining - n;
                    self.state = match self.state {
                        BodyState::Length(_) if left == 0 => BodyState::Done,
                        BodyState::Length(_) => BodyState::Length(left),
                        _ if left == 0 => BodyState::ChunkDataCr,
                        _ => BodyState::ChunkData(left),
                    };
                }
                state => {
                    self.step(state, buf[i])?;
                    i += 1;
                }
            }
        }
        Ok(i)
    }

    /// One byte of the chunked framing (everything but chunk data).
    fn step(&mut self, state: BodyState, b: u8) -> Result<(), HttpError> {
        self.line_len += 1;
        if self.line_len > MAX_CHUNK_LINE {
            return Err(HttpError::BadChunk);
        }
        self.state = match state {
            BodyState::ChunkSize {
                size,
                digits,
                in_ext,
            } => match b {
                b'\r' if digits > 0 => BodyState::ChunkSizeLf { size },
                _ if in_ext => {
                    if b == b'\n' || b == 0 {
                        return Err(HttpError::BadChunk);
                    }
                    state
                }
                b';' if digits > 0 => BodyState::ChunkSize {
                    size,
                    digits,
                    in_ext: true,
                },
                _ => {
                    let d = (b as char).to_digit(16).ok_or(HttpError::BadChunk)? as usize;
                    if digits >= 16 {
                        return Err(HttpError::BadChunk);
                    }
                    let size = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(d))
                        .ok_or(HttpError::BodyTooLarge)?;
                    if size > self.max_body.saturating_sub(self.body.len()) {
                        return Err(HttpError::BodyTooLarge);
                    }
                    BodyState::ChunkSize {
                        size,
                        digits: digits + 1,
                        in_ext,
                    }
                }
            },
            BodyState::ChunkSizeLf { size } => {
                if b != b'\n' {
                    return Err(HttpError::BadChunk);
                }
                self.line_len = 0;
                if size == 0 {
                    BodyState::TrailerStart
                } else {
                    BodyState::ChunkData(size)
                }
            }
            BodyState::ChunkDataCr if b == b'\r' => BodyState::ChunkDataLf,
            BodyState::ChunkDataLf if b == b'\n' => {
                self.line_len = 0;
                BodyState::ChunkSize {
                    size: 0,
                    digits: 0,
                    in_ext: false,
                }
            }
            BodyState::TrailerStart => match b {
                b'\r' => BodyState::FinalLf,
                b'\n' => return Err(HttpError::BadChunk),
                _ => BodyState::Trailer { cr: false },
            },
            BodyState::Trailer { cr } => match (cr, b) {
                (true, b'\n') => BodyState::TrailerStart,
                (_, b'\r') => BodyState::Trailer { cr: true },
                (_, b'\n') | (true, _) => return Err(HttpError::BadChunk),
                _ => BodyState::Trailer { cr: false },
            },
            BodyState::FinalLf if b == b'\n' => BodyState::Done,
            _ => return Err(HttpError::BadChunk),
        };
        Ok(())
    }

    pub(crate) fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// The reason phrase for the statuses sseloop and its handlers commonly use.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Whether `name` is a valid header name and `value` a valid header value
/// (no CR, LF or NUL), so neither can split the response head.
pub fn valid_header(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
        parse_head(buf, &Limits::default(), peer())
    }

    #[test]
    fn plus_is_a_space_in_queries_only() {
        let (req, _) = parse(b"GET /a+b?q=x+y%2B HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.query("q"), Some("x y+"));
        assert_eq!(percent_decode("a+b%20c").as_deref(), Some("a+b c"));
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn heads_table() {
        let input = b"GET /events?topic=a&topic=b%20c&x=1+2 HTTP/1.1\r\nHost: h\r\n\r\nrest";
        let ok = parse(input).unwrap().unwrap();
        assert_eq!(ok.1, input.len() - b"rest".len());
        let r = ok.0;
        assert_eq!((r.method(), r.path()), ("GET", "/events"));
        assert_eq!(r.query_all("topic").collect::<Vec<_>>(), ["a", "b c"]);
        assert_eq!(r.query("x"), Some("1 2"));
        assert_eq!(r.header("HOST"), Some("h"));
        assert!(r.keep_alive());

        let table: &[(&[u8], Result<bool, HttpError>)] = &[
            (b"GET / HTTP/1.1\r\nHost: x\r\n", Ok(false)),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Ok(true)),
            (b"GET / HTTP/1.0\r\n\r\n", Ok(true)),
            (
                b"GET / HTTP/2.0\r\n\r\n",
                Err(HttpError::UnsupportedVersion),
            ),
            (b"GET / HTTP/3.1\r\n\r\n", Err(HttpError::UnsupportedVersion)),
            (b"GET / HTTP/2", Ok(false)),
            (b"GET / HTTP/2.0", Ok(false)),
            (b"GET / HTTP/2x\r\n", Err(HttpError::Malformed)),
            (b"THIS IS NOT HTTP\r\n\r\n", Err(HttpError::Malformed)),
            (b"GET / HTTX/1.1\r\n\r\n", Err(HttpError::Malformed)),
            (b"GET / HTTP/1.1.1\r\n\r\n", Err(HttpError::Malformed)),
            (b"GET / http/1.1\r\n\r\n", Err(HttpError::Malformed)),
            (b"G\0T / HTTP/1.1\r\nHost: x\r\n\r\n", Err(HttpError::Malformed)),
            (b"GET /?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n", Err(HttpError::BadQuery)),
            (b"GET /?a=%ff HTTP/1.1\r\nHost: x\r\n\r\n", Err(HttpError::BadQuery)),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(HttpError::BadFraming),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                Err(HttpError::BadFraming),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                Err(HttpError::BadFraming),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                Err(HttpError::BodyTooLarge),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                Err(HttpError::BadFraming),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Err(HttpError::UnsupportedTransferCoding),
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(HttpError::BadFraming),
            ),
            // Host: required on HTTP/1.1, once, and a host and port.
            (b"GET / HTTP/1.1\r\n\r\n", Err(HttpError::BadHost)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Err(HttpError::BadHost)),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Err(HttpError::BadHost)),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Err(HttpError::BadHost)),
            (b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", Err(HttpError::BadHost)),
            (b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", Err(HttpError::BadHost)),
            (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", Ok(true)),
            (b"GET / HTTP/1.1\r\nHOST: [::1]:8080\r\n\r\n", Ok(true)),
            (b"GET / HTTP/1.1\r\nhost: xn--bcher-kva.example:80\r\n\r\n", Ok(true)),
        ];
        for (input, want) in table {
            let got = parse(input).map(|r| r.is_some());
            assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn request_target_forms() {
        let table: &[(&[u8], &str, Option<&str>)] = &[
            (b"GET /events?topic=a HTTP/1.1", "/events", Some("a")),
            (
                b"GET http://h.example/events?topic=a HTTP/1.1",
                "/events",
                Some("a"),
            ),
            (b"GET https://h.example HTTP/1.1", "/", None),
            (b"GET http://h.example?topic=b HTTP/1.1", "/", Some("b")),
            (b"OPTIONS * HTTP/1.1", "*", None),
            (
                "GET /caf\u{e9}?topic=\u{e9} HTTP/1.1".as_bytes(),
                "/caf\u{e9}",
                Some("\u{e9}"),
            ),
        ];
        for (line, path, topic) in table {
            let head = [line, &b"\r\nHost: x\r\nX-A: 1\r\nx-b: \xff\r\n\r\n"[..]].concat();
            let (r, _) = parse(&head).unwrap().unwrap();
            assert_eq!((r.path(), r.query("topic")), (*path, *topic), "{r:?}");
            let headers: Vec<_> = r.headers().collect();
            assert_eq!(
                headers,
                [
                    ("Host", &b"x"[..]),
                    ("X-A", &b"1"[..]),
                    ("x-b", &b"\xff"[..])
                ]
            );
            assert_eq!((r.header("x-a"), r.header("X-B")), (Some("1"), None));
        }
        assert_eq!(
            parse(b"GET ftp://h/ HTTP/1.1\r\nHost: x\r\n\r\n").err(),
            Some(HttpError::Malformed)
        );
    }

    #[test]
    fn head_limits() {
        let mut big = b"GET /".to_vec();
        big.resize(DEFAULT_MAX_HEAD + 10, b'a');
        assert_eq!(parse(&big).err(), Some(HttpError::HeadTooLarge));
        let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many).err(), Some(HttpError::HeadTooLarge));
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |b: &[u8]| parse(b).unwrap().unwrap().0.keep_alive();
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    fn read_body(framing: BodyFraming, input: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
        let limits = Limits {
            max_head: 1024,
            max_body: 64,
        };
        let mut r = BodyReader::new(framing, &limits);
        // Byte by byte, to exercise every state boundary.
        let mut used = 0;
        for b in input {
            used += r.feed(std::slice::from_ref(b))?;
            if r.is_done() {
                break;
            }
        }
        assert!(r.is_done(), "incomplete");
        Ok((r.into_body(), used))
    }

    #[test]
    fn chunked_bodies() {
        let c = BodyFraming::Chunked;
        assert_eq!(
            read_body(c, b"5\r\nhello\r\n0\r\n\r\nNEXT").unwrap(),
            (b"hello".to_vec(), 15)
        );
        assert_eq!(
            read_body(c, b"3;ext=1\r\nabc\r\n2\r\n\r\n\r\n0\r\nTrailer: x\r\n\r\n")
                .unwrap()
                .0,
            b"abc\r\n"
        );
        assert_eq!(read_body(c, b"zz\r\n"), Err(HttpError::BadChunk));
        assert_eq!(read_body(c, b"\r\n"), Err(HttpError::BadChunk));
        assert_eq!(read_body(c, b"3\r\nabcX"), Err(HttpError::BadChunk));
        assert_eq!(read_body(c, b"3\nabc"), Err(HttpError::BadChunk));
        assert_eq!(read_body(c, b"41\r\n"), Err(HttpError::BodyTooLarge));
        assert_eq!(
            read_body(c, b"ffffffffffffffffff\r\n"),
            Err(HttpError::BodyTooLarge)
        );
        assert_eq!(
            read_body(c, b"20\r\n................................\r\n21\r\n"),
            Err(HttpError::BodyTooLarge)
        );
        assert_eq!(
            read_body(BodyFraming::Length(3), b"abcd").unwrap(),
            (b"abc".to_vec(), 3)
        );
    }

    /// A request as (method, path, body).
    type Seen = (String, String, Vec<u8>);

    /// Everything a reader makes of `input` fed in pieces of `step` bytes:
    /// the requests and how it ended.
    fn read_all(input: &[u8], step: usize) -> (Vec<Seen>, Option<HttpError>) {
        let limits = Limits {
            max_head: 64,
            max_body: 16,
        };
        let mut reader = RequestReader::new();
        let mut got = Vec::new();
        for piece in input.chunks(step) {
            reader.push(piece);
            loop {
                match reader.next_request(&limits, peer()) {
                    Ok(Some(r)) => got.push((
                        r.method().to_owned(),
                        r.path().to_owned(),
                        r.body().to_vec(),
                    )),
                    Ok(None) => break,
                    Err(e) => return (got, Some(e)),
                }
            }
            assert!(
                reader.buffered() <= limits.max_head + step,
                "buffered past the limit"
            );
        }
        (got, None)
    }

    #[test]
    fn reader_answers_do_not_depend_on_splits() {
        let inputs: &[&[u8]] = &[
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyzGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /e HTTP/1.1\r\nHost: x\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
            b"GET /f HTTP/1.1\r\nHost: x\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x00\r\n\r\n",
            b"POST /g HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n",
            b"POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nX\r\n",
        ];
        for input in inputs {
            let whole = read_all(input, input.len());
            for step in 1..8 {
                assert_eq!(
                    read_all(input, step),
                    whole,
                    "{:?} in {step}-byte pieces",
                    String::from_utf8_lossy(input)
                );
            }
        }
        assert_eq!(read_all(inputs[0], 1000).0.len(), 3);
        assert_eq!(read_all(inputs[2], 1000).1, Some(HttpError::HeadTooLarge));
        assert_eq!(read_all(inputs[4], 1000).1, Some(HttpError::BodyTooLarge));
        assert_eq!(read_all(inputs[5], 1000).1, Some(HttpError::BodyTooLarge));
    }

    #[test]
    fn header_validation() {
        assert!(valid_header("X-Ok", "fine value"));
        assert!(!valid_header("X Bad", "v"));
        assert!(!valid_header("X-Bad", "a\r\nInjected: 1"));
    }
}
