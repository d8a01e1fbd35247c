//! Each connection's one timer on the wheel. Timers are lazy: a write does
//! not move one; a timer that fires early is set again for the connection's
//! new deadline (`conn.rs` says which). A connection carries its timer as
//! a [`TimerSlot`] that only this module reads or writes, so the timer's
//! record lives and dies with its connection. Pure: milliseconds in, keys
//! out.

use crate::timer::{TimerKey, TimerWheel};

/// Milliseconds per timer-wheel tick.
const TICK_MS: u64 = 10;

/// A connection's timer, if one is set: the wheel's key and the deadline
/// (ms). Opaque to everything but [`Deadlines`].
#[derive(Debug, Default)]
pub(crate) struct TimerSlot(Option<(TimerKey, u64)>);

/// The connections' timers.
pub(crate) struct Deadlines {
    wheel: TimerWheel<(usize, u64)>,
}

impl Deadlines {
    pub(crate) fn new() -> Self {
        Deadlines {
            wheel: TimerWheel::new(0),
        }
    }

    /// Makes sure connection `key` (of `generation`), whose timer is
    /// `slot`, hears from it no later than `at` ms (`u64::MAX`: never). A
    /// timer set for earlier stays: it fires, and is set again then.
    pub(crate) fn ensure(&mut self, slot: &mut TimerSlot, key: usize, generation: u64, at: u64) {
        if let Some((timer, set_at)) = slot.0 {
            if set_at <= at {
                return;
            }
            self.wheel.cancel(timer);
            slot.0 = None;
        }
        if at == u64::MAX {
            return;
        }
        let timer = self.wheel.insert(at.div_ceil(TICK_MS), (key, generation));
        slot.0 = Some((timer, at));
    }

    /// The connection whose timer is `slot` is gone: its timer with it.
    pub(crate) fn cancel(&mut self, slot: TimerSlot) {
        if let Some((timer, _)) = slot.0 {
            self.wheel.cancel(timer);
        }
    }

    /// When the next timer is due, in ms.
    pub(crate) fn next(&self) -> Option<u64> {
        self.wheel.next_expiry().map(|t| t * TICK_MS)
    }

    /// The timers due by `now` (ms), as (key, generation), into `fired`.
    /// Each connection named must have [`fired`](Deadlines::fired) called
    /// on its slot.
    pub(crate) fn fire(&mut self, now: u64, fired: &mut Vec<(usize, u64)>) {
        self.wheel.advance(now / TICK_MS, fired);
    }

    /// The timer of `slot` fired: none is set now.
    pub(crate) fn fired(&self, slot: &mut TimerSlot) {
        slot.0 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_deadline_keeps_the_earlier_timer_and_an_earlier_one_replaces_it() {
        let mut d = Deadlines::new();
        let mut slot = TimerSlot::default();
        d.ensure(&mut slot, 4, 1, 100);
        d.ensure(&mut slot, 4, 1, 500); // lazy: still due at 100
        assert_eq!(d.next(), Some(100));
        d.ensure(&mut slot, 4, 1, 30);
        assert_eq!(d.next(), Some(30));
        let mut fired = Vec::new();
        d.fire(29, &mut fired);
        assert!(fired.is_empty());
        d.fire(30, &mut fired);
        assert_eq!(fired, vec![(4, 1)]);
        d.fired(&mut slot);
        assert_eq!(d.next(), None, "the replaced timer was cancelled");
        // Fired, so no longer set: a later deadline sets a new timer.
        d.ensure(&mut slot, 4, 1, 200);
        assert_eq!(d.next(), Some(200));
    }

    #[test]
    fn a_cancelled_connection_never_fires() {
        let mut d = Deadlines::new();
        let (mut one, mut two) = (TimerSlot::default(), TimerSlot::default());
        d.ensure(&mut one, 1, 7, 10);
        d.ensure(&mut two, 2, 7, u64::MAX);
        d.cancel(one);
        let mut fired = Vec::new();
        d.fire(10_000, &mut fired);
        assert!(fired.is_empty());
    }
}
