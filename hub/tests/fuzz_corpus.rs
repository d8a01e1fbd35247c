//! Replays every input kept under `fuzz/regressions/publish/` through the
//! property the `publish` fuzz target checks (the hub's own request
//! handling on a real socket), so CI guards them without a fuzzer.

#[allow(dead_code)]
#[path = "../../tests/props/frames.rs"]
mod frames;
#[path = "props/publish.rs"]
mod publish;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::path::Path;

/// Where the inputs are, from this crate's manifest directory.
const REGRESSIONS: &str = "../fuzz/regressions";

/// Runs `check` on every file of `fuzz/regressions/<target>`, and fails
/// unless every one of them decoded into an input: if the `Arbitrary`
/// structs change shape, old files would otherwise become other inputs or
/// none and still "pass". Prints and answers how many were replayed.
fn replay(target: &str, check: fn(&[u8]) -> bool) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(REGRESSIONS)
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
fn publish_regressions() {
    assert!(replay("publish", publish::check_bytes) > 0);
}
