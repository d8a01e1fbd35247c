//! Every live stream, as code on the loop reaches them: by seid, by topic,
//! or all at once. A handler has it through its [`Reply`](crate::Reply)
//! (which derefs to it); [`Handler::on_wake`](crate::Handler::on_wake)
//! gets it when another thread wakes the handler.

use crate::core::{Core, Stats};
use crate::error::SendError;
use crate::frame::{Event, Frame};
use crate::handle::Handle;

/// The loop's streams, reachable by seid or topic.
pub struct Streams<'a> {
    pub(crate) core: &'a mut Core,
    pub(crate) handle: &'a Handle,
}

impl<'a> Streams<'a> {
    pub(crate) fn new(core: &'a mut Core, handle: &'a Handle) -> Self {
        Streams { core, handle }
    }

    /// Sends an event to the stream with `seid` (the seed's `sendEventBySeid`).
    ///
    /// # Errors
    /// [`SendError::UnknownSeid`] when no live stream has that seid;
    /// [`SendError::Frame`] for an event that cannot be encoded.
    pub fn send_to(&mut self, seid: &str, event: impl Into<Event>) -> Result<(), SendError> {
        self.core.send_to(seid, &event.into())
    }

    /// Sends a pre-encoded frame to the stream with `seid`.
    ///
    /// # Errors
    /// [`SendError::UnknownSeid`] when no live stream has that seid.
    pub fn send_frame_to(&mut self, seid: &str, frame: &Frame) -> Result<(), SendError> {
        self.core.send_frame_to(seid, frame)
    }

    /// Sends an event to every stream, encoded once; answers how many.
    ///
    /// # Errors
    /// [`SendError::Frame`] for an event that cannot be encoded.
    pub fn broadcast(&mut self, event: impl Into<Event>) -> Result<usize, SendError> {
        let frame = self.core.encode(&event.into())?;
        Ok(self.core.broadcast_frame(&frame))
    }

    /// Queues a pre-encoded frame on every stream; answers how many.
    pub fn broadcast_frame(&mut self, frame: &Frame) -> usize {
        self.core.broadcast_frame(frame)
    }

    /// Sends an event to every stream subscribed to `topic`, encoded once;
    /// answers how many.
    ///
    /// # Errors
    /// [`SendError::Frame`] for an event that cannot be encoded.
    pub fn publish(&mut self, topic: &str, event: impl Into<Event>) -> Result<usize, SendError> {
        let frame = self.core.encode(&event.into())?;
        Ok(self.core.publish_frame(topic, &frame))
    }

    /// Queues a pre-encoded frame on every stream subscribed to `topic`.
    pub fn publish_frame(&mut self, topic: &str, frame: &Frame) -> usize {
        self.core.publish_frame(topic, frame)
    }

    /// Subscribes the stream with `seid` to `topic`, as
    /// [`Reply::subscribe`](crate::Reply::subscribe) does while its request
    /// is being answered: for a stream made a subscriber later (once what it
    /// missed has been sent, say).
    ///
    /// # Errors
    /// [`SendError::UnknownSeid`] when no live stream has that seid.
    pub fn subscribe_seid(&mut self, seid: &str, topic: &str) -> Result<(), SendError> {
        let key = self
            .core
            .directory
            .seids
            .get(seid)
            .ok_or(SendError::UnknownSeid)?;
        self.core.subscribe(key, topic);
        Ok(())
    }

    /// How many streams are live (the size of the seed's `clients`).
    pub fn client_count(&self) -> usize {
        self.core.directory.seids.len()
    }

    /// The seids of every live stream (the keys of the seed's `clients`).
    pub fn clients(&self) -> impl Iterator<Item = &str> {
        self.core.directory.seids.iter().map(|(s, _)| s)
    }

    /// The topics the stream with `seid` is subscribed to.
    pub fn topics_of(&self, seid: &str) -> Vec<&str> {
        self.core.topics_of(seid)
    }

    /// Whether a live stream has `seid`.
    pub fn is_live(&self, seid: &str) -> bool {
        self.core.directory.seids.get(seid).is_some()
    }

    /// The loop's counters.
    pub fn stats(&self) -> Stats {
        self.core.stats
    }

    /// A handle to the loop, to keep or give to another thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Ends the stream with `seid`.
    ///
    /// # Errors
    /// [`SendError::UnknownSeid`] when no live stream has that seid.
    pub fn end_seid(&mut self, seid: &str) -> Result<(), SendError> {
        self.core.end_seid(seid)
    }
}
