//! A server out of file descriptors: more clients than fds, in a child process with a low
//! `RLIMIT_NOFILE`. It must stay up with low CPU, keep serving, answer a fresh client once the
//! others close, tell the exception handler once per episode, and still obey SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use solo::net::TcpListener;
use solo::{EventLoop, Handle};

mod common;

/// The child's fd limit: the test harness, the loop and a few dozen connections.
const FD_LIMIT: u64 = 64;
/// More clients than that.
const CLIENTS: usize = 100;

/// Not a test: the server, run by the test below as a child process. Prints `PORT n`, then one
/// line per exception-handler report, and exits 0 on SIGTERM.
#[test]
#[ignore = "helper process for a_server_out_of_fds_backs_off_keeps_serving_and_obeys_sigterm"]
fn out_of_fds_server_helper() {
    let limit = libc::rlimit {
        rlim_cur: FD_LIMIT,
        rlim_max: FD_LIMIT,
    };
    // SAFETY: setrlimit with a valid struct; lowers this process's own limit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    h.set_exception_handler(|ctx| {
        println!("REPORT {}", ctx.message());
        std::io::stdout().flush().unwrap();
    });
    let h2 = h.clone();
    h.add_signal_handler(libc::SIGTERM, move || h2.stop())
        .unwrap();
    let listener = el
        .run_until_complete(async { TcpListener::bind("127.0.0.1:0") })
        .unwrap()
        .unwrap();
    println!("PORT {}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    h.spawn(async move {
        let mut incoming = listener.incoming();
        loop {
            let (mut conn, _) = incoming.next().await.expect("the listener never fails");
            Handle::current().spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = conn.read(&mut buf).await {
                    if conn.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    el.run_forever().unwrap();
    println!("EXIT");
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

fn echo_once(s: &mut TcpStream, msg: &[u8]) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// Opens `CLIENTS` connections: the kernel completes them into the listen queue, the server
/// accepts as many as it has fds for.
fn flood(port: u16) -> Vec<TcpStream> {
    (0..CLIENTS)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect()
}

struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("waiting for {what} from the server"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_server_out_of_fds_backs_off_keeps_serving_and_obeys_sigterm() {
    let _watchdog = common::watchdog!(Duration::from_secs(120));
    let mut child = common::rerun("out_of_fds_server_helper")
        .args(["--ignored", "--nocapture"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = Server { child, lines };
    let port: u16 = loop {
        let line = server.line("its port");
        // libtest may have printed "test name ... " on the same line.
        if let Some((_, p)) = line.split_once("PORT ") {
            break p.trim().parse().unwrap();
        }
    };
    let pid = server.child.id();

    // 1. More clients than fds: the server runs out, reports it once, and backs off.
    let mut clients = flood(port);
    let report = server.line("the out-of-fds report");
    assert!(
        report.starts_with("REPORT accept on 127.0.0.1:") && report.contains("Too many open files"),
        "{report}"
    );
    // It keeps serving the connections it has...
    echo_once(&mut clients[0], b"still here");
    // ...without spinning: a second of being out of fds costs little CPU.
    let before = cpu_time(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time(pid) - before;
    assert!(used < Duration::from_millis(300), "{used:?} of CPU in 1 s");
    assert!(server.child.try_wait().unwrap().is_none(), "still alive");

    // 2. The clients leave; the ones waiting in the listen queue are accepted (and closed), and
    //    a fresh client is served.
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
        fresh
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        fresh.write_all(b"fresh").unwrap();
        let mut back = [0; 5];
        if fresh.read_exact(&mut back).is_ok() {
            assert_eq!(&back, b"fresh");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a fresh client was never answered"
        );
    }
    let report = server.line("the end of the episode");
    assert!(
        report.starts_with("REPORT accepting on 127.0.0.1:") && report.contains("again"),
        "{report}"
    );

    // 3. Out of fds again, and SIGTERM: it stops and exits cleanly.
    let _clients = flood(port);
    let report = server.line("the second episode's report");
    assert!(report.contains("Too many open files"), "{report}");
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    loop {
        let line = server.line("its exit");
        assert!(
            !line.starts_with("REPORT"),
            "one report per episode: {line}"
        );
        if line == "EXIT" {
            break;
        }
    }
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
}
