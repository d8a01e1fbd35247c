//! The hub's command line: every flag, its default, its environment
//! variable (`SSELOOP_…`, as container deployments expect), and its parsing.

use std::net::SocketAddr;

use clap::Parser;

/// A Server-Sent Events hub: native pub/sub routes and a Mercure hub.
///
/// GET /events?topic=T (subscribe; Last-Event-ID or ?lastEventId= replays),
/// POST /publish?topic=T&event=E&id=I&retry=R (publish the body),
/// POST /clients/SEID, DELETE /clients/SEID, GET /clients, GET /metrics,
/// GET /health, GET /. Every flag can also be set from the environment
/// variable named after it.
#[derive(Clone, Debug, Parser)]
#[command(name = "sseloop", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        env = "SSELOOP_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Write a comment after SECS without a write; 0 turns heartbeats off.
    #[arg(
        long = "heartbeat",
        env = "SSELOOP_HEARTBEAT",
        value_name = "SECS",
        default_value_t = 15
    )]
    pub heartbeat_secs: u64,

    /// Close a stream on which nothing could be written for MS.
    #[arg(long = "timeout", env = "SSELOOP_TIMEOUT", value_name = "MS", default_value_t = 120_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,

    /// Close a connection that has not sent a whole request head (or made
    /// progress on its body) for MS; it gets 408.
    #[arg(long = "head-timeout", env = "SSELOOP_HEAD_TIMEOUT", value_name = "MS",
          default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub head_timeout_ms: u64,

    /// Published events kept for Last-Event-ID replay.
    #[arg(
        long,
        env = "SSELOOP_HISTORY",
        value_name = "N",
        default_value_t = 1024
    )]
    pub history: usize,

    /// Most live streams; past it, 503 with Retry-After (default: unlimited).
    #[arg(long, env = "SSELOOP_MAX_CLIENTS", value_name = "N")]
    pub max_clients: Option<usize>,

    /// Most live streams from one client address (an IPv6 address counts
    /// by its /64, which one host may hold whole); past it, 429 with
    /// Retry-After (default: unlimited).
    #[arg(long, env = "SSELOOP_MAX_STREAMS_PER_IP", value_name = "N",
          value_parser = positive_usize)]
    pub max_streams_per_ip: Option<usize>,

    /// Most bytes queued for one client before it is evicted as too slow.
    #[arg(long, env = "SSELOOP_MAX_QUEUE", value_name = "BYTES", default_value_t = sseloop::DEFAULT_MAX_QUEUE,
          value_parser = positive_usize)]
    pub max_queue: usize,

    /// Largest publish body; past it, 413.
    #[arg(long, env = "SSELOOP_MAX_BODY", value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub max_body: usize,

    /// Most topic selectors in one subscribe (and topics on one native
    /// stream); past it, 400.
    #[arg(long, env = "SSELOOP_MAX_SELECTORS", value_name = "N", default_value_t = 64,
          value_parser = positive_usize)]
    pub max_selectors: usize,

    /// Longest topic selector or topic, in bytes; past it, 400.
    #[arg(long, env = "SSELOOP_MAX_SELECTOR_BYTES", value_name = "BYTES", default_value_t = 1024,
          value_parser = positive_usize)]
    pub max_selector_bytes: usize,

    /// Largest compiled URI template (its DFA's table), in bytes; past it,
    /// 400.
    #[arg(long, env = "SSELOOP_MAX_COMPILED_BYTES", value_name = "BYTES",
          default_value_t = 16 * 1024, value_parser = positive_usize)]
    pub max_compiled_bytes: usize,

    /// Most bytes of URI templates one subscribe, or one token's claim, may
    /// compile (templates a subscriber already holds cost nothing):
    /// compiling is the loop's time; past it, 400.
    #[arg(long, env = "SSELOOP_MAX_SUBSCRIBE_COMPILED_BYTES", value_name = "BYTES",
          default_value_t = 256 * 1024, value_parser = positive_usize)]
    pub max_subscribe_compiled_bytes: usize,

    /// Most distinct URI templates held at once (each compiled once and
    /// shared by every subscriber using it); past it, 503.
    #[arg(long, env = "SSELOOP_MAX_TEMPLATES", value_name = "N", default_value_t = 8_192,
          value_parser = positive_usize)]
    pub max_templates: usize,

    /// Most topics in one publish (the canonical and its alternates); past
    /// it, 400.
    #[arg(long, env = "SSELOOP_MAX_PUBLISH_TOPICS", value_name = "N", default_value_t = 16,
          value_parser = positive_usize)]
    pub max_publish_topics: usize,

    /// Most selectors in a token's mercure.publish, and in its
    /// mercure.subscribe; past it, the token is refused (400).
    #[arg(long, env = "SSELOOP_MAX_TOKEN_SELECTORS", value_name = "N", default_value_t = 64,
          value_parser = positive_usize)]
    pub max_token_selectors: usize,

    /// Require `Authorization: Bearer TOKEN` on /publish and /clients;
    /// without one (and without a JWT key) only loopback peers may publish.
    #[arg(long, env = "SSELOOP_PUBLISH_TOKEN", value_name = "TOKEN", hide_env_values = true,
          value_parser = non_empty)]
    pub publish_token: Option<String>,

    /// Origins a browser may read the hub from (CORS, with credentials);
    /// repeat the flag or separate with commas; `*` allows any.
    #[arg(long, env = "SSELOOP_CORS_ORIGIN", value_name = "ORIGIN", value_parser = header_value,
          value_delimiter = ',')]
    pub cors_origin: Vec<String>,

    /// The JWT key for publishers and subscribers: the HS256 secret, or a
    /// PEM public key for RS256/ES256. Better from the environment, out of
    /// `ps`.
    #[arg(long, env = "SSELOOP_JWT_KEY", value_name = "KEY", hide_env_values = true, global = true,
          value_parser = non_empty, allow_hyphen_values = true)]
    pub jwt_key: Option<String>,

    /// The publishers' JWT key, when it differs from --jwt-key.
    #[arg(long, env = "SSELOOP_PUBLISHER_JWT_KEY", value_name = "KEY", hide_env_values = true, global = true,
          value_parser = non_empty, allow_hyphen_values = true)]
    pub publisher_jwt_key: Option<String>,

    /// The subscribers' JWT key, when it differs from --jwt-key.
    #[arg(long, env = "SSELOOP_SUBSCRIBER_JWT_KEY", value_name = "KEY", hide_env_values = true, global = true,
          value_parser = non_empty, allow_hyphen_values = true)]
    pub subscriber_jwt_key: Option<String>,

    /// The one algorithm tokens may be signed with (alg none never is).
    #[arg(
        long,
        env = "SSELOOP_JWT_ALG",
        value_name = "ALG",
        value_enum,
        ignore_case = true,
        default_value = "HS256",
        global = true
    )]
    pub jwt_alg: crate::auth::Alg,

    /// Let subscribers without a token receive public updates (without it,
    /// a subscriber key makes a token necessary: 401).
    #[arg(long, env = "SSELOOP_ANONYMOUS")]
    pub anonymous: bool,

    /// Origins a cookie-authorized publish may come from (its Origin or
    /// Referer; CSRF); repeat or separate with commas; `*` allows any.
    #[arg(
        long,
        env = "SSELOOP_PUBLISH_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub publish_origin: Vec<String>,

    /// Serve the Mercure subscriptions API and publish subscription events.
    #[arg(long, env = "SSELOOP_SUBSCRIPTIONS")]
    pub subscriptions: bool,

    /// Serve the debugger page at /.well-known/mercure/debug/: subscribe,
    /// publish, list subscriptions and watch live figures from a browser
    /// (it exposes nothing the API does not, and keeps no token).
    #[arg(long, env = "SSELOOP_DEBUGGER")]
    pub debugger: bool,

    /// Also speak Mercure 0.x (draft-07) on /.well-known/mercure: `topic=`
    /// subscriptions, tokens with a `mercure` claim (also from the
    /// `authorization` query parameter and the `mercureAuthorization`
    /// cookie), beside Mercure 1.0's.
    #[arg(
        long,
        env = "SSELOOP_MERCURE_COMPAT",
        value_name = "VERSION",
        value_enum
    )]
    pub mercure_compat: Option<Compat>,

    /// The trusted issuer: a Mercure 1.0 access token is accepted only when
    /// its `iss` is exactly this, and is verified with the --jwt-key keys.
    #[arg(long, env = "SSELOOP_ISSUER", value_name = "ISS", value_parser = non_empty, global = true)]
    pub issuer: Option<String>,

    /// The JWK Set of the --issuer (an OAuth authorization server's
    /// `jwks_uri`): its keys verify that issuer's tokens, fetched off the
    /// loop, cached, refreshed every 5 minutes and at once on an unknown
    /// key id. https://, http:// (tests) or file://.
    #[arg(long, env = "SSELOOP_JWKS_URL", value_name = "URL", value_parser = jwks_url,
          requires = "issuer")]
    pub jwks_url: Option<String>,

    /// Trust another issuer, with the keys of its JWK Set: ISS=URL (repeat
    /// the flag, or separate with spaces in the variable). Each issuer's
    /// tokens are verified with its own keys only.
    #[arg(long = "trusted-issuer", env = "SSELOOP_TRUSTED_ISSUERS", value_name = "ISS=URL",
          value_parser = trusted_issuer, value_delimiter = ' ')]
    pub trusted_issuers: Vec<(String, String)>,

    /// The hub's OAuth resource identifier: the `aud` its access tokens
    /// must carry, and the URL relative URL Patterns and topics resolve
    /// against. Unset: the URL the request reached (http or https, its Host,
    /// /.well-known/mercure).
    #[arg(long, env = "SSELOOP_RESOURCE_IDENTIFIER", value_name = "URL", global = true,
          value_parser = absolute_url)]
    pub resource_identifier: Option<url::Url>,

    /// The cookie a browser's access token travels in (a name without the
    /// __Secure- prefix for plain-HTTP development: browsers keep those only
    /// over HTTPS).
    #[arg(long, env = "SSELOOP_COOKIE_NAME", value_name = "NAME",
          default_value = crate::auth::DEFAULT_COOKIE, value_parser = non_empty)]
    pub cookie_name: String,

    /// The longest a Mercure subscriber's stream lasts, in seconds, before
    /// it must reconnect (and show its token again); 0: no limit.
    #[arg(
        long,
        env = "SSELOOP_WRITE_TIMEOUT",
        value_name = "SECS",
        default_value_t = 600
    )]
    pub write_timeout: u64,

    /// Share one ordered log of updates, and their history, with every hub
    /// started with the same Redis (or Valkey) URL and prefix, e.g.
    /// redis://127.0.0.1:6379/0, rediss://… for TLS, or
    /// redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER[/DB] to follow
    /// Sentinel's failovers. Without it, history stays in memory.
    #[arg(
        long = "redis",
        env = "SSELOOP_REDIS_URL",
        value_name = "URL",
        hide_env_values = true,
        value_parser = redis_url
    )]
    pub redis: Option<String>,

    /// The prefix of the hub's Redis keys: hubs with the same prefix share a
    /// log.
    #[arg(
        long,
        env = "SSELOOP_REDIS_PREFIX",
        value_name = "PREFIX",
        default_value = "sseloop"
    )]
    pub redis_prefix: String,

    /// Serve HTTPS with this PEM certificate chain (with --tls-key); both
    /// files are read again on SIGHUP, and open streams are kept.
    #[arg(
        long,
        env = "SSELOOP_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "SSELOOP_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,

    /// Let several hub processes listen on the same address (SO_REUSEPORT),
    /// one per core, joined through Redis.
    #[arg(long, env = "SSELOOP_REUSE_PORT")]
    pub reuse_port: bool,

    /// Send `retry: MS` first on every stream.
    #[arg(long = "retry", env = "SSELOOP_RETRY", value_name = "MS")]
    pub retry_ms: Option<u64>,

    /// What the hub logs to stderr: error, warn, info (its config at start,
    /// refused tokens) or debug (every subscriber and publish).
    #[arg(
        long,
        env = "SSELOOP_LOG_LEVEL",
        value_name = "LEVEL",
        default_value = "info",
        value_parser = log_level
    )]
    pub log_level: log::LevelFilter,

    /// How log lines are written: text for people, or json (one object a
    /// line: timestamp, level, message and each field) for log pipelines.
    #[arg(
        long,
        env = "SSELOOP_LOG_FORMAT",
        value_name = "FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Something else to do than run the hub.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `sseloop` can do besides running the hub.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Print a token the hub, started with the same key flags (or
    /// variables), accepts: a Mercure 1.0 access token by default, e.g.
    /// `sseloop token --publish '*' --subscribe 'https://example.com/books/:id' --ttl 1h`.
    Token(TokenArgs),
}

/// `sseloop token`'s flags (beside the hub's key flags, which it shares).
#[derive(Clone, Debug, clap::Args)]
pub struct TokenArgs {
    /// A topic matcher it may publish to (repeat): `*`, a topic, or a URL
    /// Pattern (`https://example.com/books/:id`); 0.x: a URI template.
    #[arg(long, value_name = "MATCHER")]
    pub publish: Vec<String>,

    /// A topic matcher of the private updates it may receive (repeat).
    #[arg(long, value_name = "MATCHER")]
    pub subscribe: Vec<String>,

    /// How long it lasts: 3600, 90s, 15m, 1h, 7d.
    #[arg(long, value_name = "DURATION", default_value = "1h",
          value_parser = crate::mint::parse_ttl)]
    pub ttl: std::time::Duration,

    /// 1.0 (an RFC 9068 access token, from --issuer for
    /// --resource-identifier) or 0.x (a `mercure` claim).
    #[arg(long, value_name = "FORMAT", value_enum, default_value = "1.0")]
    pub format: crate::mint::Format,

    /// Whom it is for (`sub`).
    #[arg(long, value_name = "SUB", default_value = "sseloop-token")]
    pub subject: String,

    /// A JSON object shown with its subscriptions.
    #[arg(long, value_name = "JSON", value_parser = json_object)]
    pub payload: Option<serde_json::Value>,

    /// The private key to sign with (PEM, PKCS#8) for RS256 and ES256,
    /// whose --jwt-key is the public one; HS256 signs with --jwt-key.
    #[arg(
        long,
        env = "SSELOOP_SIGNING_KEY",
        value_name = "PEM",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub signing_key: Option<String>,
}

impl TokenArgs {
    /// The token `config`'s hub accepts, signed with its key.
    ///
    /// # Errors
    /// A one-line reason: no key, no grant, a claim a 1.0 token lacks.
    pub fn mint(&self, config: &Config) -> Result<String, String> {
        if self.publish.is_empty() && self.subscribe.is_empty() {
            return Err(
                "a token that grants nothing: add --publish MATCHER and/or --subscribe MATCHER"
                    .into(),
            );
        }
        let configured = match (self.publish.is_empty(), self.subscribe.is_empty()) {
            (false, true) => config
                .publisher_jwt_key
                .as_ref()
                .or(config.jwt_key.as_ref()),
            (true, false) => config
                .subscriber_jwt_key
                .as_ref()
                .or(config.jwt_key.as_ref()),
            _ => config.jwt_key.as_ref().or(
                // One token for both roles needs one key for both.
                config
                    .publisher_jwt_key
                    .as_ref()
                    .filter(|k| Some(*k) == config.subscriber_jwt_key.as_ref()),
            ),
        };
        let key = match (&self.signing_key, config.jwt_alg) {
            (Some(key), _) => key,
            (None, crate::auth::Alg::Hs256) => configured.ok_or(
                "no key to sign with: --jwt-key (SSELOOP_JWT_KEY), as the hub has it",
            )?,
            (None, alg) => {
                return Err(format!(
                    "{} signs with a private key: --signing-key PEM (SSELOOP_SIGNING_KEY); the hub's --jwt-key is the public one",
                    alg.name()
                ))
            }
        };
        let order = crate::mint::Order {
            format: self.format,
            publish: self.publish.clone(),
            subscribe: self.subscribe.clone(),
            ttl: self.ttl,
            issuer: config.issuer.clone(),
            audience: config.resource_identifier.as_ref().map(|u| u.to_string()),
            subject: self.subject.clone(),
            payload: self.payload.clone(),
        };
        order.mint(config.jwt_alg, key)
    }
}

/// How the hub writes its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `[timestamp LEVEL] message key=value…`.
    Text,
    /// One JSON object a line.
    Json,
}

/// A Mercure protocol version the hub speaks beside 1.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Compat {
    /// draft-07, as the reference hub 0.x speaks it.
    #[value(name = "0.x")]
    V0,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["sseloop"])
    }
}

impl Config {
    /// Whether Mercure 0.x requests and tokens are accepted too.
    pub fn compat_0x(&self) -> bool {
        self.mercure_compat == Some(Compat::V0)
    }

    /// The bounds on one selector.
    pub fn selector_limits(&self) -> crate::topics::Limits {
        crate::topics::Limits {
            max_selector_bytes: self.max_selector_bytes,
            max_compiled_bytes: self.max_compiled_bytes,
            max_subscribe_compiled_bytes: self.max_subscribe_compiled_bytes,
            max_templates: self.max_templates,
        }
    }

    /// The bounds on what one token may make the hub compile.
    pub fn token_limits(&self) -> crate::auth::TokenLimits {
        crate::auth::TokenLimits {
            max_selectors: self.max_token_selectors,
            selector: self.selector_limits(),
        }
    }

    /// The configuration as one log line, with secrets left out.
    pub fn summary(&self) -> String {
        let mut shown = self.clone();
        for secret in [
            &mut shown.publish_token,
            &mut shown.jwt_key,
            &mut shown.publisher_jwt_key,
            &mut shown.subscriber_jwt_key,
        ] {
            if secret.is_some() {
                *secret = Some("(set)".into());
            }
        }
        if let Some(url) = &mut shown.redis {
            // A password in the URL stays out of the log.
            if let Some((_, host)) = url.rsplit_once('@') {
                *url = format!("redis://(credentials hidden)@{host}");
            }
        }
        format!("{shown:?}")
    }
}

fn positive_usize(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("not a positive number".into()),
    }
}

fn log_level(value: &str) -> Result<log::LevelFilter, String> {
    value
        .parse()
        .map_err(|_| "not one of off, error, warn, info, debug, trace".to_owned())
}

fn redis_url(value: &str) -> Result<String, String> {
    crate::redis_link::Endpoint::parse(value)
        .map(|_| value.to_owned())
        .map_err(|e| {
            let why = e.split_once(": ").map_or(e.as_str(), |(_, why)| why);
            format!("{why} (redis://HOST:PORT/DB, rediss://… or redis+sentinel://HOST:PORT/MASTER)")
        })
}

fn json_object(value: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str(value) {
        Ok(object @ serde_json::Value::Object(_)) => Ok(object),
        _ => Err(r#"a JSON object, e.g. {"user":7}"#.into()),
    }
}

fn jwks_url(value: &str) -> Result<String, String> {
    match value.split_once("://") {
        Some(("https" | "http" | "file", rest)) if !rest.is_empty() => Ok(value.to_owned()),
        _ => Err("a JWK Set URL is https://…, http://… or file:///path".into()),
    }
}

fn trusted_issuer(value: &str) -> Result<(String, String), String> {
    let (iss, url) = value
        .split_once('=')
        .filter(|(iss, _)| !iss.is_empty())
        .ok_or("ISS=URL: the issuer, =, then its JWK Set's URL")?;
    Ok((iss.to_owned(), jwks_url(url)?))
}

fn absolute_url(value: &str) -> Result<url::Url, String> {
    url::Url::parse(value).map_err(|e| {
        format!("not an absolute URL ({e}): e.g. https://hub.example.com/.well-known/mercure")
    })
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err("empty".into())
    } else {
        Ok(value.to_owned())
    }
}

fn header_value(value: &str) -> Result<String, String> {
    if sseloop::http::valid_header("Access-Control-Allow-Origin", value) {
        Ok(value.to_owned())
    } else {
        Err("not a valid header value".into())
    }
}

/// Parses the command line (and the environment). `Ok(None)` means `--help`
/// or `--version` was printed; `Err` is a one-line message for stderr.
pub fn from_args<I, T>(args: I) -> Result<Option<Config>, String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::error::ErrorKind;
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    match Config::try_parse_from(&args) {
        Ok(config) => Ok(Some(config)),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            // A reader that stopped early (`sseloop --help | head`) is not
            // an error of ours: print! would panic on the closed pipe.
            use std::io::Write;
            let _ = write!(std::io::stdout().lock(), "{e}");
            Ok(None)
        }
        Err(e) => Err(one_line(&e, args.into_iter().skip(1))),
    }
}

/// A clap error as one line that says what to do: its first line, then
/// clap's tip (a near flag) or the possible values, and which environment
/// variable gave the value when no flag did.
fn one_line(e: &clap::Error, given: impl Iterator<Item = std::ffi::OsString>) -> String {
    use clap::error::{ContextKind, ContextValue};
    use clap::CommandFactory;
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut line = lines
        .next()
        .unwrap_or("bad arguments")
        .trim_start_matches("error: ")
        .to_owned();
    let lists = line.ends_with(':');
    for more in lines {
        if let Some(tip) = more.strip_prefix("tip: ") {
            line.push_str(&format!("; {tip}"));
        } else if more.starts_with("[possible values:") {
            line.push_str(&format!(" {more}"));
        } else if lists && more.starts_with("--") {
            // What the first line announces (the required flags missing).
            line.push_str(&format!(" {more}"));
        }
    }
    // Which flag the value was for, and whether it came from its variable.
    if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
        let long = arg.split_whitespace().next().unwrap_or(arg);
        let given: Vec<std::ffi::OsString> = given.collect();
        let on_command_line = given.iter().any(|a| {
            a.to_str()
                .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
        });
        let command = Config::command();
        let env = command
            .get_arguments()
            .find(|a| a.get_long().is_some_and(|l| format!("--{l}") == long))
            .and_then(|a| a.get_env())
            .and_then(|env| env.to_str())
            .filter(|env| std::env::var_os(env).is_some());
        if let (Some(env), false) = (env, on_command_line) {
            line.push_str(&format!(" (the value of {env})"));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Option<Config>, String> {
        from_args(std::iter::once("sseloop").chain(args.split_whitespace()))
    }

    #[test]
    fn defaults_and_flags() {
        let c = parse("").unwrap().unwrap();
        assert_eq!(
            (c.heartbeat_secs, c.timeout_ms, c.history),
            (15, 120_000, 1024)
        );
        let c = parse("--listen 127.0.0.1:9 --heartbeat=0 --retry 500 --max-clients 3")
            .unwrap()
            .unwrap();
        assert_eq!(c.listen.port(), 9);
        assert_eq!(
            (c.heartbeat_secs, c.retry_ms, c.max_clients),
            (0, Some(500), Some(3))
        );
    }

    #[test]
    fn errors_are_one_line_and_name_the_flag() {
        for case in [
            "--timeout x",
            "--timeout 0",
            "--listen nowhere",
            "--bogus 1",
            "--history",
            "--max-queue 0",
            "--publish-token=",
        ] {
            let e = parse(case).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
            let flag = case.split([' ', '=']).next().unwrap();
            assert!(e.contains(flag), "{case}: {e}");
        }
    }

    #[test]
    fn mercure_1_flags_and_their_checks() {
        let c = parse("").unwrap().unwrap();
        assert_eq!(c.cookie_name, "__Secure-mercure_access_token");
        assert_eq!((c.write_timeout, c.compat_0x()), (600, false));
        let c = parse(
            "--mercure-compat 0.x --issuer https://as.test --jwks-url file:///k.json \
             --trusted-issuer https://b.test=https://b.test/jwks --trusted-issuer c=http://127.0.0.1:1/k \
             --resource-identifier https://hub.test/.well-known/mercure --cookie-name dev --write-timeout 0",
        )
        .unwrap()
        .unwrap();
        assert!(c.compat_0x());
        assert_eq!(c.jwks_url.as_deref(), Some("file:///k.json"));
        assert_eq!(
            c.trusted_issuers,
            [
                (
                    "https://b.test".to_owned(),
                    "https://b.test/jwks".to_owned()
                ),
                ("c".to_owned(), "http://127.0.0.1:1/k".to_owned())
            ]
        );
        assert_eq!((c.cookie_name.as_str(), c.write_timeout), ("dev", 0));
        for (args, says) in [
            ("--mercure-compat 1.x", "0.x"),
            ("--jwks-url ftp://x", "https://"),
            ("--jwks-url https://as.test/jwks", "--issuer"),
            ("--trusted-issuer nourl", "ISS=URL"),
            ("--resource-identifier /relative", "absolute URL"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.contains(says), "{args}: {e}");
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        for (case, says) in [
            ("--hearbeat 5", "a similar argument exists: '--heartbeat'"),
            ("--jwt-alg hs257", "[possible values: HS256, RS256, ES256]"),
            (
                "--log-level verbose",
                "off, error, warn, info, debug, trace",
            ),
            ("--redis nonsense", "redis://HOST:PORT/DB"),
        ] {
            let e = parse(case).unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{case}: {e}");
        }
        let c = parse("--jwt-alg hs256").unwrap().unwrap();
        assert_eq!(c.jwt_alg, crate::auth::Alg::Hs256, "any case");
    }

    #[test]
    fn a_pem_key_may_follow_its_flag_as_a_separate_argument() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n";
        for flag in ["--jwt-key", "--publisher-jwt-key", "--subscriber-jwt-key"] {
            let c = from_args(["sseloop", flag, pem, "--anonymous"])
                .unwrap()
                .unwrap();
            let key = match flag {
                "--jwt-key" => c.jwt_key,
                "--publisher-jwt-key" => c.publisher_jwt_key,
                _ => c.subscriber_jwt_key,
            };
            assert_eq!(key.as_deref(), Some(pem), "{flag}");
            assert!(c.anonymous);
        }
    }

    #[test]
    fn a_bad_origin_is_refused() {
        let e = from_args(["sseloop", "--cors-origin", "a\rb"]).unwrap_err();
        assert!(e.contains("--cors-origin"), "{e}");
    }

    #[test]
    fn summary_hides_the_secrets() {
        let c = parse("--publish-token s3cret --jwt-key k3y")
            .unwrap()
            .unwrap();
        assert!(!c.summary().contains("s3cret") && !c.summary().contains("k3y"));
    }

    #[test]
    fn lists_take_commas_or_repeats() {
        let c = parse("--cors-origin https://a,https://b --cors-origin https://c")
            .unwrap()
            .unwrap();
        assert_eq!(c.cors_origin, ["https://a", "https://b", "https://c"]);
        let c = parse("--jwt-alg ES256").unwrap().unwrap();
        assert_eq!(c.jwt_alg, crate::auth::Alg::Es256);
        assert!(parse("--jwt-alg none").is_err());
    }
}
