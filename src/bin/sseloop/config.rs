//! The hub's command line: every flag, its default, and its parsing.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// What the hub was told to do.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Seconds between heartbeats; 0 turns them off.
    pub heartbeat_secs: u64,
    /// Milliseconds a stream may go without a write before it is closed.
    pub timeout_ms: u64,
    /// Milliseconds a connection has to send a complete request head.
    pub head_timeout_ms: u64,
    /// How many published events are kept for replay.
    pub history: usize,
    pub max_clients: Option<usize>,
    pub max_queue: usize,
    pub max_body: usize,
    pub publish_token: Option<String>,
    pub cors_origin: Option<String>,
    pub retry_ms: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            heartbeat_secs: 15,
            timeout_ms: 120_000,
            head_timeout_ms: 10_000,
            history: 1024,
            max_clients: None,
            max_queue: sseloop::DEFAULT_MAX_QUEUE,
            max_body: 1024 * 1024,
            publish_token: None,
            cors_origin: None,
            retry_ms: None,
        }
    }
}

/// The flags, their value names, defaults and meanings, as `--help` shows
/// them (and the README's flag table repeats).
const FLAGS: &[(&str, &str, &str, &str)] = &[
    ("--listen", "ADDR", "127.0.0.1:8080", "address to listen on"),
    ("--heartbeat", "SECS", "15", "comment after SECS without a write; 0 turns heartbeats off"),
    ("--timeout", "MS", "120000", "close a stream on which nothing was written for MS"),
    ("--head-timeout", "MS", "10000", "close a connection that has not sent a whole request head (or body progress) for MS"),
    ("--history", "N", "1024", "published events kept for Last-Event-ID replay"),
    ("--max-clients", "N", "unlimited", "most live streams; past it, 503 with Retry-After"),
    ("--max-queue", "BYTES", "1048576", "most bytes queued for one client before it is evicted"),
    ("--max-body", "BYTES", "1048576", "largest publish body; past it, 413"),
    ("--publish-token", "TOKEN", "none", "require `Authorization: Bearer TOKEN` on /publish and /clients (or SSELOOP_PUBLISH_TOKEN); without one, only loopback peers may publish"),
    ("--cors-origin", "ORIGIN", "none", "send Access-Control-Allow-Origin: ORIGIN on /events and answer preflights"),
    ("--retry", "MS", "none", "send `retry: MS` first on every stream"),
];

pub fn help() -> String {
    let mut out = String::from(
        "sseloop: a Server-Sent Events hub.\n\n\
         usage: sseloop [FLAGS]\n\n\
         GET /events?topic=T   subscribe (Last-Event-ID or ?lastEventId= to replay)\n\
         POST /publish?topic=T&event=E&id=I&retry=R   publish the body\n\
         POST /clients/SEID, DELETE /clients/SEID, GET /clients, GET /metrics, GET /health, GET /\n\nflags:\n",
    );
    for (flag, value, default, meaning) in FLAGS {
        let _ = writeln!(out, "  {flag} {value:<7} {meaning} (default: {default})");
    }
    out.push_str("  --help          this text\n");
    out
}

/// Parses the arguments (without the program name) and the environment's
/// token. `Err` is a one-line message for stderr.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env_token: Option<String>,
) -> Result<Option<Config>, String> {
    let mut config = Config {
        publish_token: env_token.filter(|t| !t.is_empty()),
        ..Config::default()
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        if !FLAGS.iter().any(|(f, ..)| *f == name) {
            return Err(format!("unknown flag {flag:?} (see --help)"));
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{name} needs a value"))?;
        let bad = |what: &str| format!("{name}: {value:?} is not {what}");
        // A number above zero (a zero timeout or queue would refuse everything).
        let positive = |what: &str| -> Result<u64, String> {
            value
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(what))
        };
        match name.as_str() {
            "--listen" => {
                config.listen = value
                    .parse()
                    .map_err(|_| bad("an address like 127.0.0.1:8080"))?
            }
            "--heartbeat" => {
                config.heartbeat_secs = value.parse().map_err(|_| bad("a number of seconds"))?
            }
            "--timeout" => config.timeout_ms = positive("a positive number of milliseconds")?,
            "--head-timeout" => {
                config.head_timeout_ms = positive("a positive number of milliseconds")?
            }
            "--history" => config.history = value.parse().map_err(|_| bad("a count"))?,
            "--max-clients" => {
                config.max_clients = Some(value.parse().map_err(|_| bad("a count"))?);
            }
            "--max-queue" => {
                config.max_queue = usize::try_from(positive("a positive number of bytes")?)
                    .map_err(|_| bad("a number of bytes this machine can hold"))?;
            }
            "--max-body" => {
                config.max_body = value.parse().map_err(|_| bad("a number of bytes"))?
            }
            "--publish-token" => {
                if value.is_empty() {
                    return Err(bad("a token"));
                }
                config.publish_token = Some(value);
            }
            "--cors-origin" => {
                if !sseloop::http::valid_header("Access-Control-Allow-Origin", &value) {
                    return Err(bad("a valid origin"));
                }
                config.cors_origin = Some(value);
            }
            "--retry" => {
                config.retry_ms = Some(value.parse().map_err(|_| bad("a number of milliseconds"))?)
            }
            _ => unreachable!("every flag in FLAGS is matched"),
        }
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let c = parse(args(""), None).unwrap().unwrap();
        assert_eq!(
            (c.heartbeat_secs, c.timeout_ms, c.history),
            (15, 120_000, 1024)
        );
        let c = parse(
            args("--listen 127.0.0.1:9 --heartbeat=0 --retry 500 --max-clients 3"),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.listen.port(), 9);
        assert_eq!(
            (c.heartbeat_secs, c.retry_ms, c.max_clients),
            (0, Some(500), Some(3))
        );
        assert!(parse(args("--help"), None).unwrap().is_none());
    }

    #[test]
    fn errors_are_one_line() {
        let cases: [&[&str]; 7] = [
            &["--timeout", "x"],
            &["--timeout", "0"],
            &["--listen", "nowhere"],
            &["--bogus", "1"],
            &["--history"],
            &["--cors-origin", "a\rb"],
            &["--max-queue", "0"],
        ];
        for case in cases {
            let e = parse(case.iter().map(|a| (*a).to_owned()), None).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.contains(case[0]), "{e}");
        }
    }

    #[test]
    fn token_from_environment_and_flag() {
        let c = parse(args(""), Some("env".into())).unwrap().unwrap();
        assert_eq!(c.publish_token.as_deref(), Some("env"));
        let c = parse(args("--publish-token flag"), Some("env".into()))
            .unwrap()
            .unwrap();
        assert_eq!(c.publish_token.as_deref(), Some("flag"));
    }
}
