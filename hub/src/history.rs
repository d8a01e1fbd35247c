//! The last N published updates, kept as encoded frames so a reconnecting
//! client can be sent what it missed without encoding anything again. One
//! history for both interfaces: an update published through the native
//! routes or through Mercure replays on both.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::update::Update;

struct Stored {
    seq: u64,
    update: Rc<Update>,
}

/// The `lastEventID` that asks for every update kept.
pub const EARLIEST: &str = "earliest";

/// A ring of published events, indexed by id.
pub struct History {
    capacity: usize,
    events: VecDeque<Stored>,
    /// id → the sequence number of the latest event with that id.
    by_id: HashMap<String, u64>,
    next_seq: u64,
}

impl History {
    /// An empty history keeping the last `capacity` events.
    pub fn new(capacity: usize) -> Self {
        History {
            capacity,
            events: VecDeque::with_capacity(capacity.min(4096)),
            // Twice the ring: the index drops an id for every one it adds,
            // and the tombstones that leaves are cleared by a rehash, which
            // hashbrown does in place only while the table is at most half
            // full. Smaller, it would double itself once, mid-run (found as
            // a +18 % RSS step half-way through a soak).
            by_id: HashMap::with_capacity(capacity.saturating_mul(2)),
            next_seq: 0,
        }
    }

    /// Keeps a published update (dropping the oldest once full).
    pub fn push(&mut self, update: Rc<Update>) {
        if self.capacity == 0 {
            return;
        }
        if self.events.len() == self.capacity {
            if let Some(old) = self.events.pop_front() {
                if self.by_id.get(&old.update.id) == Some(&old.seq) {
                    self.by_id.remove(&old.update.id);
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(update.id.clone(), seq);
        self.events.push_back(Stored { seq, update });
    }

    /// Where what a subscriber missed after `last_id` starts: the sequence
    /// number of the first update after it (`"earliest"`, Mercure's name
    /// for "from the start", is the oldest kept), or `None` when the id is
    /// not kept (too old, or never published here).
    pub fn start_after(&self, last_id: &str) -> Option<u64> {
        if last_id == EARLIEST {
            return Some(self.first_seq());
        }
        self.by_id.get(last_id).map(|seq| seq + 1)
    }

    /// The update with sequence number `seq`, while it is kept.
    pub fn at(&self, seq: u64) -> Option<&Update> {
        let index = usize::try_from(seq.checked_sub(self.first_seq())?).ok()?;
        self.events.get(index).map(|e| &*e.update)
    }

    /// The sequence number the next update kept will have.
    pub fn end(&self) -> u64 {
        self.next_seq
    }

    /// The sequence number of the oldest update kept (the end when none).
    fn first_seq(&self) -> u64 {
        self.events.front().map_or(self.next_seq, |e| e.seq)
    }

    /// The updates after `last_id`, oldest first, or `None` when it is not
    /// kept (see [`start_after`](Self::start_after)).
    pub fn after(&self, last_id: &str) -> Option<impl Iterator<Item = &Update>> {
        let start = self.start_after(last_id)?;
        Some((start..self.end()).filter_map(|seq| self.at(seq)))
    }

    /// Forgets every update (the shared log they came from was lost): a
    /// reconnect with one of their ids then gets `reset`.
    pub fn clear(&mut self) {
        self.events.clear();
        self.by_id.clear();
    }

    /// The id of the newest update kept, if any.
    pub fn last_id(&self) -> Option<&str> {
        self.events.back().map(|e| e.update.id.as_str())
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sseloop::Event;

    fn update(id: &str, topic: Option<&str>) -> Rc<Update> {
        Rc::new(Update {
            id: id.into(),
            topics: topic.into_iter().map(str::to_owned).collect(),
            private: false,
            frame: Event::new(id).id(id).encode().unwrap(),
        })
    }

    fn ids<'a>(replay: Option<impl Iterator<Item = &'a Update>>) -> Vec<String> {
        match replay {
            Some(updates) => updates.map(|u| u.id.clone()).collect(),
            None => vec!["unknown".into()],
        }
    }

    #[test]
    fn replays_after_id_and_forgets_old() {
        let mut h = History::new(4);
        for (id, topic) in [
            ("1", Some("a")),
            ("2", Some("b")),
            ("3", None),
            ("4", Some("a")),
        ] {
            h.push(update(id, topic));
        }
        assert_eq!(ids(h.after("1")), ["2", "3", "4"]);
        assert_eq!(ids(h.after("4")), Vec::<String>::new());
        assert_eq!(ids(h.after(EARLIEST)), ["1", "2", "3", "4"]);
        h.push(update("5", Some("a")));
        assert_eq!(ids(h.after("1")), ["unknown"]);
        assert_eq!(ids(h.after("2")), ["3", "4", "5"]);
        assert_eq!((h.len(), h.last_id()), (4, Some("5")));
    }

    #[test]
    fn the_id_index_does_not_grow_once_the_ring_is_full() {
        let mut h = History::new(1024);
        for i in 0..1024u32 {
            h.push(update(&i.to_string(), Some("t")));
        }
        let full = h.by_id.capacity();
        // Long enough for deletions to use up the table's slack many times.
        for i in 1024..200_000u32 {
            h.push(update(&i.to_string(), Some("t")));
        }
        assert!(
            h.by_id.capacity() <= full,
            "{} > {full}",
            h.by_id.capacity()
        );
        assert_eq!(h.len(), 1024);
    }
}
