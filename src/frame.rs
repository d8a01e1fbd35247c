//! Events → SSE bytes (WHATWG HTML, "Server-sent events"), and the HTTP/1.1
//! chunk framing around them. Pure: no I/O, no clock.
//!
//! # What a frame looks like
//!
//! Every field is written as `name: value` with exactly one space, every line
//! ends in LF, and a blank line ends the frame:
//!
//! ```text
//! event: greeting
//! id: 7
//! retry: 3000
//! data: first line
//! data: second line
//!
//! ```
//!
//! # Line breaks in data are normalised to LF
//!
//! The spec treats CRLF, a lone CR and a lone LF all as line breaks, so data
//! is split on each of them (CRLF counts as one break) into one `data: ` line
//! per line. A client joins the lines with LF, so it receives the data with
//! every CR and CRLF turned into LF. That is the only change the encoder makes
//! to data; everything else (NUL, leading spaces, a trailing line break, empty
//! data) arrives exactly as it was sent.
//!
//! # Fields that cannot be encoded
//!
//! `event` and `id` are single-line fields: a CR or LF in them would end the
//! field early and let the rest of the value become a field of its own, so
//! they are refused with a [`FrameError`]. An id containing NUL is refused as
//! well, because clients ignore such an id. Nothing is written for a refused
//! event.

use std::fmt;
use std::sync::Arc;

/// One Server-Sent Event, built up with chained methods and then encoded
/// once into a [`Frame`].
///
/// `Event::new(data)` is the seed's `sendEvent(data, event?, id?, retry?)`:
///
/// ```
/// use sseloop::Event;
/// let event = Event::new("hello world").event("greeting").id("1").retry(3000);
/// let frame = event.encode().unwrap();
/// assert_eq!(
///     frame.payload(),
///     b"event: greeting\nid: 1\nretry: 3000\ndata: hello world\n\n"
/// );
/// ```
///
/// An event without data (see [`Event::id_only`]) fires nothing on the
/// client: it only moves the client's last event id and reconnection time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    data: Option<String>,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
}

impl Event {
    /// An event carrying `data`, delivered as a `message` event unless
    /// [`Event::event`] names it. Empty data is sent (`data: `) and still
    /// fires on the client.
    pub fn new(data: impl Into<String>) -> Self {
        Event {
            data: Some(data.into()),
            ..Event::default()
        }
    }

    /// An event whose data is `value` formatted with [`fmt::Display`].
    pub fn display(value: &impl fmt::Display) -> Self {
        Event::new(value.to_string())
    }

    /// An event whose data is `bytes`, which must be UTF-8: an SSE stream is
    /// UTF-8, and a client would replace invalid bytes, so they are refused
    /// rather than sent altered.
    ///
    /// # Errors
    /// [`FrameError::DataNotUtf8`] when `bytes` is not UTF-8.
    pub fn from_utf8(bytes: Vec<u8>) -> Result<Self, FrameError> {
        String::from_utf8(bytes)
            .map(Event::new)
            .map_err(|_| FrameError::DataNotUtf8)
    }

    /// An event whose data is `value` serialised as JSON (one line).
    ///
    /// # Errors
    /// The serialiser's error, for values JSON cannot represent.
    #[cfg(feature = "serde")]
    pub fn json(value: &impl serde::Serialize) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Event::new)
    }

    /// A frame with an id and no data: it fires no event on the client but
    /// sets the id the client will send back as `Last-Event-ID` when it
    /// reconnects.
    pub fn id_only(id: impl Into<String>) -> Self {
        Event {
            id: Some(id.into()),
            ..Event::default()
        }
    }

    /// Names the event (`event: name`); the client dispatches it to
    /// listeners of that name instead of `message`.
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.event = Some(name.into());
        self
    }

    /// Sets the event's id (`id: id`).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the client's reconnection time in milliseconds (`retry: ms`).
    pub fn retry(mut self, ms: u64) -> Self {
        self.retry = Some(ms);
        self
    }

    /// The event's data, if it has any.
    pub fn data_str(&self) -> Option<&str> {
        self.data.as_deref()
    }

    /// The event's name, if it has one.
    pub fn event_name(&self) -> Option<&str> {
        self.event.as_deref()
    }

    /// The event's id, if it has one.
    pub fn id_str(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The event's reconnection time, if it has one.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry
    }

    /// Whether the event has an id of its own.
    pub fn has_id(&self) -> bool {
        self.id.is_some()
    }

    /// Checks the single-line fields without encoding anything.
    ///
    /// # Errors
    /// See [`FrameError`].
    pub fn validate(&self) -> Result<(), FrameError> {
        if let Some(name) = &self.event {
            if has_line_break(name) {
                return Err(FrameError::EventHasLineBreak);
            }
        }
        if let Some(id) = &self.id {
            check_id(id)?;
        }
        Ok(())
    }

    /// Encodes the event into a shareable [`Frame`].
    ///
    /// # Errors
    /// See [`FrameError`]; nothing is encoded for a refused event.
    pub fn encode(&self) -> Result<Frame, FrameError> {
        self.encode_with_auto_id(None)
    }

    /// Encodes the event, writing `auto_id` as its id when it has none of its
    /// own. The event loop uses this for `auto_generate_id`.
    pub(crate) fn encode_with_auto_id(&self, auto_id: Option<u64>) -> Result<Frame, FrameError> {
        let mut buf = FrameBuilder::new();
        self.encode_payload(auto_id, buf.payload())?;
        Ok(buf.finish())
    }

    /// Appends the event's SSE bytes (no chunk framing) to `out`.
    ///
    /// # Errors
    /// See [`FrameError`]; `out` is left as it was for a refused event.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.encode_payload(None, out)
    }

    fn encode_payload(&self, auto_id: Option<u64>, out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.validate()?;
        let data_len = self.data.as_ref().map_or(0, |d| d.len() + 8);
        out.reserve(data_len + 32);
        if let Some(name) = &self.event {
            push_field(out, b"event", name.as_bytes());
        }
        match (&self.id, auto_id) {
            (Some(id), _) => push_field(out, b"id", id.as_bytes()),
            (None, Some(n)) => push_field(out, b"id", itoa::Buffer::new().format(n).as_bytes()),
            (None, None) => {}
        }
        if let Some(ms) = self.retry {
            push_field(out, b"retry", itoa::Buffer::new().format(ms).as_bytes());
        }
        if let Some(data) = &self.data {
            push_data_lines(out, data);
        }
        out.push(b'\n');
        Ok(())
    }
}

impl From<&str> for Event {
    fn from(data: &str) -> Self {
        Event::new(data)
    }
}

impl From<String> for Event {
    fn from(data: String) -> Self {
        Event::new(data)
    }
}

/// Why an [`Event`] could not be encoded. Nothing is ever written for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The event name contains CR or LF, which would end the field early.
    EventHasLineBreak,
    /// The id contains CR or LF, which would end the field early.
    IdHasLineBreak,
    /// The id contains NUL; clients ignore such ids.
    IdHasNul,
    /// Data given as bytes was not UTF-8.
    DataNotUtf8,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::EventHasLineBreak => "event name contains CR or LF",
            FrameError::IdHasLineBreak => "event id contains CR or LF",
            FrameError::IdHasNul => "event id contains NUL",
            FrameError::DataNotUtf8 => "event data is not UTF-8",
        })
    }
}

impl std::error::Error for FrameError {}

/// Checks that `id` can be written as an `id:` field.
///
/// # Errors
/// [`FrameError::IdHasLineBreak`] or [`FrameError::IdHasNul`].
pub fn check_id(id: &str) -> Result<(), FrameError> {
    if has_line_break(id) {
        Err(FrameError::IdHasLineBreak)
    } else if id.as_bytes().contains(&0) {
        Err(FrameError::IdHasNul)
    } else {
        Ok(())
    }
}

fn has_line_break(s: &str) -> bool {
    s.bytes().any(|b| b == b'\n' || b == b'\r')
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Writes one `data: ` line per line of `data`, splitting on CRLF, CR and LF
/// (CRLF is one break), as the spec's parser will split them.
fn push_data_lines(out: &mut Vec<u8>, data: &str) {
    // Most data has no CR, and then LF is the only break: `contains` and
    // `split` on one byte use std's memchr, a word at a time, where a search
    // for either of two bytes goes a byte at a time.
    if !data.as_bytes().contains(&b'\r') {
        for line in data.split('\n') {
            push_field(out, b"data", line.as_bytes());
        }
        return;
    }
    let mut rest = data.as_bytes();
    loop {
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => {
                push_field(out, b"data", rest);
                return;
            }
            Some(at) => {
                push_field(out, b"data", &rest[..at]);
                let skip = if rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[at + skip..];
            }
        }
    }
}

/// Writes an SSE comment (`: text`), one comment line per line of `text`, so
/// a line break in `text` can never start a field.
fn push_comment_lines(out: &mut Vec<u8>, text: &[u8]) {
    for line in text.split(|&b| b == b'\n' || b == b'\r') {
        out.extend_from_slice(b": ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

/// The longest chunk-size line: 16 hex digits and CRLF.
const MAX_CHUNK_HEADER: usize = 18;

/// The last chunk of a chunked body, which ends an HTTP/1.1 stream.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Formats the chunk-size line (`<hex>\r\n`) for a chunk of `len` bytes into
/// `buf` and returns it.
pub fn chunk_header(len: usize, buf: &mut [u8; MAX_CHUNK_HEADER]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut at = MAX_CHUNK_HEADER - 2;
    buf[at] = b'\r';
    buf[at + 1] = b'\n';
    let mut n = len;
    loop {
        at -= 1;
        buf[at] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// An encoded frame, immutable and cheap to clone: a broadcast is encoded
/// once and the same bytes are queued for every client.
///
/// The bytes are stored already wrapped as one HTTP/1.1 chunk, so a chunked
/// stream writes [`Frame::chunked`] and an HTTP/1.0 stream writes
/// [`Frame::payload`], with no per-client work either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// `<hex>\r\n` + payload + `\r\n`.
    bytes: Arc<[u8]>,
    /// Length of the chunk-size line at the front of `bytes`.
    header_len: u8,
}

impl Frame {
    /// A comment frame (`: text`), which clients ignore; useful to keep a
    /// connection alive through proxies.
    pub fn comment(text: &str) -> Frame {
        let mut buf = FrameBuilder::new();
        push_comment_lines(buf.payload(), text.as_bytes());
        buf.payload().push(b'\n');
        buf.finish()
    }

    /// The SSE bytes of the frame, as written to an HTTP/1.0 stream.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[usize::from(self.header_len)..self.bytes.len() - 2]
    }

    /// The frame as one HTTP/1.1 chunk: `<hex>\r\n` + payload + `\r\n`.
    pub fn chunked(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes this frame puts on the wire for a stream, chunked or not.
    pub fn wire(&self, chunked: bool) -> &[u8] {
        if chunked {
            self.chunked()
        } else {
            self.payload()
        }
    }
}

/// Builds a frame's payload behind room for its chunk-size line, so the
/// finished frame needs one copy into its shared buffer and nothing more.
struct FrameBuilder {
    buf: Vec<u8>,
}

impl FrameBuilder {
    fn new() -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.resize(MAX_CHUNK_HEADER, 0);
        FrameBuilder { buf }
    }

    fn payload(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    fn finish(mut self) -> Frame {
        let len = self.buf.len() - MAX_CHUNK_HEADER;
        let mut header = [0; MAX_CHUNK_HEADER];
        let header = chunk_header(len, &mut header);
        let start = MAX_CHUNK_HEADER - header.len();
        self.buf[start..MAX_CHUNK_HEADER].copy_from_slice(header);
        self.buf.extend_from_slice(b"\r\n");
        Frame {
            bytes: Arc::from(&self.buf[start..]),
            header_len: header.len() as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(e: Event) -> String {
        String::from_utf8(e.encode().unwrap().payload().to_vec()).unwrap()
    }

    #[test]
    fn data_lines_table() {
        let table: &[(&str, &str)] = &[
            ("hello", "data: hello\n\n"),
            ("", "data: \n\n"),
            ("\n", "data: \ndata: \n\n"),
            ("a\nb", "data: a\ndata: b\n\n"),
            ("a\rb", "data: a\ndata: b\n\n"),
            ("a\r\nb", "data: a\ndata: b\n\n"),
            ("a\n\rb", "data: a\ndata: \ndata: b\n\n"),
            ("a\r\r\nb", "data: a\ndata: \ndata: b\n\n"),
            ("trail\n", "data: trail\ndata: \n\n"),
            ("  lead", "data:   lead\n\n"),
            ("nul\0x", "data: nul\0x\n\n"),
        ];
        for (data, wire) in table {
            assert_eq!(payload(Event::new(*data)), *wire, "data {data:?}");
        }
    }

    #[test]
    fn fields_in_order() {
        let e = Event::new("d").event("e").id("0").retry(0);
        assert_eq!(payload(e), "event: e\nid: 0\nretry: 0\ndata: d\n\n");
        assert_eq!(payload(Event::id_only("5")), "id: 5\n\n");
    }

    #[test]
    fn refuses_line_breaks_and_nul() {
        let table = [
            (Event::new("x").event("a\nb"), FrameError::EventHasLineBreak),
            (Event::new("x").event("a\rb"), FrameError::EventHasLineBreak),
            (Event::new("x").id("1\n"), FrameError::IdHasLineBreak),
            (Event::new("x").id("\r1"), FrameError::IdHasLineBreak),
            (Event::new("x").id("1\x002"), FrameError::IdHasNul),
        ];
        for (event, err) in table {
            assert_eq!(event.encode(), Err(err));
            let mut out = b"keep".to_vec();
            assert_eq!(event.encode_into(&mut out), Err(err));
            assert_eq!(out, b"keep");
        }
    }

    #[test]
    fn auto_id_only_without_own_id() {
        let f = Event::new("x").encode_with_auto_id(Some(42)).unwrap();
        assert_eq!(f.payload(), b"id: 42\ndata: x\n\n");
        let f = Event::new("x")
            .id("own")
            .encode_with_auto_id(Some(42))
            .unwrap();
        assert_eq!(f.payload(), b"id: own\ndata: x\n\n");
    }

    #[test]
    fn chunk_framing() {
        let f = Event::new("hello").encode().unwrap();
        assert_eq!(f.chunked(), b"d\r\ndata: hello\n\n\r\n");
        let mut buf = [0; MAX_CHUNK_HEADER];
        assert_eq!(chunk_header(0, &mut buf), b"0\r\n");
        assert_eq!(chunk_header(255, &mut buf), b"ff\r\n");
        assert_eq!(chunk_header(usize::MAX, &mut buf), b"ffffffffffffffff\r\n");
        let big = Event::new("x".repeat(70_000)).encode().unwrap();
        let text = String::from_utf8_lossy(big.chunked());
        let (size, _) = text.split_once("\r\n").unwrap();
        assert_eq!(
            usize::from_str_radix(size, 16).unwrap(),
            big.payload().len()
        );
    }

    #[test]
    fn comments_cannot_start_fields() {
        let f = Frame::comment("hi\ndata: evil");
        assert_eq!(f.payload(), b": hi\n: data: evil\n\n");
    }
}
