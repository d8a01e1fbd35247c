//! A hashed timer wheel: O(1) insert and cancel, expiry in O(timers due)
//! plus the later-round timers that share their slot. Pure: it speaks in
//! ticks and values, and the caller says what time it is.
//!
//! # Implementation
//!
//! `SLOTS` slots, one per tick, form one revolution; a timer due at tick `t`
//! lives in slot `t % SLOTS` and stays there across revolutions until
//! `advance` passes `t`. Each slot is an intrusive doubly-linked list through
//! a [`Slab`] of entries, so cancelling needs only the entry's key. A bitmask
//! of occupied slots lets [`TimerWheel::next_expiry`] skip empty slots
//! without scanning them.

use slab::Slab;

const SLOTS: usize = 1024;
const WORDS: usize = SLOTS / 64;

/// Identifies one inserted timer until it fires or is cancelled. Keys carry a
/// generation, so a key kept past that point can never cancel a later timer
/// that reused the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerKey {
    index: usize,
    generation: u32,
}

struct Entry<T> {
    deadline: u64,
    generation: u32,
    prev: Option<usize>,
    next: Option<usize>,
    value: T,
}

/// The wheel itself; `T` is what a timer carries back when it fires.
pub struct TimerWheel<T> {
    entries: Slab<Entry<T>>,
    heads: Box<[Option<usize>]>,
    occupied: [u64; WORDS],
    /// Every tick before `now` has been processed.
    now: u64,
    generation: u32,
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose clock starts at tick `now`.
    pub fn new(now: u64) -> Self {
        TimerWheel {
            entries: Slab::new(),
            heads: vec![None; SLOTS].into_boxed_slice(),
            occupied: [0; WORDS],
            now,
            generation: 0,
        }
    }

    /// How many timers are pending.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Schedules `value` to fire at tick `deadline` (a deadline already past
    /// fires at the next [`advance`](Self::advance)).
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let deadline = deadline.max(self.now);
        let slot = slot_of(deadline);
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let head = self.heads[slot];
        let index = self.entries.insert(Entry {
            deadline,
            generation,
            prev: None,
            next: head,
            value,
        });
        if let Some(h) = head {
            self.entries[h].prev = Some(index);
        }
        self.heads[slot] = Some(index);
        self.occupied[slot / 64] |= 1 << (slot % 64);
        TimerKey { index, generation }
    }

    /// Cancels a pending timer and gives its value back; `None` if it already
    /// fired or was cancelled.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        match self.entries.get(key.index) {
            Some(e) if e.generation == key.generation => Some(self.unlink(key.index)),
            _ => None,
        }
    }

    fn unlink(&mut self, index: usize) -> T {
        let entry = self.entries.remove(index);
        let slot = slot_of(entry.deadline);
        match entry.prev {
            Some(p) => self.entries[p].next = entry.next,
            None => self.heads[slot] = entry.next,
        }
        if let Some(n) = entry.next {
            self.entries[n].prev = entry.prev;
        }
        if self.heads[slot].is_none() {
            self.occupied[slot / 64] &= !(1 << (slot % 64));
        }
        entry.value
    }

    /// Moves the clock to tick `now`, appending the value of every timer due
    /// at or before it to `fired` (in no particular order).
    pub fn advance(&mut self, now: u64, fired: &mut Vec<T>) {
        if now < self.now {
            return;
        }
        // Past one revolution every slot gets visited once; no need to loop
        // over the skipped revolutions.
        let first = self.now;
        let last = now.min(first + SLOTS as u64 - 1);
        let mut tick = first;
        while tick <= last {
            let slot = slot_of(tick);
            let mut cursor = self.heads[slot];
            while let Some(index) = cursor {
                let entry = &self.entries[index];
                cursor = entry.next;
                if entry.deadline <= now {
                    fired.push(self.unlink(index));
                }
            }
            tick = match self.next_occupied_after(tick) {
                Some(t) => t,
                None => break,
            };
        }
        self.now = now + 1;
    }

    /// The tick of the next occupied slot after `tick` within one revolution.
    fn next_occupied_after(&self, tick: u64) -> Option<u64> {
        let start = (slot_of(tick) + 1) % SLOTS;
        let mut offset = 0;
        while offset < SLOTS {
            let slot = (start + offset) % SLOTS;
            // The occupied bits from `slot` to the end of its word.
            let bits = self.occupied[slot / 64] >> (slot % 64);
            if bits != 0 {
                let distance = offset + bits.trailing_zeros() as usize;
                return (distance < SLOTS).then(|| tick + 1 + distance as u64);
            }
            offset += 64 - slot % 64;
        }
        None
    }

    /// The earliest tick at which [`advance`](Self::advance) may have work to
    /// do, or `None` with no timers. It may be earlier than the earliest
    /// deadline (a slot can hold only later-round timers), never later.
    pub fn next_expiry(&self) -> Option<u64> {
        if self.entries.is_empty() {
            return None;
        }
        let current = slot_of(self.now);
        if self.occupied[current / 64] & (1 << (current % 64)) != 0 {
            return Some(self.now);
        }
        self.next_occupied_after(self.now)
    }
}

fn slot_of(tick: u64) -> usize {
    (tick % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(w: &mut TimerWheel<u32>, now: u64) -> Vec<u32> {
        let mut out = Vec::new();
        w.advance(now, &mut out);
        out.sort();
        out
    }

    #[test]
    fn fires_at_deadline_not_before() {
        let mut w = TimerWheel::new(0);
        w.insert(5, 1);
        w.insert(3, 2);
        assert_eq!(w.next_expiry(), Some(3));
        assert_eq!(fire(&mut w, 2), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 4), vec![2]);
        assert_eq!(w.next_expiry(), Some(5));
        assert_eq!(fire(&mut w, 5), vec![1]);
        assert!(w.is_empty());
        assert_eq!(w.next_expiry(), None);
    }

    #[test]
    fn wraps_around_revolutions() {
        let mut w = TimerWheel::new(10);
        // Same slot, three revolutions apart.
        w.insert(10 + SLOTS as u64 * 3, 3);
        w.insert(10 + SLOTS as u64, 1);
        w.insert(10 + 2, 0);
        assert_eq!(fire(&mut w, 10 + SLOTS as u64 - 1), vec![0]);
        assert_eq!(fire(&mut w, 10 + SLOTS as u64), vec![1]);
        assert_eq!(fire(&mut w, 10 + SLOTS as u64 * 3 - 1), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 10 + SLOTS as u64 * 3), vec![3]);
    }

    #[test]
    fn big_jump_fires_everything_due() {
        let mut w = TimerWheel::new(0);
        for i in 0..5000u32 {
            w.insert(u64::from(i) * 7, i);
        }
        let out = fire(&mut w, 7 * 2500);
        assert_eq!(out, (0..=2500).collect::<Vec<_>>());
        assert_eq!(w.len(), 2499);
    }

    #[test]
    fn cancel_and_stale_keys() {
        let mut w = TimerWheel::new(0);
        let a = w.insert(4, 1);
        let b = w.insert(4, 2);
        let c = w.insert(4, 3);
        assert_eq!(w.cancel(b), Some(2));
        assert_eq!(w.cancel(b), None);
        let d = w.insert(9, 4); // likely reuses b's entry
        assert_eq!(w.cancel(b), None, "stale key must not cancel the new timer");
        assert_eq!(fire(&mut w, 4), vec![1, 3]);
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.cancel(c), None);
        assert_eq!(w.cancel(d), Some(4));
        assert!(w.is_empty());
    }

    #[test]
    fn past_deadline_fires_next_advance() {
        let mut w = TimerWheel::new(100);
        w.insert(3, 7);
        assert_eq!(w.next_expiry(), Some(100));
        assert_eq!(fire(&mut w, 100), vec![7]);
    }
}
