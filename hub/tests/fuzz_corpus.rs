//! Replays every input kept under `fuzz/regressions/publish/` through the
//! property the `publish` fuzz target checks (the hub's own request
//! handling on a real socket), so CI guards them without a fuzzer.

#[allow(dead_code)]
#[path = "../../tests/props/frames.rs"]
mod frames;
#[path = "props/publish.rs"]
mod publish;
#[path = "../../tests/props/replay.rs"]
mod replay;
#[path = "props/url_patterns.rs"]
mod url_patterns;
#[path = "../../tests/util/mod.rs"]
mod util;

/// Replays `target`'s committed inputs through `check`.
fn replay(target: &str, check: fn(&[u8]) -> bool) -> usize {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "../fuzz/regressions",
        target,
        check,
    )
}

#[test]
fn publish_regressions() {
    assert!(replay("publish", publish::check_bytes) > 0);
}

#[test]
fn url_patterns_regressions() {
    assert!(replay("url_patterns", url_patterns::check_bytes) > 0);
}
