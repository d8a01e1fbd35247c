//! The URL Pattern property, shared by the `url_patterns` fuzz target and
//! the corpus replay test: a pattern the hub takes, interned in a store
//! among others, is found by the store's index for exactly the topics the
//! pattern matches on its own (the index may only narrow what is tried,
//! never miss a match), and nothing panics on any pattern or topic.

use arbitrary::{Arbitrary, Unstructured};
use sseloop_hub::topics::{Limits, Matcher, Reading, SelectorStore, DEFAULT_BASE};

/// Pieces patterns and topics are made of: URL syntax, URL Pattern
/// syntax, escapes, dots, hosts in any case, non-ASCII.
const PIECES: &[&str] = &[
    "https://",
    "http://",
    "urn:",
    "example.com",
    "EXAMPLE.com",
    "www.example.com",
    ":8080",
    "/",
    "books",
    "Books",
    "1",
    "2",
    ":id",
    ":kind",
    "*",
    "?",
    "+",
    "{",
    "}",
    "(",
    ")",
    "\\d+",
    "[a-z]+",
    ".",
    "..",
    "%2E",
    "%6D",
    "%C3%A9",
    "é",
    "\\",
    "\\:",
    "#",
    "?q=1",
    "&",
    "-",
    "_",
    "~",
    "{/:id}?",
    "localhost",
    "[::1]",
    "mercure",
    ".well-known",
];

/// A string of pieces the fuzzer chooses.
fn string(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let count = u.int_in_range(0..=8)?;
    let mut text = String::new();
    for _ in 0..count {
        text.push_str(u.choose(PIECES)?);
    }
    Ok(text)
}

/// Checks the property on what `data` describes: a few patterns, interned
/// together, and a few topics.
pub fn check_bytes(data: &[u8]) -> bool {
    let mut u = Unstructured::new(data);
    let Ok(patterns) = (0..u.int_in_range(1..=4).unwrap_or(1))
        .map(|_| string(&mut u))
        .collect::<arbitrary::Result<Vec<_>>>()
    else {
        return false;
    };
    let Ok(topics) = (0..u.int_in_range(1..=4).unwrap_or(1))
        .map(|_| string(&mut u))
        .collect::<arbitrary::Result<Vec<_>>>()
    else {
        return false;
    };
    let _ = bool::arbitrary(&mut u);
    let base = url::Url::parse(DEFAULT_BASE).unwrap();
    let mut store = SelectorStore::default();
    let mut held = Vec::new();
    for pattern in &patterns {
        let direct = Matcher::url_pattern(pattern, &base, Limits::default());
        match store.intern(pattern, Reading::UrlPattern) {
            Ok(id) => {
                let direct = direct.expect("the store and the matcher agree on what is a pattern");
                held.push((id, direct, pattern));
            }
            Err(_) => assert!(
                direct.is_err(),
                "{pattern:?}: the store refused what parses"
            ),
        }
    }
    for topic in &topics {
        let found = store.matching(std::slice::from_ref(topic));
        for (id, direct, pattern) in &held {
            assert_eq!(
                found.contains(id),
                direct.matches(topic),
                "{pattern:?} ~ {topic:?}: the index and the pattern disagree"
            );
        }
    }
    for (id, _, _) in held {
        store.release(id);
    }
    assert!(store.is_empty(), "every pattern freed with its last holder");
    true
}
