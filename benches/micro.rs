//! `cargo bench`: the hot pure paths, timed with a small harness of our own
//! (median of samples, each long enough to swamp timer noise), reported as
//! ns per operation and, where bytes move, bytes per second.
//!
//! - frame encoding: 16 B, 1 KiB and 64 KiB of data, single- and multi-line;
//! - chunk framing: the chunk-size line;
//! - the timer wheel under 100 000 timers: insert, cancel, and expiry.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sseloop::auth::constant_time_eq;
use sseloop::frame::chunk_header;
use sseloop::timer::TimerWheel;
use sseloop::Event;

/// Runs `op` in batches until each sample takes ~20 ms; answers the median
/// time per call.
fn measure(mut op: impl FnMut()) -> Duration {
    let mut batch = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            op();
        }
        if t.elapsed() > Duration::from_millis(20) {
            break;
        }
        batch *= 2;
    }
    let mut samples: Vec<Duration> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                op();
            }
            t.elapsed() / batch as u32
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn report(name: &str, per_op: Duration, bytes: Option<usize>) {
    let ns = per_op.as_secs_f64() * 1e9;
    match bytes {
        Some(b) => {
            let gib_s = b as f64 / per_op.as_secs_f64() / (1u64 << 30) as f64;
            println!("{name:<44} {ns:>12.1} ns/op {gib_s:>8.2} GiB/s");
        }
        None => println!("{name:<44} {ns:>12.1} ns/op"),
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter argument narrows what runs.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));

    for size in [16usize, 1024, 64 * 1024] {
        for (shape, data) in [
            ("single-line", "x".repeat(size)),
            (
                "multi-line",
                "x".repeat(63)
                    .chars()
                    .chain(['\n'])
                    .cycle()
                    .take(size)
                    .collect::<String>(),
            ),
        ] {
            let name = format!("encode {size} B {shape}");
            if !wanted(&name) {
                continue;
            }
            let event = Event::new(data).event("bench").id("12345");
            let len = event.encode().unwrap().chunked().len();
            report(
                &name,
                measure(|| drop(black_box(black_box(&event).encode().unwrap()))),
                Some(len),
            );
        }
    }

    if wanted("chunk header") {
        let mut buf = [0u8; 18];
        let mut n = 0usize;
        report(
            "chunk header (size line)",
            measure(|| {
                n = n.wrapping_add(977);
                black_box(chunk_header(black_box(n & 0xffff), &mut buf));
            }),
            None,
        );
    }

    if wanted("token") {
        // The same time whatever the guess: first byte wrong, last byte
        // wrong, right, too short, too long.
        let token = b"correct-horse-battery-staple-0123456789";
        let mut last_wrong = *token;
        last_wrong[token.len() - 1] ^= 1;
        let mut first_wrong = *token;
        first_wrong[0] ^= 1;
        for (name, guess) in [
            ("token compare: first byte wrong", &first_wrong[..]),
            ("token compare: last byte wrong", &last_wrong[..]),
            ("token compare: right", &token[..]),
            ("token compare: 1 byte guess", &token[..1]),
            ("token compare: 80 byte guess", &[b'x'; 80][..]),
        ] {
            report(
                name,
                measure(|| {
                    black_box(constant_time_eq(black_box(guess), black_box(token)));
                }),
                None,
            );
        }
    }

    if wanted("timer") {
        const TIMERS: u64 = 100_000;
        // Deadlines spread over 2 minutes of 10 ms ticks, as idle timeouts are.
        let deadline = |i: u64| (i * 7919) % 12_000;
        let mut wheel = TimerWheel::new(0);
        let mut keys: Vec<_> = (0..TIMERS).map(|i| wheel.insert(deadline(i), i)).collect();
        let mut i = 0u64;
        report(
            "timer cancel + insert (100k pending)",
            measure(|| {
                let slot = (i % TIMERS) as usize;
                wheel.cancel(keys[slot]);
                keys[slot] = wheel.insert(deadline(i + 1), i);
                i += 1;
            }),
            None,
        );
        let t = Instant::now();
        let mut fired = Vec::with_capacity(TIMERS as usize);
        let mut wheel = TimerWheel::new(0);
        for i in 0..TIMERS {
            wheel.insert(deadline(i), i);
        }
        let inserted = t.elapsed();
        let t = Instant::now();
        for tick in 0..12_000 {
            wheel.advance(tick, &mut fired);
        }
        let expired = t.elapsed();
        assert_eq!(fired.len() as u64, TIMERS);
        report("timer insert (into 100k)", inserted / TIMERS as u32, None);
        report(
            "timer expiry, tick by tick (per timer)",
            expired / TIMERS as u32,
            None,
        );
    }
}
