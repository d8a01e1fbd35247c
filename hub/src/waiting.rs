//! Publishes waiting on Redis, each answered by its deadline whatever the
//! writer is doing.
//!
//! The writer talks to Redis one call at a time; while one call waits on a
//! frozen Redis, the publishes queued behind it cannot be answered by it.
//! So every publish is registered here with the time it must be answered
//! by, and a thread of its own answers `503` to each one still waiting
//! then. The writer takes a publish's answer back when Redis has replied;
//! if the deadline thread took it first, the writer has nobody to answer.
//!
//! The Redis script refuses a write once Redis's clock passes the publish's
//! own deadline, which comes [`GRACE`] before the answer's: a `503` sent at
//! the answer's deadline is for a write that either failed or could only
//! have been stored if its reply took longer than the grace to come back.
//! That last case is counted (`late_stores`) and logged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use sseloop::{Deferred, Response};

/// How long after the script's deadline a publish is answered `503`: time
/// for the reply of a write Redis ran just in time to come back.
pub const GRACE: Duration = Duration::from_millis(400);

/// One publish's answer, kept until it is given.
pub(crate) struct Answer {
    deferred: Deferred,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    /// `response`, with the headers (CORS) the publish's answer carries.
    pub(crate) fn give(self, mut response: Response) {
        for (name, value) in self.headers {
            response = response.header(name, value);
        }
        let _ = self.deferred.answer_nowait(move |_req, reply| {
            let _ = reply.respond(response);
        });
    }
}

#[derive(Default)]
struct State {
    next: u64,
    /// By ticket: tickets are handed out in arrival order and every
    /// deadline is arrival plus the same delay, so the first is the earliest.
    waiting: BTreeMap<u64, (Instant, Answer)>,
    stopped: bool,
}

/// The publishes waiting on Redis.
#[derive(Default)]
pub(crate) struct Waiting {
    state: Mutex<State>,
    changed: Condvar,
    /// Writes Redis stored after their publisher had been answered `503`.
    pub late_stores: AtomicU64,
}

impl Waiting {
    /// Registers `deferred`, to be answered by `by`; answers its ticket.
    pub(crate) fn add(
        &self,
        by: Instant,
        deferred: Deferred,
        headers: Vec<(&'static str, String)>,
    ) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = state.next;
        state.next += 1;
        state
            .waiting
            .insert(ticket, (by, Answer { deferred, headers }));
        self.changed.notify_one();
        ticket
    }

    /// Takes back the answer of `ticket`, unless its deadline has given it.
    pub(crate) fn take(&self, ticket: u64) -> Option<Answer> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.waiting.remove(&ticket).map(|(_, answer)| answer)
    }

    /// Answers every publish still waiting at its deadline with
    /// `on_deadline`, until [`stop`](Self::stop).
    pub(crate) fn run(&self, on_deadline: impl Fn() -> Response) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.stopped {
                return;
            }
            let now = Instant::now();
            let due: Vec<u64> = state
                .waiting
                .iter()
                .take_while(|(_, (by, _))| *by <= now)
                .map(|(ticket, _)| *ticket)
                .collect();
            for ticket in due {
                if let Some((_, answer)) = state.waiting.remove(&ticket) {
                    answer.give(on_deadline());
                }
            }
            let wait = state
                .waiting
                .values()
                .next()
                .map_or(Duration::from_secs(3600), |(by, _)| {
                    by.saturating_duration_since(now)
                });
            state = self
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Ends [`run`](Self::run).
    pub(crate) fn stop(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stopped = true;
        self.changed.notify_all();
    }

    /// Counts a write stored after its publisher was answered `503`.
    pub(crate) fn stored_late(&self) {
        self.late_stores.fetch_add(1, Ordering::Relaxed);
    }
}
