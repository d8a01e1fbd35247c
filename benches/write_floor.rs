//! The floor under a fan-out: what one small `write` to a loopback TCP
//! socket costs on this machine, with nobody waiting to read it.
//!
//! ```text
//! cargo run --release --example write_floor -- [SOCKETS] [BYTES]   # 5000, 57
//! ```
//!
//! It opens SOCKETS connections to itself on 127.0.0.1, writes BYTES (an SSE
//! frame's size) once to each server-side socket, and prints the time per
//! write; then reads them all back and repeats. Any server that writes once
//! per subscriber per event pays at least this per subscriber, so one thread
//! fans one event out to N subscribers in no less than N times this.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let sockets: usize = args
        .next()
        .map_or(Ok(5000), |s| s.parse())
        .expect("SOCKETS");
    let bytes: usize = args.next().map_or(Ok(57), |s| s.parse()).expect("BYTES");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(sockets);
    let mut writers = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        readers.push(TcpStream::connect(addr)?);
        let (writer, _) = listener.accept()?;
        writer.set_nodelay(true)?;
        writers.push(writer);
    }
    let frame = vec![b'x'; bytes];
    let mut back = vec![0u8; bytes];
    let mut per_write = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for writer in &mut writers {
            writer.write_all(&frame)?;
        }
        per_write.push(started.elapsed().as_secs_f64() * 1e6 / sockets as f64);
        for reader in &mut readers {
            reader.read_exact(&mut back)?;
        }
    }
    per_write.sort_by(f64::total_cmp);
    println!(
        "write_floor sockets={sockets} bytes={bytes} us_per_write_median={:.2} min={:.2} max={:.2} one_event_to_10000_ms={:.0}",
        per_write[2],
        per_write[0],
        per_write[4],
        per_write[2] * 10_000.0 / 1000.0
    );
    Ok(())
}
