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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sseloop::{Deferred, Handle, Response};

use crate::inbox::{Incoming, Remote};
use crate::page::Page;
use crate::redis_link::{connect, unavailable, Endpoint};
use crate::update::Entry;

/// How often a hub says it is alive and refreshes its clients.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long after its last heartbeat a hub's clients are forgotten.
pub const EXPIRY: Duration = Duration::from_secs(15);
/// The most fields one `HSET` carries (a pipeline holds as many as needed).
const MAX_FIELDS: usize = 16_384;

/// How long one lookup or listing may take before it is answered `503`.
const DEADLINE: Duration = Duration::from_millis(1500);

/// A command on a hub's channel.
#[derive(Debug, Serialize, Deserialize)]
struct Command {
    seid: String,
    remote: Remote,
}

/// Builds the answer to a subscriptions request from a page of every live
/// hub's subscriptions (each as the JSON [`Presence::subscribed`] stored)
/// and the cursor of the page after it.
pub type BuildAnswer = Box<dyn FnOnce(Vec<String>, Option<String>) -> Response + Send>;

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
    /// The command channel is (or is no longer) subscribed.
    Listening(bool),
    Subscriptions {
        answer: Deferred,
        /// `None`: every page (to find one subscription).
        page: Option<Page>,
        build: BuildAnswer,
    },
    Route {
        seid: String,
        remote: Remote,
        answer: Deferred,
    },
    List {
        answer: Deferred,
        page: Page,
    },
}

/// The hub's presence in Redis: tell it who joins and leaves; ask it to
/// route a command or list every hub's clients.
pub struct Presence {
    jobs: mpsc::Sender<Job>,
    /// Requests waiting for the presence thread's answer (listings, routed
    /// commands): at most [`MAX_WAITING`], the rest are answered `503`.
    waiting: Arc<AtomicUsize>,
}

/// The most requests waiting for the presence thread at once.
pub const MAX_WAITING: usize = 1024;

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
        tx: mpsc::SyncSender<Incoming>,
        waker: Arc<OnceLock<Handle>>,
    ) -> Result<Self, String> {
        let client = Endpoint::parse(url)?;
        let hub = uuid::Uuid::new_v4().simple().to_string();
        let keys = Keys {
            hubs: format!("{prefix}:hubs"),
            clients: format!("{prefix}:clients:"),
            subscriptions: format!("{prefix}:subscriptions:"),
            channel: format!("{prefix}:hub:"),
            announcements: format!("{prefix}:announcements"),
        };
        let (jobs, rx) = mpsc::channel();
        let waiting: Arc<AtomicUsize> = Arc::default();
        {
            let (client, keys, hub) = (client.clone(), keys.clone(), hub.clone());
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name("redis-presence".into())
                .spawn(move || Worker::new(client, keys, hub, waiting).run(&rx))
                .map_err(|e| e.to_string())?;
        }
        let channels = [format!("{}{hub}", keys.channel), keys.announcements.clone()];
        let listening = jobs.clone();
        std::thread::Builder::new()
            .name("redis-commands".into())
            .spawn(move || listen(&client, &channels, &tx, &waker, &listening))
            .map_err(|e| e.to_string())?;
        Ok(Presence { jobs, waiting })
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

    /// Answers with what `build` makes of a `page` of every live hub's
    /// subscriptions (`None`: all of them).
    pub fn subscriptions(&self, answer: Deferred, page: Option<Page>, build: BuildAnswer) {
        self.ask(Job::Subscriptions {
            answer,
            page,
            build,
        });
    }

    /// Queues a job that answers a request, unless [`MAX_WAITING`] already
    /// wait: then `503` at once.
    fn ask(&self, job: Job) {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            refuse(job, "too many requests are waiting for Redis");
            return;
        }
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            refuse(job, "the Redis presence thread has stopped");
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
        self.ask(Job::Route {
            seid: seid.to_owned(),
            remote,
            answer,
        });
    }

    /// Answers every live hub's clients, as `GET /clients` shows them.
    pub fn list(&self, answer: Deferred, page: Page) {
        self.ask(Job::List { answer, page });
    }
}

/// Answers a request's job `503`, saying `why`.
fn refuse(job: Job, why: &str) {
    if let Job::Route { answer, .. }
    | Job::List { answer, .. }
    | Job::Subscriptions { answer, .. } = job
    {
        respond(answer, unavailable(why));
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

/// A page of a family of hashes: fields and values, and the cursor after
/// it.
type Scanned = (Vec<(String, String)>, Option<String>);

/// The presence thread's state.
struct Worker {
    client: Endpoint,
    keys: Keys,
    hub: String,
    con: Option<redis::Connection>,
    /// This hub's clients, to write again after Redis lost them.
    mine: HashMap<String, String>,
    /// This hub's Mercure subscriptions, likewise.
    my_subs: HashMap<String, String>,
    last_beat: Option<Instant>,
    /// Whether this hub's command channel is subscribed.
    listening: bool,
    /// Whether a change failed to reach Redis since the last beat.
    stale: bool,
    /// Requests waiting for an answer from here (see [`Presence`]).
    waiting: Arc<AtomicUsize>,
}

impl Worker {
    fn new(client: Endpoint, keys: Keys, hub: String, waiting: Arc<AtomicUsize>) -> Self {
        Worker {
            client,
            keys,
            hub,
            con: None,
            mine: HashMap::new(),
            my_subs: HashMap::new(),
            last_beat: None,
            listening: false,
            stale: false,
            waiting,
        }
    }

    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        loop {
            match jobs.recv_timeout(HEARTBEAT) {
                Ok(job) => {
                    // Everything queued behind it too: a burst of streams
                    // opening or closing is written in one round trip, and
                    // a listing queued behind them waits for that one. So
                    // the queue never holds more than what arrives during
                    // one turn, whose Redis calls each have a deadline.
                    let mut batch = vec![job];
                    batch.extend(jobs.try_iter());
                    self.handle_all(batch);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if self.last_beat.is_none_or(|at| at.elapsed() >= HEARTBEAT) {
                self.beat_now();
            }
        }
    }

    /// Beats now (and writes this hub's clients, once it can be reached).
    fn beat_now(&mut self) {
        if self.with_con(|w, con| w.beat(con)).is_ok() {
            self.last_beat = Some(Instant::now());
            self.stale = false;
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
        // A client is listed only once this hub can be reached for it: a
        // command routed here before the channel is subscribed would be
        // lost, and answered 404.
        if !self.listening {
            return pipe.query::<()>(con);
        }
        // After a change failed to reach Redis (a seid that left while it
        // was unreachable would stay listed), the hashes are replaced whole,
        // atomically.
        pipe.atomic();
        for (hash, held) in [
            (self.my_clients(), &self.mine),
            (self.my_subscriptions(), &self.my_subs),
        ] {
            if self.stale {
                pipe.cmd("DEL").arg(&hash).ignore();
            }
            let fields: Vec<&String> = held.keys().collect();
            hset(&mut pipe, &hash, held, &fields);
            pipe.cmd("PEXPIRE")
                .arg(&hash)
                .arg(EXPIRY.as_millis() as u64)
                .ignore();
        }
        pipe.query::<()>(con)
    }

    /// Handles `batch` in order, the presence changes among it written
    /// together: each change to this hub's hashes is applied to `mine` and
    /// `my_subs` as it comes, and the seids it touched are written (or
    /// deleted) in one pipeline before any other job runs.
    fn handle_all(&mut self, batch: Vec<Job>) {
        let mut touched: Vec<String> = Vec::new();
        for job in batch {
            match job {
                Job::Joined { seid, topics } => {
                    let topics = serde_json::to_string(&topics).unwrap_or_default();
                    self.mine.insert(seid.clone(), topics);
                    touched.push(seid);
                }
                Job::Subscribed { seid, json } => {
                    self.my_subs.insert(seid.clone(), json);
                    touched.push(seid);
                }
                Job::Left { seid } => {
                    self.mine.remove(&seid);
                    self.my_subs.remove(&seid);
                    touched.push(seid);
                }
                other => {
                    self.write_changes(std::mem::take(&mut touched));
                    self.handle(other);
                }
            }
        }
        self.write_changes(touched);
    }

    /// Writes what `mine` and `my_subs` now hold for `seids` (a seid no
    /// longer held is deleted) in one round trip.
    fn write_changes(&mut self, mut seids: Vec<String>) {
        if seids.is_empty() {
            return;
        }
        if !self.listening {
            // Not reachable now: the beat that follows `Listening` writes
            // every client at once, and deletes whoever left meanwhile.
            self.stale = true;
            return;
        }
        seids.sort_unstable();
        seids.dedup();
        let written = self.with_con(|w, con| {
            let mut pipe = redis::pipe();
            for (hash, held) in [
                (w.my_clients(), &w.mine),
                (w.my_subscriptions(), &w.my_subs),
            ] {
                let (set, gone): (Vec<&String>, Vec<&String>) =
                    seids.iter().partition(|s| held.contains_key(*s));
                if !set.is_empty() {
                    hset(&mut pipe, &hash, held, &set);
                    pipe.cmd("PEXPIRE")
                        .arg(&hash)
                        .arg(EXPIRY.as_millis() as u64)
                        .ignore();
                }
                for gone in gone.chunks(MAX_FIELDS) {
                    pipe.cmd("HDEL").arg(&hash).arg(gone).ignore();
                }
            }
            pipe.query::<()>(con)
        });
        self.stale |= written.is_err();
    }

    fn handle(&mut self, job: Job) {
        if matches!(
            job,
            Job::Route { .. } | Job::List { .. } | Job::Subscriptions { .. }
        ) {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        match job {
            Job::Joined { .. } | Job::Subscribed { .. } | Job::Left { .. } => {
                self.handle_all(vec![job]);
            }
            Job::Listening(now) => {
                let was = std::mem::replace(&mut self.listening, now);
                if now && !was {
                    self.beat_now();
                }
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
            Job::Subscriptions {
                answer,
                page,
                build,
            } => {
                let found = self.with_con(|w, con| match &page {
                    Some(page) => w.scan(con, &w.keys.subscriptions, page),
                    None => {
                        let mut all = Vec::new();
                        let mut page = Page {
                            cursor: None,
                            limit: crate::page::MAX_LIMIT,
                        };
                        loop {
                            let (found, next) = w.scan(con, &w.keys.subscriptions, &page)?;
                            all.extend(found);
                            match next {
                                Some(cursor) => page.cursor = Some(cursor),
                                None => return Ok((all, None)),
                            }
                        }
                    }
                });
                respond(
                    answer,
                    match found {
                        Ok((found, next)) => {
                            build(found.into_iter().map(|(_, json)| json).collect(), next)
                        }
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
            Job::List { answer, page } => {
                let listed = self.with_con(|w, con| w.list(con, &page));
                respond(
                    answer,
                    match listed {
                        Ok((json, next)) => page.answer("/clients", json, next.as_deref()),
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

    /// One page of every live hub's clients, as `[{"seid":…,"topics":[…]}]`,
    /// and the cursor of the next page (`hub:scan`, the hub's id and where
    /// `HSCAN` is in its hash; hubs in the order of their ids). Each page
    /// costs Redis what it lists, whatever the number of clients: a client
    /// there throughout is listed once, as `HSCAN` promises.
    /// One page of `GET /clients`: its JSON and the cursor after it.
    fn list(
        &self,
        con: &mut redis::Connection,
        page: &Page,
    ) -> redis::RedisResult<(String, Option<String>)> {
        let (mut found, next) = self.scan(con, &self.keys.clients, page)?;
        found.sort_unstable();
        let found: Vec<(String, Vec<String>)> = found
            .into_iter()
            .map(|(seid, topics)| (seid, serde_json::from_str(&topics).unwrap_or_default()))
            .collect();
        let list = found
            .iter()
            .map(|(seid, topics)| (seid.as_str(), topics.iter().map(String::as_str).collect()));
        Ok((crate::json::clients(list), next))
    }

    /// One page of the fields and values of every live hub's hash in
    /// `family` (`{family}{hub}`), hub after hub, and the cursor after it
    /// (`{hub}:{HSCAN cursor}`). A page may hold a few more than its limit.
    fn scan(
        &self,
        con: &mut redis::Connection,
        family: &str,
        page: &Page,
    ) -> redis::RedisResult<Scanned> {
        let mut hubs = self.live_hubs(con)?;
        hubs.sort_unstable();
        let (from_hub, mut scan) = match page.cursor.as_deref().and_then(|c| c.split_once(':')) {
            Some((hub, scan)) => (hub.to_owned(), scan.parse::<u64>().unwrap_or(0)),
            None => (String::new(), 0),
        };
        let mut found: Vec<(String, String)> = Vec::new();
        let mut rest = hubs.iter().filter(|h| **h >= from_hub).peekable();
        while let Some(hub) = rest.next() {
            if *hub != from_hub {
                scan = 0;
            }
            loop {
                let want = page.limit.saturating_sub(found.len()).max(1);
                let (after, pairs): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                    .arg(format!("{family}{hub}"))
                    .arg(scan)
                    .arg("COUNT")
                    .arg(want)
                    .query(con)?;
                found.extend(pairs);
                scan = after;
                if found.len() >= page.limit {
                    let next = match (scan, rest.peek()) {
                        (0, Some(following)) => Some(format!("{following}:0")),
                        (0, None) => None,
                        (at, _) => Some(format!("{hub}:{at}")),
                    };
                    return Ok((found, next));
                }
                if scan == 0 {
                    break;
                }
            }
        }
        Ok((found, None))
    }
}

/// Follows this hub's command channel and the announcements channel,
/// forever, handing each message to the loop.
fn listen(
    client: &Endpoint,
    channels: &[String; 2],
    tx: &mpsc::SyncSender<Incoming>,
    waker: &OnceLock<Handle>,
    presence: &mpsc::Sender<Job>,
) {
    let [commands, announcements] = channels;
    loop {
        let subscribed = (|| -> redis::RedisResult<()> {
            let mut con = connect(client, DEADLINE)?;
            // A subscribed connection waits for messages as long as it takes.
            con.set_read_timeout(None)?;
            let mut pubsub = con.as_pubsub();
            pubsub.subscribe(commands)?;
            pubsub.subscribe(announcements)?;
            let _ = presence.send(Job::Listening(true));
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
        let _ = presence.send(Job::Listening(false));
        std::thread::sleep(Duration::from_millis(200)); // reconnecting, not synchronising
    }
}

/// Adds `HSET hash field value …` for `fields` of `held` to `pipe`, in
/// commands of at most [`MAX_FIELDS`] fields.
fn hset(
    pipe: &mut redis::Pipeline,
    hash: &str,
    held: &HashMap<String, String>,
    fields: &[&String],
) {
    for chunk in fields.chunks(MAX_FIELDS) {
        pipe.cmd("HSET").arg(hash);
        for field in chunk {
            pipe.arg(*field).arg(&held[*field]);
        }
        pipe.ignore();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
