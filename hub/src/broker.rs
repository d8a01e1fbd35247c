//! Several hubs as one, through Redis (or Valkey): one ordered log of
//! updates that every hub writes to and reads from.
//!
//! # Design, and why
//!
//! - **One stream for all topics** (`{prefix}:log`, a Redis stream), as
//!   Mercure's high-availability build does. Selectors and URI templates
//!   match any topic, so a hub would have to read every per-topic stream
//!   anyway; one stream also gives one global order, the simplest promise to
//!   clients: every subscriber on every hub sees updates in the same order.
//! - **The loop never waits for Redis.** A blocking client (the `redis`
//!   crate) runs on two threads of its own, each call with a deadline: the
//!   *writer* stores publishes and answers them through the library's
//!   deferred answers; the *reader* follows the log (`XREAD BLOCK`) and hands
//!   each update to the loop with [`Handle::wake`](sseloop::Handle::wake).
//!   A publish is delivered by every hub's reader, its own included, so all
//!   hubs deliver in log order.
//! - **A publish answered `503` is never delivered.** The client-side
//!   deadline is not enough: a command can wait in a frozen Redis's socket
//!   buffer and run when it wakes. So the write is a script that compares
//!   Redis's own clock with the publish's deadline and refuses a late write.
//!   (The deadline is the hub's clock; hubs and Redis need clocks in step to
//!   well under the 2 s deadline, as NTP gives.)
//! - **Each hub's history is a mirror of the log's tail**: loaded at start
//!   (`XREVRANGE`), then fed by the reader. Replay is served from memory, on
//!   any hub and across restarts, exactly as without Redis.
//! - **Redis losing its data is detected, not guessed**: an epoch (a random
//!   value) is kept beside the log. A hub that finds another epoch (Redis
//!   restarted empty, or failed over to a stale replica) sends `reset` to its
//!   live streams once, forgets its history (so an old id gets `reset`, never
//!   a replay of other updates), and reads the new log from its start.
//! - **Retried publishes are not doubled**: an idempotency key (the
//!   `Idempotency-Key` header, else a publisher-given id) is stored beside
//!   the entry for a day; a retry answers the first attempt's id.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::Value;
use sseloop::{Deferred, Handle, Response};

use crate::inbox::Incoming;
use crate::redis_link::{connect, unavailable, Endpoint};
pub use crate::update::Entry;
use crate::waiting::{Waiting, GRACE};

/// How long a publish may take end to end before it is answered `503`.
pub const PUBLISH_DEADLINE: Duration = Duration::from_millis(1500);

/// How long the reader's `XREAD` blocks in Redis, and what it allows on top
/// before a silent Redis counts as down.
const READ_BLOCK: Duration = Duration::from_millis(1000);
const READ_SLACK: Duration = Duration::from_millis(1000);

/// How long an idempotency key is remembered.
const IDEMPOTENCY_MS: u64 = 24 * 3600 * 1000;

/// The write: refuses once Redis's clock is past the deadline, answers an
/// idempotent retry with the first attempt's id, makes the epoch if there is
/// none, and appends the update. KEYS: log, epoch, idempotency key (`""`:
/// none). ARGV: deadline (ms since the epoch), max length, a new epoch
/// value, the idempotency lifetime (ms), the publisher's id for the update
/// (`""`: the log entry's id is its id), then the entry's field/value pairs.
/// Answers the update's id and the epoch.
const WRITE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[1]) then
  return redis.error_reply('LATE the publish deadline passed before Redis ran it')
end
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  redis.call('SET', KEYS[2], ARGV[3])
  epoch = ARGV[3]
end
if KEYS[3] ~= '' then
  local first = redis.call('GET', KEYS[3])
  if first then return {first, epoch} end
end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
local id = entry
if ARGV[5] ~= '' then id = ARGV[5] end
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], id, 'PX', ARGV[4]) end
return {id, epoch}
";

/// Where the log is, and how much of it each hub keeps.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `redis://host:port/db`.
    pub url: String,
    /// The prefix of every key (hubs sharing it share one log).
    pub prefix: String,
    /// How many updates the log (and each hub's history) keeps.
    pub history: usize,
}

/// The field/value pairs `entry` is stored as in the stream.
fn fields(entry: &Entry) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        (
            "topics",
            serde_json::to_string(&entry.topics).unwrap_or_default(),
        ),
        ("data", entry.data.clone()),
    ];
    if let Some(id) = &entry.id {
        fields.push(("id", id.clone()));
    }
    if entry.private {
        fields.push(("private", "1".into()));
    }
    if let Some(event) = &entry.event {
        fields.push(("event", event.clone()));
    }
    if let Some(retry) = entry.retry {
        fields.push(("retry", retry.to_string()));
    }
    fields
}

/// The entry a stream record holds; `None` for one this hub cannot read.
fn from_record(record: &StreamId) -> Option<(String, Entry)> {
    let text = |name: &str| -> Option<String> {
        match record.map.get(name)? {
            Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        }
    };
    let entry = Entry {
        id: text("id"),
        topics: serde_json::from_str(&text("topics")?).ok()?,
        private: text("private").is_some(),
        event: text("event"),
        data: text("data")?,
        retry: text("retry").and_then(|r| r.parse().ok()),
    };
    let id = entry.id.clone().unwrap_or_else(|| record.id.clone());
    Some((id, entry))
}

/// What the hub's `/metrics` shows of Redis.
#[derive(Debug, Default)]
pub struct Counters {
    /// The last round trip of a write, in µs.
    pub rtt_us: AtomicU64,
    /// Connections made to Redis after the first (reader and writer).
    pub reconnects: AtomicU64,
    /// Updates read from the log.
    pub read: AtomicU64,
    /// Times the log was found lost (a new epoch).
    pub gaps: AtomicU64,
    /// Publishes answered `503` because Redis did not store them in time.
    pub refused: AtomicU64,
}

/// A publish waiting for the writer: the entry, who to answer (nobody for
/// the hub's own updates), by when.
struct Job {
    entry: Entry,
    idempotency: Option<String>,
    /// Its answer, waiting in [`Waiting`].
    ticket: u64,
    /// When the script refuses to store it.
    deadline: Instant,
}

/// The most publishes queued for the writer; past it, `503` at once.
pub const MAX_QUEUED: usize = 4096;

/// The most messages from Redis (updates, commands, announcements) waiting
/// for the loop; past it, the threads that read them wait.
const MAX_INCOMING: usize = 65_536;

/// The hub's side of Redis: hand it publishes, drain what the log brings.
pub struct Broker {
    jobs: mpsc::SyncSender<Job>,
    /// Publishes waiting on Redis, each answered by its deadline.
    waiting: Arc<Waiting>,
    incoming: mpsc::Receiver<Incoming>,
    ready: Arc<AtomicBool>,
    /// Redis's counters, for `/metrics`.
    pub counters: Arc<Counters>,
    waker: Arc<OnceLock<Handle>>,
    loaded: Arc<Loaded>,
    /// Which hub holds which client.
    pub presence: crate::presence::Presence,
}

/// Whether the reader has handed over the log's tail once.
#[derive(Debug, Default)]
struct Loaded {
    done: Mutex<bool>,
    signal: Condvar,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.waiting.stop();
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Broker {
    /// Starts the writer and the reader for `settings`. The reader wakes the
    /// loop through the handle given to [`Broker::waker`] once the server is
    /// built; what it reads before that waits for the first wake.
    ///
    /// # Errors
    /// The URL does not parse.
    pub fn start(settings: Settings) -> Result<Self, String> {
        let waker: Arc<OnceLock<Handle>> = Arc::default();
        let loaded: Arc<Loaded> = Arc::default();
        let client = Endpoint::parse(&settings.url)?;
        let (jobs, job_rx) = mpsc::sync_channel(MAX_QUEUED);
        let waiting: Arc<Waiting> = Arc::default();
        {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name("redis-deadlines".into())
                .spawn(move || {
                    waiting.run(|| {
                        unavailable("Redis did not store the update in time; it was not published")
                    });
                })
                .map_err(|e| e.to_string())?;
        }
        // Bounded: a loop that falls behind makes the threads reading Redis
        // wait (Redis keeps the stream; its pub/sub buffers what is left),
        // instead of this queue growing without end.
        let (tx, incoming) = mpsc::sync_channel(MAX_INCOMING);
        let presence = crate::presence::Presence::start(
            &settings.url,
            &settings.prefix,
            tx.clone(),
            waker.clone(),
        )?;
        let ready = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let keys = Keys::new(&settings.prefix);
        {
            let (client, keys, ready, counters) = (
                client.clone(),
                keys.clone(),
                ready.clone(),
                counters.clone(),
            );
            let history = settings.history.max(1);
            let writer = Writer {
                client,
                keys,
                history,
                ready,
                counters,
                waiting: waiting.clone(),
                con: None,
                connected_before: false,
            };
            std::thread::Builder::new()
                .name("redis-writer".into())
                .spawn(move || writer.run(&job_rx))
                .map_err(|e| e.to_string())?;
        }
        {
            let (ready, counters, handle) = (ready.clone(), counters.clone(), waker.clone());
            let loaded = loaded.clone();
            let history = settings.history;
            let reader = Reader {
                client,
                keys,
                history,
                tx,
                handle,
                ready,
                counters,
                loaded,
            };
            std::thread::Builder::new()
                .name("redis-reader".into())
                .spawn(move || reader.run())
                .map_err(|e| e.to_string())?;
        }
        Ok(Broker {
            jobs,
            waiting,
            incoming,
            ready,
            counters,
            waker,
            loaded,
            presence,
        })
    }

    /// Waits, before the loop runs, until the reader has handed over the
    /// log's tail (so the first reconnect can be replayed), or `timeout`
    /// passes (Redis unreachable: the hub starts anyway, and an id it cannot
    /// know gets `reset`). Answers whether it was loaded.
    pub fn wait_loaded(&self, timeout: Duration) -> bool {
        let Ok(done) = self.loaded.done.lock() else {
            return false;
        };
        self.loaded
            .signal
            .wait_timeout_while(done, timeout, |done| !*done)
            .is_ok_and(|(done, _)| *done)
    }

    /// Where the server's handle goes once it is built: the reader wakes the
    /// loop through it.
    pub fn waker(&self) -> Arc<OnceLock<Handle>> {
        self.waker.clone()
    }

    /// Stores `entry` in the log and answers the publisher through `answer`
    /// (`200` and the id once stored; `503` with `Retry-After` when Redis
    /// has not stored it by [`PUBLISH_DEADLINE`] and [`GRACE`] after now,
    /// whatever else the writer waits on, or at once when too many
    /// publishes are queued). The answer carries `headers` (CORS) whatever
    /// it is. Never waits.
    pub fn publish(
        &self,
        entry: Entry,
        idempotency: Option<String>,
        answer: Deferred,
        headers: Vec<(&'static str, String)>,
    ) {
        let deadline = Instant::now() + PUBLISH_DEADLINE;
        let ticket = self.waiting.add(deadline + GRACE, answer, headers);
        let job = Job {
            entry,
            idempotency,
            ticket,
            deadline,
        };
        let why = match self.jobs.try_send(job) {
            Ok(()) => return,
            Err(mpsc::TrySendError::Full(_)) => {
                "too many publishes are waiting for Redis; it was not published"
            }
            Err(mpsc::TrySendError::Disconnected(_)) => "the Redis writer has stopped",
        };
        if let Some(answer) = self.waiting.take(ticket) {
            answer.give(unavailable(why));
        }
    }

    /// What the log brought since the last call, in order.
    pub fn drain(&self) -> Vec<Incoming> {
        self.incoming.try_iter().collect()
    }

    /// Writes Redis stored after their publisher had been answered `503`
    /// (a reply later than [`GRACE`]; see [`crate::waiting`]).
    pub fn late_stores(&self) -> u64 {
        self.waiting.late_stores.load(Ordering::Relaxed)
    }

    /// Whether Redis answered recently (for `/ready`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// The keys under one prefix.
#[derive(Clone, Debug)]
struct Keys {
    log: String,
    epoch: String,
    idempotency: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Keys {
            log: format!("{prefix}:log"),
            epoch: format!("{prefix}:epoch"),
            idempotency: format!("{prefix}:idempotency:"),
        }
    }
}

/// `at` in milliseconds since the Unix epoch, by the system clock: for the
/// script, which compares it with Redis's clock. An instant already past is
/// in the past there too (it was taken as now: a write whose connection
/// took past its deadline to open was then stored, and delivered, after
/// its publisher had been answered 503).
fn unix_ms(at: Instant) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let here = Instant::now();
    let then = if at >= here {
        now + (at - here)
    } else {
        now.saturating_sub(here - at)
    };
    u64::try_from(then.as_millis()).unwrap_or(u64::MAX)
}

fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The writer's thread: one job at a time, each within its deadline.
struct Writer {
    client: Endpoint,
    keys: Keys,
    history: usize,
    ready: Arc<AtomicBool>,
    counters: Arc<Counters>,
    waiting: Arc<Waiting>,
    con: Option<redis::Connection>,
    connected_before: bool,
}

/// Why a write was not stored.
enum WriteError {
    /// The script's deadline passed (Redis's clock) or the job waited past
    /// it: Redis may be fine.
    Late,
    /// Redis refused the hub's credentials.
    Auth(String),
    /// Redis did not answer, or the connection broke.
    Unavailable(String),
}

impl Writer {
    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        let script = redis::Script::new(WRITE_SCRIPT);
        for job in jobs {
            let stored = self.store(&script, &job);
            let answer = self.waiting.take(job.ticket);
            match stored {
                Ok(id) => {
                    self.ready.store(true, Ordering::Relaxed);
                    match answer {
                        Some(answer) => answer.give(Response::text(200, id)),
                        None => {
                            self.waiting.stored_late();
                            log::warn!(
                                "update {id} was stored after its publisher was answered 503: Redis's reply took longer than {GRACE:?}"
                            );
                        }
                    }
                }
                Err(e) => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    match &e {
                        WriteError::Late => {}
                        WriteError::Auth(why) => {
                            self.ready.store(false, Ordering::Relaxed);
                            log::error!("Redis refused the hub's credentials (the user and password in --redis): {why}");
                        }
                        WriteError::Unavailable(why) => {
                            self.ready.store(false, Ordering::Relaxed);
                            log::warn!("publish refused, Redis did not store it in time: {why}");
                        }
                    }
                    if let Some(answer) = answer {
                        answer.give(unavailable(
                            "Redis did not store the update in time; it was not published",
                        ));
                    }
                }
            }
        }
    }

    /// Stores `job`'s entry; answers the update's id. A connection found
    /// broken is opened again and the write tried once more within the
    /// same deadline: safe, since the script refuses a late write and the
    /// idempotency key a second one.
    fn store(&mut self, script: &redis::Script, job: &Job) -> Result<String, WriteError> {
        let mut tries = 0;
        loop {
            tries += 1;
            // Waiting for a reply may go on to the answer's deadline: a
            // write Redis ran in time may still be answered 200.
            let left = (job.deadline + GRACE).saturating_duration_since(Instant::now());
            if job.deadline <= Instant::now() {
                return Err(WriteError::Late);
            }
            match self.attempt(script, job, left) {
                Ok(Some(id)) => return Ok(id),
                Ok(None) => return Err(WriteError::Late),
                Err(e) => {
                    // A timed-out or broken connection is dropped: a reply
                    // that comes later must not be read as the next call's.
                    self.con = None;
                    if e.code() == Some("LATE") {
                        return Err(WriteError::Late);
                    }
                    if e.kind() == redis::ErrorKind::AuthenticationFailed {
                        return Err(WriteError::Auth(e.to_string()));
                    }
                    // Closed by Redis (its `timeout`, a restart) before it
                    // read the call: one more try on a new connection.
                    let retry = e.is_connection_dropped() && !e.is_timeout() && tries == 1;
                    if !retry {
                        return Err(WriteError::Unavailable(e.to_string()));
                    }
                }
            }
        }
    }

    /// One try at storing `job`; `Ok(None)` when its deadline passed
    /// before the call could be made.
    fn attempt(
        &mut self,
        script: &redis::Script,
        job: &Job,
        left: Duration,
    ) -> redis::RedisResult<Option<String>> {
        if self.con.is_none() {
            self.con = Some(connect(&self.client, left)?);
            if self.connected_before {
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            self.connected_before = true;
        }
        // Opening the connection may have taken the time left.
        let left = (job.deadline + GRACE).saturating_duration_since(Instant::now());
        if job.deadline <= Instant::now() {
            return Ok(None);
        }
        let c = self.con.as_mut().expect("just connected");
        c.set_read_timeout(Some(left))?;
        c.set_write_timeout(Some(left))?;
        let idem = job
            .idempotency
            .as_ref()
            .map(|k| format!("{}{k}", self.keys.idempotency))
            .unwrap_or_default();
        let mut invocation = script.key(&self.keys.log);
        invocation
            .key(&self.keys.epoch)
            .key(idem)
            .arg(unix_ms(job.deadline))
            .arg(self.history)
            .arg(new_epoch())
            .arg(IDEMPOTENCY_MS)
            .arg(job.entry.id.as_deref().unwrap_or(""));
        for (name, value) in fields(&job.entry) {
            invocation.arg(name).arg(value);
        }
        let started = Instant::now();
        let (id, _epoch): (String, String) = invocation.invoke(c)?;
        self.counters.rtt_us.store(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(Some(id))
    }
}

/// The reader's thread: what it follows, and where it hands updates.
struct Reader {
    client: Endpoint,
    keys: Keys,
    history: usize,
    tx: mpsc::SyncSender<Incoming>,
    handle: Arc<OnceLock<Handle>>,
    ready: Arc<AtomicBool>,
    counters: Arc<Counters>,
    loaded: Arc<Loaded>,
}

/// Where the reader is in the log.
#[derive(Default)]
struct Position {
    /// The last entry read; `None` before the tail is loaded.
    entry: Option<String>,
    /// The log's epoch, once seen.
    epoch: Option<String>,
}

impl Reader {
    /// Loads the log's tail, then follows it, reconnecting, forever.
    fn run(self) {
        let timeout = READ_BLOCK + READ_SLACK;
        let mut position = Position::default();
        let mut connected_before = false;
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut con = match connect(&self.client, timeout) {
                Ok(con) => con,
                Err(e) => {
                    if self.ready.swap(false, Ordering::Relaxed) {
                        if e.kind() == redis::ErrorKind::AuthenticationFailed {
                            log::error!("Redis refused the hub's credentials (the user and password in --redis): {e}");
                        } else {
                            log::warn!("Redis is unreachable: {e}");
                        }
                    }
                    std::thread::sleep(backoff); // retrying a connection, not synchronising
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            if connected_before {
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            connected_before = true;
            backoff = Duration::from_millis(50);
            if let Err(e) = self.follow(&mut con, &mut position) {
                if self.ready.swap(false, Ordering::Relaxed) {
                    log::warn!("lost Redis: {e}");
                }
            }
        }
    }

    /// Hands `incoming` to the loop and wakes it.
    fn send(&self, incoming: Incoming) {
        let _ = self.tx.send(incoming);
        if let Some(handle) = self.handle.get() {
            let _ = handle.wake();
        }
    }

    /// Follows the log on one connection until it fails.
    fn follow(&self, con: &mut redis::Connection, at: &mut Position) -> redis::RedisResult<()> {
        loop {
            // The epoch: made if missing (by whichever hub sees it first).
            let (current,): (String,) = redis::pipe()
                .cmd("SET")
                .arg(&self.keys.epoch)
                .arg(new_epoch())
                .arg("NX")
                .ignore()
                .cmd("GET")
                .arg(&self.keys.epoch)
                .query(con)?;
            if !self.ready.swap(true, Ordering::Relaxed) {
                log::info!("Redis is reachable");
            }
            if at.epoch.as_deref() != Some(current.as_str()) {
                if at.epoch.is_some() {
                    // Redis lost the log: say so once, and read the new one
                    // from its start, live: what other hubs acknowledged
                    // before this reader noticed must reach its streams too.
                    self.counters.gaps.fetch_add(1, Ordering::Relaxed);
                    log::warn!("the Redis log was lost (new epoch); live streams get reset");
                    self.send(Incoming::Lost);
                    at.entry = Some("0-0".to_owned());
                }
                at.epoch = Some(current);
            }
            let Some(from) = at.entry.clone() else {
                at.entry = Some(self.load_tail(con)?);
                continue;
            };
            let options = StreamReadOptions::default()
                .block(READ_BLOCK.as_millis() as usize)
                .count(1000);
            let reply: Option<StreamReadReply> =
                redis::Commands::xread_options(con, &[&self.keys.log], &[&from], &options)?;
            let Some(reply) = reply else { continue };
            for key in reply.keys {
                for record in &key.ids {
                    at.entry = Some(record.id.clone());
                    self.counters.read.fetch_add(1, Ordering::Relaxed);
                    if let Some((id, entry)) = from_record(record) {
                        self.send(Incoming::Update {
                            id,
                            entry,
                            live: true,
                        });
                    }
                }
            }
        }
    }

    /// Hands over the log's tail as history; answers the newest entry's id.
    fn load_tail(&self, con: &mut redis::Connection) -> redis::RedisResult<String> {
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.keys.log)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(self.history.max(1))
            .query(con)?;
        let mut newest = "0-0".to_owned();
        for record in reply.ids.iter().rev() {
            newest = record.id.clone();
            if let Some((id, entry)) = from_record(record) {
                self.send(Incoming::Update {
                    id,
                    entry,
                    live: false,
                });
            }
        }
        if let Ok(mut done) = self.loaded.done.lock() {
            *done = true;
            self.loaded.signal.notify_all();
        }
        Ok(newest)
    }
}

/// The idempotency key of a publish: the `Idempotency-Key` header, else the
/// publisher's own id, scoped to the `publisher` (its identity: another
/// publisher's equal key is another update) and hashed whole, so keys of
/// any length compare exactly and the Redis key stays short.
pub fn idempotency_key(publisher: &str, header: Option<&str>, id: Option<&str>) -> Option<String> {
    use sha2::{Digest, Sha256};
    let key = header.filter(|k| !k.is_empty()).or(id)?;
    let mut hash = Sha256::new();
    // Lengths first: no two (publisher, key) pairs hash the same bytes.
    hash.update((publisher.len() as u64).to_be_bytes());
    hash.update(publisher.as_bytes());
    hash.update(key.as_bytes());
    let digest = hash.finalize();
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}
