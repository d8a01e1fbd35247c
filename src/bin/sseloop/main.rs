//! `sseloop`: a standalone Server-Sent Events hub on the sseloop library.
//! Subscribe with `GET /events`, publish with `POST /publish`; `--help`
//! lists every flag.

// `signals.rs` holds the binary's only `unsafe` (two libc calls), each with
// a SAFETY note.
#![deny(clippy::undocumented_unsafe_blocks)]

mod config;
mod history;
mod hub;
mod signals;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sseloop::Server;

fn main() {
    let env_token = std::env::var("SSELOOP_PUBLISH_TOKEN").ok();
    let config = match config::parse(std::env::args().skip(1), env_token) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{}", config::help());
            return;
        }
        Err(message) => {
            eprintln!("sseloop: {message}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(config) {
        eprintln!("sseloop: {e}");
        std::process::exit(1);
    }
}

fn run(config: config::Config) -> std::io::Result<()> {
    let first_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);
    let server = Server::builder()
        .bind(config.listen)?
        .server_timeout(Duration::from_millis(config.timeout_ms))
        .head_timeout(Duration::from_millis(config.head_timeout_ms))
        .heartbeat((config.heartbeat_secs > 0).then(|| Duration::from_secs(config.heartbeat_secs)))
        .max_queue_bytes(config.max_queue)
        .max_body_bytes(config.max_body)
        .max_clients(config.max_clients)
        // The hub gives ids itself, from one counter kept with its history.
        .auto_generate_id(false)
        .build(hub::Hub::new(config, first_id))?;
    let handle = server.handle();
    signals::on_terminate(move || {
        let _ = handle.shutdown();
    })?;
    eprintln!("sseloop: listening on http://{}", server.local_addr());
    server.run()?;
    eprintln!("sseloop: shut down cleanly");
    Ok(())
}
