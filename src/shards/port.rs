//! [`Port`]: one listening address shared by the shards, in one of two ways ([`Share`]), with
//! per-shard counts of accepted and open connections ([`PortStats`]).
//!
//! * [`Share::ReusePort`]: every shard has its own socket, bound to the same address with
//!   `SO_REUSEPORT`; the kernel hashes each new connection (its addresses and ports) to one of
//!   them. Nothing crosses threads, but the spread is only as even as the hash: a few
//!   connections, or long-lived ones of uneven weight, can leave one shard with more than its
//!   share (why Seastar stopped making it the default). A socket that closes takes the
//!   connections waiting in its own backlog with it.
//! * [`Share::Acceptor`]: shard 0 owns the one socket; a task there accepts and hands each
//!   connection (a `std` stream, which is `Send`) to the shard with the fewest open connections,
//!   through that shard's inbox. The spread is even by construction, at the price of one
//!   hand-off (a queue push and, if the shard sleeps, a wake-up) per connection, and of one
//!   shard doing every `accept`: fine for long-lived connections, a ceiling for a storm of
//!   short ones.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream, ToSocketAddrs};
use std::pin::pin;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use super::channel::Mailbox;
use super::shard::{Local, Shard};
use crate::net::{TcpListener, TcpStream};
use crate::{Async, Handle, JoinHandle};

/// How the shards share a [`Port`].
///
/// * `ReusePort`: every shard has its own socket, bound to the same address with
///   `SO_REUSEPORT`; the kernel hashes each new connection to one of them. Nothing crosses
///   threads, but the spread is only as even as the hash (Seastar stopped making it the
///   default for that), and a socket that closes resets the connections in its backlog.
/// * `Acceptor`: shard 0 accepts and hands each connection to the shard with the fewest open
///   connections. Even by construction, at the price of one hand-off per connection and one
///   shard doing every `accept`: best for long-lived connections.
///
/// ```
/// use solo::shards::Share;
/// assert_eq!("reuseport".parse::<Share>(), Ok(Share::ReusePort));
/// assert_eq!(Share::default(), Share::Acceptor);
/// assert!("other".parse::<Share>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Share {
    /// One `SO_REUSEPORT` socket per shard; the kernel spreads connections by hash.
    ReusePort,
    /// Shard 0 accepts and hands each connection to the shard with the fewest open ones.
    #[default]
    Acceptor,
}

impl FromStr for Share {
    type Err = String;

    /// `reuseport` or `acceptor`, as the examples' `--share` takes it.
    fn from_str(s: &str) -> Result<Share, String> {
        match s {
            "reuseport" => Ok(Share::ReusePort),
            "acceptor" => Ok(Share::Acceptor),
            _ => Err(format!(
                "unknown sharing mode '{s}' (reuseport or acceptor)"
            )),
        }
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Share::ReusePort => "reuseport",
            Share::Acceptor => "acceptor",
        })
    }
}

/// What one shard did on a [`Port`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PortStats {
    /// The shard.
    pub shard: usize,
    /// Connections it was given (accepted itself, or handed by the acceptor).
    pub accepted: u64,
    /// Connections open on it now (handed to it and not yet dropped).
    pub open: u64,
}

/// The counters of one shard: written by that shard (and, for `open`, by the acceptor when it
/// hands a connection over), read by anyone. Counting is the only thing shards share.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    listening: AtomicBool,
}

/// A connection handed to a shard's inbox by the acceptor, counted as open on that shard.
struct Handoff {
    stream: StdStream,
    peer: SocketAddr,
    conn: Connection,
}

/// What exists once the first shard listens: one entry per shard.
struct Sharded {
    counters: Arc<[Counters]>,
    /// The inbox of each shard that listens now (acceptor mode).
    inboxes: Mutex<Vec<Option<Arc<Mailbox<Handoff>>>>>,
    /// The shard the acceptor chose last (only the acceptor's task uses it).
    last_chosen: AtomicUsize,
}

struct PortInner {
    addr: SocketAddr,
    share: Share,
    /// The socket bound by `bind`: with `ReusePort`, until the first shard to listen takes it;
    /// with `Acceptor`, for the port's life (shard 0's acceptor works on a duplicate).
    first: Mutex<Option<StdListener>>,
    sharded: Mutex<Option<Arc<Sharded>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A listening address for a set of shards: `Send + Sync + Clone`; each shard gets its
/// [`ShardListener`] from it with [`listener`](Port::listener).
///
/// `bind` binds at once, so the address (an ephemeral port too) is known before the shards
/// start, and an address in use is an error here, not in every shard.
#[derive(Clone)]
pub struct Port {
    inner: Arc<PortInner>,
}

/// How long the acceptor waits, at most, for every shard to listen before it hands out the
/// first connection (ms).
const STARTUP_WAIT_MS: u32 = 1000;

/// The listen backlog of the port's sockets (as `solo::net::TcpListener::bind`).
const BACKLOG: i32 = crate::net::DEFAULT_BACKLOG;

fn reuseport_socket(addr: SocketAddr) -> io::Result<StdListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

impl Port {
    /// Binds `addr` (the first of its addresses that works) for `share`. With `ReusePort` the
    /// socket has `SO_REUSEPORT`, and each other shard binds one more to the same address.
    pub fn bind(addr: impl ToSocketAddrs, share: Share) -> io::Result<Port> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match reuseport_socket_or_plain(a, share) {
                Ok(l) => {
                    let addr = l.local_addr()?;
                    return Ok(Port {
                        inner: Arc::new(PortInner {
                            addr,
                            share,
                            first: Mutex::new(Some(l)),
                            sharded: Mutex::new(None),
                        }),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")))
    }

    /// The bound address (with the port the system chose, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// How the shards share it.
    pub fn share(&self) -> Share {
        self.inner.share
    }

    /// Accepted and open connections of each shard, by index (empty until a shard listens).
    pub fn stats(&self) -> Vec<PortStats> {
        let sharded = lock(&self.inner.sharded).clone();
        sharded.map_or_else(Vec::new, |s| {
            s.counters
                .iter()
                .enumerate()
                .map(|(shard, c)| PortStats {
                    shard,
                    accepted: c.accepted.load(Ordering::Relaxed),
                    open: c.open.load(Ordering::Relaxed),
                })
                .collect()
        })
    }

    /// [`stats`](Port::stats) as lines for people: each shard's accepted and open
    /// connections, and the spread (the most accepted by one shard over the fewest).
    pub fn summary(&self) -> String {
        let stats = self.stats();
        let mut out = format!("port {} ({}):", self.inner.addr, self.inner.share);
        for s in &stats {
            out.push_str(&format!(
                "\n  shard {:>3}: {:>9} accepted, {:>7} open",
                s.shard, s.accepted, s.open
            ));
        }
        let max = stats.iter().map(|s| s.accepted).max().unwrap_or(0);
        let min = stats.iter().map(|s| s.accepted).min().unwrap_or(0);
        let spread = match min {
            0 if max == 0 => "-".to_string(),
            0 => "inf".to_string(),
            min => format!("{:.2}", max as f64 / min as f64),
        };
        out.push_str(&format!(
            "\n  accepted: max {max}, min {min}, max/min {spread}"
        ));
        out
    }

    /// This shard's listener on the port. Each shard may hold one at a time; the port serves
    /// one set of shards (the count of the first shard that listens).
    ///
    /// With `Acceptor`, shard 0's listener also runs the accept task that hands connections
    /// out (once every shard listens, or after at most a second), for as long as it lives: the
    /// other shards get connections only while shard 0 listens. Once its listener is gone,
    /// their `accept` returns the connections already handed to them, then fails. The port
    /// keeps its socket (until the last clone of the `Port` is dropped), so shard 0 may listen
    /// again; connections that come meanwhile wait in the backlog.
    pub fn listener(&self, shard: &Shard) -> io::Result<ShardListener> {
        let index = shard.index();
        let handle =
            Handle::try_current().ok_or_else(|| crate::error::outside_loop("Port::listener"))?;
        let sharded = {
            let mut s = lock(&self.inner.sharded);
            let sharded = s.get_or_insert_with(|| {
                Arc::new(Sharded {
                    counters: (0..shard.count()).map(|_| Counters::default()).collect(),
                    inboxes: Mutex::new((0..shard.count()).map(|_| None).collect()),
                    last_chosen: AtomicUsize::new(usize::MAX),
                })
            });
            if sharded.counters.len() != shard.count() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "this port serves a set of {} shards, not {}",
                        sharded.counters.len(),
                        shard.count()
                    ),
                ));
            }
            sharded.clone()
        };
        if sharded.counters[index]
            .listening
            .swap(true, Ordering::AcqRel)
        {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("shard {index} already has a listener on this port"),
            ));
        }
        let registered = Registered {
            sharded: sharded.clone(),
            index,
        };
        let way = match self.inner.share {
            Share::ReusePort => {
                let socket = match lock(&self.inner.first).take() {
                    Some(l) => l,
                    None => reuseport_socket(self.inner.addr)?,
                };
                Way::Own(TcpListener::from_std(socket)?)
            }
            Share::Acceptor => {
                let inbox = Mailbox::new();
                lock(&sharded.inboxes)[index] = Some(inbox.clone());
                let accept_task = if index == 0 {
                    // The port keeps its socket; each acceptor works on a duplicate, so that
                    // shard 0 may listen again after its listener is dropped (the connections
                    // that come meanwhile wait in the backlog).
                    let socket = lock(&self.inner.first)
                        .as_ref()
                        .map(StdListener::try_clone)
                        .ok_or_else(|| io::Error::other("the acceptor port has no socket"))??;
                    socket.set_nonblocking(true)?;
                    let socket = Async::new(socket)?;
                    let (s, stop) = (sharded.clone(), shard.local().clone());
                    Some(handle.spawn(hand_out(socket, s, stop)))
                } else {
                    None
                };
                Way::Inbox { inbox, accept_task }
            }
        };
        Ok(ShardListener {
            way,
            registered,
            stop: shard.local().clone(),
        })
    }
}

fn reuseport_socket_or_plain(addr: SocketAddr, share: Share) -> io::Result<StdListener> {
    match share {
        Share::ReusePort => reuseport_socket(addr),
        Share::Acceptor => {
            let l = StdListener::bind(addr)?;
            // Keep solo's backlog (std's 128 drops SYNs in a burst); listen again to set it.
            let l = socket2::Socket::from(l);
            l.listen(BACKLOG)?;
            Ok(l.into())
        }
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("addr", &self.inner.addr)
            .field("share", &self.inner.share)
            .finish()
    }
}

/// A shard's registration on the port; dropping it lets the shard listen again and, in
/// acceptor mode, stops the hand-offs to it (connections still in its inbox are closed).
struct Registered {
    sharded: Arc<Sharded>,
    index: usize,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let inbox = lock(&self.sharded.inboxes)[self.index].take();
        if let Some(inbox) = inbox {
            drop(inbox.close());
        }
        self.sharded.counters[self.index]
            .listening
            .store(false, Ordering::Release);
    }
}

enum Way {
    Own(TcpListener),
    Inbox {
        inbox: Arc<Mailbox<Handoff>>,
        accept_task: Option<JoinHandle<()>>,
    },
}

/// A shard's end of a [`Port`]: [`accept`](ShardListener::accept) until the shards stop.
pub struct ShardListener {
    way: Way,
    registered: Registered,
    stop: Rc<Local>,
}

/// A connection a shard accepted: the stream, the peer's address, and the [`Connection`]
/// that counts it as open until dropped.
#[derive(Debug)]
#[non_exhaustive]
pub struct Accepted {
    /// The connection, registered with this shard's loop.
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Counts the connection as open on this shard (in [`Port::stats`], and for the
    /// acceptor's choice) until it is dropped: keep it as long as the stream.
    pub conn: Connection,
}

/// Counts one open connection of a shard until dropped (see [`Accepted::conn`]).
#[must_use = "the connection counts as open (for the acceptor's least-loaded choice) only while this lives"]
pub struct Connection {
    sharded: Arc<Sharded>,
    index: usize,
}

impl Connection {
    /// Counts a connection as open on shard `index` (the acceptor does it when it picks the
    /// shard, so that a burst of connections spreads before the shards take them).
    fn open(sharded: &Arc<Sharded>, index: usize) -> Connection {
        sharded.counters[index].open.fetch_add(1, Ordering::Relaxed);
        Connection {
            sharded: sharded.clone(),
            index,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.sharded.counters[self.index]
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("shard", &self.index)
            .finish()
    }
}

impl ShardListener {
    /// The next connection for this shard; `Ok(None)` once the shards are asked to stop (a
    /// server's accept loop ends there, and its connections get the grace period). Errors of
    /// one connection are skipped and running out of fds backs off, as
    /// [`Incoming`](crate::net::Incoming) does; an error means the listener failed (or, for a
    /// shard fed by the acceptor, that the acceptor's listener is gone).
    pub async fn accept(&self) -> io::Result<Option<Accepted>> {
        let mut stopped = pin!(self.stop.stopped());
        match &self.way {
            Way::Own(listener) => {
                let mut incoming = listener.incoming();
                let got = std::future::poll_fn(|cx| {
                    if stopped.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(None));
                    }
                    incoming.poll_next_conn(cx).map(|r| r.map(Some))
                })
                .await?;
                Ok(got.map(|(stream, peer)| Accepted {
                    stream,
                    peer,
                    conn: self.taken(Connection::open(
                        &self.registered.sharded,
                        self.registered.index,
                    )),
                }))
            }
            Way::Inbox { inbox, .. } => loop {
                let got = std::future::poll_fn(|cx| {
                    if stopped.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(None));
                    }
                    match inbox.poll_recv(cx) {
                        Poll::Ready(Some(h)) => Poll::Ready(Ok(Some(h))),
                        Poll::Ready(None) => Poll::Ready(Err(io::Error::other(
                            "the acceptor shard's listener is gone; no more connections come",
                        ))),
                        Poll::Pending => Poll::Pending,
                    }
                })
                .await?;
                let Some(Handoff { stream, peer, conn }) = got else {
                    return Ok(None);
                };
                match TcpStream::from_std(stream) {
                    Ok(stream) => {
                        let conn = self.taken(conn);
                        return Ok(Some(Accepted { stream, peer, conn }));
                    }
                    // This connection could not join the loop (out of memory for its
                    // registration): it is closed, and the listener goes on, as `Incoming`
                    // skips a connection's own errors.
                    Err(e) => {
                        let msg = format!("a connection from {peer} was dropped: {e}");
                        if let Some(h) = Handle::try_current() {
                            h.inner.report_notice(std::panic::Location::caller(), &msg);
                        }
                    }
                }
            },
        }
    }

    /// Counts a connection this shard takes.
    fn taken(&self, conn: Connection) -> Connection {
        let c = &self.registered.sharded.counters[self.registered.index];
        c.accepted.fetch_add(1, Ordering::Relaxed);
        conn
    }

    /// The shard this listener belongs to.
    pub fn shard(&self) -> usize {
        self.registered.index
    }
}

impl Drop for ShardListener {
    fn drop(&mut self) {
        if let Way::Inbox {
            accept_task: Some(task),
            ..
        } = &self.way
        {
            task.cancel();
            // While the shards stop, every shard's accept ends by its own stop, which may
            // reach it a little later: closing its inbox now would make that an error.
            if self.stop.reason().is_none() {
                acceptor_gone(&self.registered.sharded);
            }
        }
    }
}

impl fmt::Debug for ShardListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardListener")
            .field("shard", &self.registered.index)
            .finish()
    }
}

/// No more hand-offs: every shard hears of it in `accept`, once it has taken the connections
/// already handed to it (they are accepted: only the acceptor's bookkeeping is gone).
fn acceptor_gone(sharded: &Sharded) {
    let inboxes: Vec<_> = lock(&sharded.inboxes).iter().flatten().cloned().collect();
    for inbox in inboxes {
        inbox.seal();
    }
}

/// The acceptor's task (on shard 0): accepts and hands each connection to the listening shard
/// with the fewest open connections, until the shards stop or the socket fails.
async fn hand_out(socket: Async<StdListener>, sharded: Arc<Sharded>, stop: Rc<Local>) {
    // The shards start at about the same time, but connections may wait in the backlog
    // already (clients that came first, or a restart): give every shard a moment to listen
    // before the first hand-off, or the first burst all lands on the early shards.
    let all = sharded.counters.len();
    for _ in 0..STARTUP_WAIT_MS {
        let listening = sharded
            .counters
            .iter()
            .filter(|c| c.listening.load(Ordering::Acquire))
            .count();
        if listening == all || stop.reason().is_some() {
            break;
        }
        crate::time::sleep(Duration::from_millis(1)).await;
    }
    let mut pause = None::<Duration>;
    let mut stopped = pin!(stop.stopped());
    loop {
        let accepted = std::future::poll_fn(|cx| {
            if stopped.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            socket
                .poll_with(crate::reactor::Dir::Read, cx, &mut |l| l.accept())
                .map(Some)
        })
        .await;
        let (stream, peer) = match accepted {
            None => return,
            Some(Ok(c)) => c,
            Some(Err(e)) => match e.raw_os_error() {
                // Out of fds or memory: the connection waits in the backlog; retry later.
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    let p = pause.map_or(Duration::from_millis(5), |p| {
                        (p * 2).min(Duration::from_secs(1))
                    });
                    pause = Some(p);
                    crate::time::sleep(p).await;
                    continue;
                }
                // This connection failed before it was accepted (see net::Incoming).
                Some(
                    libc::ECONNABORTED
                    | libc::EPERM
                    | libc::EPROTO
                    | libc::ECONNRESET
                    | libc::ETIMEDOUT
                    | libc::EINTR
                    | libc::EHOSTUNREACH
                    | libc::ENETUNREACH,
                ) => continue,
                _ => {
                    let msg = format!("the acceptor's socket failed: {e}; no more connections");
                    Handle::current()
                        .inner
                        .report_notice(std::panic::Location::caller(), &msg);
                    acceptor_gone(&sharded);
                    return;
                }
            },
        };
        pause = None;
        let mut handoff = Some((stream, peer));
        while let Some((stream, peer)) = handoff.take() {
            let Some((index, inbox)) = least_loaded(&sharded) else {
                break; // nobody listens: the connection is closed
            };
            let h = Handoff {
                stream,
                peer,
                conn: Connection::open(&sharded, index),
            };
            if let Err(h) = inbox.push(h) {
                // That shard stopped listening just now: try the next one.
                handoff = Some((h.stream, h.peer));
            }
        }
    }
}

/// The listening shard with the fewest open connections; among equals, the first after the
/// last one chosen (so that short connections, which leave every count at zero, go round).
fn least_loaded(sharded: &Sharded) -> Option<(usize, Arc<Mailbox<Handoff>>)> {
    let inboxes = lock(&sharded.inboxes);
    let n = inboxes.len();
    let after = sharded.last_chosen.load(Ordering::Relaxed).wrapping_add(1);
    let (index, inbox) = (0..n)
        .map(|k| (after + k) % n)
        .filter_map(|i| {
            let inbox = inboxes[i].as_ref().filter(|m| !m.is_closed())?;
            Some((i, inbox))
        })
        .min_by_key(|(i, _)| sharded.counters[*i].open.load(Ordering::Relaxed))?;
    sharded.last_chosen.store(index, Ordering::Relaxed);
    Some((index, inbox.clone()))
}
