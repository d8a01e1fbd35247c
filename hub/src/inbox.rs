//! What the threads that talk to Redis hand the loop: updates read from
//! the log, announcements, commands routed from other hubs.

use serde::{Deserialize, Serialize};

use crate::update::Entry;

/// What the reader hands the loop, in log order.
#[derive(Debug)]
pub enum Incoming {
    /// An update from the log: its id, and the entry. `live` is false for
    /// the history loaded at start (kept for replay, not delivered).
    Update {
        /// The update's id.
        id: String,
        /// What was published.
        entry: Entry,
        /// Whether to deliver it (false: history loaded at start).
        live: bool,
    },
    /// The log was lost (another epoch): reset live streams, forget history.
    Lost,
    /// An update to deliver live and not keep (a subscription event, which
    /// must never push a published update out of the history).
    Announcement(Entry),
    /// Another hub routed a command to a client of this one.
    Remote {
        /// The client.
        seid: String,
        /// What to do.
        remote: Remote,
    },
}

/// What to do to a client on another hub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remote {
    /// Send it an event.
    Send {
        /// The event name.
        event: Option<String>,
        /// The event id.
        id: Option<String>,
        /// The data.
        data: String,
        /// The `retry` field.
        retry: Option<u64>,
    },
    /// End its stream.
    End,
}
