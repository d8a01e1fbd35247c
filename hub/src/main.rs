//! `sseloop`: the standalone Server-Sent Events hub. `--help` lists every
//! flag.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sseloop::Server;
use sseloop_hub::broker::{self, Broker};
use sseloop_hub::tls::Certificates;
use sseloop_hub::{config, signals, Config, Hub};

/// mimalloc gives freed pages back to the system, so the hub's memory falls
/// back when the subscribers that made it grow leave (glibc's allocator
/// kept 169 MiB of a 14 MiB hub after a flood of 2 400 templates had left;
/// mimalloc purging at once, 25 MiB: `hub/tests/bounded.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (15 in both its v2
/// and v3 headers), for which libmimalloc-sys names no constant.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has mimalloc purge freed pages at once. Its default (10 ms later) runs
/// only when the thread that freed them allocates enough again, which an
/// event loop gone quiet after its clients left never does.
fn purge_freed_pages_at_once() {
    // SAFETY: mi_option_set stores one option's value in mimalloc's option
    // table; it takes no pointer, and it runs here before the hub starts a
    // thread of its own.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

fn main() {
    purge_freed_pages_at_once();
    // rediss:// goes through rustls, which takes its crypto from the
    // process's default provider; ring's is the one built in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match config::from_args(std::env::args_os()) {
        Ok(Some(config)) => config,
        Ok(None) => return,
        Err(message) => {
            eprintln!("sseloop: {message}");
            std::process::exit(2);
        }
    };
    if let Some(config::Command::Token(args)) = &config.command {
        match args.mint(&config) {
            Ok(token) => println!("{token}"),
            Err(why) => {
                eprintln!("sseloop token: {why}");
                std::process::exit(2);
            }
        }
        return;
    }
    let json = config.log_format == config::LogFormat::Json;
    let mut logger = env_logger::Builder::new();
    logger
        .filter_level(config.log_level)
        // The HTTP client's own debug lines are about its internals.
        .filter_module("ureq", log::LevelFilter::Warn)
        .filter_module("ureq_proto", log::LevelFilter::Warn)
        // Where to connect, and a clean shutdown: said at any level.
        .filter_module(LIFECYCLE, log::LevelFilter::Info)
        .format_target(false);
    if json {
        logger.format(json_line);
    }
    logger.init();
    if let Err(e) = run(config, json) {
        if json {
            log::error!("{e}");
        } else {
            eprintln!("sseloop: {e}");
        }
        std::process::exit(1);
    }
}

/// The log target of the lines said at any level (with `--log-format
/// json`, where the others are log records too).
const LIFECYCLE: &str = "sseloop::lifecycle";

/// One log record as one JSON object on one line: `timestamp` (RFC 3339,
/// UTC), `level`, `message`, then each of its fields by name (as text).
fn json_line(
    out: &mut env_logger::fmt::Formatter,
    record: &log::Record<'_>,
) -> std::io::Result<()> {
    use std::io::Write as _;
    struct Fields(serde_json::Map<String, serde_json::Value>);
    impl<'kvs> log::kv::VisitSource<'kvs> for Fields {
        fn visit_pair(
            &mut self,
            key: log::kv::Key<'kvs>,
            value: log::kv::Value<'kvs>,
        ) -> Result<(), log::kv::Error> {
            let mut name = key.as_str().to_owned();
            if matches!(name.as_str(), "timestamp" | "level" | "message") {
                name.insert_str(0, "field.");
            }
            // Numbers, booleans and lists as JSON has them; anything else
            // as its text.
            let value = serde_json::to_value(&value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            self.0.insert(name, value);
            Ok(())
        }
    }
    let mut line = serde_json::Map::new();
    line.insert("timestamp".into(), out.timestamp().to_string().into());
    line.insert("level".into(), record.level().as_str().into());
    line.insert("message".into(), record.args().to_string().into());
    let mut fields = Fields(serde_json::Map::new());
    let _ = record.key_values().visit(&mut fields);
    line.extend(fields.0);
    writeln!(out, "{}", serde_json::Value::Object(line))
}

fn run(config: Config, json: bool) -> std::io::Result<()> {
    let first_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);
    let summary = config.summary();
    let broker = match &config.redis {
        Some(url) => Some(
            Broker::start(broker::Settings {
                url: url.clone(),
                prefix: config.redis_prefix.clone(),
                history: config.history,
            })
            .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    if let Some(broker) = &broker {
        // Before the loop runs: the first reconnect can then be replayed.
        if !broker.wait_loaded(Duration::from_secs(3)) {
            log::warn!(
                "the Redis log's history was not loaded within 3 s (why is logged above); starting without it"
            );
        }
    }
    let certificates = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            Some(Certificates::load(cert, key).map_err(std::io::Error::other)?)
        }
        _ => None,
    };
    let waker = broker.as_ref().map(Broker::waker);
    let listen = config.listen;
    let cannot_listen = move |e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}"))
    };
    let builder = if config.reuse_port {
        Server::builder().listener(reuse_port_listener(config.listen).map_err(cannot_listen)?)
    } else {
        Server::builder()
            .bind(config.listen)
            .map_err(cannot_listen)?
    };
    let builder = match &certificates {
        Some(certificates) => builder.tls(certificates.server_config()),
        None => builder,
    };
    let server = builder
        .server_timeout(Duration::from_millis(config.timeout_ms))
        .head_timeout(Duration::from_millis(config.head_timeout_ms))
        .heartbeat((config.heartbeat_secs > 0).then(|| Duration::from_secs(config.heartbeat_secs)))
        .max_queue_bytes(config.max_queue)
        .max_body_bytes(config.max_body)
        .max_clients(config.max_clients)
        // The hub gives ids itself, from one counter kept with its history.
        .auto_generate_id(false)
        .build(Hub::new(config, first_id, broker).map_err(std::io::Error::other)?)
        .map_err(cannot_listen)?;
    let handle = server.handle();
    if let Some(waker) = waker {
        // The reader may already hold the log's tail: have it delivered.
        let _ = waker.set(handle.clone());
        let _ = handle.wake();
    }
    signals::on_terminate(move || {
        let _ = handle.shutdown();
    })?;
    if let Some(certificates) = certificates.clone() {
        signals::on_hangup(move || match certificates.reload() {
            Ok(()) => log::info!(target: LIFECYCLE, "sseloop: TLS certificate reloaded"),
            Err(why) => {
                log::error!("TLS certificate not reloaded, the previous one is kept: {why}")
            }
        })?;
    }
    // The first line on stderr, always: where to connect.
    let addr = server.local_addr();
    let scheme = if certificates.is_some() {
        "https"
    } else {
        "http"
    };
    if json {
        log::info!(target: LIFECYCLE, addr:% = addr; "sseloop: listening on {scheme}://{addr}");
    } else {
        eprintln!("sseloop: listening on {scheme}://{addr}");
    }
    log::info!("config: {summary}");
    server.run()?;
    if json {
        log::info!(target: LIFECYCLE, "sseloop: shut down cleanly");
    } else {
        eprintln!("sseloop: shut down cleanly");
    }
    Ok(())
}

/// A listener on `addr` that other processes may listen on too
/// (SO_REUSEPORT): the kernel spreads new connections over them.
fn reuse_port_listener(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
