//! URL Patterns and topics made of URL syntax, through the hub's matcher
//! store and its index, against each pattern on its own; see
//! `hub/tests/props/url_patterns.rs`.
#![no_main]

#[path = "../../hub/tests/props/url_patterns.rs"]
mod url_patterns;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    url_patterns::check_bytes(data);
});
