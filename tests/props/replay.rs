//! Replays the inputs kept under `fuzz/regressions/<target>/` through a
//! property, shared by the library's and the hub's `fuzz_corpus` tests.

use std::path::Path;

/// Runs `check` on every file of `<regressions>/<target>` (`regressions`
/// from the including crate's manifest directory), and fails unless every
/// one of them decoded into an input: if the `Arbitrary` structs change
/// shape, old files would otherwise become other inputs or none and still
/// "pass". Prints and answers how many were replayed.
pub fn replay(
    manifest_dir: &str,
    regressions: &str,
    target: &str,
    check: fn(&[u8]) -> bool,
) -> usize {
    let dir = Path::new(manifest_dir).join(regressions).join(target);
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
