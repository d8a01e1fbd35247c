//! Replays every input kept under `fuzz/regressions/<target>/` (interesting
//! inputs, and every crash the fuzzers ever found, once fixed) through the
//! same property the fuzz target checks, so CI guards them on stable Rust
//! without a fuzzer. (The hub's `publish` target is replayed by the hub's
//! own `fuzz_corpus` test.)

#[allow(dead_code)]
#[path = "props/frames.rs"]
mod frames;
#[path = "props/replay.rs"]
mod replay;
#[path = "props/requests.rs"]
mod requests;

/// Replays `target`'s committed inputs through `check`.
fn replay(target: &str, check: fn(&[u8]) -> bool) -> usize {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "fuzz/regressions",
        target,
        check,
    )
}

#[test]
fn frame_roundtrip_regressions() {
    assert!(replay("frame_roundtrip", frames::check_bytes) > 0);
}

#[test]
fn request_head_regressions() {
    assert!(replay("request_head", requests::check_bytes) > 0);
}
