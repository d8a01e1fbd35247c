//! Updates on their way to the streams, and replays on their way to new
//! subscribers, in order.
//!
//! Working out who receives an update costs what the live templates cost
//! to try on its topics; working out what a reconnecting subscriber missed
//! costs what its selectors cost to try on every update kept. Clients can
//! make both large (thousands of templates that pass every shortcut, long
//! topics, a replay from the earliest). So that cost is paid a slice at a
//! time: at most `BUDGET` per loop pass, then the loop serves everyone
//! else and the hub wakes itself to go on. Work that outlasts its pass
//! waits here, and everything after it waits behind it, so each stream
//! still receives updates in order.
//!
//! An update is delivered, kept for replay and its publisher answered in
//! one step, when its matching finishes; a replaying subscriber joins the
//! live updates in one step, when its replay finishes. A subscriber that
//! arrives meanwhile gets an update live or replayed, never both, never
//! neither.

use std::collections::VecDeque;

use sseloop::{Deferred, Response};

use crate::topics::{Interning, Matching, Spec};
use crate::update::Update;

/// What one loop pass may spend matching updates: about the bytes of topic
/// that templates' matchers read, a millisecond or two of work (measured
/// in `hub/tests/bounded.rs`, the worst publish).
pub(crate) const BUDGET: usize = 1 << 20;

/// What one loop pass may spend compiling a subscriber's selectors: about
/// the bytes of DFA built, a millisecond of work (`benches/subscribe_compile.py`
/// builds some 25 KiB a millisecond).
pub(crate) const COMPILE_BUDGET: usize = 24 * 1024;

/// Whether a delivered update is kept for replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Published: kept in the history.
    Published,
    /// A hub's own announcement (a subscription event): delivered live
    /// only.
    Announced,
}

/// An update waiting for its matching to finish.
pub(crate) struct Delivery {
    pub update: Update,
    pub kind: Kind,
    /// Its matching, once begun.
    pub matching: Option<Matching>,
    /// Its publisher, waiting, and the answer to give once it is delivered.
    pub answer: Option<(Deferred, Response)>,
}

/// A new subscriber's replay under way: its stream is open and in its
/// group, but takes live updates only once it has what it missed.
pub(crate) struct Replaying {
    pub seid: String,
    /// Its group (the stream's, while it stays open).
    pub group: usize,
    /// The sequence number of the next kept update to try.
    pub next: u64,
    /// The id it said it saw last (for a `reset`, should what it missed
    /// be dropped from the history meanwhile).
    pub last_id: String,
}

/// A subscribe whose selectors take more than a pass to compile: its
/// request is deferred, and answered by `then` (what opens the stream)
/// once they are all interned.
pub(crate) struct Subscribing<Then, Request = Deferred> {
    /// Its selectors, and those its token allows private updates on.
    pub selectors: Vec<Spec>,
    pub allowed: Option<Vec<Spec>>,
    /// What is interned of each so far.
    pub interned: Interning,
    pub interned_allowed: Interning,
    /// Its request, waiting (or, while it is first tried, nothing).
    pub request: Request,
    pub then: Then,
}

/// One piece of work waiting; `Then` is what finishes a subscribe.
pub(crate) enum Work<Then> {
    Deliver(Delivery),
    Replay(Replaying),
    Subscribe(Subscribing<Then>),
}

/// The work waiting, oldest first.
pub(crate) struct Deliveries<Then> {
    queue: VecDeque<Work<Then>>,
}

impl<Then> Default for Deliveries<Then> {
    fn default() -> Self {
        Deliveries {
            queue: VecDeque::new(),
        }
    }
}

impl<Then> std::fmt::Debug for Deliveries<Then> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Deliveries({} waiting)", self.queue.len())
    }
}

impl<Then> Deliveries<Then> {
    /// Whether none waits: a new update may then be delivered at once.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Puts `update` behind the others, its matching begun or not.
    pub fn push(&mut self, update: Update, kind: Kind, matching: Option<Matching>) {
        self.queue.push_back(Work::Deliver(Delivery {
            update,
            kind,
            matching,
            answer: None,
        }));
    }

    /// Puts a replay behind the others.
    pub fn push_replay(&mut self, replay: Replaying) {
        self.queue.push_back(Work::Replay(replay));
    }

    /// Puts a subscribe behind the others.
    pub fn push_subscribe(&mut self, subscribing: Subscribing<Then>) {
        self.queue.push_back(Work::Subscribe(subscribing));
    }

    /// Has the newest waiting update answer its publisher `response` once
    /// it is delivered.
    pub fn answer_last(&mut self, publisher: Deferred, response: Response) {
        if let Some(Work::Deliver(last)) = self.queue.back_mut() {
            last.answer = Some((publisher, response));
        }
    }

    /// Takes the oldest piece of work.
    pub fn pop(&mut self) -> Option<Work<Then>> {
        self.queue.pop_front()
    }

    /// Puts back, first in line, work taken and not finished.
    pub fn put_back(&mut self, work: Work<Then>) {
        self.queue.push_front(work);
    }
}
