//! SIGINT and SIGTERM → a graceful shutdown; a second signal exits at once.

use std::io;

use signal_hook::consts::{SIGINT, SIGTERM};
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
