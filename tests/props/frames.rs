//! The frame round-trip property, shared by the `frame_roundtrip` fuzz
//! target, the corpus replay test and the proptest: a sequence of arbitrary
//! events, encoded and then decoded by the spec's parser, gives back exactly
//! the events the encoder accepted (after CR/CRLF → LF in data), and nothing
//! else; the events it refused are refused with the documented error.

use arbitrary::{Arbitrary, Unstructured};
use sseloop::parse::{Message, Parser};
use sseloop::{Event, Frame, FrameError};

/// One event as the fuzzer makes it, or a comment.
#[derive(Arbitrary, Clone, Debug)]
pub struct EventInput {
    pub data: Option<String>,
    pub event: Option<String>,
    pub id: Option<String>,
    pub retry: Option<u64>,
    /// When set, a comment frame with this text instead of an event.
    pub comment: Option<String>,
}

/// A stream of events, and where its bytes are cut on the way to the client.
#[derive(Arbitrary, Clone, Debug)]
pub struct StreamInput {
    pub events: Vec<EventInput>,
    pub cuts: Vec<u16>,
}

/// Entry point for raw fuzzer bytes.
/// Decodes `data` as the fuzzer does and checks the property; answers
/// whether `data` decoded (an input that does not checks nothing).
pub fn check_bytes(data: &[u8]) -> bool {
    let Ok(input) = StreamInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return false;
    };
    check(&input);
    true
}

fn event_of(input: &EventInput) -> Event {
    let mut event = match &input.data {
        Some(data) => Event::new(data.clone()),
        None => Event::default(),
    };
    if let Some(name) = &input.event {
        event = event.event(name.clone());
    }
    if let Some(id) = &input.id {
        event = event.id(id.clone());
    }
    if let Some(ms) = input.retry {
        event = event.retry(ms);
    }
    event
}

/// The error the documentation promises for `input`, if any.
fn documented_error(input: &EventInput) -> Option<FrameError> {
    let breaks = |s: &str| s.contains('\r') || s.contains('\n');
    if input.event.as_deref().is_some_and(breaks) {
        Some(FrameError::EventHasLineBreak)
    } else if input.id.as_deref().is_some_and(breaks) {
        Some(FrameError::IdHasLineBreak)
    } else if input.id.as_deref().is_some_and(|id| id.contains('\0')) {
        Some(FrameError::IdHasNul)
    } else {
        None
    }
}

/// The documented normalisation of data: CRLF and lone CR become LF.
pub fn normalise(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

/// Decodes one chunked body strictly; answers the chunks' payloads and
/// whether the last chunk came.
pub fn dechunk(mut bytes: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut chunks = Vec::new();
    while !bytes.is_empty() {
        let line_end = bytes
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk-size line");
        let size_text = std::str::from_utf8(&bytes[..line_end]).expect("hex");
        let size = usize::from_str_radix(size_text, 16).expect("hex chunk size");
        let start = line_end + 2;
        if size == 0 {
            assert_eq!(&bytes[start..], b"\r\n", "nothing after the last chunk");
            return (chunks, true);
        }
        assert_eq!(
            &bytes[start + size..start + size + 2],
            b"\r\n",
            "CRLF after chunk data"
        );
        chunks.push(bytes[start..start + size].to_vec());
        bytes = &bytes[start + size + 2..];
    }
    (chunks, false)
}

/// Feeds `bytes` to a fresh parser cut at `cuts`; answers the events and
/// the parser.
fn decode(bytes: &[u8], cuts: &[u16]) -> (Vec<Message>, Parser) {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    for &cut in cuts {
        let at = usize::from(cut).min(rest.len());
        parser.feed(&rest[..at], &mut out);
        rest = &rest[at..];
    }
    parser.feed(rest, &mut out);
    (out, parser)
}

pub fn check(input: &StreamInput) {
    let mut plain = Vec::new();
    let mut chunked = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut expected = Vec::new();
    let mut last_id = String::new();
    let mut retry = None;
    let mut comment_lines = 0;
    for item in &input.events {
        let frame = if let Some(text) = &item.comment {
            comment_lines += text.split(['\r', '\n']).count();
            Frame::comment(text)
        } else {
            let event = event_of(item);
            match (event.encode(), documented_error(item)) {
                (Err(got), Some(want)) => {
                    assert_eq!(got, want, "refused with the wrong error: {item:?}");
                    continue;
                }
                (Err(got), None) => panic!("refused a valid event ({got}): {item:?}"),
                (Ok(_), Some(want)) => {
                    panic!("accepted an event that must be refused ({want}): {item:?}")
                }
                (Ok(frame), None) => {
                    if let Some(id) = &item.id {
                        last_id.clone_from(id);
                    }
                    if item.retry.is_some() {
                        retry = item.retry;
                    }
                    if let Some(data) = &item.data {
                        let name = item.event.clone().filter(|e| !e.is_empty());
                        expected.push(Message {
                            event: name.unwrap_or_else(|| "message".into()),
                            data: normalise(data),
                            last_event_id: last_id.clone(),
                        });
                    }
                    frame
                }
            }
        };
        plain.extend_from_slice(frame.payload());
        chunked.extend_from_slice(frame.chunked());
        frames.push(frame);
    }
    chunked.extend_from_slice(sseloop::frame::LAST_CHUNK);

    // The chunk framing decodes back to exactly the frames' bytes.
    let (chunks, ended) = dechunk(&chunked);
    assert!(ended);
    assert_eq!(chunks.len(), frames.len());
    for (chunk, frame) in chunks.iter().zip(&frames) {
        assert_eq!(chunk.as_slice(), frame.payload());
    }
    // Each frame on its own ends in a blank line, so nothing can bleed into
    // the next frame.
    for frame in &frames {
        assert!(frame.payload().ends_with(b"\n\n") || frame.payload() == b"\n");
    }

    // Both streams decode to exactly the accepted events.
    let dechunked: Vec<u8> = chunks.concat();
    for stream in [&plain, &dechunked] {
        let (got, parser) = decode(stream, &input.cuts);
        assert_eq!(got, expected, "decoded events differ");
        assert_eq!(parser.last_event_id(), last_id);
        assert_eq!(parser.retry(), retry);
        assert_eq!(
            parser.comments(),
            comment_lines,
            "comments became something else"
        );
    }
}
