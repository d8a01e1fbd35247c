//! Arbitrary publish requests through the hub's request handling on a real
//! loopback socket; see `hub/tests/props/publish.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/props/frames.rs"]
mod frames;
#[path = "../../hub/tests/props/publish.rs"]
mod publish;
#[path = "../../tests/util/mod.rs"]
mod util;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    publish::check_bytes(data);
});
