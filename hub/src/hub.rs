//! The hub's state and what every route shares: one topic space (the
//! [`Groups`]), one history, one way to open a subscriber's stream, to
//! deliver an update and to publish one (from memory, or through Redis's
//! log), and the answers routes give alike. Which request goes where is
//! [`crate::routes`]; the Mercure routes are [`crate::mercure`]. All stream
//! work goes through the library; this is policy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use sseloop::auth::bearer_matches;
use sseloop::{Deferred, Event, Frame, Reply, Request, Response, StreamError, Streams};

use crate::auth::{Keys, Refusal, Trust};
use crate::broker::Broker;
use crate::config::Config;
use crate::cors::Cors;
use crate::deliveries::{
    Deliveries, Delivery, Kind, Replaying, Subscribing, Work, BUDGET, COMPILE_BUDGET,
};
use crate::history::History;
use crate::inbox::{Incoming, Remote};
use crate::metrics::HubCounters;
use crate::subscribers::{Audience, Groups};
use crate::subscription::Subscription;
use crate::topics::{Interning, SelectorError, SelectorStore, Spec};
use crate::update::{event_of, Entry, Update};

/// What the hub knows of one live stream.
#[derive(Debug)]
pub(crate) struct Stream {
    /// The group it receives updates through.
    pub group: usize,
    /// Its Mercure subscription, for the subscriptions API.
    pub subscription: Option<Box<Subscription>>,
    /// Its client's address, as `--max-streams-per-ip` counts it.
    pub client: IpAddr,
}

/// The address `--max-streams-per-ip` counts a peer under: itself, or for
/// IPv6 its /64 (a host is routinely given a whole /64, so counting each
/// address would let one host open streams without end).
pub(crate) fn client_of(peer: std::net::SocketAddr) -> IpAddr {
    match peer.ip() {
        // An IPv4 client of a dual-stack listener is its IPv4 address.
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            IpAddr::V4(v6.to_ipv4_mapped().expect("checked"))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// What opens a subscriber's stream once its selectors are interned (see
/// [`Hub::subscribe_with`]).
pub(crate) type Then = Box<dyn FnOnce(&mut Hub, &Request, &mut Reply<'_>, Audience)>;

/// The hub's state between requests.
pub struct Hub {
    pub(crate) config: Config,
    pub(crate) keys: Keys,
    pub(crate) cors: Cors,
    pub(crate) history: History,
    pub(crate) groups: Groups,
    /// Each live stream, by seid.
    pub(crate) streams: HashMap<String, Stream>,
    /// The next id the hub assigns. It starts at the start time in
    /// microseconds, so ids also increase across restarts and an id from an
    /// earlier run is never mistaken for one of this run.
    next_id: u64,
    retry_frame: Option<Frame>,
    /// The comment a Mercure stream starts with, encoded once.
    pub(crate) open_comment: Frame,
    pub(crate) counters: HubCounters,
    /// The shared log, with `--redis`.
    pub(crate) broker: Option<Broker>,
    /// Work that did not finish in its loop pass (a matching, a replay, a
    /// subscribe's compiling), and what came behind it.
    pub(crate) deliveries: Deliveries<Then>,
    /// How many refusals the log may still take this second.
    refusal_log: RateLimit,
    /// Live streams by client address (`--max-streams-per-ip`).
    pub(crate) streams_by_client: HashMap<IpAddr, usize>,
    /// Requests whose token waits for its issuer's keys (a JWK Set being
    /// fetched), with how many fetches had ended when they came.
    pub(crate) waiting_for_keys: Vec<(Deferred, u64)>,
}

/// The most requests that may wait for JWK Sets at once; more are `503`.
pub const MAX_WAITING_FOR_KEYS: usize = 4096;

/// Lets through a few events a second and counts the rest.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_second: u32,
    window: Option<std::time::Instant>,
    admitted: u32,
    dropped: u64,
}

impl RateLimit {
    /// At most `per_second` events a second.
    pub(crate) fn new(per_second: u32) -> Self {
        RateLimit {
            per_second,
            window: None,
            admitted: 0,
            dropped: 0,
        }
    }

    /// `Some(n)` when an event at `now` may go through, with how many were
    /// held back since the last that went; `None` when it is held back.
    pub(crate) fn admit(&mut self, now: std::time::Instant) -> Option<u64> {
        let fresh = self
            .window
            .is_none_or(|start| now.duration_since(start) >= std::time::Duration::from_secs(1));
        if fresh {
            self.window = Some(now);
            self.admitted = 0;
        }
        if self.admitted >= self.per_second {
            self.dropped += 1;
            return None;
        }
        self.admitted += 1;
        Some(std::mem::take(&mut self.dropped))
    }
}

impl Hub {
    /// The hub for `config`; the ids it assigns start at `first_id`. With a
    /// `broker`, updates go through its shared log.
    ///
    /// # Errors
    /// A one-line reason when a JWT key cannot be used.
    pub fn new(config: Config, first_id: u64, broker: Option<Broker>) -> Result<Self, String> {
        let retry_frame = config.retry_ms.map(|ms| {
            Event::default()
                .retry(ms)
                .encode()
                .expect("retry-only frames are valid")
        });
        let base = config.resource_identifier.clone().unwrap_or_else(|| {
            url::Url::parse(crate::topics::DEFAULT_BASE).expect("the default base is a URL")
        });
        let keyed = config.jwt_key.is_some()
            || config.publisher_jwt_key.is_some()
            || config.subscriber_jwt_key.is_some();
        if keyed && config.jwks_url.is_some() {
            return Err("--jwks-url and a JWT key both give the --issuer's keys: keep one (another issuer: --trusted-issuer ISS=URL)".into());
        }
        if keyed && config.issuer.is_none() && !config.compat_0x() {
            return Err("a JWT key verifies Mercure 1.0 access tokens of one trusted issuer: add --issuer ISS (the iss its tokens carry), or --mercure-compat 0.x for 0.x tokens".into());
        }
        let trust = Trust {
            issuer: config.issuer.clone(),
            resource: config.resource_identifier.as_ref().map(|u| u.to_string()),
            compat: config.compat_0x(),
            cookie: config.cookie_name.clone(),
            base: base.clone(),
        };
        let mut sets = config.trusted_issuers.clone();
        if let (Some(iss), Some(url)) = (&config.issuer, &config.jwks_url) {
            sets.insert(0, (iss.clone(), url.clone()));
        }
        Ok(Hub {
            keys: Keys::with_sets(
                config.jwt_alg,
                config
                    .publisher_jwt_key
                    .as_deref()
                    .or(config.jwt_key.as_deref()),
                config
                    .subscriber_jwt_key
                    .as_deref()
                    .or(config.jwt_key.as_deref()),
                config.token_limits(),
                trust,
                sets,
            )?,
            waiting_for_keys: Vec::new(),
            streams_by_client: HashMap::new(),
            cors: Cors::new(config.cors_origin.clone()),
            history: History::new(config.history),
            groups: Groups::new(SelectorStore::with_base(config.selector_limits(), base)),
            streams: HashMap::new(),
            config,
            next_id: first_id,
            retry_frame,
            open_comment: Frame::comment(""),
            counters: HubCounters::default(),
            broker,
            deliveries: Deliveries::default(),
            refusal_log: RateLimit::new(10),
        })
    }

    /// Defers `req` until a JWK Set fetch ends (then it is routed again),
    /// or refuses it when too many wait already.
    pub(crate) fn wait_for_keys(&mut self, reply: &mut Reply<'_>) {
        if self.waiting_for_keys.len() >= MAX_WAITING_FOR_KEYS {
            let busy = Response::text(503, "too many requests wait for the issuers' keys; retry\n")
                .header("Retry-After", "1");
            let _ = reply.respond(busy);
            return;
        }
        if self.keys.sets.waker.set(reply.handle()).is_ok() {
            // A fetch that ended before the fetcher could wake the loop is
            // taken in on this wake.
            let _ = reply.handle().wake();
        }
        if let Ok(later) = reply.defer() {
            self.waiting_for_keys.push((later, self.keys.sets.ended));
        }
    }

    /// Routes again each request that waited for a fetch that has ended.
    pub(crate) fn keys_fetched(&mut self, streams: &mut Streams<'_>) {
        self.keys.sets.take_fetched();
        let ended = self.keys.sets.ended;
        if self.waiting_for_keys.iter().all(|(_, seen)| *seen == ended) {
            return;
        }
        let (ready, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting_for_keys)
            .into_iter()
            .partition(|(_, seen)| *seen != ended);
        self.waiting_for_keys = still;
        for (later, _) in ready {
            let _ = later.answer_here(streams, |req, reply| {
                sseloop::Handler::on_request(self, req, reply);
            });
        }
    }

    /// Refuses a new stream from `peer` when its address holds
    /// `--max-streams-per-ip` already (checked as the subscribe arrives,
    /// before any work for it).
    pub(crate) fn admit_stream(&self, peer: std::net::SocketAddr) -> Result<(), Response> {
        let Some(max) = self.config.max_streams_per_ip else {
            return Ok(());
        };
        let held = self
            .streams_by_client
            .get(&client_of(peer))
            .copied()
            .unwrap_or(0);
        if held < max {
            return Ok(());
        }
        Err(Response::text(
            429,
            format!("your address holds {held} streams, the most the hub allows one (--max-streams-per-ip {max})\n"),
        )
        .header("Retry-After", "5"))
    }

    /// A stream of `client` ended.
    pub(crate) fn stream_ended(&mut self, client: IpAddr) {
        if let Some(held) = self.streams_by_client.get_mut(&client) {
            *held -= 1;
            if *held == 0 {
                self.streams_by_client.remove(&client);
            }
        }
    }

    /// The shared log, with `--redis`.
    pub(crate) fn broker(&self) -> Option<&Broker> {
        self.broker.as_ref()
    }

    /// Counts a refusal and logs it (a few a second at most: a flood of
    /// bad tokens costs the loop a counter, not a write per request);
    /// answers its response.
    pub(crate) fn refuse(&mut self, req: &Request, refusal: &Refusal) -> Response {
        self.counters.refused(refusal.reason());
        if let Some(unlogged) = self.refusal_log.admit(std::time::Instant::now()) {
            let more = match unlogged {
                0 => String::new(),
                n => format!(" ({n} more refusals were not logged)"),
            };
            log::info!(
                "refused {} {} from {}: {refusal}{more}",
                req.method(),
                req.path(),
                req.peer()
            );
            if *refusal == Refusal::NoToken && !self.config.anonymous {
                log::info!("subscribers without a token are refused; --anonymous lets them receive public updates");
            }
        }
        refusal.response(&crate::metadata::url_for(
            req,
            self.keys.trust.resource.as_deref(),
        ))
    }

    /// Opens a subscriber's stream: its head, then `first` (if any) and
    /// `retry` (if configured). Answers its seid, or `None` when the request
    /// was answered otherwise (a `HEAD`, too many clients).
    pub(crate) fn open(&mut self, reply: &mut Reply<'_>, first: Option<&Frame>) -> Option<String> {
        let seid = match reply.stream() {
            Ok(seid) => seid.to_owned(),
            // Answered with the stream's head; there is nothing to send on.
            Err(StreamError::HeadRequest) => return None,
            Err(StreamError::TooManyClients) => {
                let busy = Response::text(503, "too many clients\n").header("Retry-After", "5");
                let _ = reply.respond(busy);
                return None;
            }
            Err(e) => {
                let _ = reply.respond(Response::text(500, format!("{e}\n")));
                return None;
            }
        };
        for frame in first.into_iter().chain(&self.retry_frame) {
            let _ = reply.send_frame(frame);
        }
        Some(seid)
    }

    /// Makes the open stream `seid` a subscriber selecting `audience`: what
    /// it missed since `last_id` first, then everything published from now
    /// on. A replay that outlasts this pass's budget goes on in later
    /// passes (see [`Deliveries`]); the stream takes live updates once it
    /// is done, so nothing comes twice or out of order.
    pub(crate) fn attach(
        &mut self,
        reply: &mut Reply<'_>,
        peer: std::net::SocketAddr,
        seid: &str,
        audience: Audience,
        last_id: Option<&str>,
    ) -> &mut Stream {
        log::debug!(
            seid,
            peer:% = peer,
            matchers:serde = audience.describe(&self.groups.store),
            last_event_id:serde = last_id;
            "subscriber arrived"
        );
        if let Some(broker) = &self.broker {
            let topics = audience.describe(&self.groups.store);
            let topics = topics.into_iter().map(str::to_owned).collect();
            broker.presence.joined(seid, topics);
        }
        let group = self.groups.join(audience);
        let client = client_of(peer);
        *self.streams_by_client.entry(client).or_default() += 1;
        self.streams.insert(
            seid.to_owned(),
            Stream {
                group,
                subscription: None,
                client,
            },
        );
        let start = match last_id.map(|id| (id, self.history.start_after(id))) {
            None => None,
            Some((_, Some(start))) => Some(start),
            Some((last_id, None)) => {
                // Say so rather than let the client silently miss events.
                self.counters.resets += 1;
                let _ = reply.send(Event::new(last_id).event("reset"));
                None
            }
        };
        match start {
            None => self.join_live(reply, seid, group),
            Some(next) => {
                let replay = Replaying {
                    seid: seid.to_owned(),
                    group,
                    next,
                    last_id: last_id.unwrap_or_default().to_owned(),
                };
                if self.deliveries.is_empty() {
                    if let Some(unfinished) = self.replay(reply, replay, &mut BUDGET.clone()) {
                        self.deliveries.push_replay(unfinished);
                        let _ = reply.handle().wake();
                    }
                } else {
                    self.deliveries.push_replay(replay);
                }
            }
        }
        self.streams
            .get_mut(seid)
            .expect("the stream was inserted above")
    }

    /// Has stream `seid` take the live updates of `group`.
    fn join_live(&self, streams: &mut Streams<'_>, seid: &str, group: usize) {
        if let Some(g) = self.groups.get(group) {
            let _ = streams.subscribe_seid(seid, &g.topic);
        }
    }

    /// Sends `replay`'s subscriber what it missed, until `budget` is spent
    /// (about the bytes of topic its selectors read); once all is sent, has
    /// it take live updates. Answers the replay when it is not finished.
    fn replay(
        &mut self,
        streams: &mut Streams<'_>,
        mut replay: Replaying,
        budget: &mut usize,
    ) -> Option<Replaying> {
        // Its stream may have closed meanwhile: no one is left to send to.
        let group = self
            .streams
            .get(&replay.seid)
            .filter(|s| s.group == replay.group)
            .and_then(|s| self.groups.get(s.group))?;
        // Each selector it holds (those it subscribes with, those that
        // allow it private updates) may be tried on each topic.
        let selectors = group.audience.held().count();
        while replay.next < self.history.end() {
            if *budget == 0 {
                return Some(replay);
            }
            let Some(update) = self.history.at(replay.next) else {
                // Dropped from the history before its turn came.
                self.counters.resets += 1;
                let reset = Event::new(replay.last_id.as_str()).event("reset");
                let _ = streams.send_to(&replay.seid, reset);
                break;
            };
            replay.next += 1;
            let topic_bytes: usize = update.topics.iter().map(String::len).sum();
            *budget = budget.saturating_sub(32 + selectors * topic_bytes);
            if self.groups.audience_receives(&group.audience, update) {
                self.counters.replayed += 1;
                let _ = streams.send_frame_to(&replay.seid, &update.frame);
            }
        }
        self.join_live(streams, &replay.seid, replay.group);
        None
    }

    /// Delivers `update` to every group that receives it (each selector
    /// worked out once, each subscriber once) and, when published, keeps it
    /// for replay. Answers how many streams it was queued on, or `None`
    /// when it waits in [`Deliveries`] (behind others, or because its
    /// matching outlasted this pass's budget) and is delivered later.
    pub(crate) fn deliver(
        &mut self,
        streams: &mut Streams<'_>,
        update: Update,
        kind: Kind,
    ) -> Option<usize> {
        if !self.deliveries.is_empty() {
            self.deliveries.push(update, kind, None);
            return None;
        }
        let mut matching = self.groups.begin(&update);
        if self
            .groups
            .advance(&mut matching, &update, &mut BUDGET.clone())
        {
            return Some(self.commit(
                streams,
                Delivery {
                    update,
                    kind,
                    matching: Some(matching),
                    answer: None,
                },
            ));
        }
        self.deliveries.push(update, kind, Some(matching));
        let _ = streams.handle().wake();
        None
    }

    /// Goes on with the waiting deliveries, within one pass's budget
    /// (unbounded: all of them now); wakes the loop again if some are left.
    pub(crate) fn go_on(&mut self, streams: &mut Streams<'_>, bounded: bool) {
        let mut budget = if bounded { BUDGET } else { usize::MAX };
        while let Some(work) = self.deliveries.pop() {
            let unfinished = match work {
                Work::Deliver(mut waiting) => {
                    let matching = waiting
                        .matching
                        .get_or_insert_with(|| self.groups.begin(&waiting.update));
                    if self.groups.advance(matching, &waiting.update, &mut budget) {
                        self.commit(streams, waiting);
                        None
                    } else {
                        Some(Work::Deliver(waiting))
                    }
                }
                Work::Replay(replay) => self.replay(streams, replay, &mut budget).map(Work::Replay),
                Work::Subscribe(mut subscribing) => {
                    let mut compile = if bounded { COMPILE_BUDGET } else { usize::MAX };
                    match self.intern_subscribing(&mut subscribing, &mut compile) {
                        Ok(false) => Some(Work::Subscribe(subscribing)),
                        done => {
                            self.subscribed(streams, subscribing, done.map(|_| ()));
                            None
                        }
                    }
                }
            };
            if let Some(work) = unfinished {
                self.deliveries.put_back(work);
                let _ = streams.handle().wake();
                return;
            }
        }
    }

    /// Interns `selectors` (and the token's `allowed` ones) for a Mercure
    /// subscriber, then has `then` open its stream: at once when compiling
    /// them fits in this pass, else over the next passes, the request
    /// deferred meanwhile (compiling is the loop's time: a subscribe with
    /// many costly templates would hold it).
    pub(crate) fn subscribe_with(
        &mut self,
        req: &Request,
        reply: &mut Reply<'_>,
        selectors: Vec<Spec>,
        allowed: Option<Vec<Spec>>,
        then: Then,
    ) {
        let mut subscribing = Subscribing {
            selectors,
            allowed,
            interned: Interning::default(),
            interned_allowed: Interning::default(),
            request: (),
            then,
        };
        match self.intern_subscribing(&mut subscribing, &mut COMPILE_BUDGET.clone()) {
            Err(e) => {
                let _ = reply.respond(selector_refused(&e));
            }
            Ok(true) => {
                let audience = self.audience_of(&mut subscribing);
                (subscribing.then)(self, req, reply, audience);
            }
            Ok(false) => {
                let Ok(request) = reply.defer() else {
                    return;
                };
                let Subscribing {
                    selectors,
                    allowed,
                    interned,
                    interned_allowed,
                    then,
                    ..
                } = subscribing;
                self.deliveries.push_subscribe(Subscribing {
                    selectors,
                    allowed,
                    interned,
                    interned_allowed,
                    request,
                    then,
                });
                let _ = reply.handle().wake();
            }
        }
    }

    /// Goes on interning a subscriber's selectors within `budget`; answers
    /// whether all are interned. On an error nothing is kept.
    fn intern_subscribing<R>(
        &mut self,
        subscribing: &mut Subscribing<Then, R>,
        budget: &mut usize,
    ) -> Result<bool, SelectorError> {
        let store = &mut self.groups.store;
        let s = subscribing;
        if !store.intern_some(&s.selectors, &mut s.interned, budget)? {
            return Ok(false);
        }
        let Some(allowed) = &s.allowed else {
            return Ok(true);
        };
        store
            .intern_some(allowed, &mut s.interned_allowed, budget)
            .inspect_err(|_| store.abandon(std::mem::take(&mut s.interned)))
    }

    /// The audience a subscriber's interned selectors make.
    fn audience_of<R>(&mut self, subscribing: &mut Subscribing<Then, R>) -> Audience {
        let store = &mut self.groups.store;
        let selectors = store.interned(std::mem::take(&mut subscribing.interned));
        let allowed = subscribing
            .allowed
            .as_ref()
            .map(|_| store.interned(std::mem::take(&mut subscribing.interned_allowed)));
        Audience::Mercure { selectors, allowed }
    }

    /// Answers a deferred subscribe whose selectors are interned (`Ok`:
    /// its stream opens) or refused.
    fn subscribed(
        &mut self,
        streams: &mut Streams<'_>,
        mut subscribing: Subscribing<Then>,
        interned: Result<(), SelectorError>,
    ) {
        let audience = match interned {
            Ok(()) => self.audience_of(&mut subscribing),
            Err(e) => {
                let refused = selector_refused(&e);
                let _ = subscribing.request.answer_here(streams, |_req, reply| {
                    let _ = reply.respond(refused);
                });
                return;
            }
        };
        let then = subscribing.then;
        let mut audience = Some(audience);
        let _ = subscribing.request.answer_here(streams, |req, reply| {
            if let Some(audience) = audience.take() {
                then(self, req, reply, audience);
            }
        });
        // Its client left meanwhile: give back what it held.
        if let Some(audience) = audience {
            self.groups.discard(audience);
        }
    }

    /// Delivers an update whose matching is done (finishing it against the
    /// selectors live now), keeps it if published and answers its
    /// publisher; answers how many streams it was queued on.
    fn commit(&mut self, streams: &mut Streams<'_>, delivery: Delivery) -> usize {
        let Delivery {
            update,
            kind,
            matching,
            answer,
        } = delivery;
        let matching = matching.unwrap_or_else(|| self.groups.begin(&update));
        let mut reached = 0;
        for group in self.groups.finish(matching, &update) {
            reached += streams.publish_frame(&group.topic, &update.frame);
        }
        if update.private {
            self.counters.private_deliveries += reached as u64;
        }
        if kind == Kind::Published {
            self.counters.published += 1;
            log::debug!(
                id = update.id.as_str(),
                topics:serde = update.topics,
                private = update.private,
                streams = reached;
                "published"
            );
            self.history.push(Rc::new(update));
        }
        if let Some((publisher, response)) = answer {
            let _ = publisher.answer_nowait(move |_req, reply| {
                let _ = reply.respond(response);
            });
        }
        reached
    }

    /// A fresh native id, for an update published without one.
    fn next_native_id(&mut self) -> String {
        let id = self.next_id.to_string();
        self.next_id += 1;
        id
    }

    /// Publishes `entry` (native or Mercure, already authorized): through
    /// the shared log with `--redis` (answered later, once stored; delivered
    /// by every hub's reader), else at once from memory. The id is the publisher's (Mercure always has one),
    /// else the log entry's with Redis, else a fresh native id.
    pub(crate) fn publish_entry(
        &mut self,
        reply: &mut Reply<'_>,
        entry: Entry,
        idempotency: Option<String>,
        cors: Vec<(&'static str, String)>,
    ) -> Routed {
        let unencodable = |e: sseloop::FrameError| Response::text(400, format!("{e}\n"));
        if let Some(broker) = &self.broker {
            // Refused now, before it is stored: what cannot be encoded.
            event_of(entry.id.as_deref().or(Some("0")), &entry)
                .validate()
                .map_err(unencodable)?;
            let Ok(later) = reply.defer() else {
                return Err(Response::text(500, "the request was already answered\n"));
            };
            broker.publish(entry, idempotency, later, cors);
            return Ok(Answer::Later);
        }
        let id = match &entry.id {
            Some(id) => id.clone(),
            None => self.next_native_id(),
        };
        // Encoding it is the check (a native id refused this way is skipped).
        let update = Update::new(id.clone(), entry).map_err(unencodable)?;
        if self.deliver(reply, update, Kind::Published).is_some() {
            return Ok(Answer::Now(Response::text(200, id)));
        }
        // It waits behind a long matching: answered once delivered, so a
        // `200` still means it can be replayed.
        let Ok(later) = reply.defer() else {
            return Err(Response::text(500, "the request was already answered\n"));
        };
        let answer = cors
            .into_iter()
            .fold(Response::text(200, id), |answer, (name, value)| {
                answer.header(name, value)
            });
        self.deliveries.answer_last(later, answer);
        Ok(Answer::Later)
    }

    /// Acts on what the shared log brought: each update delivered (or, for
    /// the history loaded at start, kept), in log order; a lost log resets
    /// every live stream once.
    pub(crate) fn take_from_log(&mut self, streams: &mut Streams<'_>) {
        let incoming = match &self.broker {
            Some(broker) => broker.drain(),
            None => return,
        };
        for item in incoming {
            match item {
                Incoming::Update { id, entry, live } => {
                    let Ok(update) = Update::new(id, entry) else {
                        continue;
                    };
                    if live {
                        self.deliver(streams, update, Kind::Published);
                    } else {
                        self.history.push(Rc::new(update));
                    }
                }
                Incoming::Announcement(entry) => {
                    let id = entry.id.clone();
                    if let Some(Ok(update)) = id.map(|id| Update::new(id, entry)) {
                        self.deliver(streams, update, Kind::Announced);
                    }
                }
                Incoming::Remote { seid, remote } => {
                    // Another hub's request for a client of ours; if it has
                    // left meanwhile, there is no one to tell.
                    let _ = match remote {
                        Remote::Send {
                            event,
                            id,
                            data,
                            retry,
                        } => {
                            let entry = Entry {
                                event,
                                data,
                                retry,
                                ..Entry::default()
                            };
                            streams.send_to(&seid, event_of(id.as_deref(), &entry))
                        }
                        Remote::End => streams.end_seid(&seid),
                    };
                }
                Incoming::Lost => {
                    // What came before the loss is delivered before it.
                    self.go_on(streams, false);
                    // Every live stream may have missed updates: say so,
                    // with the last id this hub knew, and forget them all.
                    let last = self
                        .history
                        .last_id()
                        .unwrap_or(crate::history::EARLIEST)
                        .to_owned();
                    self.counters.resets += streams.client_count() as u64;
                    let _ = streams.broadcast(Event::new(last).event("reset"));
                    self.history.clear();
                }
            }
        }
    }

    pub(crate) fn ready(&self) -> Response {
        match &self.broker {
            Some(broker) if !broker.is_ready() => {
                Response::text(503, "Redis is unreachable: publishing is refused\n")
                    .header("Retry-After", "1")
            }
            _ => Response::text(200, "ready\n"),
        }
    }

    /// The rule without a publisher key: the `--publish-token` bearer, or
    /// without one, loopback peers only. Answers who publishes.
    pub(crate) fn authorize_without_jwt(&self, req: &Request) -> Result<String, Response> {
        match &self.config.publish_token {
            Some(token) if bearer_matches(req.header_bytes("Authorization"), token.as_bytes()) => {
                Ok(STATIC_TOKEN.to_owned())
            }
            Some(_) => Err(Response::text(
                401,
                "the bearer token is not the hub's --publish-token\n",
            )
            .header("WWW-Authenticate", "Bearer")),
            None if is_loopback(req.peer().ip()) => Ok(LOOPBACK.to_owned()),
            None => Err(Response::text(
                403,
                "publishing is open to loopback peers only; set --publish-token or --jwt-key\n",
            )),
        }
    }

    pub(crate) fn metrics(&self, reply: &Reply<'_>) -> Response {
        let mut counters = self.counters;
        counters.history = self.history.len() as u64;
        counters.selectors = self.groups.store.len() as u64;
        counters.groups = self.groups.len() as u64;
        counters.deliveries_waiting = self.deliveries.len() as u64;
        counters.waiting_for_keys = self.waiting_for_keys.len() as u64;
        if let Some(broker) = &self.broker {
            use std::sync::atomic::Ordering::Relaxed;
            let c = &broker.counters;
            counters.redis = [
                c.rtt_us.load(Relaxed),
                c.reconnects.load(Relaxed),
                c.read.load(Relaxed),
                c.gaps.load(Relaxed),
                c.refused.load(Relaxed),
                broker.late_stores(),
            ];
        }
        crate::metrics::render(&reply.stats(), &counters)
    }
}

/// What a reconnecting subscriber says it saw last, on either interface:
/// the `Last-Event-ID` header (what `EventSource` sends), else a query
/// parameter for clients that cannot set headers (`lastEventID` as Mercure
/// names it, `lastEventId` as the native route does). Empty means none.
pub(crate) fn last_event_id(req: &Request) -> Option<&str> {
    req.header("Last-Event-ID")
        .or_else(|| req.query("lastEventID"))
        .or_else(|| req.query("lastEventId"))
        .filter(|id| !id.is_empty())
}

/// What a route did with a request: answered it now, or arranged for it to
/// be answered later, through a deferred answer (once Redis has stored the
/// update, once every hub has listed its part, once another hub has acted).
#[must_use]
pub(crate) enum Answer {
    /// Respond with this.
    Now(Response),
    /// Another thread answers it.
    Later,
}

impl Answer {
    /// Gives `reply` the response, when there is one now.
    pub(crate) fn give(self, reply: &mut Reply<'_>) {
        if let Answer::Now(response) = self {
            let _ = reply.respond(response);
        }
    }
}

/// A route's outcome: its [`Answer`], or a refusal answered now.
pub(crate) type Routed = Result<Answer, Response>;

/// The publisher identity of the `--publish-token` bearer.
pub(crate) const STATIC_TOKEN: &str = "static";
/// The publisher identity of a loopback peer when no token is configured.
const LOOPBACK: &str = "loopback";

/// `400`: more selectors than one subscribe may have.
pub(crate) fn too_many_selectors(count: usize, max: usize) -> Response {
    Response::text(
        400,
        format!("{count} topic selectors; the hub takes at most {max} per subscribe (--max-selectors)\n"),
    )
}

/// The answer to a selector the store refused: `400`, or `503` with
/// `Retry-After` when the hub is full.
pub(crate) fn selector_refused(e: &crate::topics::SelectorError) -> Response {
    let answer = Response::text(e.status(), format!("{e}\n"));
    match e.status() {
        503 => answer.header("Retry-After", "5"),
        _ => answer,
    }
}

/// `405` with the methods the route takes.
pub(crate) fn allow(methods: &str) -> Response {
    Response::text(405, "method not allowed\n").header("Allow", methods)
}

/// Whether `ip` is a loopback address (IPv4-mapped ones too).
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn streams_are_counted_by_address_and_ipv6_by_its_64() {
        let client = |addr: &str| super::client_of(addr.parse().unwrap()).to_string();
        assert_eq!(client("192.0.2.7:1"), "192.0.2.7");
        assert_eq!(
            client("[::ffff:192.0.2.7]:1"),
            "192.0.2.7",
            "IPv4 on a dual-stack listener"
        );
        assert_eq!(client("[2001:db8:1:2:3:4:5:6]:1"), "2001:db8:1:2::");
        assert_eq!(
            client("[2001:db8:1:2:ffff::1]:9"),
            "2001:db8:1:2::",
            "one host's /64"
        );
        assert_ne!(client("[2001:db8:1:3::1]:1"), client("[2001:db8:1:2::1]:1"));
    }

    use super::*;

    #[test]
    fn only_loopback_peers_publish_without_a_token() {
        // The 403 branch of `authorize`: tests may only connect from
        // 127.0.0.0/8, so the peer check itself is tested here.
        for ip in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "192.168.1.2", "::ffff:10.0.0.1", "2001:db8::1"] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_refusal_log_takes_a_few_a_second_and_counts_the_rest() {
        let start = std::time::Instant::now();
        let mut limit = RateLimit::new(3);
        let took: Vec<Option<u64>> = (0..6).map(|_| limit.admit(start)).collect();
        assert_eq!(took, [Some(0), Some(0), Some(0), None, None, None]);
        let later = start + std::time::Duration::from_secs(1);
        assert_eq!(
            limit.admit(later),
            Some(3),
            "the next says how many were held"
        );
        assert_eq!(limit.admit(later), Some(0));
    }
}
