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
    /// id → the sequence number of the earliest event kept with that id
    /// (draft-08: a reused id resolves to its earliest update).
    by_id: HashMap<String, u64>,
    /// id → the later events with an id already in `by_id`, oldest first:
    /// each takes its place when the one before is dropped.
    reused: HashMap<String, VecDeque<u64>>,
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
            reused: HashMap::new(),
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
                self.forget(&old);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        match self.by_id.entry(update.id.clone()) {
            std::collections::hash_map::Entry::Vacant(first) => {
                first.insert(seq);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.reused
                    .entry(update.id.clone())
                    .or_default()
                    .push_back(seq);
            }
        }
        self.events.push_back(Stored { seq, update });
    }

    /// Drops `old`, the oldest event, from the index: the next event with
    /// its id, if one is kept, becomes the one its id resolves to.
    fn forget(&mut self, old: &Stored) {
        let id = &old.update.id;
        if self.by_id.get(id) != Some(&old.seq) {
            return;
        }
        let next = self.reused.get_mut(id).and_then(VecDeque::pop_front);
        match next {
            Some(seq) => {
                self.by_id.insert(id.clone(), seq);
                if self.reused.get(id).is_some_and(VecDeque::is_empty) {
                    self.reused.remove(id);
                }
            }
            None => {
                self.by_id.remove(id);
            }
        }
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
        self.reused.clear();
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
    fn a_reused_id_resolves_to_its_earliest_update_while_kept() {
        let mut h = History::new(4);
        for id in ["x", "a", "x", "b"] {
            h.push(update(id, Some("t")));
        }
        assert_eq!(ids(h.after("x")), ["a", "x", "b"], "the earliest x");
        h.push(update("c", Some("t"))); // the first x is dropped
        assert_eq!(ids(h.after("x")), ["b", "c"], "now the later x");
        h.push(update("d", Some("t")));
        h.push(update("e", Some("t"))); // both x are gone
        assert_eq!(ids(h.after("x")), ["unknown"]);
        assert!(h.reused.is_empty() && h.by_id.len() == 4);
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
