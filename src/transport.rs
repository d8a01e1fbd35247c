//! The byte stream under one connection: a plain TCP socket or, with the
//! `tls` feature, a rustls session over one. Part of the I/O shell with
//! `server.rs`: nothing else names a socket or a TLS session.
//!
//! Both kinds answer the same three things the loop asks: read what the
//! client sent (plaintext), write a connection's queue, and end the write
//! side. On the plain path the queue goes to the socket in one `write` or
//! `writev`. On the TLS path the queue's bytes are copied into one write
//! into the session, which encrypts them as one record (up to 16 KiB a
//! record), and the records go to the socket; what the socket refused stays in the
//! session, is reported as [`Flushed::held`], and counts against the
//! client's queue cap like the queue itself, so a slow TLS client cannot
//! hide its backlog in its session.

use std::io::{self, Read};
use std::net::Shutdown;

use mio::net::TcpStream;

use crate::queue::{Flushed, SpareBuffers, WriteQueue};

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Got {
    /// `n` bytes of the client's plaintext; `more`: the socket may hold
    /// more right now (a read that filled the buffer, or any TLS read).
    Bytes { n: usize, more: bool },
    /// The client will send nothing more.
    Eof,
    /// Nothing for now; readiness will say when.
    Nothing,
}

/// One connection's socket, plain or wrapped in TLS.
pub(crate) enum Transport {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tls::TlsStream>),
}

impl Transport {
    /// The socket, to register with the poller.
    pub(crate) fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(socket) => socket,
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => &mut tls.socket,
        }
    }

    /// Whether this is a TLS session.
    pub(crate) fn is_tls(&self) -> bool {
        !matches!(self, Transport::Plain(_))
    }

    /// Reads the client's next bytes into `buf`.
    ///
    /// # Errors
    /// A socket error, or (TLS) a handshake or record the session refused:
    /// `InvalidData`, after the session's alert was sent.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<Got> {
        match self {
            Transport::Plain(socket) => loop {
                return match socket.read(buf) {
                    Ok(0) => Ok(Got::Eof),
                    Ok(n) => Ok(Got::Bytes {
                        n,
                        more: n == buf.len(),
                    }),
                    // Not an error: the socket has nothing more for now.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Got::Nothing),
                    // Not an error: a signal arrived mid-call.
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
            },
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => tls.read(buf),
        }
    }

    /// Whether the transport holds output the socket has not taken (TLS
    /// records: a handshake reply, or encrypted queue bytes).
    pub(crate) fn has_held_output(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => tls.session.wants_write(),
        }
    }

    /// Writes as much of `queue` as the socket takes.
    ///
    /// # Errors
    /// A socket error other than `WouldBlock`.
    pub(crate) fn flush(
        &mut self,
        queue: &mut WriteQueue,
        spare: &mut SpareBuffers,
    ) -> io::Result<Flushed> {
        match self {
            Transport::Plain(socket) => queue.flush(socket, spare),
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => tls.flush(queue, spare),
        }
    }

    /// Ends the write side cleanly: a TLS `close_notify`, then the TCP
    /// half-close (the client's EOF is awaited by the caller).
    pub(crate) fn shutdown_write(&mut self) {
        #[cfg(feature = "tls")]
        if let Transport::Tls(tls) = self {
            tls.session.send_close_notify();
            let _ = tls.send_held();
        }
        let _ = self.socket().shutdown(Shutdown::Write);
    }

    /// The connection is being dropped. A TLS session that has nothing
    /// else to send says `close_notify` first (best effort: one write), so
    /// the client can tell a clean end from a cut one.
    pub(crate) fn close(&mut self) {
        #[cfg(feature = "tls")]
        if let Transport::Tls(tls) = self {
            if !tls.session.wants_write() {
                tls.session.send_close_notify();
                let _ = tls.send_held();
            }
        }
    }
}

#[cfg(feature = "tls")]
pub(crate) use tls::TlsAcceptor;

#[cfg(feature = "tls")]
mod tls {
    use std::io::{self, Read};
    use std::sync::Arc;

    use mio::net::TcpStream;
    use rustls::{ServerConfig, ServerConnection};

    use super::Got;
    use crate::queue::{Flushed, SpareBuffers, WriteQueue};

    /// The most encrypted bytes a session holds that the socket has not
    /// taken (rustls' own default). The queue is moved into the session
    /// only as far as this allows, so the rest stays in the queue, shared
    /// and unencrypted, where the cap sees it.
    const HELD_LIMIT: usize = 64 * 1024;

    /// Makes a TLS session for each accepted connection.
    #[derive(Clone)]
    pub(crate) struct TlsAcceptor {
        config: Arc<ServerConfig>,
    }

    impl TlsAcceptor {
        /// Serves `config`, offering ALPN `http/1.1` alone: this server
        /// speaks nothing else, and a client told `h2` would speak HTTP/2.
        pub(crate) fn new(mut config: ServerConfig) -> Self {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            TlsAcceptor {
                config: Arc::new(config),
            }
        }

        /// A session for a new connection on `socket`.
        pub(crate) fn accept(&self, socket: TcpStream) -> io::Result<TlsStream> {
            let mut session =
                ServerConnection::new(self.config.clone()).map_err(io::Error::other)?;
            session.set_buffer_limit(Some(HELD_LIMIT));
            Ok(TlsStream { socket, session })
        }
    }

    /// A socket and its TLS session.
    pub(crate) struct TlsStream {
        pub(super) socket: TcpStream,
        pub(super) session: ServerConnection,
    }

    impl TlsStream {
        /// The next plaintext the client sent, reading and decrypting
        /// records (and answering the handshake) until some comes, the
        /// socket is empty, or the client is gone.
        pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<Got> {
            loop {
                match self.session.reader().read(buf) {
                    Ok(0) => return Ok(Got::Eof), // close_notify received
                    Ok(n) => return Ok(Got::Bytes { n, more: true }),
                    // Not an error: no plaintext is decrypted yet.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The socket said EOF (rustls remembers it) without a
                    // close_notify: as EOF (a request cut short is never
                    // complete anyway).
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Got::Eof),
                    Err(e) => return Err(e),
                }
                match self.session.read_tls(&mut self.socket) {
                    Ok(_) => {}
                    // Not an error: the socket has nothing more for now.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Got::Nothing),
                    // Not an error: a signal arrived mid-call.
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
                if let Err(refused) = self.session.process_new_packets() {
                    // The alert rustls queued tells the client why.
                    let _ = self.send_held();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, refused));
                }
                // Handshake replies go out at once; what the socket refuses
                // waits for writable readiness.
                self.send_held()?;
            }
        }

        /// Writes the session's records to the socket until it is empty
        /// or the socket is full. Answers the writes made.
        pub(super) fn send_held(&mut self) -> io::Result<usize> {
            let mut writes = 0;
            while self.session.wants_write() {
                match self.session.write_tls(&mut self.socket) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => writes += 1,
                    // Not an error: the socket's buffer is full for now.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // Not an error: a signal arrived mid-call.
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(writes)
        }

        /// Sends what the session holds, then encrypts the queue into it,
        /// as much as [`HELD_LIMIT`] allows, and sends that, until the
        /// queue is empty or the socket is full. `Flushed::bytes` counts
        /// the queue's (plaintext) bytes taken, `held` the encrypted bytes
        /// the socket has not taken yet.
        pub(super) fn flush(
            &mut self,
            queue: &mut WriteQueue,
            spare: &mut SpareBuffers,
        ) -> io::Result<Flushed> {
            let mut done = Flushed::default();
            loop {
                done.syscalls += self.send_held()?;
                if self.session.wants_write() || queue.is_empty() {
                    break;
                }
                // One write into the session: one record for everything
                // queued (or up to 16 KiB a record past that).
                let moved = queue.flush_gathered(&mut self.session.writer(), spare, HELD_LIMIT)?;
                done.bytes += moved.bytes;
                done.frames += moved.frames;
                if moved.bytes == 0 {
                    break;
                }
            }
            done.held = self.held_bytes();
            Ok(done)
        }

        /// The encrypted bytes the socket has not taken yet. rustls tells
        /// the count only through `process_new_packets`, which with nothing
        /// new read (the read path processes every record it reads) only
        /// reports it.
        fn held_bytes(&mut self) -> usize {
            if !self.session.wants_write() {
                return 0;
            }
            match self.session.process_new_packets() {
                Ok(state) => state.tls_bytes_to_write(),
                // Refused earlier: nothing more will be sent anyway.
                Err(_) => 0,
            }
        }
    }
}
