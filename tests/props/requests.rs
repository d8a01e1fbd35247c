//! The request-reader property, shared by the `request_head` fuzz target
//! and the corpus replay test: arbitrary bytes, handed to the connection's
//! request reader in arbitrary splits, never panic, never make it hold more
//! than its limits allow, and give the same requests and the same final
//! answer as the same bytes pushed at once, whether they are pushed first
//! or parsed where they lie (`next_request_in`, the server's way).

use std::net::SocketAddr;

use sseloop::http::{HttpError, Limits, RequestReader};

/// Small limits, so the fuzzer reaches them.
pub const LIMITS: Limits = Limits {
    max_head: 256,
    max_body: 128,
};

/// What a reader made of a byte stream: each request (in `Debug` form, which
/// shows every field) and the error it ended with, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub requests: Vec<String>,
    pub error: Option<HttpError>,
}

/// How the reader is handed each piece.
#[derive(Clone, Copy, Debug)]
pub enum Handover {
    /// `push`, then `next_request` until it answers `None`.
    Push,
    /// `next_request_in` until it answers `None`.
    InPlace,
}

/// Hands `bytes` over in pieces whose sizes cycle through `pieces`.
pub fn read(bytes: &[u8], pieces: &[usize], handover: Handover) -> Outcome {
    let peer = SocketAddr::from(([127, 0, 0, 1], 9));
    let mut reader = RequestReader::new();
    let mut outcome = Outcome {
        requests: Vec::new(),
        error: None,
    };
    let mut rest = bytes;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = sizes
            .next()
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        let mut input = &rest[..n];
        rest = &rest[n..];
        if let Handover::Push = handover {
            reader.push(input);
        }
        loop {
            let next = match handover {
                Handover::Push => reader.next_request(&LIMITS, peer),
                Handover::InPlace => reader.next_request_in(&mut input, &LIMITS, peer),
            };
            match next {
                Ok(Some(request)) => outcome.requests.push(format!("{request:?}")),
                Ok(None) => break,
                Err(e) => {
                    outcome.error = Some(e);
                    return outcome;
                }
            }
        }
        // Unparsed bytes never exceed one head's worth plus the last piece.
        assert!(
            reader.buffered() <= LIMITS.max_head + n,
            "buffered {} bytes past the {}-byte head limit",
            reader.buffered(),
            LIMITS.max_head
        );
    }
    outcome
}

/// Entry point for raw fuzzer bytes: the first byte picks the split
/// pattern, the rest is what the client sends.
/// Checks the property on `data` (its first byte picks the splits); answers
/// whether there was anything to check (an empty input has no pattern).
pub fn check_bytes(data: &[u8]) -> bool {
    let Some((&pattern, bytes)) = data.split_first() else {
        return false;
    };
    let whole = read(bytes, &[bytes.len().max(1)], Handover::Push);
    let pieces: Vec<usize> = match pattern % 4 {
        0 => vec![1],
        1 => vec![usize::from(pattern / 4) + 1],
        2 => vec![1, 2, 3, 5, 8, 13],
        _ => bytes
            .iter()
            .take(8)
            .map(|&b| usize::from(b % 16) + 1)
            .collect(),
    };
    for handover in [Handover::Push, Handover::InPlace] {
        let split = read(bytes, &pieces, handover);
        assert_eq!(
            split, whole,
            "the answer depends on how the bytes were split ({pieces:?}, {handover:?})"
        );
    }
    true
}
