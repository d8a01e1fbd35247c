//! The last N published events, kept as encoded frames so a reconnecting
//! client can be sent what it missed without encoding anything again.

use std::collections::{HashMap, VecDeque};

use sseloop::Frame;

struct Stored {
    seq: u64,
    id: String,
    /// `None` for a broadcast, which every client receives.
    topic: Option<String>,
    frame: Frame,
}

/// What a replay found.
pub enum Replay<'a> {
    /// The frames after the id, in order, that match the client's topics.
    Missed(Vec<&'a Frame>),
    /// The id is not in the history (too old, or never published here).
    Unknown,
}

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

    /// Keeps a published event (dropping the oldest once full).
    pub fn push(&mut self, id: String, topic: Option<&str>, frame: Frame) {
        if self.capacity == 0 {
            return;
        }
        if self.events.len() == self.capacity {
            if let Some(old) = self.events.pop_front() {
                if self.by_id.get(&old.id) == Some(&old.seq) {
                    self.by_id.remove(&old.id);
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(id.clone(), seq);
        self.events.push_back(Stored {
            seq,
            id,
            topic: topic.map(str::to_owned),
            frame,
        });
    }

    /// The events after `last_id` that a client subscribed to `topics`
    /// receives: broadcasts, and events on one of its topics.
    pub fn after<'a>(&'a self, last_id: &str, topics: &[&str]) -> Replay<'a> {
        let Some(&seq) = self.by_id.get(last_id) else {
            return Replay::Unknown;
        };
        let first = self.events.front().map_or(0, |e| e.seq);
        let start = usize::try_from(seq - first + 1).unwrap_or(usize::MAX);
        Replay::Missed(
            self.events
                .iter()
                .skip(start)
                .filter(|e| e.topic.as_deref().is_none_or(|t| topics.contains(&t)))
                .map(|e| &e.frame)
                .collect(),
        )
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

    fn frame(id: &str) -> Frame {
        Event::new(id).id(id).encode().unwrap()
    }

    fn ids(replay: Replay<'_>) -> Vec<String> {
        match replay {
            Replay::Missed(frames) => frames
                .iter()
                .map(|f| {
                    String::from_utf8_lossy(f.payload())
                        .lines()
                        .next()
                        .unwrap()
                        .to_owned()
                })
                .collect(),
            Replay::Unknown => vec!["unknown".into()],
        }
    }

    #[test]
    fn replays_after_id_by_topic_and_forgets_old() {
        let mut h = History::new(4);
        h.push("1".into(), Some("a"), frame("1"));
        h.push("2".into(), Some("b"), frame("2"));
        h.push("3".into(), None, frame("3"));
        h.push("4".into(), Some("a"), frame("4"));
        assert_eq!(ids(h.after("1", &["a"])), ["id: 3", "id: 4"]);
        assert_eq!(ids(h.after("1", &[])), ["id: 3"]);
        assert_eq!(ids(h.after("4", &["a"])), Vec::<String>::new());
        h.push("5".into(), Some("a"), frame("5"));
        assert_eq!(ids(h.after("1", &["a"])), ["unknown"]);
        assert_eq!(ids(h.after("2", &["a", "b"])), ["id: 3", "id: 4", "id: 5"]);
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn the_id_index_does_not_grow_once_the_ring_is_full() {
        let mut h = History::new(1024);
        let f = frame("x");
        for i in 0..1024u32 {
            h.push(i.to_string(), Some("t"), f.clone());
        }
        let full = h.by_id.capacity();
        // Long enough for deletions to use up the table's slack many times.
        for i in 1024..200_000u32 {
            h.push(i.to_string(), Some("t"), f.clone());
        }
        assert!(
            h.by_id.capacity() <= full,
            "{} > {full}",
            h.by_id.capacity()
        );
        assert_eq!(h.len(), 1024);
    }
}
