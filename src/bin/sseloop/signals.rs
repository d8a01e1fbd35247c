//! SIGINT and SIGTERM → a graceful shutdown.
//!
//! The library's default features may depend on nothing but mio, httparse,
//! itoa, slab and getrandom, and `cargo run --release` must give a hub that
//! shuts down cleanly, so instead of a signal crate this file makes the two
//! libc calls itself: `signal(2)` to install a handler, and in the handler
//! only `write(2)` (async-signal-safe) of one byte to a socket pair. A thread
//! blocked on the other end turns that byte into `Handle::shutdown`.
#![allow(unsafe_code)]

use std::io::{self, Read};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// The write end of the socket pair, for the handler.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
}

extern "C" fn on_signal(_signum: i32) {
    let byte = 1u8;
    // SAFETY: write(2) is async-signal-safe; `byte` lives for the whole call
    // and the length is 1. The fd is the socket pair's write end, never
    // closed. A failed write (buffer full: a shutdown is already pending)
    // loses nothing.
    unsafe {
        write(WAKE_FD.load(Ordering::Relaxed), &byte, 1);
    }
}

/// Calls `first` on the first SIGINT/SIGTERM; a second one exits at once.
pub fn on_terminate(first: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let (mut wait_end, wake_end) = UnixStream::pair()?;
    wake_end.set_nonblocking(true)?;
    // Kept open for the life of the process: the handler may run any time.
    WAKE_FD.store(wake_end.into_raw_fd(), Ordering::Relaxed);
    for signum in [SIGINT, SIGTERM] {
        // SAFETY: `on_signal` only loads an atomic and calls write(2), both
        // async-signal-safe, so it is a sound handler at any point.
        let previous = unsafe { signal(signum, on_signal) };
        if previous == usize::MAX {
            return Err(io::Error::last_os_error());
        }
    }
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            if wait_end.read(&mut byte).is_ok() {
                first();
            }
            if wait_end.read(&mut byte).is_ok() {
                eprintln!("sseloop: second signal, exiting now");
                std::process::exit(130);
            }
        })?;
    Ok(())
}
