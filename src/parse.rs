//! The client side of SSE: a parser that follows the WHATWG HTML "Server-sent
//! events" interpretation algorithm step by step ("Parsing an event stream"
//! and "Interpreting an event stream").
//!
//! sseloop's own tests, fuzzers and load generator decode what the server sent
//! with it, so "a spec-conformant client decodes every event exactly as it was
//! sent" is checked against the spec's algorithm rather than against the
//! encoder's own idea of the format. Programs can use it as a small,
//! allocation-light SSE client decoder.
//!
//! ```
//! use sseloop::parse::Parser;
//! let mut parser = Parser::new();
//! let mut out = Vec::new();
//! parser.feed(b"event: greeting\ndata: hello\r\ndata: world\n\n", &mut out);
//! assert_eq!(out[0].event, "greeting");
//! assert_eq!(out[0].data, "hello\nworld");
//! ```

/// One dispatched event, as a browser's `MessageEvent` would carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The event type: the last `event` field, or `message`.
    pub event: String,
    /// The data: every `data` field's value joined with LF.
    pub data: String,
    /// The event source's last event id when this event was dispatched.
    pub last_event_id: String,
}

/// One dispatched event, borrowed from the parser: what
/// [`Parser::feed_with`] hands its callback, with no allocation per event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// The event type: the last `event` field, or `message`.
    pub event: &'a str,
    /// The data: every `data` field's value joined with LF.
    pub data: &'a str,
    /// The event source's last event id when this event was dispatched.
    pub last_event_id: &'a str,
}

impl MessageRef<'_> {
    /// An owned copy.
    pub fn to_message(&self) -> Message {
        Message {
            event: self.event.to_owned(),
            data: self.data.to_owned(),
            last_event_id: self.last_event_id.to_owned(),
        }
    }
}

/// An incremental event-stream parser: feed it bytes in any splits.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of the line being received (no line break yet).
    line: Vec<u8>,
    /// The previous byte was CR, so an LF right after it is part of that break.
    after_cr: bool,
    /// Whether the stream's first bytes have been seen (for the BOM check).
    started: bool,
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    last_event_id: String,
    retry: Option<u64>,
    comments: usize,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Parser::default()
    }

    /// Feeds stream bytes, appending every event they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Message>) {
        self.feed_with(bytes, |m| out.push(m.to_message()));
    }

    /// Feeds stream bytes, calling `on_message` with every event they
    /// complete, borrowed (no allocation per event).
    pub fn feed_with(&mut self, mut bytes: &[u8], mut on_message: impl FnMut(MessageRef<'_>)) {
        let out = &mut on_message;
        if !self.started && !bytes.is_empty() {
            // "One leading U+FEFF BYTE ORDER MARK character must be ignored."
            // The BOM may arrive split; collect the first three bytes first.
            self.line.extend_from_slice(bytes);
            if self.line.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.line) {
                return;
            }
            self.started = true;
            let first = std::mem::take(&mut self.line);
            let first = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&first);
            self.feed_lines(first, out);
            return;
        }
        while !bytes.is_empty() {
            let taken = self.feed_lines(bytes, out);
            bytes = &bytes[taken..];
        }
    }

    fn feed_lines(&mut self, bytes: &[u8], out: &mut impl FnMut(MessageRef<'_>)) -> usize {
        let mut rest = bytes;
        if self.after_cr {
            self.after_cr = false;
            if rest.first() == Some(&b'\n') {
                rest = &rest[1..];
            }
        }
        loop {
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.line.extend_from_slice(rest);
                    return bytes.len();
                }
                Some(at) => {
                    if self.line.is_empty() {
                        // The whole line is in `rest`: no copy.
                        self.process_line(&rest[..at], out);
                    } else {
                        self.line.extend_from_slice(&rest[..at]);
                        let line = std::mem::take(&mut self.line);
                        self.process_line(&line, out);
                        self.line = line;
                        self.line.clear();
                    }
                    if rest[at] == b'\r' {
                        if at + 1 == rest.len() {
                            self.after_cr = true;
                            return bytes.len();
                        }
                        if rest[at + 1] == b'\n' {
                            rest = &rest[at + 2..];
                            continue;
                        }
                    }
                    rest = &rest[at + 1..];
                }
            }
        }
    }

    fn process_line(&mut self, line: &[u8], out: &mut impl FnMut(MessageRef<'_>)) {
        // The field name ends at the first colon, an ASCII byte, so the
        // line is split as bytes. The stream is decoded as UTF-8 with
        // replacement; splitting at ASCII bytes first decodes the same.
        if line.is_empty() {
            return self.dispatch(out);
        }
        match line.iter().position(|&b| b == b':') {
            Some(0) => self.comments += 1,
            Some(colon) => {
                let value = &line[colon + 1..];
                let value = value.strip_prefix(b" ").unwrap_or(value);
                self.process_field(&line[..colon], value);
            }
            None => self.process_field(line, b""),
        }
    }

    fn process_field(&mut self, field: &[u8], value: &[u8]) {
        match field {
            b"event" => {
                self.event_type.clear();
                push_lossy(&mut self.event_type, value);
            }
            b"data" => {
                push_lossy(&mut self.data, value);
                self.data.push('\n');
            }
            // "If the field value does not contain U+0000 NULL, then set the
            // last event ID buffer to the field value. Otherwise, ignore."
            b"id" if !value.contains(&0) => {
                self.last_event_id_buffer.clear();
                push_lossy(&mut self.last_event_id_buffer, value);
            }
            // "If the field value consists of only ASCII digits, then
            // interpret [it] as an integer in base ten." Digits beyond u64
            // are still digits: saturate.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let digits = std::str::from_utf8(value).unwrap_or_default();
                self.retry = Some(digits.parse().unwrap_or(u64::MAX));
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut impl FnMut(MessageRef<'_>)) {
        self.last_event_id.clone_from(&self.last_event_id_buffer);
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let data = &self.data[..self.data.len() - 1]; // the trailing LF
        let event = if self.event_type.is_empty() {
            "message"
        } else {
            &self.event_type
        };
        out(MessageRef {
            event,
            data,
            last_event_id: &self.last_event_id,
        });
        // Cleared, not dropped: the next event reuses the allocations.
        self.data.clear();
        self.event_type.clear();
    }

    /// The event source's last event id (what a reconnect would send).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time the stream asked for, if any.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// How many comment lines the stream carried (heartbeats are comments).
    pub fn comments(&self) -> usize {
        self.comments
    }
}

/// Appends `bytes` decoded as UTF-8 with replacement, as the spec decodes
/// the stream. Valid text (the usual case) takes `from_utf8`'s fast path.
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Vec<Message> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(bytes, &mut out);
        out
    }

    #[test]
    fn spec_examples() {
        // The spec's own examples.
        let m = parse_all(b"data: YHOO\ndata: +2\ndata: 10\n\n");
        assert_eq!(m[0].data, "YHOO\n+2\n10");
        let m = parse_all(b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n");
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[0].data.as_str(), m[0].last_event_id.as_str()),
            ("first event", "1")
        );
        assert_eq!(
            (m[1].data.as_str(), m[1].last_event_id.as_str()),
            ("second event", "")
        );
        assert_eq!(m[2].data, " third event");
        let m = parse_all(b"data\n\ndata\ndata\n\ndata:");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].data, "");
        assert_eq!(m[1].data, "\n");
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let stream = b"\xEF\xBB\xBFevent: a\r\ndata: x\rdata: y\r\n\r\nid: 7\n\ndata: z\n\n";
        let whole = parse_all(stream);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].event, "a");
        assert_eq!(whole[0].data, "x\ny");
        assert_eq!(whole[1].last_event_id, "7");
        for cut in 0..stream.len() {
            let mut p = Parser::new();
            let mut out = Vec::new();
            p.feed(&stream[..cut], &mut out);
            p.feed(&stream[cut..], &mut out);
            assert_eq!(out, whole, "cut at {cut}");
        }
    }

    #[test]
    fn id_with_nul_and_bad_retry_are_ignored() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"id: a\0b\nretry: 12x\ndata: d\n\n", &mut out);
        assert_eq!(out[0].last_event_id, "");
        assert_eq!(p.retry(), None);
        p.feed(b"retry: 500\n\n", &mut out);
        assert_eq!(p.retry(), Some(500));
    }
}
