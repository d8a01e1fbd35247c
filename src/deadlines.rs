//! Each connection's one timer on the wheel. Timers are lazy: a write does
//! not move one; a timer that fires early is set again for the connection's
//! new deadline (`conn.rs` says which). Pure: milliseconds in, keys out.

use crate::timer::{TimerKey, TimerWheel};

/// Milliseconds per timer-wheel tick.
pub(crate) const TICK_MS: u64 = 10;

/// A timer set for a connection: the wheel's key, the deadline (ms) and
/// the connection's generation.
type Set = (TimerKey, u64, u64);

/// The connections' timers.
pub(crate) struct Deadlines {
    wheel: TimerWheel<(usize, u64)>,
    /// By connection key: its timer, if one is set.
    set: Vec<Option<Set>>,
}

impl Deadlines {
    pub(crate) fn new() -> Self {
        Deadlines {
            wheel: TimerWheel::new(0),
            set: Vec::new(),
        }
    }

    /// Makes sure connection `key` (of `generation`) hears from its timer
    /// no later than `at` ms (`u64::MAX`: never). A timer set for earlier
    /// stays: it fires, and is set again then.
    pub(crate) fn ensure(&mut self, key: usize, generation: u64, at: u64) {
        if self.set.len() <= key {
            self.set.resize(key + 1, None);
        }
        if let Some((timer, set_at, _)) = self.set[key] {
            if set_at <= at {
                return;
            }
            self.wheel.cancel(timer);
            self.set[key] = None;
        }
        if at == u64::MAX {
            return;
        }
        let timer = self.wheel.insert(at.div_ceil(TICK_MS), (key, generation));
        self.set[key] = Some((timer, at, generation));
    }

    /// The connection at `key` is gone: its timer with it.
    pub(crate) fn cancel(&mut self, key: usize) {
        if let Some((timer, _, _)) = self.set.get_mut(key).and_then(Option::take) {
            self.wheel.cancel(timer);
        }
    }

    /// When the next timer is due, in ms.
    pub(crate) fn next(&self) -> Option<u64> {
        self.wheel.next_expiry().map(|t| t * TICK_MS)
    }

    /// The timers due by `now` (ms), as (key, generation), into `fired`;
    /// each is no longer set.
    pub(crate) fn fire(&mut self, now: u64, fired: &mut Vec<(usize, u64)>) {
        self.wheel.advance(now / TICK_MS, fired);
        for &(key, generation) in fired.iter() {
            if let Some(slot) = self.set.get_mut(key) {
                if slot.is_some_and(|(_, _, g)| g == generation) {
                    *slot = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_deadline_keeps_the_earlier_timer_and_an_earlier_one_replaces_it() {
        let mut d = Deadlines::new();
        d.ensure(4, 1, 100);
        d.ensure(4, 1, 500); // lazy: still due at 100
        assert_eq!(d.next(), Some(100));
        d.ensure(4, 1, 30);
        assert_eq!(d.next(), Some(30));
        let mut fired = Vec::new();
        d.fire(29, &mut fired);
        assert!(fired.is_empty());
        d.fire(30, &mut fired);
        assert_eq!(fired, vec![(4, 1)]);
        assert_eq!(d.next(), None, "the replaced timer was cancelled");
        // Fired, so no longer set: a later deadline sets a new timer.
        d.ensure(4, 1, 200);
        assert_eq!(d.next(), Some(200));
    }

    #[test]
    fn a_cancelled_connection_never_fires() {
        let mut d = Deadlines::new();
        d.ensure(1, 7, 10);
        d.ensure(2, 7, u64::MAX);
        d.cancel(1);
        let mut fired = Vec::new();
        d.fire(10_000, &mut fired);
        assert!(fired.is_empty());
    }
}
