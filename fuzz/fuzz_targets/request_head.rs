//! Arbitrary bytes in arbitrary splits → the request reader never panics,
//! never holds past its limits, and answers the same whatever the splits;
//! see `tests/props/requests.rs`.
#![no_main]

#[path = "../../tests/props/requests.rs"]
mod requests;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    requests::check_bytes(data);
});
