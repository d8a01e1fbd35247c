//! `/metrics`: the loop's counters and the hub's, in Prometheus' text
//! exposition format.

use std::fmt::Write as _;

use sseloop::{Response, Stats};

/// The hub's own counters, beside the loop's [`Stats`].
#[derive(Clone, Copy, Debug, Default)]
pub struct HubCounters {
    /// Updates published through the hub (native or Mercure).
    pub published: u64,
    /// Events replayed to reconnecting clients.
    pub replayed: u64,
    /// Reconnects whose Last-Event-ID was no longer in the history.
    pub resets: u64,
    /// Events held for replay now.
    pub history: u64,
    /// Private updates queued to subscribers (one per subscriber).
    pub private_deliveries: u64,
    /// Requests refused by authorization, by reason, in the order of
    /// [`Reason::ALL`](crate::auth::Reason::ALL).
    pub refusals: [u64; crate::auth::Reason::ALL.len()],
    /// Live compiled topic selectors (gauge).
    pub selectors: u64,
    /// Live subscriber groups (gauge).
    pub groups: u64,
    /// Updates waiting for a long matching to finish (gauge).
    pub deliveries_waiting: u64,
    /// Requests waiting for an issuer's JWK Set to be fetched (gauge).
    pub waiting_for_keys: u64,
    /// Redis: the last write's round trip (µs), reconnects, updates read
    /// from the log, logs found lost, publishes refused (`503`).
    pub redis: [u64; 6],
}

impl HubCounters {
    /// Counts one refusal for `reason`.
    pub fn refused(&mut self, reason: crate::auth::Reason) {
        self.refusals[reason as usize] += 1;
    }
}

/// One metric: name, type, help, and its (labels, value) series.
type MetricRow<'a> = (
    &'static str,
    &'static str,
    &'static str,
    &'a [(&'static str, u64)],
);

/// The exposition of `s` and `hub`, as a `200` response.
pub fn render(s: &Stats, hub: &HubCounters) -> Response {
    // (name, type, help, [(labels, value)]), in exposition order.
    let rows: [MetricRow<'_>; 31] = [
        (
            "clients",
            "gauge",
            "Live event streams.",
            &[("", s.clients as u64)],
        ),
        (
            "connections",
            "gauge",
            "Open TCP connections.",
            &[("", s.connections as u64)],
        ),
        (
            "connections_accepted_total",
            "counter",
            "TCP connections accepted.",
            &[("", s.accepted)],
        ),
        (
            "accept_errors_total",
            "counter",
            "Accept failures (EMFILE and the like).",
            &[("", s.accept_errors)],
        ),
        (
            "tls_errors_total",
            "counter",
            "Connections closed for a failed TLS handshake or record.",
            &[("", s.tls_errors)],
        ),
        (
            "requests_total",
            "counter",
            "Requests handled.",
            &[("", s.requests)],
        ),
        (
            "bad_requests_total",
            "counter",
            "Requests refused by the parser.",
            &[("", s.bad_requests)],
        ),
        (
            "streams_opened_total",
            "counter",
            "Event streams opened.",
            &[("", s.streams_opened)],
        ),
        (
            "streams_closed_total",
            "counter",
            "Event streams ended or closed.",
            &[("", s.streams_closed)],
        ),
        (
            "events_published_total",
            "counter",
            "Updates published (native /publish and Mercure).",
            &[("", hub.published)],
        ),
        (
            "frames_queued_total",
            "counter",
            "Frames queued to clients (one per client).",
            &[("", s.frames_queued)],
        ),
        (
            "frames_written_total",
            "counter",
            "Event frames completely written to sockets.",
            &[("", s.frames_written)],
        ),
        (
            "bytes_written_total",
            "counter",
            "Bytes written to sockets.",
            &[("", s.bytes_written)],
        ),
        (
            "write_calls_total",
            "counter",
            "write/writev calls that wrote bytes.",
            &[("", s.write_calls)],
        ),
        (
            "heartbeats_total",
            "counter",
            "Heartbeat comments sent.",
            &[("", s.heartbeats)],
        ),
        (
            "evictions_total",
            "counter",
            "Streams closed by the server, by reason.",
            &[
                ("{reason=\"idle\"}", s.evicted_idle),
                ("{reason=\"queue_full\"}", s.evicted_queue_full),
                ("{reason=\"shutdown\"}", s.evicted_shutdown),
            ],
        ),
        (
            "head_timeouts_total",
            "counter",
            "Connections closed for not sending a request in time.",
            &[("", s.head_timeouts)],
        ),
        (
            "replayed_events_total",
            "counter",
            "Events replayed to reconnecting clients.",
            &[("", hub.replayed)],
        ),
        (
            "replay_resets_total",
            "counter",
            "Reconnects whose Last-Event-ID was no longer in the history.",
            &[("", hub.resets)],
        ),
        (
            "private_deliveries_total",
            "counter",
            "Private updates queued to authorized subscribers (one per subscriber).",
            &[("", hub.private_deliveries)],
        ),
        (
            "redis_round_trip_microseconds",
            "gauge",
            "The last publish's round trip to Redis.",
            &[("", hub.redis[0])],
        ),
        (
            "redis_reconnects_total",
            "counter",
            "Connections to Redis made again after a failure.",
            &[("", hub.redis[1])],
        ),
        (
            "redis_events_read_total",
            "counter",
            "Updates read from the shared log.",
            &[("", hub.redis[2])],
        ),
        (
            "redis_gaps_total",
            "counter",
            "Times the shared log was found lost (Redis restarted empty); live streams got reset.",
            &[("", hub.redis[3])],
        ),
        (
            "redis_publishes_refused_total",
            "counter",
            "Publishes answered 503 because Redis did not store them in time.",
            &[("", hub.redis[4])],
        ),
        (
            "redis_late_stores_total",
            "counter",
            "Updates Redis stored after their publisher was answered 503 (its reply came later than the grace).",
            &[("", hub.redis[5])],
        ),
        (
            "history_events",
            "gauge",
            "Events held for replay.",
            &[("", hub.history)],
        ),
        (
            "selectors",
            "gauge",
            "Distinct topic selectors held by live subscribers, each compiled once.",
            &[("", hub.selectors)],
        ),
        (
            "subscriber_groups",
            "gauge",
            "Sets of subscribers that select alike (one check per publish each).",
            &[("", hub.groups)],
        ),
        (
            "deliveries_waiting",
            "gauge",
            "Updates waiting for the loop's next passes: one whose matching outlasted its pass, and those behind it.",
            &[("", hub.deliveries_waiting)],
        ),
        (
            "waiting_for_keys",
            "gauge",
            "Requests waiting for a trusted issuer's JWK Set being fetched (the first fetch, or one for an unknown key id).",
            &[("", hub.waiting_for_keys)],
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, values) in rows {
        let _ = writeln!(
            out,
            "# HELP sseloop_{name} {help}\n# TYPE sseloop_{name} {kind}"
        );
        for (labels, value) in values {
            let _ = writeln!(out, "sseloop_{name}{labels} {value}");
        }
    }
    // One row per refusal reason, from the one list of them.
    let _ = writeln!(
        out,
        "# HELP sseloop_auth_refusals_total Requests refused for want of a valid token, by reason.\n# TYPE sseloop_auth_refusals_total counter"
    );
    for (reason, value) in crate::auth::Reason::ALL.iter().zip(hub.refusals) {
        let label = reason.label();
        let _ = writeln!(
            out,
            "sseloop_auth_refusals_total{{reason=\"{label}\"}} {value}"
        );
    }
    Response::new(200)
        .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}
