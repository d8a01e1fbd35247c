//! Which connections have output to write, and in what order: plain
//! answers first, then streams oldest first, and the queues grown too long
//! to wait for the end of the pass. Also the buffers the write queues
//! borrow. A connection carries its place on the lists as an [`OutboxMark`]
//! that only this module reads or writes, so it lives and dies with the
//! connection. Pure: keys and generations in, keys out.

use std::collections::VecDeque;

use crate::queue::SpareBuffers;

/// A connection on a list, with the generation it had then: an entry left
/// by a connection since removed is skipped.
pub(crate) type Entry = (usize, u64);

/// Whether a connection is on one of the lists now. Opaque to everything
/// but [`Outbox`].
#[derive(Debug, Default)]
pub(crate) struct OutboxMark(bool);

/// The lists of connections with output to write.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Streams with output queued and not yet written, oldest first.
    streams: VecDeque<Entry>,
    /// Other connections with output queued (plain responses): written
    /// first, every pass, so an answer never waits behind a fan-out.
    responses: Vec<Entry>,
    /// Queues past the early-flush mark, to write as soon as the current
    /// handler call or command returns.
    urgent: Vec<usize>,
    /// Write-queue buffers the connections lend each other.
    pub spare: SpareBuffers,
}

impl Outbox {
    /// Puts connection `key` (of `generation`, marked by `mark`) on the
    /// list for its kind, unless it is on one already.
    pub(crate) fn mark(
        &mut self,
        mark: &mut OutboxMark,
        key: usize,
        generation: u64,
        streaming: bool,
    ) {
        if mark.0 {
            return;
        }
        mark.0 = true;
        if streaming {
            self.streams.push_back((key, generation));
        } else {
            self.responses.push((key, generation));
        }
    }

    /// Whether the connection of `mark` is on a list.
    pub(crate) fn is_marked(&self, mark: &OutboxMark) -> bool {
        mark.0
    }

    /// Whether streams wait for their write.
    pub(crate) fn has_streams(&self) -> bool {
        !self.streams.is_empty()
    }

    /// The next entry of a plain answer to write. The caller checks that
    /// it is still its connection's and then calls [`taken`](Outbox::taken).
    pub(crate) fn pop_response(&mut self) -> Option<Entry> {
        self.responses.pop()
    }

    /// The next entry of a stream with output to write, oldest first; as
    /// [`pop_response`](Outbox::pop_response).
    pub(crate) fn pop_stream(&mut self) -> Option<Entry> {
        self.streams.pop_front()
    }

    /// The connection of `mark` was taken off its list to be written.
    pub(crate) fn taken(&self, mark: &mut OutboxMark) {
        mark.0 = false;
    }

    /// Writes `key` before anything else happens.
    pub(crate) fn push_urgent(&mut self, key: usize) {
        if self.urgent.last() != Some(&key) {
            self.urgent.push(key);
        }
    }

    /// The next queue to write before anything else happens.
    pub(crate) fn next_urgent(&mut self) -> Option<usize> {
        self.urgent.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_listed_once_and_answers_go_first() {
        let mut out = Outbox::default();
        let (mut three, mut five, mut seven) = Default::default();
        out.mark(&mut three, 3, 1, true);
        out.mark(&mut three, 3, 1, true);
        out.mark(&mut five, 5, 1, true);
        out.mark(&mut seven, 7, 1, false);
        assert!(out.is_marked(&three) && out.has_streams());
        assert_eq!(out.pop_response(), Some((7, 1)));
        assert_eq!(out.pop_response(), None);
        assert_eq!(out.pop_stream(), Some((3, 1)), "oldest first, once");
        out.taken(&mut three);
        assert!(!out.is_marked(&three));
        assert_eq!(out.pop_stream(), Some((5, 1)));
        assert_eq!(out.pop_stream(), None);
        // Taken off, it can be listed again.
        out.mark(&mut three, 3, 1, true);
        assert_eq!(out.pop_stream(), Some((3, 1)));
    }

    #[test]
    fn urgent_keys_are_not_repeated_back_to_back() {
        let mut out = Outbox::default();
        out.push_urgent(1);
        out.push_urgent(1);
        out.push_urgent(2);
        assert_eq!(out.next_urgent(), Some(2));
        assert_eq!(out.next_urgent(), Some(1));
        assert_eq!(out.next_urgent(), None);
    }
}
