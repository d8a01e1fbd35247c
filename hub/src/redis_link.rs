//! Where Redis is, one connection to it with deadlines, and the `503` a
//! publish gets when Redis fails it: what the writer, the reader and the
//! presence thread share.
//!
//! `--redis` takes a URL the redis crate reads (`redis://`, with a user and
//! password, a database), or `redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER[/DB]`:
//! then every connection (the first, and each one made again after a
//! failure) asks the Sentinels which node is the master of `MASTER` now,
//! so a failover is followed by reconnecting. A user and password before
//! the hosts are the Redis nodes', not the Sentinels'.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use sseloop::Response;

/// The scheme of a Sentinel-managed Redis.
const SENTINEL: &str = "redis+sentinel://";

/// Where Redis is.
#[derive(Clone)]
pub enum Endpoint {
    /// One node, at a fixed address.
    Direct(Box<redis::Client>),
    /// The master of a name, found through Sentinel at each connection.
    Sentinel(Arc<Mutex<SentinelClient>>),
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Endpoint::Direct(_) => "Endpoint::Direct",
            Endpoint::Sentinel(_) => "Endpoint::Sentinel",
        })
    }
}

impl Endpoint {
    /// The endpoint `url` names (see the module's doc).
    ///
    /// # Errors
    /// A one-line reason, naming `--redis`, when it does not parse.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let bad = |why: String| format!("--redis {url:?}: {why}");
        let Some(rest) = url.strip_prefix(SENTINEL) else {
            return redis::Client::open(url)
                .map(|client| Endpoint::Direct(Box::new(client)))
                .map_err(|e| bad(e.to_string()));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => (Some(credentials), hosts),
            None => (None, authority),
        };
        let mut path = path.split('/').filter(|p| !p.is_empty());
        let master = path
            .next()
            .ok_or_else(|| bad("no master name: redis+sentinel://HOST:PORT/MASTER".into()))?;
        let mut node = redis::RedisConnectionInfo::default();
        if let Some(db) = path.next() {
            let db = db
                .parse()
                .map_err(|_| bad(format!("the database {db:?} is not a number")))?;
            node = node.set_db(db);
        }
        if let Some(credentials) = credentials {
            let (user, password) = credentials.split_once(':').unwrap_or(("", credentials));
            if !user.is_empty() {
                node = node.set_username(user);
            }
            node = node.set_password(password);
        }
        let sentinels: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{h}"))
            .collect();
        if sentinels.is_empty() {
            return Err(bad("no Sentinel address".into()));
        }
        let client = SentinelClient::build(
            sentinels,
            master,
            Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(node)),
            SentinelServerType::Master,
        )
        .map_err(|e| bad(e.to_string()))?;
        Ok(Endpoint::Sentinel(Arc::new(Mutex::new(client))))
    }

    /// A connection to the node (with Sentinel, the master now), made
    /// within `timeout`.
    fn open(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        match self {
            Endpoint::Direct(client) => client.get_connection_with_timeout(timeout),
            Endpoint::Sentinel(sentinel) => {
                let client = sentinel
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_client()?;
                client.get_connection_with_timeout(timeout)
            }
        }
    }
}

/// A connection whose every call gives up after `timeout`.
pub(crate) fn connect(
    endpoint: &Endpoint,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let con = endpoint.open(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// `503` with `Retry-After`, saying why.
pub(crate) fn unavailable(why: &str) -> Response {
    Response::text(503, format!("{why}\n")).header("Retry-After", "1")
}
