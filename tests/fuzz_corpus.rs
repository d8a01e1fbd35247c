//! Replays every input kept under `fuzz/regressions/<target>/` (interesting
//! inputs, and every crash the fuzzers ever found, once fixed) through the
//! same property the fuzz target checks, so CI guards them on stable Rust
//! without a fuzzer.

#[allow(dead_code)]
#[path = "../src/bin/sseloop/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "props/frames.rs"]
mod frames;
#[allow(dead_code)]
#[path = "../src/bin/sseloop/history.rs"]
mod history;
#[allow(dead_code)]
#[path = "../src/bin/sseloop/hub.rs"]
mod hub;
#[path = "props/publish.rs"]
mod publish;
#[path = "props/requests.rs"]
mod requests;
mod util;

use std::path::Path;

/// Runs `check` on every file of `fuzz/regressions/<target>`, and fails
/// unless every one of them decoded into an input: if the `Arbitrary`
/// structs change shape, old files would otherwise become other inputs or
/// none and still "pass". Prints and answers how many were replayed.
fn replay(target: &str, check: fn(&[u8]) -> bool) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let mut undecoded = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        match std::panic::catch_unwind(|| check(&bytes)) {
            Ok(true) => {}
            Ok(false) => undecoded.push(file.display().to_string()),
            Err(_) => panic!("{} fails its property again", file.display()),
        }
    }
    assert!(
        undecoded.is_empty(),
        "{} of {} committed {target} inputs no longer decode (the input structs changed shape?): {undecoded:?}",
        undecoded.len(),
        files.len()
    );
    println!(
        "{target}: replayed {} of {} committed inputs",
        files.len(),
        files.len()
    );
    files.len()
}

#[test]
fn frame_roundtrip_regressions() {
    assert!(replay("frame_roundtrip", frames::check_bytes) > 0);
}

#[test]
fn request_head_regressions() {
    assert!(replay("request_head", requests::check_bytes) > 0);
}

#[test]
fn publish_regressions() {
    assert!(replay("publish", publish::check_bytes) > 0);
}
