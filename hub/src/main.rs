//! `sseloop`: the standalone Server-Sent Events hub. `--help` lists every
//! flag.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sseloop::Server;
use sseloop_hub::{config, signals, Config, Hub};

fn main() {
    let config = match config::from_args(std::env::args_os()) {
        Ok(Some(config)) => config,
        Ok(None) => return,
        Err(message) => {
            eprintln!("sseloop: {message}");
            std::process::exit(2);
        }
    };
    env_logger::Builder::new()
        .filter_level(config.log_level)
        .format_target(false)
        .init();
    if let Err(e) = run(config) {
        eprintln!("sseloop: {e}");
        std::process::exit(1);
    }
}

fn run(config: Config) -> std::io::Result<()> {
    let first_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);
    let summary = config.summary();
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
        .build(Hub::new(config, first_id).map_err(std::io::Error::other)?)?;
    let handle = server.handle();
    signals::on_terminate(move || {
        let _ = handle.shutdown();
    })?;
    // The first line on stderr, always: where to connect.
    eprintln!("sseloop: listening on http://{}", server.local_addr());
    log::info!("config: {summary}");
    server.run()?;
    eprintln!("sseloop: shut down cleanly");
    Ok(())
}
