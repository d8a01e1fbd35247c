//! Output a connection has not written yet: frames queued by reference,
//! heads and bodies, and the one `write` (or `writev`) that sends them.
//! Pure apart from [`WriteQueue::flush`], which writes to whatever
//! `io::Write` the I/O shell hands it (the socket, in `server.rs`; a
//! throttled buffer, in the tests).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::rc::Rc;

use crate::frame::Frame;

/// One piece of queued output.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// A shared frame, written as a chunk (`true`) or as bare SSE bytes.
    Frame(Frame, bool),
    Owned(Vec<u8>),
    /// Bytes many connections queue alike (this second's stream head).
    Shared(Rc<[u8]>),
    Static(&'static [u8]),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Frame(f, chunked) => f.wire(*chunked),
            Chunk::Owned(v) => v,
            Chunk::Shared(s) => s,
            Chunk::Static(s) => s,
        }
    }
}

/// The most slices handed to one `writev`; far above what a flush needs
/// and well under every platform's `IOV_MAX`.
const MAX_IOVECS: usize = 64;

/// A flush of several chunks that together are at most this many bytes is
/// copied into one contiguous buffer and written with one `write` instead
/// of a `writev` of many slices. The kernel pays for each slice of a
/// `writev` (a user-copy with its checks, per slice); copying a few hundred
/// bytes here costs less. Measured in BENCHMARKS.md ("Gathering small
/// writes").
const GATHER_MAX: usize = 4096;

/// Emptied queue buffers, kept for the next queue that needs one.
///
/// A queue gives its buffer back as soon as it is written out, so an idle
/// stream holds no allocation; a fan-out that keeps thousands of queues
/// busy then reuses these instead of allocating and growing a buffer per
/// stream per event (that churn was a tenth of the loop's CPU in a 10 000
/// subscriber fan-out). Bounded: at most [`SpareBuffers::MAX_BUFFERS`]
/// buffers of at most [`SpareBuffers::MAX_CAPACITY`] chunks are kept.
#[derive(Debug, Default)]
pub(crate) struct SpareBuffers {
    buffers: Vec<VecDeque<Chunk>>,
    /// Where a flush of many small chunks gathers them into one slice (see
    /// [`GATHER_MAX`]); one buffer for the whole loop, kept between flushes.
    gather: Vec<u8>,
}

impl SpareBuffers {
    const MAX_BUFFERS: usize = 1024;
    const MAX_CAPACITY: usize = 64;
    const MIN_CAPACITY: usize = 8;

    fn take(&mut self) -> VecDeque<Chunk> {
        self.buffers
            .pop()
            .unwrap_or_else(|| VecDeque::with_capacity(Self::MIN_CAPACITY))
    }

    fn give(&mut self, buffer: VecDeque<Chunk>) {
        debug_assert!(buffer.is_empty());
        if buffer.capacity() > 0
            && buffer.capacity() <= Self::MAX_CAPACITY
            && self.buffers.len() < Self::MAX_BUFFERS
        {
            self.buffers.push(buffer);
        }
    }
}

/// Output the socket has not taken yet. Frames are queued by reference, so
/// queueing a broadcast copies nothing; one flush is one `write` (or
/// `writev`) of everything queued.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    offset: usize,
    /// Bytes queued and not yet written.
    len: usize,
}

/// What one flush did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Flushed {
    pub bytes: usize,
    /// Frames (not heads or other bytes) completely written.
    pub frames: usize,
    pub syscalls: usize,
    /// Bytes the transport took but the socket has not yet (a TLS
    /// session's records); they count as still queued.
    pub held: usize,
}

impl WriteQueue {
    /// Queues `chunk`; an empty queue borrows a buffer from `spare`.
    pub(crate) fn push(&mut self, chunk: Chunk, spare: &mut SpareBuffers) {
        let n = chunk.bytes().len();
        if n > 0 {
            if self.chunks.capacity() == 0 {
                self.chunks = spare.take();
            }
            self.len += n;
            self.chunks.push_back(chunk);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops everything queued (the connection is going away).
    pub(crate) fn clear(&mut self, spare: &mut SpareBuffers) {
        let mut chunks = std::mem::take(&mut self.chunks);
        chunks.clear();
        spare.give(chunks);
        *self = WriteQueue::default();
    }

    /// Writes as much as `w` takes. Stops at `WouldBlock` or at a short
    /// write (the socket's buffer is full, so the next write would only
    /// say `WouldBlock`; writable readiness will bring us back).
    /// Once everything is written the buffer goes back to `spare`.
    pub(crate) fn flush(
        &mut self,
        w: &mut impl Write,
        spare: &mut SpareBuffers,
    ) -> io::Result<Flushed> {
        let mut done = Flushed::default();
        while !self.chunks.is_empty() {
            // The unwritten bytes of each chunk one write can take.
            let offset = self.offset;
            let pending = || {
                let chunks = self.chunks.iter().take(MAX_IOVECS).enumerate();
                chunks.map(move |(i, chunk)| unwritten(offset, i, chunk))
            };
            let count = self.chunks.len().min(MAX_IOVECS);
            let want: usize = pending().map(<[u8]>::len).sum();
            // The slice array is only built for a large `writev`: filling
            // all 64 slots first was a fifth of the write path under wrk.
            let written = if count == 1 {
                w.write(unwritten(offset, 0, &self.chunks[0]))
            } else if want <= GATHER_MAX {
                let gather = &mut spare.gather;
                gather.clear();
                for bytes in pending() {
                    gather.extend_from_slice(bytes);
                }
                w.write(gather)
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                for (slot, bytes) in slices.iter_mut().zip(pending()) {
                    *slot = IoSlice::new(bytes);
                }
                w.write_vectored(&slices[..count])
            };
            let n = match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                // Not an error: the socket's buffer is full for now.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Not an error: a signal arrived mid-call; try again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            done.syscalls += 1;
            done.bytes += n;
            self.advance(n, &mut done.frames);
            if n < want {
                break;
            }
        }
        if self.chunks.is_empty() {
            spare.give(std::mem::take(&mut self.chunks));
        }
        Ok(done)
    }

    /// Writes up to `max` queued bytes with one `write` of one contiguous
    /// copy: for a writer that copies anyway, a TLS session, which makes
    /// one record of each write (up to 16 KiB a record), where slices
    /// would each be written on their own. Once everything is written the
    /// buffer goes back to `spare`.
    pub(crate) fn flush_gathered(
        &mut self,
        w: &mut impl Write,
        spare: &mut SpareBuffers,
        max: usize,
    ) -> io::Result<Flushed> {
        let mut done = Flushed::default();
        let gather = &mut spare.gather;
        gather.clear();
        for (i, chunk) in self.chunks.iter().enumerate() {
            let bytes = unwritten(self.offset, i, chunk);
            let room = max - gather.len();
            gather.extend_from_slice(&bytes[..bytes.len().min(room)]);
            if gather.len() == max {
                break;
            }
        }
        if gather.is_empty() {
            return Ok(done);
        }
        let n = loop {
            match w.write(gather) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => break n,
                // Not an error: the writer takes nothing more for now.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(done),
                // Not an error: a signal arrived mid-call; try again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        done.syscalls = 1;
        done.bytes = n;
        self.advance(n, &mut done.frames);
        if self.chunks.is_empty() {
            spare.give(std::mem::take(&mut self.chunks));
        }
        Ok(done)
    }

    fn advance(&mut self, mut n: usize, finished: &mut usize) {
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front().map_or(0, |c| c.bytes().len());
            let left = front - self.offset;
            if n >= left {
                n -= left;
                self.offset = 0;
                if let Some(Chunk::Frame(..)) = self.chunks.pop_front() {
                    *finished += 1;
                }
            } else {
                self.offset += n;
                n = 0;
            }
        }
    }
}

/// The bytes of the `i`th queued chunk not written yet: all of it but for
/// the front chunk, of which the first `offset` bytes are gone.
fn unwritten(offset: usize, i: usize, chunk: &Chunk) -> &[u8] {
    &chunk.bytes()[if i == 0 { offset } else { 0 }..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Event;

    /// A writer that takes at most `room` bytes, then says WouldBlock.
    struct Throttled {
        out: Vec<u8>,
        room: usize,
        calls: usize,
        /// How many slices each call was given.
        slices: Vec<usize>,
    }

    impl Throttled {
        fn new(room: usize) -> Self {
            Throttled {
                out: Vec::new(),
                room,
                calls: 0,
                slices: Vec::new(),
            }
        }
    }

    impl Write for Throttled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            self.slices.push(bufs.len());
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.room);
                self.out.extend_from_slice(&b[..take]);
                self.room -= take;
                n += take;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn many_frames_one_write() {
        let mut q = WriteQueue::default();
        let mut spare = SpareBuffers::default();
        let f = Event::new("x").encode().unwrap();
        for _ in 0..10 {
            q.push(Chunk::Frame(f.clone(), true), &mut spare);
        }
        let mut w = Throttled::new(usize::MAX);
        let done = q.flush(&mut w, &mut spare).unwrap();
        assert_eq!((done.syscalls, done.frames, w.calls), (1, 10, 1));
        assert_eq!(w.out, f.chunked().repeat(10));
        assert!(q.is_empty());
        // The written-out queue holds no buffer; the next one reuses it.
        assert_eq!((q.chunks.capacity(), spare.buffers.len()), (0, 1));
        q.push(Chunk::Frame(f.clone(), true), &mut spare);
        assert_eq!(spare.buffers.len(), 0);
    }

    #[test]
    fn partial_writes_resume_exactly() {
        let mut q = WriteQueue::default();
        let mut spare = SpareBuffers::default();
        q.push(Chunk::Static(b"abc"), &mut spare);
        q.push(Chunk::Owned(b"defgh".to_vec()), &mut spare);
        q.push(Chunk::Static(b""), &mut spare);
        q.push(Chunk::Static(b"ij"), &mut spare);
        let mut w = Throttled::new(4);
        let done = q.flush(&mut w, &mut spare).unwrap();
        assert_eq!((done.bytes, done.frames, done.syscalls), (4, 0, 1));
        assert_eq!(q.len(), 6);
        w.room = 0;
        assert_eq!(q.flush(&mut w, &mut spare).unwrap(), Flushed::default());
        w.room = 100;
        q.flush(&mut w, &mut spare).unwrap();
        assert_eq!(w.out, b"abcdefghij");
        assert!(q.is_empty());
    }

    #[test]
    fn small_chunks_are_gathered_into_one_slice_and_large_ones_are_not() {
        let mut spare = SpareBuffers::default();
        let small = Event::new("x").encode().unwrap();
        let large = Event::new("y".repeat(GATHER_MAX)).encode().unwrap();
        let mut q = WriteQueue::default();
        for _ in 0..3 {
            q.push(Chunk::Frame(small.clone(), true), &mut spare);
        }
        let mut w = Throttled::new(usize::MAX);
        q.flush(&mut w, &mut spare).unwrap();
        assert_eq!(w.slices, [1]);
        assert_eq!(w.out, small.chunked().repeat(3));
        // Past GATHER_MAX the slices go to the kernel as they are, so a
        // large frame is never copied twice.
        for frame in [&small, &large, &small] {
            q.push(Chunk::Frame(frame.clone(), true), &mut spare);
        }
        let mut w = Throttled::new(usize::MAX);
        q.flush(&mut w, &mut spare).unwrap();
        assert_eq!(w.slices, [3]);
        assert_eq!(
            w.out,
            [small.chunked(), large.chunked(), small.chunked()].concat()
        );
    }

    #[test]
    fn a_gathered_flush_is_one_contiguous_write_up_to_its_max() {
        let mut q = WriteQueue::default();
        let mut spare = SpareBuffers::default();
        let f = Event::new("x").encode().unwrap();
        for _ in 0..200 {
            q.push(Chunk::Frame(f.clone(), true), &mut spare);
        }
        let whole = f.chunked().repeat(200);
        let mut w = Throttled::new(usize::MAX);
        // 200 chunks, far more than one writev's slices: one slice of 100 bytes.
        let done = q.flush_gathered(&mut w, &mut spare, 100).unwrap();
        assert_eq!(
            (done.bytes, done.syscalls, w.slices.clone()),
            (100, 1, vec![1])
        );
        // A writer that takes part of it: the queue resumes exactly there.
        w.room = 7;
        let done = q.flush_gathered(&mut w, &mut spare, usize::MAX).unwrap();
        assert_eq!(done.bytes, 7);
        w.room = 0;
        assert_eq!(
            q.flush_gathered(&mut w, &mut spare, usize::MAX).unwrap(),
            Flushed::default()
        );
        w.room = usize::MAX;
        let done = q.flush_gathered(&mut w, &mut spare, usize::MAX).unwrap();
        assert_eq!(done.bytes, whole.len() - 107);
        assert_eq!(w.out, whole);
        assert!(q.is_empty());
        assert_eq!(q.chunks.capacity(), 0, "the emptied queue holds no buffer");
    }
}
