//! Accepting connections under pressure: [`Incoming`], the accept loop every server wants.
//!
//! ```
//! use futures::{AsyncReadExt, AsyncWriteExt};
//! use solo::net::{TcpListener, TcpStream};
//!
//! solo::run(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let client = solo::Handle::current().spawn(async move {
//!         let mut s = TcpStream::connect(addr).await.unwrap();
//!         s.write_all(b"hi").await.unwrap();
//!     });
//!     let mut incoming = listener.incoming();
//!     // Errors that concern one connection are skipped, running out of fds backs off and
//!     // retries: what is left is the listener itself failing.
//!     let (mut conn, _peer) = incoming.next().await.unwrap();
//!     let mut buf = [0; 2];
//!     conn.read_exact(&mut buf).await.unwrap();
//!     assert_eq!(&buf, b"hi");
//!     client.await.unwrap();
//! }).unwrap();
//! ```
//!
//! `accept` fails for three kinds of reasons, and a server must treat them differently:
//!
//! * **The connection** went wrong before it was accepted (`ECONNABORTED`, and the network errors
//!   Linux passes on from the new socket, `EPERM` from a firewall): skip it and accept the next.
//! * **The process or the system is out of resources** (`EMFILE`, `ENFILE`, `ENOBUFS`,
//!   `ENOMEM`): the pending connection cannot be accepted *now*. Retrying at once spins at full
//!   CPU, because the listener stays readable; exiting drops every client. Mature servers wait
//!   and retry: Go's `net/http` sleeps 5 ms, doubling up to 1 s; nginx disables accepting for
//!   `accept_mutex_delay`. [`Incoming`] does the same, on the loop's timers, so the loop keeps
//!   serving the connections it has (which free fds when they close) and its signals, and tells
//!   the exception handler once per episode.
//! * **The listener itself** is broken (`EBADF`, `EINVAL`, ...): that error is returned.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{TcpListener, TcpStream, UnixListener, UnixStream};
use crate::time::Sleep;
use crate::Handle;

/// The first pause after running out of resources (Go's `net/http`).
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause: each consecutive failure doubles the pause up to this.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What an accept error means for the accept loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The connection failed before it was accepted: take the next one.
    Skip,
    /// Out of fds or memory: wait, then retry.
    BackOff,
    /// The listener is broken: give the error to the caller.
    Fatal,
}

fn classify(e: &io::Error) -> Kind {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Kind::BackOff,
        // accept(2): "Linux accept() passes already-pending network errors on the new socket
        // as an error code from accept()"; for TCP, those below, to be treated like EAGAIN.
        Some(
            libc::ECONNABORTED
            | libc::EPERM
            | libc::EPROTO
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ENETDOWN
            | libc::ECONNRESET
            | libc::ETIMEDOUT
            | libc::EINTR,
        ) => Kind::Skip,
        _ => Kind::Fatal,
    }
}

/// A listener [`Incoming`] can accept from: [`TcpListener`] or [`UnixListener`].
pub trait Listener: sealed::Sealed {
    /// What an accept yields.
    type Conn;
    #[doc(hidden)]
    fn poll_accept_conn(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Conn>>;
    #[doc(hidden)]
    fn name(&self) -> String;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::TcpListener {}
    impl Sealed for super::UnixListener {}
}

impl Listener for TcpListener {
    type Conn = (TcpStream, SocketAddr);
    fn poll_accept_conn(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Conn>> {
        self.poll_accept(cx)
    }
    fn name(&self) -> String {
        self.local_addr()
            .map_or_else(|_| "a TCP listener".into(), |a| a.to_string())
    }
}

impl Listener for UnixListener {
    type Conn = UnixStream;
    fn poll_accept_conn(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Conn>> {
        self.poll_accept(cx)
    }
    fn name(&self) -> String {
        match self.local_addr() {
            Ok(a) => match a.as_pathname() {
                Some(p) => p.display().to_string(),
                None => "a Unix listener".into(),
            },
            Err(_) => "a Unix listener".into(),
        }
    }
}

/// The connections of a listener, accepted the way a production server must: see the module
/// docs. Get one with [`TcpListener::incoming`] or [`UnixListener::incoming`]; take connections
/// with [`next`](Incoming::next), or use it as a `futures` `Stream`.
#[derive(Debug)]
pub struct Incoming<'a, L> {
    listener: &'a L,
    /// Where `incoming` was called, for the reports.
    site: &'static Location<'static>,
    /// The pause in progress, after running out of resources.
    pause: Option<Sleep>,
    /// The next pause, if the last accept failed for lack of resources.
    next_pause: Option<Duration>,
    /// Consecutive resource failures in this episode.
    failures: u64,
    skipped: u64,
}

impl<'a, L: Listener> Incoming<'a, L> {
    pub(crate) fn new(listener: &'a L, site: &'static Location<'static>) -> Incoming<'a, L> {
        Incoming {
            listener,
            site,
            pause: None,
            next_pause: None,
            failures: 0,
            skipped: 0,
        }
    }

    /// The next connection. An error means the listener itself failed; errors of one
    /// connection and running out of fds are handled here (see the module docs).
    pub async fn next(&mut self) -> io::Result<L::Conn> {
        poll_fn(|cx| self.poll_next_conn(cx)).await
    }

    /// Connections skipped because they failed before they were accepted.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Polls for the next connection (see [`next`](Incoming::next)).
    pub fn poll_next_conn(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<L::Conn>> {
        loop {
            if let Some(pause) = &mut self.pause {
                if Pin::new(pause).poll(cx).is_pending() {
                    crate::await_point::pending_at(self.site);
                    return Poll::Pending;
                }
                self.pause = None;
            }
            let err = match self.listener.poll_accept_conn(cx) {
                Poll::Pending => {
                    crate::await_point::pending_at(self.site);
                    return Poll::Pending;
                }
                Poll::Ready(Ok(conn)) => {
                    if self.failures > 0 {
                        let msg = format!(
                            "accepting on {} again, after {} failed attempt(s)",
                            self.listener.name(),
                            self.failures
                        );
                        report(self.site, &msg);
                    }
                    self.failures = 0;
                    self.next_pause = None;
                    return Poll::Ready(Ok(conn));
                }
                Poll::Ready(Err(e)) => e,
            };
            match classify(&err) {
                Kind::Skip => self.skipped += 1,
                Kind::Fatal => return Poll::Ready(Err(err)),
                Kind::BackOff => {
                    let pause = self.next_pause.unwrap_or(ACCEPT_BACKOFF_MIN);
                    if self.failures == 0 {
                        let msg = format!(
                            "accept on {} failed: {err}; the connections wait in the listen \
                             queue while solo retries, after {} ms and then up to every {} s",
                            self.listener.name(),
                            pause.as_millis(),
                            ACCEPT_BACKOFF_MAX.as_secs()
                        );
                        report(self.site, &msg);
                    }
                    self.failures += 1;
                    self.next_pause = Some((pause * 2).min(ACCEPT_BACKOFF_MAX));
                    self.pause = Some(crate::time::sleep(pause));
                }
            }
        }
    }
}

impl<L: Listener> futures_core::Stream for Incoming<'_, L> {
    type Item = io::Result<L::Conn>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_conn(cx).map(Some)
    }
}

/// Tells the exception handler of the running loop (stderr outside one).
fn report(site: &'static Location<'static>, msg: &str) {
    match Handle::try_current() {
        Some(h) => h.inner.report_notice(site, msg),
        None => eprintln!("solo: {msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_told_apart() {
        let e = io::Error::from_raw_os_error;
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify(&e(code)), Kind::BackOff, "{code}");
        }
        for code in [
            libc::ECONNABORTED,
            libc::EPERM,
            libc::EPROTO,
            libc::ENETUNREACH,
        ] {
            assert_eq!(classify(&e(code)), Kind::Skip, "{code}");
        }
        for code in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            assert_eq!(classify(&e(code)), Kind::Fatal, "{code}");
        }
        assert_eq!(classify(&io::Error::other("x")), Kind::Fatal);
    }
}
