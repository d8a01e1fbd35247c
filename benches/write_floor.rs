//! The floor under a fan-out: what one small `write` to a loopback TCP
//! socket costs on this machine, with nobody waiting to read it.
//!
//! ```text
//! cargo run --release --example write_floor -- [SOCKETS] [BYTES] [THREADS]   # 5000, 57, 1
//! ```
//!
//! It opens SOCKETS connections to itself on 127.0.0.1, writes BYTES (an SSE
//! frame's size) once to each server-side socket, and prints the time per
//! write; then reads them all back and repeats. Any server that writes once
//! per subscriber per event pays at least this per subscriber, so one thread
//! fans one event out to N subscribers in no less than N times this.
//!
//! With THREADS > 1 the sockets are split over that many writer threads that
//! start each round together, and the figure is the wall time of the whole
//! round: what a server that spread its writes over every core could reach,
//! with no core left for the readers.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

const ROUNDS: usize = 5;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut next = |name: &str, default: usize| -> usize {
        args.next()
            .map_or(Ok(default), |s| s.parse())
            .unwrap_or_else(|_| panic!("{name} must be a whole number"))
    };
    let sockets = next("SOCKETS", 5000);
    let bytes = next("BYTES", 57);
    let threads = next("THREADS", 1).max(1);

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(sockets);
    let mut writers: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..sockets {
        readers.push(TcpStream::connect(addr)?);
        let (writer, _) = listener.accept()?;
        writer.set_nodelay(true)?;
        writers[i % threads].push(writer);
    }

    // Each round: every writer thread waits at `start`, writes its share,
    // and meets the others at `done`; the main thread times the span between
    // the two and then drains the readers while the writers wait for the
    // next `start`.
    let start = Arc::new(Barrier::new(threads + 1));
    let done = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = writers
        .into_iter()
        .map(|mut share| {
            let (start, done) = (start.clone(), done.clone());
            let frame = vec![b'x'; bytes];
            thread::spawn(move || -> io::Result<()> {
                for _ in 0..ROUNDS {
                    start.wait();
                    for writer in &mut share {
                        writer.write_all(&frame)?;
                    }
                    done.wait();
                }
                Ok(())
            })
        })
        .collect();

    let mut back = vec![0u8; bytes];
    let mut per_write = Vec::new();
    for _ in 0..ROUNDS {
        start.wait();
        let started = Instant::now();
        done.wait();
        per_write.push(started.elapsed().as_secs_f64() * 1e6 / sockets as f64);
        for reader in &mut readers {
            reader.read_exact(&mut back)?;
        }
    }
    for worker in workers {
        worker.join().expect("a writer thread panicked")?;
    }
    per_write.sort_by(f64::total_cmp);
    println!(
        "write_floor sockets={sockets} bytes={bytes} threads={threads} us_per_write_median={:.2} min={:.2} max={:.2} one_event_to_10000_ms={:.0}",
        per_write[ROUNDS / 2],
        per_write[0],
        per_write[ROUNDS - 1],
        per_write[ROUNDS / 2] * 10_000.0 / 1000.0
    );
    Ok(())
}
