//! The listening socket's backlog: how many connections the kernel holds,
//! handshake done, until the loop accepts them.
//!
//! mio and std call `listen` with 128. A burst of subscribers (a deploy, a
//! reconnect storm after a network blip) outruns that while the loop is busy
//! with a fan-out, and what overflows is not refused cleanly: Linux drops
//! the handshake's last ACK or answers with SYN cookies, and the client sees
//! a connection that stalls for a second or is reset. In
//! `tests/hostile.rs`'s slowloris case, 55 of 1000 connections were reset that
//! way before the server ever saw them.

use std::io;

use mio::net::TcpListener;

/// The backlog sseloop asks for unless told otherwise. Linux caps it at
/// `net.core.somaxconn` (4096 by default since 5.4).
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Asks the kernel to hold up to `backlog` connections for `listener`.
/// Calling `listen` on a socket that already listens only changes its
/// backlog, so this works on a listener mio or the program bound.
#[cfg(unix)]
#[allow(unsafe_code)]
pub(crate) fn set_backlog(listener: &TcpListener, backlog: u32) -> io::Result<()> {
    use std::ffi::c_int;
    use std::os::fd::AsRawFd;

    extern "C" {
        // POSIX `listen(2)`, from the C library every Unix Rust links.
        fn listen(socket: c_int, backlog: c_int) -> c_int;
    }
    let backlog = c_int::try_from(backlog).unwrap_or(c_int::MAX);
    // SAFETY: `listen` takes two integers and touches no memory of ours. The
    // descriptor is open for the whole call: `listener` owns it and is
    // borrowed here. Neither std nor mio lets us pass a backlog, and adding a
    // crate for one call would break the five-dependency rule.
    let result = unsafe { listen(listener.as_raw_fd(), backlog) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere the platform's default backlog stays.
#[cfg(not(unix))]
pub(crate) fn set_backlog(_listener: &TcpListener, _backlog: u32) -> io::Result<()> {
    Ok(())
}
