//! The `Send + Sync` handle other threads use to reach the loop: each call
//! becomes a command on a channel, and a `mio::Waker` wakes the loop to run
//! it through the same paths a handler uses.
//!
//! # From the loop's own thread
//!
//! A handler runs on the loop's thread, so a call that waits for the loop
//! ([`Handle::send_to`], [`Handle::end`],
//! [`Deferred::answer`](crate::Deferred::answer)) would wait for itself
//! forever. Those calls check the thread and refuse there with
//! [`SendError::OnLoopThread`] (or [`AnswerError::OnLoopThread`]); a
//! handler uses [`Reply`](crate::Reply)'s methods of the same names, which
//! act at once. The calls that do not wait ([`Handle::broadcast`],
//! [`Handle::publish`], [`Handle::shutdown`],
//! [`Deferred::answer_nowait`](crate::Deferred::answer_nowait)) work
//! anywhere: from the loop's thread they run once the handler returns.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::core::{Core, Shared};
use crate::error::{AnswerError, SendError};
use crate::frame::Event;

/// A deferred answer, run on the loop with its state: `Err(Gone)` when the
/// request can no longer be answered.
pub(crate) type Job = Box<dyn FnOnce(&mut Core, &Handle) -> Result<(), AnswerError> + Send>;

/// What another thread asks of the loop.
pub(crate) enum Command {
    Answer {
        job: Job,
        /// Where to say how it went, for a caller that waits.
        done: Option<mpsc::SyncSender<Result<(), AnswerError>>>,
    },
    SendTo {
        seid: String,
        event: Event,
        answer: mpsc::SyncSender<Result<(), SendError>>,
    },
    End {
        seid: String,
        answer: mpsc::SyncSender<Result<(), SendError>>,
    },
    Broadcast(Event),
    Publish {
        topic: String,
        event: Event,
    },
    Shutdown {
        grace: Option<Duration>,
    },
    /// Call the handler's `on_wake`.
    Wake,
}

/// A cheap, cloneable handle to a running server, usable from any thread.
///
/// ```no_run
/// use sseloop::{Event, Server};
/// let server = Server::builder().bind("127.0.0.1:0")?.build(|_req: &sseloop::Request, reply: &mut sseloop::Reply<'_>| {
///     let _ = reply.stream();
/// })?;
/// let handle = server.handle();
/// std::thread::spawn(move || {
///     handle.broadcast(Event::new("tick")).ok();
///     handle.shutdown().ok();
/// });
/// server.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    waker: Arc<mio::Waker>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("clients", &self.client_count())
            .finish()
    }
}

impl Handle {
    pub(crate) fn new(
        tx: mpsc::Sender<Command>,
        waker: Arc<mio::Waker>,
        shared: Arc<Shared>,
    ) -> Self {
        Handle { tx, waker, shared }
    }

    pub(crate) fn submit(&self, command: Command) -> Result<(), SendError> {
        self.tx.send(command).map_err(|_| SendError::Stopped)?;
        self.waker.wake().map_err(|_| SendError::Stopped)
    }

    /// Whether the caller is the loop's own thread, where waiting for the
    /// loop would never end.
    pub(crate) fn on_loop_thread(&self) -> bool {
        self.shared.on_loop_thread()
    }

    /// Submits a command and waits for the loop's answer; refused on the
    /// loop's own thread.
    fn ask(
        &self,
        make: impl FnOnce(mpsc::SyncSender<Result<(), SendError>>) -> Command,
    ) -> Result<(), SendError> {
        if self.on_loop_thread() {
            return Err(SendError::OnLoopThread);
        }
        let (answer, result) = mpsc::sync_channel(1);
        self.submit(make(answer))?;
        result.recv().unwrap_or(Err(SendError::Stopped))
    }

    /// Sends an event to the stream with `seid` and waits for the loop to
    /// queue it.
    ///
    /// # Errors
    /// [`SendError::UnknownSeid`], [`SendError::Frame`] (checked on the
    /// calling thread), [`SendError::Stopped`], or
    /// [`SendError::OnLoopThread`] from a handler (use
    /// [`Streams::send_to`](crate::Streams::send_to), through the `Reply` there).
    pub fn send_to(&self, seid: &str, event: impl Into<Event>) -> Result<(), SendError> {
        let event = event.into();
        event.validate()?;
        self.ask(|answer| Command::SendTo {
            seid: seid.to_owned(),
            event,
            answer,
        })
    }

    /// Ends the stream with `seid` and waits for the loop to do it.
    ///
    /// # Errors
    /// [`SendError::UnknownSeid`], [`SendError::Stopped`], or
    /// [`SendError::OnLoopThread`] from a handler (use
    /// [`Reply::end_seid`](crate::Reply::end_seid) there).
    pub fn end(&self, seid: &str) -> Result<(), SendError> {
        self.ask(|answer| Command::End {
            seid: seid.to_owned(),
            answer,
        })
    }

    /// Sends an event to every stream (encoded once, in the loop). Does not
    /// wait.
    ///
    /// # Errors
    /// [`SendError::Frame`] or [`SendError::Stopped`].
    pub fn broadcast(&self, event: impl Into<Event>) -> Result<(), SendError> {
        let event = event.into();
        event.validate()?;
        self.submit(Command::Broadcast(event))
    }

    /// Sends an event to every stream subscribed to `topic`. Does not wait.
    ///
    /// # Errors
    /// [`SendError::Frame`] or [`SendError::Stopped`].
    pub fn publish(&self, topic: &str, event: impl Into<Event>) -> Result<(), SendError> {
        let event = event.into();
        event.validate()?;
        self.submit(Command::Publish {
            topic: topic.to_owned(),
            event,
        })
    }

    /// Wakes the handler: the loop calls
    /// [`Handler::on_wake`](crate::Handler::on_wake) on its own thread as
    /// soon as it can. Does not wait. For a thread that has something for
    /// the handler (on a channel of the program's own), to have it acted on
    /// in the loop.
    ///
    /// # Errors
    /// [`SendError::Stopped`] if the server has stopped.
    pub fn wake(&self) -> Result<(), SendError> {
        self.submit(Command::Wake)
    }

    /// How many streams are live.
    pub fn client_count(&self) -> usize {
        self.shared.clients.load(Ordering::Relaxed)
    }

    /// Shuts the server down gracefully within its configured grace period:
    /// stop accepting, end every stream cleanly, flush, return from `run`.
    ///
    /// # Errors
    /// [`SendError::Stopped`] if it already stopped.
    pub fn shutdown(&self) -> Result<(), SendError> {
        self.submit(Command::Shutdown { grace: None })
    }

    /// As [`shutdown`](Handle::shutdown), with its own grace period.
    ///
    /// # Errors
    /// [`SendError::Stopped`] if it already stopped.
    pub fn shutdown_within(&self, grace: Duration) -> Result<(), SendError> {
        self.submit(Command::Shutdown { grace: Some(grace) })
    }
}
