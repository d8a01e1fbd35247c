//! Who a send, a broadcast and a publish reach: the seid → connection index
//! and every topic's subscribers. A stream's entries are made when it opens
//! and joins topics, and removed together, from the [`Stream`] its
//! connection hands back when it ends.

use std::rc::Rc;

use crate::conn::Stream;
use crate::seid::SeidIndex;
use crate::topic::{Membership, Topics};

/// The seid and topic indexes.
#[derive(Default)]
pub(crate) struct Directory {
    pub seids: SeidIndex,
    pub topics: Topics,
}

impl Directory {
    /// Takes an ended stream off both indexes: its seid (answered) is
    /// free, and no topic holds it.
    pub(crate) fn forget(&mut self, stream: Stream) -> Rc<str> {
        self.seids.release(&stream.seid);
        for membership in stream.topics {
            self.topics.leave(membership);
        }
        stream.seid
    }

    /// Subscribes connection `key` (of `generation`) to `topic`, unless one
    /// of its `memberships` is that topic already.
    pub(crate) fn join(
        &mut self,
        memberships: &[Membership],
        topic: &str,
        key: usize,
        generation: u64,
    ) -> Option<Membership> {
        if memberships.iter().any(|&m| self.topics.name(m) == topic) {
            return None;
        }
        Some(self.topics.join(topic, key, generation))
    }

    /// The names of the topics of `memberships`.
    pub(crate) fn names(&self, memberships: &[Membership]) -> Vec<&str> {
        memberships.iter().map(|&m| self.topics.name(m)).collect()
    }
}
