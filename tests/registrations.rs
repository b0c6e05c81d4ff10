//! I/O registrations under abuse: events that arrive for a registration removed in the same
//! iteration, fds closed while registered and their numbers reused, and a model-based test of
//! random add / remove / close / reuse / ready sequences.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use solo::{EventLoop, Handle};

mod common;

use common::run_once;

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

/// What the exception handler sees, as `kind: message`.
fn exceptions(h: &Handle) -> Log {
    let seen = log();
    let s = seen.clone();
    h.set_exception_handler(move |ctx| {
        s.borrow_mut()
            .push(format!("{}: {}", ctx.kind(), ctx.message()))
    });
    seen
}

/// A socket pair whose `.0` end has `fd` as its number: the kernel hands out the lowest free
/// number, so after `fd` is closed the next socket usually gets it. Other test threads may take
/// it first, so this tries a bounded number of times.
fn pair_reusing(fd: RawFd) -> (UnixStream, UnixStream) {
    // Another test's thread may hold the number for a while: open a pair, and if it did not get
    // the number, close it (so that the next pair gets the lowest free number again) and retry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (a, b) = UnixStream::pair().unwrap();
        if a.as_raw_fd() == fd {
            return (a, b);
        }
        if b.as_raw_fd() == fd {
            return (b, a);
        }
        drop((a, b));
        assert!(
            std::time::Instant::now() < deadline,
            "fd {fd} was not reused within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

// ---- stale events ----

#[test]
fn an_event_for_a_reader_removed_earlier_in_the_iteration_never_reaches_its_slot_successor() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    // Two ready fds: both events come back from one poll, both entries are queued.
    let (a, mut a_peer) = UnixStream::pair().unwrap();
    let (b, mut b_peer) = UnixStream::pair().unwrap();
    // A third fd that never becomes readable.
    let (c, _c_peer) = UnixStream::pair().unwrap();
    a_peer.write_all(b"a").unwrap();
    b_peer.write_all(b"b").unwrap();
    let ran = log();
    let (ra, rb) = (Rc::new(a), Rc::new(b));
    let c = Rc::new(c);
    // Whichever reader runs first removes the other and adds a reader on `c`: the slab slot it
    // frees is the one `c` gets. The queued event of the removed reader must not run it.
    for (me, other, name) in [(ra.clone(), rb.clone(), "a"), (rb.clone(), ra.clone(), "b")] {
        let (h2, ran2, c2, fd) = (h.clone(), ran.clone(), c.clone(), me.as_raw_fd());
        h.add_reader(&fd, move || {
            ran2.borrow_mut().push(name.to_string());
            let mut buf = [0; 8];
            let _ = (&*me).read(&mut buf);
            if h2.remove_reader(&*other) {
                let ran3 = ran2.clone();
                h2.add_reader(&*c2, move || ran3.borrow_mut().push("c".into()))
                    .unwrap();
            }
            h2.remove_reader(&*me);
        })
        .unwrap();
    }
    run_once(&el);
    run_once(&el);
    assert_eq!(ran.borrow().len(), 1, "{:?}", ran.borrow());
    assert!(ran.borrow()[0] == "a" || ran.borrow()[0] == "b");
    assert!(h.remove_reader(&*c));
}

#[test]
fn a_reader_that_removes_and_re_adds_itself_runs_again_only_while_ready() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (a, mut peer) = UnixStream::pair().unwrap();
    let a = Rc::new(a);
    peer.write_all(b"xy").unwrap();
    let calls = Rc::new(Cell::new(0));
    fn install(h: &Handle, a: Rc<UnixStream>, calls: Rc<Cell<u32>>) {
        let (h2, a2) = (h.clone(), a.clone());
        h.add_reader(&*a, move || {
            calls.set(calls.get() + 1);
            let mut byte = [0; 1];
            (&*a2).read_exact(&mut byte).unwrap(); // one byte per call
            h2.remove_reader(&*a2);
            install(&h2, a2.clone(), calls.clone());
        })
        .unwrap();
    }
    install(&h, a.clone(), calls.clone());
    for _ in 0..5 {
        run_once(&el);
    }
    assert_eq!(calls.get(), 2, "one call per byte, then nothing");
    assert!(h.remove_reader(&*a));
}

// ---- fd numbers reused ----

#[test]
fn a_reader_on_a_reused_fd_number_replaces_the_stale_one_and_reports_it() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let (old, _old_peer) = UnixStream::pair().unwrap();
    let fd = old.as_raw_fd();
    let old_runs = Rc::new(Cell::new(0));
    let dropped = Rc::new(Cell::new(0));
    let (r, d) = (old_runs.clone(), common::Counted(dropped.clone()));
    h.add_reader(&old, move || {
        let _keep = &d;
        r.set(r.get() + 1);
    })
    .unwrap();
    drop(old); // closed while registered: the user broke the rule
    let (new, mut new_peer) = pair_reusing(fd);
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    h.add_reader(&new, move || g.set(g.get() + 1)).unwrap();
    assert_eq!(dropped.get(), 1, "the stale reader is dropped");
    new_peer.write_all(b"x").unwrap();
    run_once(&el);
    assert!(got.get() >= 1, "the new file's reader runs");
    assert_eq!(old_runs.get(), 0, "the stale reader never runs");
    assert_eq!(seen.borrow().len(), 1, "{:?}", seen.borrow());
    assert!(
        seen.borrow()[0].starts_with(&format!(
            "reader callback: fd {fd} was closed while registered and its number reused"
        )),
        "{:?}",
        seen.borrow()
    );
    assert!(h.remove_reader(&new));
    // A fresh callback still runs.
    let fresh = Rc::new(Cell::new(false));
    let f = fresh.clone();
    h.call_soon(move || f.set(true));
    run_once(&el);
    assert!(fresh.get());
}

#[test]
fn an_async_on_a_reused_fd_number_evicts_the_stale_reader_and_works() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let (old, _old_peer) = UnixStream::pair().unwrap();
    let fd = old.as_raw_fd();
    h.add_reader(&old, || panic!("a stale reader must never run"))
        .unwrap();
    drop(old);
    let (new, mut new_peer) = pair_reusing(fd);
    let got = el
        .run_until_complete(async move {
            let new = solo::Async::new(new).unwrap();
            new_peer.write_all(b"ok").unwrap();
            new.readable().await.unwrap();
            let mut buf = [0; 2];
            new.get_ref().read_exact(&mut buf).unwrap();
            buf
        })
        .unwrap();
    assert_eq!(&got, b"ok");
    assert_eq!(seen.borrow().len(), 1, "{:?}", seen.borrow());
    assert!(seen.borrow()[0].contains("was closed while registered"));
    // The stale registration is gone: nothing to remove under that number any more.
    assert!(!h.remove_reader(&fd));
}

#[test]
fn remove_reader_on_a_closed_and_reused_number_removes_only_the_stale_registration() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (old, _old_peer) = UnixStream::pair().unwrap();
    let fd = old.as_raw_fd();
    h.add_reader(&old, || {}).unwrap();
    drop(old);
    // The number now names a file solo does not know; removing it is the user's clean-up.
    let (new, _new_peer) = pair_reusing(fd);
    assert!(h.remove_reader(&new));
    assert!(!h.remove_reader(&new));
    // And the number can be registered afresh.
    let h2 = h.clone();
    h.add_reader(&new, move || h2.stop()).unwrap();
    let mut peer = _new_peer;
    peer.write_all(b"x").unwrap();
    el.run_forever().unwrap();
    assert!(h.remove_reader(&new));
}

#[test]
fn a_reader_cannot_take_over_an_fd_that_a_live_async_owns() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (a, _peer) = UnixStream::pair().unwrap();
    el.run_until_complete(async {
        let a = solo::Async::new(a).unwrap();
        let err = h.add_reader(a.get_ref(), || {}).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("Async"), "{err}");
        assert!(!h.remove_reader(a.get_ref()), "the Async is not a reader");
    })
    .unwrap();
}

/// An fd number that does not close itself: for closing an `Async`'s fd behind its back.
struct Borrowed(RawFd);

impl AsRawFd for Borrowed {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

#[test]
fn an_async_whose_fd_was_closed_behind_its_back_errors_and_never_tears_down_the_new_owner() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let (a, _a_peer) = UnixStream::pair().unwrap();
    let fd = a.into_raw_fd();
    // SAFETY: `fd` is open and owned by `owned` only; the `Async` below merely names it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let reused = el
        .run_until_complete(async {
            let stale = solo::Async::new(Borrowed(fd)).unwrap();
            drop(owned); // closed while the Async is registered
            let (new, mut new_peer) = pair_reusing(fd);
            // A reader on the reused number: the kernel takes it, the Async is evicted.
            let got = Rc::new(Cell::new(false));
            let g = got.clone();
            h.add_reader(&new, move || g.set(true)).unwrap();
            let err = stale.readable().await.unwrap_err();
            assert!(err.to_string().contains("closed while registered"), "{err}");
            drop(stale); // must not delete the reader's registration of the number
            new_peer.write_all(b"x").unwrap();
            solo::time::sleep(std::time::Duration::from_millis(1)).await;
            while !got.get() {
                solo::yield_now().await;
            }
            (new, new_peer)
        })
        .unwrap();
    assert!(seen.borrow()[0].contains("was closed while registered"));
    assert!(h.remove_reader(&reused.0));
}

#[test]
fn bad_fds_are_clear_errors() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let err = h.add_reader(&-1, || {}).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // A number with nothing open behind it (not one just closed: another test's thread may
    // open a file and get that number back before we use it).
    let err = h.add_reader(&999_999, || {}).unwrap_err();
    assert!(
        err.to_string().contains("not an open file descriptor"),
        "{err}"
    );
    // Registered, closed, then touched again: EBADF on the re-arm, the registration goes. In a
    // child process of its own, where no other test's thread can take the closed number first
    // (then the loop rightly reports a reused number instead: another test covers that).
    common::with_env!(&[("SOLO_TESTS_ALONE", "1")], || {
        let el = EventLoop::new().unwrap();
        let h = el.handle();
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        h.add_reader(&a, || {}).unwrap();
        drop(a);
        let err = h.add_writer(&fd, || {}).unwrap_err();
        assert!(
            err.to_string().contains("not an open file descriptor"),
            "{err}"
        );
        assert!(!h.remove_reader(&fd), "the dead registration is gone");
    });
    // A regular file cannot be polled.
    let file = std::fs::File::open("/proc/self/status").unwrap();
    assert!(h.add_reader(&file, || {}).is_err());
}

// ---- the model ----

mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    #[derive(Clone, Copy, Debug)]
    enum Op {
        AddReader(usize),
        AddWriter(usize),
        RemoveReader(usize),
        RemoveWriter(usize),
        /// Close the slot's socket without removing its callbacks (the rule broken).
        Close(usize),
        /// A new socket for a closed slot: its number is often the one just closed.
        Reopen(usize),
        MakeReady(usize),
        Drain(usize),
        RunOnce,
    }

    const SLOTS: usize = 3;

    fn op() -> impl Strategy<Value = Op> {
        let s = 0..SLOTS;
        prop_oneof![
            s.clone().prop_map(Op::AddReader),
            s.clone().prop_map(Op::AddWriter),
            s.clone().prop_map(Op::RemoveReader),
            s.clone().prop_map(Op::RemoveWriter),
            s.clone().prop_map(Op::Close),
            s.clone().prop_map(Op::Reopen),
            s.clone().prop_map(Op::MakeReady),
            s.clone().prop_map(Op::Drain),
            Just(Op::RunOnce),
            Just(Op::RunOnce),
        ]
    }

    /// A registration as the model sees it: which callback, and whether its file is still the
    /// one open under that number.
    #[derive(Clone, Copy, Debug)]
    struct Reg {
        id: u32,
        live: bool,
    }

    /// Per fd number: the reader and the writer registered under it.
    #[derive(Default, Debug)]
    struct Regs {
        reader: Option<Reg>,
        writer: Option<Reg>,
    }

    struct Slot {
        end: Option<UnixStream>,
        peer: Option<UnixStream>,
    }

    fn run(ops: &[Op]) -> Result<(), TestCaseError> {
        let el = EventLoop::new().unwrap();
        let h = el.handle();
        let reports = exceptions(&h);
        let ran: Rc<RefCell<Vec<u32>>> = Rc::default();
        let mut slots: Vec<Slot> = (0..SLOTS)
            .map(|_| {
                let (a, b) = UnixStream::pair().unwrap();
                b.set_nonblocking(true).unwrap();
                a.set_nonblocking(true).unwrap();
                Slot {
                    end: Some(a),
                    peer: Some(b),
                }
            })
            .collect();
        let mut regs: HashMap<RawFd, Regs> = HashMap::new();
        let mut next_id = 0u32;
        let mut expected_reports = 0usize;
        for &op in ops {
            match op {
                Op::AddReader(i) | Op::AddWriter(i) => {
                    let reader = matches!(op, Op::AddReader(_));
                    let Some(end) = &slots[i].end else { continue };
                    let fd = end.as_raw_fd();
                    next_id += 1;
                    let (id, r) = (next_id, ran.clone());
                    let f = move || r.borrow_mut().push(id);
                    if reader {
                        h.add_reader(end, f).unwrap();
                    } else {
                        h.add_writer(end, f).unwrap();
                    }
                    let e = regs.entry(fd).or_default();
                    // Registrations under this number left by a closed file are evicted and
                    // reported, once, with all their callbacks.
                    let stale = [e.reader, e.writer].iter().flatten().any(|r| !r.live);
                    if stale {
                        expected_reports += 1;
                        *e = Regs::default();
                    }
                    let reg = Some(Reg { id, live: true });
                    if reader {
                        e.reader = reg;
                    } else {
                        e.writer = reg;
                    }
                }
                Op::RemoveReader(i) | Op::RemoveWriter(i) => {
                    let reader = matches!(op, Op::RemoveReader(_));
                    let Some(end) = &slots[i].end else { continue };
                    let fd = end.as_raw_fd();
                    let got = if reader {
                        h.remove_reader(end)
                    } else {
                        h.remove_writer(end)
                    };
                    let e = regs.entry(fd).or_default();
                    let stale = [e.reader, e.writer].iter().flatten().any(|r| !r.live);
                    let mine = if reader { &mut e.reader } else { &mut e.writer };
                    let want = mine.take().is_some();
                    prop_assert_eq!(got, want, "remove on fd {} ({:?})", fd, op);
                    // Removing one side of a stale registration re-arms the other with the
                    // backend, which reveals the staleness: the rest is evicted.
                    if stale && want {
                        let other = if reader { &mut e.writer } else { &mut e.reader };
                        if other.take().is_some() {
                            expected_reports += 1;
                        }
                    }
                }
                Op::Close(i) => {
                    if let Some(end) = slots[i].end.take() {
                        if let Some(e) = regs.get_mut(&end.as_raw_fd()) {
                            for r in [&mut e.reader, &mut e.writer].into_iter().flatten() {
                                r.live = false;
                            }
                        }
                    }
                }
                Op::Reopen(i) => {
                    if slots[i].end.is_none() {
                        let (a, b) = UnixStream::pair().unwrap();
                        a.set_nonblocking(true).unwrap();
                        b.set_nonblocking(true).unwrap();
                        slots[i] = Slot {
                            end: Some(a),
                            peer: Some(b),
                        };
                    }
                }
                Op::MakeReady(i) => {
                    if slots[i].end.is_some() {
                        let _ = slots[i].peer.as_ref().unwrap().write(b"x");
                    }
                }
                Op::Drain(i) => {
                    if let Some(end) = &slots[i].end {
                        let mut buf = [0; 64];
                        while (&*end).read(&mut buf).is_ok_and(|n| n > 0) {}
                    }
                }
                Op::RunOnce => {
                    ran.borrow_mut().clear();
                    run_once(&el);
                    let got: BTreeSet<u32> = ran.borrow().iter().copied().collect();
                    prop_assert_eq!(got.len(), ran.borrow().len(), "a callback ran twice");
                    // Exactly the live callbacks whose files are ready ran: readers of sockets
                    // with unread data, every writer (a socket pair is always writable).
                    let mut want = BTreeSet::new();
                    for s in &slots {
                        let Some(end) = &s.end else { continue };
                        let Some(e) = regs.get(&end.as_raw_fd()) else {
                            continue;
                        };
                        let mut probe = [0u8; 1];
                        let readable = {
                            // SAFETY: a 1-byte buffer of ours, an open socket; MSG_PEEK
                            // leaves the data in place.
                            let n = unsafe {
                                libc::recv(
                                    end.as_raw_fd(),
                                    probe.as_mut_ptr().cast(),
                                    1,
                                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                                )
                            };
                            n > 0
                        };
                        if let Some(r) = e.reader.filter(|r| r.live && readable) {
                            want.insert(r.id);
                        }
                        if let Some(w) = e.writer.filter(|w| w.live) {
                            want.insert(w.id);
                        }
                    }
                    prop_assert_eq!(got, want);
                }
            }
        }
        prop_assert_eq!(
            reports.borrow().len(),
            expected_reports,
            "{:?}",
            reports.borrow()
        );
        // Whatever happened, the loop still serves a fresh callback.
        let fresh = Rc::new(Cell::new(false));
        let f = fresh.clone();
        h.call_soon(move || f.set(true));
        run_once(&el);
        prop_assert!(fresh.get());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn random_registration_histories_run_exactly_the_live_ready_callbacks(
            ops in proptest::collection::vec(op(), 1..40)
        ) {
            let _watchdog = common::watchdog!();
            run(&ops)?;
        }
    }
}
