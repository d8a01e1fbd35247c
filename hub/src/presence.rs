//! Seids reachable from any hub, with `--redis`: which hub holds which
//! client, and sending to (or ending) a client held by another hub.
//!
//! Each hub keeps its live seids (and their topics) in a hash of its own,
//! `{prefix}:clients:{hub}`, and its heartbeat in `{prefix}:hubs` (a sorted
//! set by time). Both are refreshed every [`HEARTBEAT`]; a hub that dies
//! stops refreshing, its hash expires after [`EXPIRY`] and it drops out of
//! the listing, as Centrifugo's presence does. A send or end for a seid
//! this hub does not hold is looked up among the live hubs and published on
//! the holder's channel, `{prefix}:hub:{hub}`, where that hub's subscriber
//! thread hands it to its loop.
//!
//! All of it runs on a thread of its own (with its own connection, so a
//! publish never waits behind it) and answers requests through deferred
//! answers; the loop only sends it messages.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sseloop::{Deferred, Handle, Response};

use crate::broker::{connect, unavailable, Entry, Incoming};

/// How often a hub says it is alive and refreshes its clients.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long after its last heartbeat a hub's clients are forgotten.
pub const EXPIRY: Duration = Duration::from_secs(15);
/// How long one lookup or listing may take before it is answered `503`.
const DEADLINE: Duration = Duration::from_millis(1500);

/// What to do to a client on another hub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remote {
    /// Send it an event.
    Send {
        /// The event name.
        event: Option<String>,
        /// The event id.
        id: Option<String>,
        /// The data.
        data: String,
        /// The `retry` field.
        retry: Option<u64>,
    },
    /// End its stream.
    End,
}

/// A command on a hub's channel.
#[derive(Debug, Serialize, Deserialize)]
struct Command {
    seid: String,
    remote: Remote,
}

/// Builds the answer to a subscriptions request from every live hub's
/// subscriptions (each as the JSON [`Presence::subscribed`] stored).
pub type BuildAnswer = Box<dyn FnOnce(Vec<String>) -> Response + Send>;

enum Job {
    Joined {
        seid: String,
        topics: Vec<String>,
    },
    Subscribed {
        seid: String,
        json: String,
    },
    Left {
        seid: String,
    },
    Announce {
        json: String,
    },
    Subscriptions {
        answer: Deferred,
        build: BuildAnswer,
    },
    Route {
        seid: String,
        remote: Remote,
        answer: Deferred,
    },
    List {
        answer: Deferred,
    },
}

/// The hub's presence in Redis: tell it who joins and leaves; ask it to
/// route a command or list every hub's clients.
pub struct Presence {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Presence")
    }
}

impl Presence {
    /// Starts the presence thread and this hub's channel subscriber, which
    /// hands commands to the loop through `tx` and wakes it with `waker`.
    ///
    /// # Errors
    /// The URL does not parse, or a thread cannot start.
    pub fn start(
        url: &str,
        prefix: &str,
        tx: mpsc::Sender<Incoming>,
        waker: Arc<OnceLock<Handle>>,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis {url:?}: {e}"))?;
        let hub = uuid::Uuid::new_v4().simple().to_string();
        let keys = Keys {
            hubs: format!("{prefix}:hubs"),
            clients: format!("{prefix}:clients:"),
            subscriptions: format!("{prefix}:subscriptions:"),
            channel: format!("{prefix}:hub:"),
            announcements: format!("{prefix}:announcements"),
        };
        let (jobs, rx) = mpsc::channel();
        {
            let (client, keys, hub) = (client.clone(), keys.clone(), hub.clone());
            std::thread::Builder::new()
                .name("redis-presence".into())
                .spawn(move || Worker::new(client, keys, hub).run(&rx))
                .map_err(|e| e.to_string())?;
        }
        let channels = [format!("{}{hub}", keys.channel), keys.announcements.clone()];
        std::thread::Builder::new()
            .name("redis-commands".into())
            .spawn(move || listen(&client, &channels, &tx, &waker))
            .map_err(|e| e.to_string())?;
        Ok(Presence { jobs })
    }

    /// A stream opened here, subscribed to `topics`.
    pub fn joined(&self, seid: &str, topics: Vec<String>) {
        let _ = self.jobs.send(Job::Joined {
            seid: seid.to_owned(),
            topics,
        });
    }

    /// A Mercure subscriber here, as JSON, for every hub's subscriptions API.
    pub fn subscribed(&self, seid: &str, json: String) {
        let _ = self.jobs.send(Job::Subscribed {
            seid: seid.to_owned(),
            json,
        });
    }

    /// Answers with what `build` makes of every live hub's subscriptions.
    pub fn subscriptions(&self, answer: Deferred, build: BuildAnswer) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(Job::Subscriptions { answer, build }) {
            stopped(job);
        }
    }

    /// Delivers `entry` live on every hub (its own included), through a
    /// channel rather than the log: subscription events are not kept for
    /// replay, so they never push a published update out of the history.
    pub fn announce(&self, entry: &Entry) {
        if let Ok(json) = serde_json::to_string(entry) {
            let _ = self.jobs.send(Job::Announce { json });
        }
    }

    /// A stream here closed.
    pub fn left(&self, seid: &str) {
        let _ = self.jobs.send(Job::Left {
            seid: seid.to_owned(),
        });
    }

    /// Does `remote` to `seid` on whichever hub holds it; answers `200`, or
    /// `404` when no hub does.
    pub fn route(&self, seid: &str, remote: Remote, answer: Deferred) {
        let job = Job::Route {
            seid: seid.to_owned(),
            remote,
            answer,
        };
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            stopped(job);
        }
    }

    /// Answers every live hub's clients, as `GET /clients` shows them.
    pub fn list(&self, answer: Deferred) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(Job::List { answer }) {
            stopped(job);
        }
    }
}

fn stopped(job: Job) {
    if let Job::Route { answer, .. } | Job::List { answer } | Job::Subscriptions { answer, .. } =
        job
    {
        respond(answer, unavailable("the Redis presence thread has stopped"));
    }
}

fn respond(answer: Deferred, response: Response) {
    let _ = answer.answer_nowait(move |_req, reply| {
        let _ = reply.respond(response);
    });
}

#[derive(Clone, Debug)]
struct Keys {
    hubs: String,
    clients: String,
    subscriptions: String,
    channel: String,
    /// Where subscription events go to every hub.
    announcements: String,
}

/// The presence thread's state.
struct Worker {
    client: redis::Client,
    keys: Keys,
    hub: String,
    con: Option<redis::Connection>,
    /// This hub's clients, to write again after Redis lost them.
    mine: HashMap<String, String>,
    /// This hub's Mercure subscriptions, likewise.
    my_subs: HashMap<String, String>,
    last_beat: Option<Instant>,
}

impl Worker {
    fn new(client: redis::Client, keys: Keys, hub: String) -> Self {
        Worker {
            client,
            keys,
            hub,
            con: None,
            mine: HashMap::new(),
            my_subs: HashMap::new(),
            last_beat: None,
        }
    }

    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        loop {
            match jobs.recv_timeout(HEARTBEAT) {
                Ok(job) => self.handle(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if self.last_beat.is_none_or(|at| at.elapsed() >= HEARTBEAT) {
                let _ = self.with_con(|w, con| w.beat(con));
            }
        }
    }

    /// Runs `f` on a connection (made if needed); a failure drops it.
    fn with_con<T>(
        &mut self,
        f: impl FnOnce(&Self, &mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let mut con = match self.con.take() {
            Some(con) => con,
            None => connect(&self.client, DEADLINE)?,
        };
        let result = f(self, &mut con);
        if result.is_ok() {
            self.con = Some(con);
        }
        result
    }

    fn my_clients(&self) -> String {
        format!("{}{}", self.keys.clients, self.hub)
    }

    fn my_subscriptions(&self) -> String {
        format!("{}{}", self.keys.subscriptions, self.hub)
    }

    /// Says this hub is alive, and writes its clients again (Redis may have
    /// lost them, or they expired while Redis was unreachable).
    fn beat(&self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(&self.keys.hubs)
            .arg(now_ms())
            .arg(&self.hub)
            .ignore();
        if !self.mine.is_empty() {
            pipe.cmd("HSET").arg(self.my_clients());
            for (seid, topics) in &self.mine {
                pipe.arg(seid).arg(topics);
            }
            pipe.ignore();
        }
        if !self.my_subs.is_empty() {
            pipe.cmd("HSET").arg(self.my_subscriptions());
            for (seid, json) in &self.my_subs {
                pipe.arg(seid).arg(json);
            }
            pipe.ignore();
        }
        for key in [self.my_clients(), self.my_subscriptions()] {
            pipe.cmd("PEXPIRE")
                .arg(key)
                .arg(EXPIRY.as_millis() as u64)
                .ignore();
        }
        pipe.query::<()>(con)
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Joined { seid, topics } => {
                let topics = serde_json::to_string(&topics).unwrap_or_default();
                self.mine.insert(seid.clone(), topics.clone());
                let hash = self.my_clients();
                let _ = self.with_con(|_, con| store(con, &hash, &seid, &topics));
            }
            Job::Subscribed { seid, json } => {
                self.my_subs.insert(seid.clone(), json.clone());
                let hash = self.my_subscriptions();
                let _ = self.with_con(|_, con| store(con, &hash, &seid, &json));
            }
            Job::Announce { json } => {
                let channel = self.keys.announcements.clone();
                let sent = self.with_con(|_, con| {
                    redis::cmd("PUBLISH")
                        .arg(&channel)
                        .arg(&json)
                        .query::<u64>(con)
                });
                if sent.is_err() {
                    log::warn!("a subscription event was not announced: Redis did not take it");
                }
            }
            Job::Left { seid } => {
                self.mine.remove(&seid);
                self.my_subs.remove(&seid);
                let _ = self.with_con(|w, con| {
                    redis::pipe()
                        .cmd("HDEL")
                        .arg(w.my_clients())
                        .arg(&seid)
                        .ignore()
                        .cmd("HDEL")
                        .arg(w.my_subscriptions())
                        .arg(&seid)
                        .ignore()
                        .query::<()>(con)
                });
            }
            Job::Subscriptions { answer, build } => {
                let found = self.with_con(|w, con| {
                    let mut all = Vec::new();
                    for hub in w.live_hubs(con)? {
                        let subs: Vec<String> = redis::cmd("HVALS")
                            .arg(format!("{}{hub}", w.keys.subscriptions))
                            .query(con)?;
                        all.extend(subs);
                    }
                    Ok(all)
                });
                respond(
                    answer,
                    match found {
                        Ok(all) => build(all),
                        Err(e) => unavailable(&format!("Redis did not answer: {e}")),
                    },
                );
            }
            Job::Route {
                seid,
                remote,
                answer,
            } => {
                let routed = self.with_con(|w, con| w.route(con, &seid, &remote));
                respond(
                    answer,
                    match routed {
                        Ok(true) => Response::text(200, "ok\n"),
                        Ok(false) => Response::text(404, "no live client has this seid\n"),
                        Err(e) => unavailable(&format!("Redis did not answer: {e}")),
                    },
                );
            }
            Job::List { answer } => {
                let listed = self.with_con(|w, con| w.list(con));
                respond(
                    answer,
                    match listed {
                        Ok(json) => Response::new(200)
                            .header("Content-Type", "application/json")
                            .body(json),
                        Err(e) => unavailable(&format!("Redis did not answer: {e}")),
                    },
                );
            }
        }
    }

    /// The hubs that beat within [`EXPIRY`].
    fn live_hubs(&self, con: &mut redis::Connection) -> redis::RedisResult<Vec<String>> {
        let since = now_ms().saturating_sub(EXPIRY.as_millis() as u64);
        redis::cmd("ZRANGEBYSCORE")
            .arg(&self.keys.hubs)
            .arg(since)
            .arg("+inf")
            .query(con)
    }

    /// Publishes `remote` to the hub holding `seid`; answers whether one does.
    fn route(
        &self,
        con: &mut redis::Connection,
        seid: &str,
        remote: &Remote,
    ) -> redis::RedisResult<bool> {
        for hub in self.live_hubs(con)? {
            let holds: bool = redis::cmd("HEXISTS")
                .arg(format!("{}{hub}", self.keys.clients))
                .arg(seid)
                .query(con)?;
            if holds {
                let command = Command {
                    seid: seid.to_owned(),
                    remote: remote.clone(),
                };
                let text = serde_json::to_string(&command).unwrap_or_default();
                let received: u64 = redis::cmd("PUBLISH")
                    .arg(format!("{}{hub}", self.keys.channel))
                    .arg(text)
                    .query(con)?;
                return Ok(received > 0);
            }
        }
        Ok(false)
    }

    /// Every live hub's clients, as `[{"seid":…,"topics":[…]}]`, by seid.
    fn list(&self, con: &mut redis::Connection) -> redis::RedisResult<String> {
        let mut all: Vec<(String, Vec<String>)> = Vec::new();
        for hub in self.live_hubs(con)? {
            let clients: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(format!("{}{hub}", self.keys.clients))
                .query(con)?;
            for (seid, topics) in clients {
                all.push((seid, serde_json::from_str(&topics).unwrap_or_default()));
            }
        }
        all.sort();
        let list = all
            .iter()
            .map(|(seid, topics)| (seid.as_str(), topics.iter().map(String::as_str).collect()));
        Ok(crate::json::clients(list))
    }
}

/// Sets `field` of `hash` to `value`, and has the hash expire after
/// [`EXPIRY`] unless a heartbeat refreshes it.
fn store(
    con: &mut redis::Connection,
    hash: &str,
    field: &str,
    value: &str,
) -> redis::RedisResult<()> {
    redis::pipe()
        .cmd("HSET")
        .arg(hash)
        .arg(field)
        .arg(value)
        .ignore()
        .cmd("PEXPIRE")
        .arg(hash)
        .arg(EXPIRY.as_millis() as u64)
        .ignore()
        .query(con)
}

/// Follows this hub's command channel and the announcements channel,
/// forever, handing each message to the loop.
fn listen(
    client: &redis::Client,
    channels: &[String; 2],
    tx: &mpsc::Sender<Incoming>,
    waker: &OnceLock<Handle>,
) {
    let [commands, announcements] = channels;
    loop {
        let subscribed = (|| -> redis::RedisResult<()> {
            let mut con = client.get_connection_with_timeout(DEADLINE)?;
            let mut pubsub = con.as_pubsub();
            pubsub.subscribe(commands)?;
            pubsub.subscribe(announcements)?;
            loop {
                let message = pubsub.get_message()?;
                let payload: String = message.get_payload()?;
                let incoming = if message.get_channel_name() == announcements {
                    serde_json::from_str::<Entry>(&payload)
                        .ok()
                        .map(Incoming::Announcement)
                } else {
                    serde_json::from_str::<Command>(&payload)
                        .ok()
                        .map(|command| Incoming::Remote {
                            seid: command.seid,
                            remote: command.remote,
                        })
                };
                if let Some(incoming) = incoming {
                    let _ = tx.send(incoming);
                    if let Some(handle) = waker.get() {
                        let _ = handle.wake();
                    }
                }
            }
        })();
        if let Err(e) = subscribed {
            log::debug!("the hub's channels: {e}");
        }
        std::thread::sleep(Duration::from_millis(200)); // reconnecting, not synchronising
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
