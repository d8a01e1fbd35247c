//! SIGINT and SIGTERM → a graceful shutdown; a second signal exits at once.
//! SIGHUP → reload what can be reloaded (the TLS certificate).

use std::io;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Calls `first` on the first SIGINT/SIGTERM, on a thread of its own; a
/// second one exits the process at once.
pub fn on_terminate(first: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut received = signals.forever();
            if received.next().is_some() {
                first();
            }
            if received.next().is_some() {
                log::warn!("second signal, exiting now");
                std::process::exit(130);
            }
        })?;
    Ok(())
}

/// Calls `each` on every SIGHUP, on a thread of its own.
pub fn on_hangup(mut each: impl FnMut() + Send + 'static) -> io::Result<()> {
    let mut signals = Signals::new([SIGHUP])?;
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                each();
            }
        })?;
    Ok(())
}
