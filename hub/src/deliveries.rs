//! Updates on their way to the streams, in order.
//!
//! Working out who receives an update costs what the live templates cost
//! to try on its topics, and a client can make that large (thousands of
//! templates that pass every shortcut, a publish of long topics). So that
//! cost is paid a slice at a time: at most `BUDGET` per loop pass, then
//! the loop serves everyone else and the hub wakes itself to go on. An
//! update whose matching outlasts its pass waits here, and every update
//! after it waits behind it, so each stream still receives them in order.
//!
//! An update is delivered, kept for replay and its publisher answered in
//! one step, when its matching finishes: a subscriber that arrives
//! meanwhile gets it live or replayed, never both, never neither.

use std::collections::VecDeque;

use sseloop::{Deferred, Response};

use crate::topics::Matching;
use crate::update::Update;

/// What one loop pass may spend matching updates: about the bytes of topic
/// that templates' matchers read, a millisecond or two of work (measured
/// in `hub/tests/bounded.rs`, the worst publish).
pub(crate) const BUDGET: usize = 1 << 20;

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

/// The updates waiting, oldest first.
#[derive(Default)]
pub(crate) struct Deliveries {
    queue: VecDeque<Delivery>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Deliveries({} waiting)", self.queue.len())
    }
}

impl Deliveries {
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
        self.queue.push_back(Delivery {
            update,
            kind,
            matching,
            answer: None,
        });
    }

    /// Has the newest waiting update answer its publisher `response` once
    /// it is delivered.
    pub fn answer_last(&mut self, publisher: Deferred, response: Response) {
        if let Some(last) = self.queue.back_mut() {
            last.answer = Some((publisher, response));
        }
    }

    /// The oldest waiting update.
    pub fn front_mut(&mut self) -> Option<&mut Delivery> {
        self.queue.front_mut()
    }

    /// Takes the oldest waiting update (its matching done).
    pub fn pop(&mut self) -> Option<Delivery> {
        self.queue.pop_front()
    }
}
