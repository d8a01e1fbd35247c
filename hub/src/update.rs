//! An update, as every protocol decodes it and every subscriber gets it:
//! what a publish describes ([`Entry`], also what the Redis log keeps), and
//! the update made of it once it has an id ([`Update`], its frame encoded
//! once).

use serde::{Deserialize, Serialize};
use sseloop::{Event, Frame};

/// What a publish describes (native or Mercure), before it has an id;
/// what the Redis log keeps of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The publisher's id, if it gave one; else the log entry's id is the
    /// update's id.
    pub id: Option<String>,
    /// The update's topics (none: a native broadcast).
    pub topics: Vec<String>,
    /// Whether it is private.
    pub private: bool,
    /// The event name.
    pub event: Option<String>,
    /// The data.
    pub data: String,
    /// The `retry` field.
    pub retry: Option<u64>,
}

/// One published update, as every subscriber gets it.
#[derive(Debug)]
pub struct Update {
    /// Its id (the `id:` field of its frame).
    pub id: String,
    /// Its topics, the first canonical, the others alternates; none for a
    /// native broadcast (which every native subscriber receives).
    pub topics: Vec<String>,
    /// Whether only subscribers authorized for one of its topics get it.
    pub private: bool,
    /// The SSE frame, encoded once.
    pub frame: Frame,
}

impl Update {
    /// The update `entry` makes with `id`, its frame encoded once.
    ///
    /// # Errors
    /// Why the event cannot be encoded (a field the SSE format cannot
    /// carry).
    pub fn new(id: String, entry: Entry) -> Result<Update, sseloop::FrameError> {
        let frame = event_of(Some(&id), &entry).encode()?;
        Ok(Update {
            id,
            topics: entry.topics,
            private: entry.private,
            frame,
        })
    }
}

/// The event `entry` describes, with `id` (none: no `id` field).
pub fn event_of(id: Option<&str>, entry: &Entry) -> Event {
    let mut event = Event::new(entry.data.as_str());
    if let Some(name) = &entry.event {
        event = event.event(name.as_str());
    }
    if let Some(id) = id {
        event = event.id(id);
    }
    if let Some(retry) = entry.retry {
        event = event.retry(retry);
    }
    event
}
