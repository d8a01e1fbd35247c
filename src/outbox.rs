//! Which connections have output to write, and in what order: plain
//! answers first, then streams oldest first, and the queues grown too long
//! to wait for the end of the pass. Also the buffers the write queues
//! borrow. Pure: keys and generations in, keys out.

use std::collections::VecDeque;

use crate::queue::SpareBuffers;

/// A connection on a list, with the generation it had then: an entry left
/// by a connection since removed is skipped.
pub(crate) type Entry = (usize, u64);

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
    /// By key: whether that connection is on `streams` or `responses`.
    marked: Vec<bool>,
    /// Write-queue buffers the connections lend each other.
    pub spare: SpareBuffers,
}

impl Outbox {
    /// Puts connection `key` (of `generation`) on the list for its kind,
    /// unless it is on one already.
    pub(crate) fn mark(&mut self, key: usize, generation: u64, streaming: bool) {
        if self.marked.len() <= key {
            self.marked.resize(key + 1, false);
        }
        if self.marked[key] {
            return;
        }
        self.marked[key] = true;
        if streaming {
            self.streams.push_back((key, generation));
        } else {
            self.responses.push((key, generation));
        }
    }

    /// Whether `key` is on a list.
    pub(crate) fn is_marked(&self, key: usize) -> bool {
        self.marked.get(key).copied().unwrap_or(false)
    }

    /// Whether streams wait for their write.
    pub(crate) fn has_streams(&self) -> bool {
        !self.streams.is_empty()
    }

    /// The next connection with a plain answer to write; `is_current`
    /// says whether an entry is still its connection.
    pub(crate) fn next_response(&mut self, is_current: impl Fn(Entry) -> bool) -> Option<usize> {
        while let Some(entry) = self.responses.pop() {
            if let Some(key) = self.take(entry, &is_current) {
                return Some(key);
            }
        }
        None
    }

    /// The next stream with output to write, oldest first.
    pub(crate) fn next_stream(&mut self, is_current: impl Fn(Entry) -> bool) -> Option<usize> {
        while let Some(entry) = self.streams.pop_front() {
            if let Some(key) = self.take(entry, &is_current) {
                return Some(key);
            }
        }
        None
    }

    /// An entry off a list: its key, unmarked, if it is still current.
    fn take(&mut self, entry: Entry, is_current: impl Fn(Entry) -> bool) -> Option<usize> {
        if !is_current(entry) {
            return None;
        }
        self.marked[entry.0] = false;
        Some(entry.0)
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

    /// The connection at `key` is gone: the next one there starts unmarked
    /// (its entries, of an older generation, are skipped).
    pub(crate) fn forget(&mut self, key: usize) {
        if let Some(marked) = self.marked.get_mut(key) {
            *marked = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_listed_once_and_answers_go_first() {
        let mut out = Outbox::default();
        let all = |_: Entry| true;
        out.mark(3, 1, true);
        out.mark(3, 1, true);
        out.mark(5, 1, true);
        out.mark(7, 1, false);
        assert!(out.is_marked(3) && out.has_streams());
        assert_eq!(out.next_response(all), Some(7));
        assert_eq!(out.next_response(all), None);
        assert_eq!(out.next_stream(all), Some(3), "oldest first");
        assert!(!out.is_marked(3));
        assert_eq!(out.next_stream(all), Some(5));
        assert_eq!(out.next_stream(all), None);
    }

    #[test]
    fn an_entry_of_a_removed_connection_is_skipped() {
        let mut out = Outbox::default();
        out.mark(2, 1, true);
        out.forget(2);
        out.mark(2, 2, true); // the slot's next connection
        let generation_2 = |(_, g): Entry| g == 2;
        assert_eq!(out.next_stream(generation_2), Some(2));
        assert_eq!(out.next_stream(generation_2), None);
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
