//! The frame round-trip property (`tests/props/frames.rs`) under proptest,
//! so every `cargo test` run checks it on fresh random streams, biased to
//! the characters that matter to SSE framing.

// `check_bytes` is the fuzzers' entry point; this file uses `check`.
#[allow(dead_code)]
#[path = "props/frames.rs"]
mod frames;

use frames::{EventInput, StreamInput};
use proptest::prelude::*;

/// Text made mostly of line breaks, NUL, spaces, colons and a few others.
fn sse_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('\n'),
            Just('\r'),
            Just('\0'),
            Just(' '),
            Just(':'),
            Just('a'),
            Just('é'),
            Just('\u{FEFF}'),
            Just('𝄞'),
            any::<char>(),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn event_input() -> impl Strategy<Value = EventInput> {
    (
        prop::option::of(sse_text()),
        prop::option::of(sse_text()),
        prop::option::of(sse_text()),
        prop::option::of(prop_oneof![Just(0u64), any::<u64>()]),
        prop::option::weighted(0.1, sse_text()),
    )
        .prop_map(|(data, event, id, retry, comment)| EventInput {
            data,
            event,
            id,
            retry,
            comment,
        })
}

proptest! {
    // A fixed seed keeps CI deterministic; change it to explore further.
    #![proptest_config(ProptestConfig {
        cases: 1000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x55E1_00F5),
        ..ProptestConfig::default()
    })]

    #[test]
    fn encoded_streams_decode_to_exactly_the_accepted_events(
        events in prop::collection::vec(event_input(), 0..8),
        cuts in prop::collection::vec(0u16..64, 0..6),
    ) {
        frames::check(&StreamInput { events, cuts });
    }
}
