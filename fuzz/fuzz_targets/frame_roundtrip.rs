//! Arbitrary events → encoded (chunked and plain) → decoded by the spec's
//! parser → exactly the accepted events; see `tests/props/frames.rs`.
#![no_main]

#[path = "../../tests/props/frames.rs"]
mod frames;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    frames::check_bytes(data);
});
