//! Topics: which streams subscribe to what, and the events published to
//! each that a subscriber has not taken into its write queue yet.
//!
//! A publish does not visit the topic's subscribers. It appends the frame to
//! the topic's log (one `Arc` clone, whatever the number of subscribers) and
//! wakes only the subscribers that had taken everything before it: those go
//! on the loop's list of streams to write. A subscriber still waiting on
//! that list from an earlier publish is not touched at all; when its turn
//! comes, [`Topics::catch_up`] moves every frame it has not taken, in
//! publish order, into its queue in one visit, and they go out in one
//! write. Under a burst (one publisher, 10 000 subscribers) a publish costs
//! the few subscribers written since the previous one, instead of 10 000
//! queue pushes, each a cache miss on another connection.
//!
//! Order: each entry carries a global sequence number, so a stream in
//! several topics takes their entries merged in the order they were
//! published. Anything else queued on a stream (a direct send, a heartbeat,
//! the end of the stream) is queued after a catch-up, so it keeps its place
//! relative to the topics' events too.
//!
//! The log keeps an entry until every subscriber has taken it. A subscriber
//! is never behind for long (once woken it is on the list of streams to
//! write, and a catch-up takes everything), so the log holds at most about
//! one pass over the subscribers' worth of events; it is emptied whenever
//! every subscriber has caught up, and otherwise trimmed to the slowest.
//! Pure: no sockets, no connections; the loop (`core.rs`) owns both.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use slab::Slab;

use crate::frame::Frame;

/// A stream's place in one topic: (topic id, slot among its subscribers).
pub(crate) type Membership = (usize, usize);

/// A log past this many entries is trimmed to its slowest subscriber (and
/// the mark doubles with the log's size, so the walk over the subscribers
/// this costs stays rare).
const TRIM_AT: usize = 64;

/// What a publish did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Published {
    /// How many subscribers the frame reaches.
    pub reached: usize,
    /// The bytes (as chunks) the topic's log holds now: what its slowest
    /// subscriber has yet to take, at most.
    pub backlog: usize,
}

/// Every topic with at least one subscriber.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    ids: HashMap<Rc<str>, usize>,
    topics: Slab<Topic>,
    /// The sequence number of the last publish, on any topic.
    last_seq: u64,
}

#[derive(Debug)]
struct Topic {
    name: Rc<str>,
    subscribers: Slab<Subscriber>,
    /// Frames not yet taken by every subscriber, with their sequence numbers.
    log: VecDeque<(u64, Frame)>,
    /// The position (counted from the topic's first publish) of `log[0]`.
    first: u64,
    /// The log's frames' bytes, as chunks.
    bytes: usize,
    /// Subscribers that have taken the whole log: (slot, stream generation).
    /// The next publish wakes them. An entry of a subscriber since gone is
    /// skipped by its generation.
    caught_up: Vec<(usize, u64)>,
    /// Trim the log to its slowest subscriber once it is this long.
    trim_at: usize,
}

#[derive(Debug)]
struct Subscriber {
    /// The stream's connection key and generation.
    key: usize,
    generation: u64,
    /// The position of the next log entry this subscriber takes.
    next: u64,
    /// Whether it is on `caught_up`.
    listed: bool,
}

impl Topic {
    /// The position after the log's last entry.
    fn end(&self) -> u64 {
        self.first + self.log.len() as u64
    }

    /// The entry at `position` (which must be in the log).
    fn entry(&self, position: u64) -> &(u64, Frame) {
        &self.log[usize::try_from(position - self.first).unwrap_or(usize::MAX)]
    }

    /// Puts `slot` on the list of subscribers the next publish wakes.
    fn list(&mut self, slot: usize) {
        let subscriber = &mut self.subscribers[slot];
        if !subscriber.listed {
            subscriber.listed = true;
            self.caught_up.push((slot, subscriber.generation));
        }
    }

    /// Drops the log entries every subscriber has taken.
    fn trim(&mut self) {
        let slowest = self.subscribers.iter().map(|(_, s)| s.next).min();
        let keep_from = slowest.unwrap_or(self.end());
        while self.first < keep_from {
            let Some((_, frame)) = self.log.pop_front() else {
                break;
            };
            self.bytes -= frame.chunked().len();
            self.first += 1;
        }
        self.trim_at = TRIM_AT.max(self.log.len() * 2);
    }
}

impl Topics {
    /// Adds the stream (`key`, `generation`) to `name`'s subscribers. It
    /// takes only what is published from now on.
    pub(crate) fn join(&mut self, name: &str, key: usize, generation: u64) -> Membership {
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                let name: Rc<str> = Rc::from(name);
                let id = self.topics.insert(Topic {
                    name: name.clone(),
                    subscribers: Slab::new(),
                    log: VecDeque::new(),
                    first: 0,
                    bytes: 0,
                    caught_up: Vec::new(),
                    trim_at: TRIM_AT,
                });
                self.ids.insert(name, id);
                id
            }
        };
        let topic = &mut self.topics[id];
        let next = topic.end();
        let slot = topic.subscribers.insert(Subscriber {
            key,
            generation,
            next,
            listed: false,
        });
        topic.list(slot);
        (id, slot)
    }

    /// Removes a subscriber; a topic left without any is forgotten.
    pub(crate) fn leave(&mut self, (id, slot): Membership) {
        let Some(topic) = self.topics.get_mut(id) else {
            return;
        };
        topic.subscribers.try_remove(slot);
        if topic.subscribers.is_empty() {
            let topic = self.topics.remove(id);
            self.ids.remove(&topic.name);
        }
    }

    /// The name of a topic a stream belongs to.
    pub(crate) fn name(&self, (id, _): Membership) -> &str {
        &self.topics[id].name
    }

    /// Appends `frame` to `name`'s log, and puts on `woken` (key,
    /// generation) of each subscriber that had taken everything before and
    /// so now has something to write.
    pub(crate) fn publish(
        &mut self,
        name: &str,
        frame: &Frame,
        woken: &mut Vec<(usize, u64)>,
    ) -> Published {
        let Some(&id) = self.ids.get(name) else {
            return Published {
                reached: 0,
                backlog: 0,
            };
        };
        self.last_seq += 1;
        let topic = &mut self.topics[id];
        let mut waiting = 0;
        for (slot, generation) in topic.caught_up.drain(..) {
            let Some(subscriber) = topic.subscribers.get_mut(slot) else {
                continue;
            };
            if subscriber.generation != generation || !subscriber.listed {
                continue; // a stale entry: that subscriber left
            }
            subscriber.listed = false;
            woken.push((subscriber.key, generation));
            waiting += 1;
        }
        if waiting == topic.subscribers.len() {
            // Everyone had taken the whole log: none of it is needed again.
            topic.first = topic.end();
            topic.log.clear();
            topic.bytes = 0;
        } else if topic.log.len() >= topic.trim_at {
            topic.trim();
        }
        topic.log.push_back((self.last_seq, frame.clone()));
        topic.bytes += frame.chunked().len();
        Published {
            reached: topic.subscribers.len(),
            backlog: topic.bytes,
        }
    }

    /// Puts on `out` (key, generation) of each of `name`'s subscribers that
    /// has not taken the whole log.
    pub(crate) fn behind(&self, name: &str, out: &mut Vec<(usize, u64)>) {
        let Some(&id) = self.ids.get(name) else {
            return;
        };
        let topic = &self.topics[id];
        let end = topic.end();
        let lagging = topic.subscribers.iter().map(|(_, s)| s);
        out.extend(
            lagging
                .filter(|s| s.next < end)
                .map(|s| (s.key, s.generation)),
        );
    }

    /// Hands `deliver` every frame the stream with `memberships` has not
    /// taken yet, in publish order across its topics, and marks it caught
    /// up. Answers how many frames it handed over.
    pub(crate) fn catch_up(
        &mut self,
        memberships: &[Membership],
        mut deliver: impl FnMut(&Frame),
    ) -> usize {
        let mut taken = 0;
        if let [(id, slot)] = *memberships {
            // One topic (the usual case): its entries in order.
            let topic = &mut self.topics[id];
            let end = topic.end();
            let from = topic.subscribers[slot].next;
            for position in from..end {
                deliver(&topic.entry(position).1);
            }
            taken += usize::try_from(end - from).unwrap_or(0);
            topic.subscribers[slot].next = end;
            topic.list(slot);
            return taken;
        }
        // Several topics: merge their entries by sequence number.
        loop {
            let mut earliest: Option<(u64, Membership)> = None;
            for &(id, slot) in memberships {
                let topic = &self.topics[id];
                let next = topic.subscribers[slot].next;
                if next < topic.end() {
                    let seq = topic.entry(next).0;
                    if earliest.is_none_or(|(s, _)| seq < s) {
                        earliest = Some((seq, (id, slot)));
                    }
                }
            }
            let Some((_, (id, slot))) = earliest else {
                break;
            };
            let topic = &mut self.topics[id];
            let next = topic.subscribers[slot].next;
            deliver(&topic.entry(next).1);
            topic.subscribers[slot].next = next + 1;
            taken += 1;
        }
        for &(id, slot) in memberships {
            self.topics[id].list(slot);
        }
        taken
    }

    /// How many entries `name`'s log holds now (for tests).
    #[cfg(test)]
    fn log_len(&self, name: &str) -> usize {
        self.ids
            .get(name)
            .map_or(0, |&id| self.topics[id].log.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Event;

    fn frame(data: &str) -> Frame {
        Event::new(data).encode().unwrap()
    }

    /// The data lines a catch-up hands over, as text.
    fn take(topics: &mut Topics, memberships: &[Membership]) -> Vec<String> {
        let mut out = Vec::new();
        topics.catch_up(memberships, |f| {
            out.push(String::from_utf8_lossy(f.payload()).trim_end().to_owned());
        });
        out
    }

    #[test]
    fn a_publish_wakes_only_subscribers_that_had_caught_up() {
        let mut topics = Topics::default();
        let a = topics.join("news", 1, 10);
        let b = topics.join("news", 2, 20);
        let mut woken = Vec::new();
        assert_eq!(topics.publish("news", &frame("1"), &mut woken).reached, 2);
        assert_eq!(woken, [(1, 10), (2, 20)]);
        // Nobody took "1" yet: a second publish wakes nobody again.
        woken.clear();
        topics.publish("news", &frame("2"), &mut woken);
        assert!(woken.is_empty());
        // `a` takes both in one visit; the next publish wakes only `a`.
        assert_eq!(take(&mut topics, &[a]), ["data: 1", "data: 2"]);
        topics.publish("news", &frame("3"), &mut woken);
        assert_eq!(woken, [(1, 10)]);
        assert_eq!(take(&mut topics, &[b]), ["data: 1", "data: 2", "data: 3"]);
        assert_eq!(take(&mut topics, &[a]), ["data: 3"]);
        assert!(take(&mut topics, &[a]).is_empty());
        assert_eq!(
            topics.publish("elsewhere", &frame("x"), &mut woken).reached,
            0
        );
    }

    #[test]
    fn a_stream_in_several_topics_takes_them_in_publish_order() {
        let mut topics = Topics::default();
        let a = topics.join("a", 1, 1);
        let b = topics.join("b", 1, 1);
        let mut woken = Vec::new();
        for (topic, data) in [("a", "1"), ("b", "2"), ("b", "3"), ("a", "4"), ("b", "5")] {
            topics.publish(topic, &frame(data), &mut woken);
        }
        let taken = take(&mut topics, &[a, b]);
        assert_eq!(
            taken,
            ["data: 1", "data: 2", "data: 3", "data: 4", "data: 5"]
        );
        assert_eq!((topics.name(a), topics.name(b)), ("a", "b"));
    }

    #[test]
    fn a_late_joiner_takes_only_what_comes_after_it() {
        let mut topics = Topics::default();
        let early = topics.join("t", 1, 1);
        let mut woken = Vec::new();
        topics.publish("t", &frame("before"), &mut woken);
        let late = topics.join("t", 2, 2);
        topics.publish("t", &frame("after"), &mut woken);
        assert_eq!(take(&mut topics, &[late]), ["data: after"]);
        assert_eq!(take(&mut topics, &[early]), ["data: before", "data: after"]);
    }

    #[test]
    fn the_log_is_emptied_when_everyone_caught_up_and_trimmed_to_the_slowest() {
        let mut topics = Topics::default();
        let fast = topics.join("t", 1, 1);
        let slow = topics.join("t", 2, 2);
        let mut woken = Vec::new();
        for i in 0..TRIM_AT {
            topics.publish("t", &frame(&i.to_string()), &mut woken);
            take(&mut topics, &[fast]);
        }
        assert_eq!(topics.log_len("t"), TRIM_AT);
        assert_eq!(take(&mut topics, &[slow]).len(), TRIM_AT);
        // Both had taken everything: the next publish starts a fresh log.
        let fresh = frame("fresh");
        let published = topics.publish("t", &fresh, &mut woken);
        assert_eq!(topics.log_len("t"), 1);
        assert_eq!(published.backlog, fresh.chunked().len());
        let mut behind = Vec::new();
        topics.behind("t", &mut behind);
        assert_eq!(behind, [(1, 1), (2, 2)]);
        take(&mut topics, &[fast]);
        behind.clear();
        topics.behind("t", &mut behind);
        assert_eq!(behind, [(2, 2)]);
        // The slow one falls behind again; the log is trimmed to it, never
        // past it, and it still gets every frame.
        for i in 0..3 * TRIM_AT {
            topics.publish("t", &frame(&i.to_string()), &mut woken);
            take(&mut topics, &[fast]);
        }
        let behind = take(&mut topics, &[slow]);
        assert_eq!(behind.len(), 3 * TRIM_AT + 1);
        assert_eq!(behind[0], "data: fresh");
        assert_eq!(
            behind.last().unwrap(),
            &format!("data: {}", 3 * TRIM_AT - 1)
        );
    }

    #[test]
    fn a_subscriber_that_left_is_never_woken_and_its_slot_is_reused_cleanly() {
        let mut topics = Topics::default();
        let stays = topics.join("t", 1, 1);
        let leaves = topics.join("t", 2, 2);
        topics.leave(leaves);
        // The slot goes to a new stream in the same connection key.
        let replaced = topics.join("t", 2, 3);
        assert_eq!(replaced.1, leaves.1);
        let mut woken = Vec::new();
        topics.publish("t", &frame("x"), &mut woken);
        assert_eq!(woken, [(1, 1), (2, 3)]);
        topics.leave(stays);
        topics.leave(replaced);
        // The topic is gone with its last subscriber.
        assert_eq!(topics.publish("t", &frame("y"), &mut woken).reached, 0);
    }
}
