//! What `#[solo::main]` and `#[solo::test]` expand to. Not public API: the macros' output names
//! it (`::solo::macro_support::Config`), users do not, and it may change with the macros.
//!
//! A [`Config`] carries the options of the attribute, builds the loop, runs the fn's body as
//! its main future, and shuts it down as [`run`](crate::run) does. A test's bound is kept by a
//! watchdog thread: past it, the thread asks the loop to stop through a [`Remote`] (the test
//! then fails with a message that names it), and if the loop is too blocked to stop, exits the
//! process after a grace period rather than let the test run hang.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Backend, EventLoop, Handle, ManualClock, Remote, RunError};

/// How long a timed-out test's loop has to stop before the process exits.
const GRACE: Duration = Duration::from_secs(5);

/// The options of one `#[solo::main]` or `#[solo::test]`, and the fn's name for messages.
#[derive(Debug)]
#[must_use]
pub struct Config {
    name: &'static str,
    test: bool,
    debug: Option<bool>,
    backend: Option<Backend>,
    manual_clock: bool,
    timeout: Option<Duration>,
}

impl Config {
    /// For `#[solo::main]` on the fn `name`.
    pub fn main(name: &'static str) -> Config {
        Config::new(name, false)
    }

    /// For `#[solo::test]` on the test `name` (its path, as libtest names it).
    pub fn test(name: &'static str) -> Config {
        Config::new(name, true)
    }

    fn new(name: &'static str, test: bool) -> Config {
        Config {
            name,
            test,
            debug: None,
            backend: None,
            manual_clock: false,
            timeout: None,
        }
    }

    /// `debug`: debug mode on or off, whatever `SOLO_DEBUG` says.
    pub fn debug(mut self, on: bool) -> Config {
        self.debug = Some(on);
        self
    }

    /// `backend = "..."`.
    pub fn backend(mut self, backend: Backend) -> Config {
        self.backend = Some(backend);
        self
    }

    /// `clock = "manual"`.
    pub fn manual_clock(mut self) -> Config {
        self.manual_clock = true;
        self
    }

    /// `timeout = "..."`: the test's bound in real time (`None`: no bound).
    pub fn timeout(mut self, bound: Option<Duration>) -> Config {
        self.timeout = bound;
        self
    }

    /// Runs `body` on a new loop and returns its output.
    pub fn run<T, F: Future<Output = T>>(self, body: F) -> T {
        let clock = self.manual_clock.then(ManualClock::new);
        self.block_on(clock, body)
    }

    /// Runs the future `body` makes of the loop's manual clock (a test's `clock` argument).
    pub fn run_with_clock<T, B, F>(self, body: B) -> T
    where
        B: FnOnce(ManualClock) -> F,
        F: Future<Output = T>,
    {
        let clock = ManualClock::new();
        let body = body(clock.clone());
        self.block_on(Some(clock), body)
    }

    fn what(&self) -> String {
        if self.test {
            format!("#[solo::test] {}", self.name)
        } else {
            format!("#[solo::main] fn {}", self.name)
        }
    }

    fn block_on<F: Future>(self, clock: Option<ManualClock>, body: F) -> F::Output {
        let mut builder = EventLoop::builder();
        if let Some(on) = self.debug {
            builder = builder.debug(on);
        }
        if let Some(b) = self.backend {
            builder = builder.backend(b);
        }
        if let Some(c) = clock {
            builder = builder.clock(c);
        }
        let el = match builder.build() {
            Ok(el) => el,
            Err(e) => panic!("{}: cannot start its solo event loop: {e}", self.what()),
        };
        let watchdog = self
            .timeout
            .map(|bound| Watchdog::arm(el.handle().remote(), bound, self.what()));
        let out = el.run_until_complete(body);
        let timed_out = watchdog.is_some_and(|w| w.disarm());
        match out {
            Ok(v) => {
                el.shutdown(Duration::ZERO);
                v
            }
            Err(e) => {
                drop(el); // the body's future with it, before the message
                match (e, self.timeout) {
                    (RunError::Stopped, Some(bound)) if timed_out => panic!(
                        "{} timed out: still running after {bound:?}; the loop was stopped \
                         (a longer bound: #[solo::test(timeout = \"...\")])",
                        self.what()
                    ),
                    (e, _) => panic!("{}: {e}", self.what()),
                }
            }
        }
    }
}

/// A test's bound, watched by a thread; disarmed when the test ends (also by a panic).
struct Watchdog {
    disarm: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    fn arm(remote: Remote, bound: Duration, what: String) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let thread = std::thread::Builder::new()
            .name("solo-test-timeout".into())
            .spawn(move || {
                if rx.recv_timeout(bound) != Err(RecvTimeoutError::Timeout) {
                    return; // disarmed
                }
                f.store(true, Ordering::SeqCst);
                // The callback runs on the loop thread, where the loop is the current one.
                let _ = remote.call_soon_threadsafe(|| {
                    if let Some(h) = Handle::try_current() {
                        h.stop();
                    }
                });
                if rx.recv_timeout(GRACE) == Err(RecvTimeoutError::Timeout) {
                    // Straight to fd 2: libtest captures `eprintln!` (also on this thread)
                    // and would lose it at the exit.
                    let _ = writeln!(
                        std::io::stderr(),
                        "{what} timed out: still running after {bound:?}, and its loop did not \
                         stop within {GRACE:?} when asked: something blocks it (a callback or a \
                         poll that does not return, such as a blocking call on the loop's \
                         thread); exiting the test process"
                    );
                    std::process::exit(101);
                }
            })
            .expect("spawn the test's timeout thread");
        Watchdog {
            disarm: Some(tx),
            fired,
            thread: Some(thread),
        }
    }

    /// Stops watching; whether the bound had passed.
    fn disarm(mut self) -> bool {
        self.stop();
        self.fired.load(Ordering::SeqCst)
    }

    fn stop(&mut self) {
        drop(self.disarm.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}
