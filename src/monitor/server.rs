//! The monitor's threads: one listens, one serves each client.
//!
//! A client's thread waits in `poll(2)` on its socket and on the monitor's stop socket, so that
//! stopping the monitor (the loop was dropped) reaches every thread at once. Lines are cut at
//! `\n` (a `\r` before it is dropped); a line over [`MAX_LINE`] bytes is discarded up to its
//! newline and answered with an error and the help. Writes use `MSG_NOSIGNAL`, so a client that
//! goes away mid-reply costs an `EPIPE` on this thread, never a `SIGPIPE` for the process, and
//! a write timeout, so a client that stops reading cannot hold a thread forever.
//!
//! On a Unix socket, only peers with this process's user id (or root) are served
//! (`SO_PEERCRED`): the file's mode (0600) is set just after `bind`, and the check covers a
//! connection that came in between.

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::commands::{self, Outcome, Pending};
use super::{lock, Link, MonitorAddr, MAX_CLIENTS, MAX_LINE};

/// How long a write to a client may block before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After a client's end of file, how long its connection waits for results still owed to it.
const LINGER: Duration = Duration::from_secs(10);
/// Results a client may be owed at once.
const MAX_PENDING: usize = 64;

pub(super) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    /// Binds `addr`; returns the listener and the address it got (the port, for port 0).
    pub(super) fn bind(addr: &MonitorAddr) -> io::Result<(Listener, MonitorAddr)> {
        match addr {
            MonitorAddr::Tcp(a) => {
                let l = TcpListener::bind(a)
                    .map_err(|e| io::Error::new(e.kind(), format!("solo monitor: {a}: {e}")))?;
                let bound = MonitorAddr::Tcp(l.local_addr()?);
                Ok((Listener::Tcp(l), bound))
            }
            MonitorAddr::Unix(p) => {
                let l = bind_unix(p)
                    .map_err(|e| io::Error::new(e.kind(), format!("solo monitor: {addr}: {e}")))?;
                Ok((Listener::Unix(l), addr.clone()))
            }
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }

    fn accept(&self) -> io::Result<Conn> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Conn::Tcp(s)),
            Listener::Unix(l) => l.accept().map(|(s, _)| Conn::Unix(s)),
        }
    }
}

/// Binds a Unix socket at `p` with mode 0600. A socket file nobody listens on (left by a
/// process that died) is replaced; anything else at `p` is an error.
fn bind_unix(p: &Path) -> io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(p) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ));
        }
        match UnixStream::connect(p) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another process listens on this socket",
                ))
            }
            Err(_) => std::fs::remove_file(p)?,
        }
    }
    let l = UnixListener::bind(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

impl Conn {
    fn fd(&self) -> RawFd {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Unix(s) => s.as_raw_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }

    fn set_write_timeout(&self, d: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_write_timeout(Some(d)),
            Conn::Unix(s) => s.set_write_timeout(Some(d)),
        }
    }

    /// Writes all of `data`, or fails (the client went away or stopped reading).
    fn send(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            // SAFETY: `data` is a valid buffer of `data.len()` bytes; the fd is this
            // connection's socket, open for as long as `self` lives.
            let n = unsafe {
                libc::send(
                    self.fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            data = &data[n as usize..];
        }
        Ok(())
    }

    /// A reply: its text, ending with a newline, then an empty line.
    fn reply(&self, text: &str) -> io::Result<()> {
        let mut out = String::with_capacity(text.len() + 2);
        // No empty line inside a reply: the empty line is the end of it.
        for line in text.trim_end_matches('\n').split('\n') {
            out.push_str(if line.trim().is_empty() { " " } else { line });
            out.push('\n');
        }
        out.push('\n');
        self.send(out.as_bytes())
    }

    /// Whether the peer of a Unix socket runs as this user (or root).
    fn peer_allowed(&self) -> bool {
        let Conn::Unix(s) = self else {
            return true;
        };
        let mut cred = libc::ucred {
            pid: 0,
            uid: u32::MAX,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are valid for writes of the sizes given; the fd is open.
        let r = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        r == 0 && (cred.uid == me || cred.uid == 0)
    }
}

/// Waits until one of `fds` is readable (or closed), for at most `timeout` (`None`: forever).
/// Returns which are.
fn wait<const N: usize>(fds: [RawFd; N], timeout: Option<Duration>) -> [bool; N] {
    let mut p = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let ms = timeout.map_or(-1, |d| d.as_millis().min(60_000) as libc::c_int);
    // SAFETY: `p` is an array of N valid pollfd structs.
    let n = unsafe { libc::poll(p.as_mut_ptr(), N as libc::nfds_t, ms) };
    if n <= 0 {
        return [false; N];
    }
    p.map(|x| x.revents != 0)
}

/// The listener thread: accepts clients and starts a thread for each, until the monitor stops.
pub(super) fn accept_loop(l: Listener, link: Arc<Link>) {
    let stop = link.stop_rx.as_raw_fd();
    loop {
        let [incoming, stopped] = wait([l.fd(), stop], None);
        if stopped || link.stopping.load(Ordering::Acquire) {
            return;
        }
        if !incoming {
            continue;
        }
        let conn = match l.accept() {
            Ok(c) => c,
            Err(_) => {
                // Out of fds, or the connection died before it was accepted: wait a little
                // (or until the monitor stops) and go on.
                let [.., stopped] = wait([stop], Some(Duration::from_millis(50)));
                if stopped {
                    return;
                }
                continue;
            }
        };
        if !conn.peer_allowed() {
            let _ = conn.reply("error: this monitor serves only its own user");
            continue;
        }
        if link.clients.load(Ordering::Acquire) >= MAX_CLIENTS {
            let _ = conn.set_write_timeout(WRITE_TIMEOUT);
            let _ = conn.reply(&format!(
                "error: too many monitor clients ({MAX_CLIENTS}); try again later"
            ));
            continue;
        }
        link.clients.fetch_add(1, Ordering::AcqRel);
        let l2 = link.clone();
        let spawned = std::thread::Builder::new()
            .name("solo-monitor-client".into())
            .spawn(move || {
                serve(conn, &l2);
                l2.clients.fetch_sub(1, Ordering::AcqRel);
            });
        let mut threads = lock(&link.threads);
        threads.retain(|t| !t.is_finished());
        match spawned {
            Ok(t) => threads.push(t),
            Err(_) => {
                link.clients.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Whether `line` is an HTTP request line (`GET /metrics HTTP/1.1`); its method and path.
fn http_request(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.split(' ');
    let (method, path, version) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && version.starts_with("HTTP/1.")).then_some((method, path))
}

/// Serves one client until it quits, goes away, or the monitor stops.
fn serve(mut conn: Conn, link: &Link) {
    if conn.set_write_timeout(WRITE_TIMEOUT).is_err() {
        return;
    }
    let stop = link.stop_rx.as_raw_fd();
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    let mut first = true;
    // An HTTP request in progress: its method and path, once its request line came.
    let mut http: Option<(String, String)> = None;
    let mut owed: Vec<Pending> = Vec::new();
    let mut eof_at: Option<Instant> = None;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(t) = eof_at {
            if owed.is_empty() || t.elapsed() > LINGER {
                return;
            }
        }
        let timeout = (!owed.is_empty()).then_some(Duration::from_millis(20));
        let fd = if eof_at.is_some() { stop } else { conn.fd() };
        let [readable, stopped] = wait([fd, stop], timeout);
        if deliver(&conn, &mut owed, stopped).is_err() {
            return;
        }
        if stopped {
            let _ = conn.reply("solo monitor: the loop was closed; bye");
            return;
        }
        if !readable || eof_at.is_some() {
            continue;
        }
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => {
                if too_long || (!line.is_empty() && http.is_none()) {
                    // The last line had no newline: answer it anyway.
                    let text = std::mem::take(&mut line);
                    let done = answer(&conn, link, &text, too_long, &mut owed);
                    if done.is_err() {
                        return;
                    }
                }
                eof_at = Some(Instant::now());
                continue;
            }
            Ok(n) => n,
        };
        let mut rest = &chunk[..n];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if !too_long {
                line.extend_from_slice(&rest[..i]);
            }
            rest = &rest[i + 1..];
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let text = std::mem::take(&mut line);
            if first && !too_long {
                first = false;
                if let Some((m, p)) = http_request(&String::from_utf8_lossy(&text)) {
                    http = Some((m.to_string(), p.to_string()));
                    continue;
                }
            }
            first = false;
            if let Some((method, path)) = &http {
                if text.is_empty() {
                    // The end of the request's headers.
                    let _ = serve_http(&conn, link, method, path);
                    return;
                }
                continue; // a header
            }
            match answer(&conn, link, &text, too_long, &mut owed) {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
            too_long = false;
        }
        if !too_long {
            line.extend_from_slice(rest);
            if line.len() > MAX_LINE {
                too_long = true;
                line.clear();
            }
        }
    }
}

/// Answers one line; `Ok(false)` when the client quit.
fn answer(
    conn: &Conn,
    link: &Link,
    line: &[u8],
    too_long: bool,
    owed: &mut Vec<Pending>,
) -> io::Result<bool> {
    if too_long {
        let text = format!(
            "error: line too long (over {MAX_LINE} bytes); it was ignored\n{}",
            commands::help(link)
        );
        conn.reply(&text)?;
        return Ok(true);
    }
    let text = String::from_utf8_lossy(line);
    if text.trim().is_empty() {
        return Ok(true);
    }
    match commands::run(text.trim(), link, owed.len() < MAX_PENDING) {
        Outcome::Reply(r) => conn.reply(&r)?,
        Outcome::Queued(r, p) => {
            conn.reply(&r)?;
            owed.push(p);
        }
        Outcome::Quit => {
            conn.reply("bye")?;
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes the results the loop has produced since; with `all`, also says which never came.
fn deliver(conn: &Conn, owed: &mut Vec<Pending>, all: bool) -> io::Result<()> {
    let mut i = 0;
    while i < owed.len() {
        match owed[i].poll(all) {
            Some(text) => {
                let p = owed.remove(i);
                conn.reply(&format!("[later, from the loop] {}:\n{text}", p.label))?;
            }
            None => i += 1,
        }
    }
    Ok(())
}

/// Answers an HTTP request (only `GET /metrics`), then the connection closes.
fn serve_http(conn: &Conn, link: &Link, method: &str, path: &str) -> io::Result<()> {
    let (status, body) = match (method, path.split('?').next().unwrap_or(path)) {
        ("GET", "/metrics") => ("200 OK", super::metrics::prometheus(&link.debug)),
        ("GET", _) => (
            "404 Not Found",
            "only /metrics is served here\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "only GET is served here\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.send(head.as_bytes())?;
    conn.send(body.as_bytes())
}
