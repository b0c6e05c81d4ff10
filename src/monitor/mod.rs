//! The monitor: a console into a running loop, on its own thread, that any user reaches with
//! `nc` (asyncio's aiomonitor, for solo).
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//!
//! let el = solo::EventLoop::builder().monitor("127.0.0.1:0").build().unwrap();
//! let h = el.handle();
//! h.spawn_named("forever", std::future::pending::<()>());
//! h.monitor_command("hello", "hello NAME: greets NAME, on the loop", |args| format!("hello, {args}"))
//!     .unwrap();
//! let addr = el.monitor_addr().unwrap().to_string();
//! let remote = h.remote();
//! let client = std::thread::spawn(move || {
//!     let mut c = std::net::TcpStream::connect(addr).unwrap();
//!     c.write_all(b"ps\nhello you\nquit\n").unwrap();
//!     let mut text = String::new();
//!     for line in BufReader::new(c).lines() {
//!         text.push_str(&line.unwrap());
//!         text.push('\n');
//!     }
//!     remote.call_soon_threadsafe(|| solo::Handle::current().stop()).unwrap();
//!     text
//! });
//! el.run_forever().unwrap();
//! let text = client.join().unwrap();
//! assert!(text.contains("forever"), "{text}");
//! assert!(text.contains("hello, you"), "{text}");
//! ```
//!
//! # Turning it on
//!
//! `SOLO_MONITOR=127.0.0.1:20101` (or `unix:/path/to/sock`) in the environment, or
//! [`Builder::monitor`](crate::Builder::monitor). It implies debug mode, whose records it
//! reads. A TCP address must be a loopback one unless the program opts in with
//! [`Builder::monitor_allow_non_loopback`](crate::Builder::monitor_allow_non_loopback) (or
//! `SOLO_MONITOR_NON_LOOPBACK=1`): the monitor has no authentication, and it can cancel tasks
//! and send signals. A Unix socket is created with mode 0600, and only peers with this
//! process's user id (or root) are served. Port 0 picks a free port:
//! [`EventLoop::monitor_addr`](crate::EventLoop::monitor_addr) says which.
//!
//! # The protocol
//!
//! One command per line; each reply is plain text, one or more lines, followed by an empty
//! line; the connection stays open until `quit` or end of file, so
//! `printf 'ps\n' | nc -q1 127.0.0.1 20101` works, and so does an interactive `nc`. Several
//! clients are served at once (up to 128). An unknown command, or a line over 4 KiB, gets an
//! error line and the help; nothing a client sends closes its connection or stops the monitor.
//! An HTTP `GET /metrics` on the same TCP port answers with the `metrics` text, so a Prometheus
//! scraper works unchanged.
//!
//! # Commands
//!
//! | command | answers | needs the loop? |
//! | --- | --- | --- |
//! | `help` | the commands | no |
//! | `ps` | the task table, with what each task waits on | no |
//! | `where ID` | a task's spawn site and await points (its stack, if it is running now) | no |
//! | `cancel ID` | cancels the task | yes, queued |
//! | `signal NAME` | sends `SIGNAME` (TERM, INT, HUP, USR1...) to the process | no |
//! | `stacktrace` | the loop thread's native stack, now | no |
//! | `stats` | loop health and latency histograms (p50 ... max) | no |
//! | `profile` | time by scheduling site | no |
//! | `metrics` | `stats` in the Prometheus text format | no |
//! | `trace SECONDS PATH` | records the loop for that long, writes Chrome trace-event JSON | no |
//! | user commands | [`Handle::monitor_command`](crate::Handle::monitor_command) | yes, queued |
//!
//! Read-only commands answer from the records debug mode keeps for other threads (the task
//! table behind a mutex the loop holds only to update a row, histograms and counters the loop
//! writes with plain atomic stores, the watchdog's slot), so they answer while the loop is
//! blocked. Commands that need the loop go through its remote queue, as
//! `call_soon_threadsafe` does; when the loop is blocked (or not running), the reply says the
//! command is queued, and its result follows on the same connection when the loop gets to it.
//!
//! # The rooms
//!
//! | file | what it holds |
//! | --- | --- |
//! | `mod.rs` | the switch: addresses, the settings, [`MonitorAddr`], starting and stopping |
//! | `server.rs` | the listener thread and one thread per client: lines, limits, HTTP |
//! | `commands.rs` | what each command answers |
//! | `metrics.rs` | `stats` and `metrics` (Prometheus) text |

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::Location;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::debug::DebugShared;
use crate::shared::Shared;

mod commands;
mod metrics;
mod server;

/// The longest line a client may send (bytes, without the newline).
pub(crate) const MAX_LINE: usize = 4096;
/// The most clients served at once.
pub(crate) const MAX_CLIENTS: usize = 128;

/// Where the monitor listens.
///
/// ```
/// let tcp: solo::monitor::MonitorAddr = "127.0.0.1:20101".parse().unwrap();
/// assert_eq!(tcp.to_string(), "127.0.0.1:20101");
/// let unix: solo::monitor::MonitorAddr = "unix:/tmp/app.sock".parse().unwrap();
/// assert_eq!(unix.to_string(), "unix:/tmp/app.sock");
/// assert!("nonsense".parse::<solo::monitor::MonitorAddr>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MonitorAddr {
    /// A TCP address (`127.0.0.1:20101`, `[::1]:20101`, `localhost:20101`).
    Tcp(SocketAddr),
    /// A Unix socket's path (`unix:/run/app/monitor.sock`).
    Unix(PathBuf),
}

impl FromStr for MonitorAddr {
    type Err = io::Error;

    fn from_str(s: &str) -> io::Result<MonitorAddr> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad_addr(s));
            }
            return Ok(MonitorAddr::Unix(PathBuf::from(path)));
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(MonitorAddr::Tcp(a));
        }
        // A host name: only `localhost` is resolved here (no DNS lookups at start-up).
        match s.rsplit_once(':') {
            Some(("localhost", port)) => {
                let a = ("127.0.0.1", port.parse::<u16>().map_err(|_| bad_addr(s))?)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| bad_addr(s))?;
                Ok(MonitorAddr::Tcp(a))
            }
            _ => Err(bad_addr(s)),
        }
    }
}

fn bad_addr(s: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "solo monitor: `{s}` is not an address: use 127.0.0.1:PORT, [::1]:PORT, \
             localhost:PORT or unix:PATH"
        ),
    )
}

impl fmt::Display for MonitorAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonitorAddr::Tcp(a) => write!(f, "{a}"),
            MonitorAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// `SOLO_MONITOR`, if set and not empty.
pub(crate) fn env_addr() -> Option<String> {
    std::env::var("SOLO_MONITOR")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// `SOLO_MONITOR_NON_LOOPBACK=1`.
pub(crate) fn env_non_loopback() -> bool {
    std::env::var("SOLO_MONITOR_NON_LOOPBACK").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// Parses `addr` and refuses a non-loopback TCP address unless `non_loopback`.
pub(crate) fn check_addr(addr: &str, non_loopback: bool) -> io::Result<MonitorAddr> {
    let a: MonitorAddr = addr.parse()?;
    if let MonitorAddr::Tcp(sa) = &a {
        if !sa.ip().is_loopback() && !non_loopback {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "solo monitor: {sa} is not a loopback address, and the monitor has no \
                     authentication (it can cancel tasks and send signals): listen on \
                     127.0.0.1, [::1] or a unix: socket, or opt in with \
                     Builder::monitor_allow_non_loopback(true) or SOLO_MONITOR_NON_LOOPBACK=1"
                ),
            ));
        }
    }
    Ok(a)
}

/// Work the monitor hands to the loop thread (through the remote queue).
pub(crate) enum LoopRequest {
    /// Cancel the task with this id.
    Cancel(u64),
    /// Run a user command with these arguments.
    User { name: String, args: String },
}

/// What the loop does with a request, on the loop thread; returns the reply text. Supplied by
/// the loop (this module does not know it).
pub(crate) type OnLoop = fn(LoopRequest) -> String;

/// A user command as the monitor thread knows it (the function stays on the loop).
#[derive(Clone)]
pub(crate) struct UserCommand {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) site: &'static Location<'static>,
}

/// What the monitor's threads share.
pub(crate) struct Link {
    pub(crate) debug: Arc<DebugShared>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) on_loop: OnLoop,
    pub(crate) user: Mutex<Vec<UserCommand>>,
    pub(crate) stopping: AtomicBool,
    /// Readable once the monitor stops (a byte is written and never read): every thread polls
    /// it beside its own socket.
    pub(crate) stop_rx: std::os::unix::net::UnixStream,
    stop_tx: std::os::unix::net::UnixStream,
    pub(crate) clients: AtomicUsize,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) addr: MonitorAddr,
}

/// The loop's handle on its monitor.
pub(crate) struct Monitor {
    link: Arc<Link>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl Monitor {
    /// Binds `addr` and starts the listener thread.
    pub(crate) fn start(
        addr: MonitorAddr,
        debug: Arc<DebugShared>,
        shared: Arc<Shared>,
        on_loop: OnLoop,
    ) -> io::Result<Monitor> {
        let (listener, bound) = server::Listener::bind(&addr)?;
        let (stop_tx, stop_rx) = std::os::unix::net::UnixStream::pair()?;
        let link = Arc::new(Link {
            debug,
            shared,
            on_loop,
            user: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            stop_rx,
            stop_tx,
            clients: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
            addr: bound,
        });
        let l = link.clone();
        let acceptor = std::thread::Builder::new()
            .name("solo-monitor".into())
            .spawn(move || server::accept_loop(listener, l))?;
        Ok(Monitor {
            link,
            acceptor: Mutex::new(Some(acceptor)),
        })
    }

    /// Where it listens (with the port chosen, for port 0).
    pub(crate) fn addr(&self) -> &MonitorAddr {
        &self.link.addr
    }

    /// Makes a user command known to clients (`help`, dispatch).
    pub(crate) fn add_user_command(&self, cmd: UserCommand) {
        let mut user = lock(&self.link.user);
        user.retain(|c| c.name != cmd.name);
        user.push(cmd);
    }

    /// Whether `name` is one of the built-in commands.
    pub(crate) fn is_builtin(name: &str) -> bool {
        commands::BUILTIN.iter().any(|(n, _, _)| *n == name)
    }

    /// Stops the threads: clients get a last line and are closed, the socket is removed.
    pub(crate) fn stop(&self) {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        if self.link.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = (&self.link.stop_tx).write_all(b"x");
        if let Some(t) = lock(&self.acceptor).take() {
            let _ = t.join();
        }
        let threads = std::mem::take(&mut *lock(&self.link.threads));
        for t in threads {
            let _ = t.join();
        }
        if let MonitorAddr::Unix(p) = &self.link.addr {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("addr", &self.link.addr)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
