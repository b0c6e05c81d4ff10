//! One iteration of the loop: [`Inner::run_once`], as its five phases.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc, time::Duration};
//!
//! let el = solo::EventLoop::builder().clock(solo::ManualClock::new()).build().unwrap();
//! let h = el.handle();
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let (l1, l2, h2) = (log.clone(), log.clone(), h.clone());
//! h.call_later(Duration::from_secs(5), move || { l1.borrow_mut().push("timer"); h2.stop() });
//! h.call_soon(move || l2.borrow_mut().push("soon"));
//! el.run_forever().unwrap(); // the manual clock jumps to the timer: no real wait
//! assert_eq!(*log.borrow(), ["soon", "timer"]);
//! ```
//!
//! Like asyncio's `_run_once` and libuv's `uv_run`, every turn goes through the same phases,
//! in this order (ARCHITECTURE.md numbers and draws them the same way):
//!
//! 1. [`plan_wait`](Inner::plan_wait): how long may the loop block for I/O?
//! 2. [`poll_io`](Inner::poll_io): wait for I/O (or skip the wait, see below), queue reader
//!    callbacks, wake tasks waiting on fds.
//! 3. [`take_remote_work`](Inner::take_remote_work): callbacks and task wake-ups from other
//!    threads.
//! 4. [`expire_timers`](Inner::expire_timers): wake sleeping tasks, queue due timer callbacks
//!    (with a manual clock that nothing else woke, [`jump_to_timer`](Inner::jump_to_timer)
//!    first moves the clock to the next deadline).
//! 5. [`run_ready`](Inner::run_ready): run exactly the entries queued *now*; what they
//!    schedule runs in the next iteration, so a callback that reschedules itself cannot starve
//!    timers or I/O.
//!
//! No user code runs in phases 1–2 (the loop is inside the backend) except the wakers of tasks
//! (solo's own, or a foreign executor's), which are guarded. Everything that runs in phase 5
//! goes through [`run_entry`](Inner::run_entry), the one place where a panic is caught.
//!
//! The iteration is generic over a [`Probe`]: debug mode's timing and accounting are hooks of
//! the probe, not a second copy of the phases.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::task::Waker;
use std::time::Duration;

use super::callbacks::{Runnable, TimerPayload};
use super::probe::{DebugProbe, NoProbe, Probe};
use super::{Inner, CLOCK_CHECK_EVERY, POLL_EVERY_ITERATIONS, POLL_EVERY_NS, RELEASE_EVERY_NS};
use crate::callback::{Callback, CallbackKind, SoonCallback};
use crate::debug::What;
use crate::reactor::{Dir, IoAction};
use crate::reclaim;
use crate::shared::RemoteItem;
use crate::task::{RunResult, TaskRef};
use crate::timer::Fired;

/// Scratch buffers reused by every iteration, so that a steady loop does not allocate.
#[derive(Default)]
pub(super) struct Scratch {
    fired: Vec<Fired>,
    actions: Vec<IoAction>,
    wakers: Vec<Waker>,
    remote: Vec<RemoteItem>,
}

/// Phase 1's decision, read by the later phases.
struct Wait {
    /// Something is queued, or the main future was woken: the loop must not block.
    has_work: bool,
    /// The loop time when the plan was made.
    now: u64,
    /// How long the poll may block: zero, until the next timer, or (`None`) until an event.
    timeout: Option<Duration>,
    /// When the timer wheel next needs attention.
    next_timer: Option<u64>,
    /// A manual clock with only a timer to wait for: the clock jumps instead of the loop
    /// sleeping.
    waiting_for_timer: bool,
}

impl Inner {
    /// One turn of the loop: the five phases, observed by the probe that the loop's settings
    /// pick. `max_wait` caps how long it may wait for I/O (an embedding host's step); `None`:
    /// as long as the loop needs.
    pub(super) fn run_once(&self, max_wait: Option<Duration>) {
        match self.debug() {
            None => self.iterate(&NoProbe, max_wait),
            Some(d) => self.iterate(&DebugProbe::new(d, &self.clock), max_wait),
        }
    }

    /// A turn of `run_forever` or `run_until_complete`: one iteration, then, without debug
    /// mode, as many more as would do nothing but phase 5, run back to back. Such an iteration
    /// finds work queued, has no reason to read the clock (`CLOCK_CHECK_EVERY`) or to poll
    /// (`POLL_EVERY_ITERATIONS`, and `POLL_EVERY_NS` against the last reading, as `plan_wait`
    /// and `poll_io` would see them), no timer, no work from another thread, no wake of the main
    /// future and no `stop`: its phases 1-4 would only count it, so only that is done. Each
    /// such iteration still runs only what was queued when it began, and the bounds of
    /// "Polling while busy" hold unchanged. What a callback chain pays per callback is then a
    /// few tests instead of a whole iteration.
    pub(super) fn run_turn(&self) {
        match self.debug() {
            None => {
                self.iterate(&NoProbe, None);
                loop {
                    let n = self.ready.borrow().len();
                    if n == 0 || !self.only_runs_ready() {
                        break;
                    }
                    self.iters_since_poll.set(self.iters_since_poll.get() + 1);
                    self.run_entries(n, &NoProbe);
                }
            }
            Some(d) => self.iterate(&DebugProbe::new(d, &self.clock), None),
        }
    }

    /// Whether the next iteration, with work queued, would only run the ready queue (see
    /// `run_turn`).
    #[inline(always)]
    fn only_runs_ready(&self) -> bool {
        let iters = self.iters_since_poll.get();
        iters % CLOCK_CHECK_EVERY != 0
            && iters < POLL_EVERY_ITERATIONS
            && !self.stopping.get()
            && !self.shared.has_pending()
            && !self.main_woken()
            && self.timers.borrow().next_deadline().is_none()
            && self.now.get().saturating_sub(self.last_poll.get()) < POLL_EVERY_NS
    }

    #[inline(always)]
    fn iterate<P: Probe>(&self, probe: &P, max_wait: Option<Duration>) {
        let mut scratch = self.scratch.borrow_mut();
        let scratch = &mut *scratch;
        probe.begin_iteration();
        let wait = self.plan_wait(max_wait); // 1
        let (mut now, polled) = self.poll_io(&wait, probe, scratch); // 2
        self.take_remote_work(&mut scratch.remote); // 3
        if wait.waiting_for_timer {
            now = self.jump_to_timer(&wait, now);
        }
        self.expire_timers(wait.next_timer, now, probe, &mut scratch.fired); // 4
        self.run_ready(probe); // 5
        if polled && now.saturating_sub(self.last_release.get()) >= RELEASE_EVERY_NS {
            self.last_release.set(now);
            self.release_memory(scratch);
        }
        probe.end_iteration();
    }

    /// Whether the future of a running `run_until_complete` was woken.
    fn main_woken(&self) -> bool {
        self.main_running.get() && self.shared.main_woken.load(Ordering::Acquire)
    }

    /// Phase 1. Decides how long the poll may block: zero if anything is ready to run (or the
    /// loop is stopping, or another thread queued work); otherwise until the next timer;
    /// otherwise until an event. Reads the clock, unless the loop is busy with no timers and
    /// read it less than `CLOCK_CHECK_EVERY` iterations ago (a clock read costs as much as a
    /// short callback). Runs no user code.
    #[inline(always)]
    fn plan_wait(&self, max_wait: Option<Duration>) -> Wait {
        // Work: queued entries, or the `run_until_complete` future woken (it is polled between
        // iterations rather than from the queue).
        let has_work = !self.ready.borrow().is_empty() || self.main_woken();
        let busy = has_work || self.stopping.get() || self.shared.has_pending();
        let next_timer = self.timers.borrow().next_deadline();
        let now = if next_timer.is_some()
            || !has_work
            || self.iters_since_poll.get() % CLOCK_CHECK_EVERY == 0
            || self.debug().is_some()
        {
            self.read_clock()
        } else {
            self.now.get()
        };
        // A manual clock never makes the loop sleep for a timer: it polls without blocking and,
        // if nothing else happened, jumps to the timer.
        let until_timer = next_timer.map(|t| Duration::from_nanos(t.saturating_sub(now)));
        // (A step that may not wait that long does not jump there either.)
        let waiting_for_timer = self.clock.is_manual()
            && !busy
            && until_timer.is_some_and(|d| max_wait.is_none_or(|m| d <= m));
        let timeout = if busy || waiting_for_timer {
            Some(Duration::ZERO)
        } else {
            match (until_timer, max_wait) {
                (Some(t), Some(m)) => Some(t.min(m)),
                (t, m) => t.or(m),
            }
        };
        Wait {
            has_work,
            now,
            timeout,
            next_timer,
            waiting_for_timer,
        }
    }

    /// Phase 2. Waits for I/O for at most the planned timeout, then queues the reader and writer
    /// callbacks of ready fds and wakes the tasks waiting on them. While work is queued the wait
    /// would not block anyway, so it is skipped unless `POLL_EVERY_ITERATIONS` iterations or
    /// `POLL_EVERY_NS` of loop time have passed since the last one: a chain of a million
    /// `call_soon`s pays for a few thousand syscalls, and I/O is never starved longer than that.
    /// Returns the loop time after the poll, and whether it polled. A failed wait is reported
    /// (kind [`CallbackKind::Loop`]); the iteration goes on.
    #[inline(always)]
    fn poll_io<P: Probe>(&self, wait: &Wait, probe: &P, scratch: &mut Scratch) -> (u64, bool) {
        let must_poll = !wait.has_work
            || self.iters_since_poll.get() >= POLL_EVERY_ITERATIONS
            || wait.now.saturating_sub(self.last_poll.get()) >= POLL_EVERY_NS;
        if !must_poll {
            self.iters_since_poll.set(self.iters_since_poll.get() + 1);
            return (wait.now, false);
        }
        // Spins first if the builder asked for it, then blocks for what is left of the timeout.
        let polled = self
            .reactor
            .borrow_mut()
            .poll(wait.timeout, || self.shared.has_pending());
        probe.polled(wait.now);
        if let Err(e) = polled {
            self.report_loop_error(&format!("waiting for I/O failed: {e}"));
        }
        self.reactor
            .borrow_mut()
            .dispatch(&mut scratch.actions, &mut scratch.wakers);
        probe.io_dispatched(scratch.actions.len() + scratch.wakers.len());
        for IoAction::Call(token, dir) in scratch.actions.drain(..) {
            self.push(Runnable::Io(token, dir));
        }
        for w in scratch.wakers.drain(..) {
            self.wake(w);
        }
        let now = self.read_clock();
        self.iters_since_poll.set(0);
        self.last_poll.set(now);
        (now, true)
    }

    /// Phase 3. Moves what other threads queued since the last drain into this iteration:
    /// `call_soon_threadsafe` callbacks join the ready queue, woken tasks are scheduled. One
    /// atomic load when nothing came.
    #[inline(always)]
    fn take_remote_work(&self, remote: &mut Vec<RemoteItem>) {
        if !self.shared.has_pending() {
            return;
        }
        self.shared.drain_into(remote);
        for item in remote.drain(..) {
            match item {
                RemoteItem::Call(call) => self.push(Runnable::Remote(call)),
                // A task's waker: on the loop thread, waking it schedules the task.
                RemoteItem::Wake(w) => self.wake(w),
            }
        }
    }

    /// Phase 4, first step, manual clock only: if the loop would have slept until the next
    /// timer and nothing else happened (no I/O, no remote work, no wake of the main future),
    /// jumps the clock to that timer. Returns the loop time.
    fn jump_to_timer(&self, wait: &Wait, now: u64) -> u64 {
        let quiet =
            self.ready.borrow().is_empty() && !self.shared.has_pending() && !self.main_woken();
        match wait.next_timer {
            Some(t) if quiet => {
                self.clock.jump_to(t);
                self.read_clock()
            }
            _ => now,
        }
    }

    /// Phase 4. Acts on the timers due at `now`, in deadline order: a sleeping task is woken at
    /// once (its timer is gone), a callback gets a ready-queue entry (its timer stays in the
    /// wheel until it runs, so a cancel before then still works).
    #[inline(always)]
    fn expire_timers<P: Probe>(
        &self,
        next_timer: Option<u64>,
        now: u64,
        probe: &P,
        fired: &mut Vec<Fired>,
    ) {
        if next_timer.is_none_or(|t| t > now) {
            return;
        }
        self.timers.borrow_mut().expire(now, fired);
        for f in fired.drain(..) {
            let waker = self
                .timers
                .borrow_mut()
                .remove_if(f.key, TimerPayload::is_wake);
            let Some(w) = waker else {
                // A callback: it stays in the wheel until its entry runs.
                self.push(Runnable::Timer(f.key, f.deadline));
                continue;
            };
            probe.timer_fired(f.deadline);
            self.wake_payload(w);
        }
    }

    /// Phase 5. Runs exactly the entries that are in the ready queue now, in FIFO order.
    /// Whatever they schedule lands behind them and runs in the next iteration.
    #[inline(always)]
    fn run_ready<P: Probe>(&self, probe: &P) {
        let n = self.ready.borrow().len();
        self.run_entries(n, probe);
    }

    /// Runs the first `n` entries of the ready queue.
    #[inline(always)]
    fn run_entries<P: Probe>(&self, n: usize, probe: &P) {
        for _ in 0..n {
            let Some(r) = self.ready.borrow_mut().pop_front() else {
                break;
            };
            probe.dequeued(matches!(r, Runnable::Io(..)));
            self.run_entry(r, probe);
        }
    }

    /// Runs one ready-queue entry: the single place where user code is called from the queue.
    /// A panic is caught and reported; the loop goes on.
    #[inline(always)]
    fn run_entry<P: Probe>(&self, r: Runnable, probe: &P) {
        match r {
            Runnable::Soon(f) => {
                if self.soon.take_cancelled() {
                    let site = f.site();
                    self.drop_guarded(f, CallbackKind::Soon, site);
                } else {
                    let what = |f: &SoonCallback| What {
                        kind: CallbackKind::Soon,
                        site: f.site(),
                        type_name: Some(f.type_name()),
                        task: None,
                    };
                    if let Err(p) = probe.run(f, what, SoonCallback::call) {
                        self.report_panic(CallbackKind::Soon, p.site, None, &*p.payload);
                    }
                }
            }
            Runnable::Timer(key, deadline) => {
                let payload = self.timers.borrow_mut().remove(key);
                if payload.is_some() {
                    probe.timer_fired(deadline);
                }
                match payload {
                    Some(TimerPayload::Call(f)) => self.call(CallbackKind::Timer, f, probe),
                    Some(w) => self.wake_payload(w),
                    None => {} // cancelled after it fired, before it ran
                }
            }
            Runnable::Io(token, dir) => self.run_io_callback(token, dir, probe),
            Runnable::Task(t) => self.run_task(t, probe),
            Runnable::Remote(f) => self.call(CallbackKind::Remote, f, probe),
        }
    }

    /// Calls a one-shot callback, catching its panic.
    #[inline]
    fn call<P: Probe>(&self, kind: CallbackKind, f: Box<dyn Callback + '_>, probe: &P) {
        let what = |f: &Box<_>| What {
            kind,
            site: Callback::site(&**f),
            type_name: Some(Callback::type_name(&**f)),
            task: None,
        };
        if let Err(p) = probe.run(f, what, |f| f.call()) {
            self.report_panic(kind, p.site, None, &*p.payload);
        }
    }

    /// Runs a reader or writer callback, then hands it back to the reactor, which re-arms the
    /// fd (asyncio's level-triggered readers on an edge-triggered backend). The reactor lends
    /// the callback out: while it runs, it may remove or replace itself.
    fn run_io_callback<P: Probe>(&self, token: usize, dir: Dir, probe: &P) {
        let taken = self.reactor.borrow_mut().take_callback(token, dir);
        let Some(mut cb) = taken else {
            return; // removed since the event arrived
        };
        let (kind, site) = (cb.kind, cb.site);
        let what = |_: &_| What {
            kind,
            site,
            type_name: None,
            task: None,
        };
        let result = probe.run(&mut cb.f, what, |f| catch_unwind(AssertUnwindSafe(f)));
        if let Err(p) = result {
            self.report_panic(kind, site, None, &*p);
        }
        let fd = cb.fd;
        let (left, rearmed) = self.reactor.borrow_mut().restore_callback(token, dir, cb);
        for cb in left {
            // Removed or replaced while it ran, or its fd was found closed.
            self.drop_unregistered(cb);
        }
        if let Err(e) = rearmed {
            let msg =
                format!("fd {fd} was closed while registered; its callbacks were removed ({e})");
            self.report_error(kind, site, &msg);
        }
    }

    /// Polls a task (or drops it, if cancelled) and retires it when it finishes.
    #[inline]
    fn run_task<P: Probe>(&self, t: TaskRef, probe: &P) {
        let slot = t.header().slot.get();
        match self.budget.with_budget(|| probe.poll_task(t)) {
            RunResult::Pending => {}
            RunResult::Done => drop(self.retire(slot)),
            RunResult::Panicked(msg) => {
                let name = self.task_name(slot);
                if let Some(t) = self.retire(slot) {
                    // Reported now only if nobody can retrieve it (see `task_panicked`).
                    self.task_panicked(t, name, msg);
                }
            }
        }
    }

    /// After an iteration that polled, at most once per `RELEASE_EVERY_NS` of loop time: gives
    /// back the memory a burst left in the loop's queues, registries and scratch buffers (see
    /// `reclaim.rs` for the policy). The time bound keeps a loop whose bursts come every few
    /// milliseconds from shrinking and regrowing its queues for each one; a few comparisons when
    /// there is nothing to do.
    fn release_memory(&self, scratch: &mut Scratch) {
        self.ready.borrow_mut().release_memory();
        reclaim::slab(&mut self.tasks.borrow_mut());
        reclaim::map(&mut self.task_names.borrow_mut());
        self.soon.release_memory();
        self.reactor.borrow_mut().release_memory();
        reclaim::vec(&mut scratch.fired);
        // A loop with no timer due still gives back a timer store that emptied long enough ago.
        self.timers.borrow_mut().release_memory(self.now.get());
        reclaim::vec(&mut scratch.actions);
        reclaim::vec(&mut scratch.wakers);
        reclaim::vec(&mut scratch.remote);
        if let Some(d) = self.debug() {
            d.release_memory();
        }
    }

    /// Wakes whoever a wake timer's payload names. Its callers have checked `is_wake`: a
    /// callback's payload is run with its probe, not here.
    #[inline]
    pub(super) fn wake_payload(&self, p: TimerPayload) {
        match p {
            // Our own task: no user code runs.
            TimerPayload::Task(t) => t.wake(),
            TimerPayload::Wake(w) => self.wake(w),
            TimerPayload::Main => super::run::wake_main(&self.shared),
            TimerPayload::Call(_) => unreachable!("a callback's timer is run, not woken"),
        }
    }

    /// Wakes a task (or a foreign future) that the loop holds a waker for. A waker may be
    /// someone else's code, so its panic is caught and reported like a callback's.
    #[inline]
    pub(super) fn wake(&self, w: Waker) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| w.wake())) {
            let msg = format!("a waker panicked: {}", crate::error::panic_message(&*p));
            self.report_loop_error(&msg);
        }
    }
}

/// The poll-skipping bounds of phase 2, checked against the constants themselves (moved here
/// from tests/event_loop.rs when the constants left the public API).
#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::{CLOCK_CHECK_EVERY, POLL_EVERY_ITERATIONS, POLL_EVERY_NS};
    use crate::{Handle, ManualClock};

    /// A callback that reschedules itself forever, counting, each one taking 250 µs of manual
    /// clock time when a clock is given.
    fn forever(h: Handle, count: Rc<Cell<u64>>, clock: Option<ManualClock>) {
        count.set(count.get() + 1);
        if let Some(c) = &clock {
            c.advance(Duration::from_micros(250));
        }
        let h2 = h.clone();
        h.call_soon(move || forever(h2, count, clock));
    }

    #[test]
    fn a_self_rescheduling_callback_does_not_starve_readers_bounded_in_iterations() {
        let el = crate::EventLoop::new().unwrap();
        let h = el.handle();
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"x").unwrap();
        let count = Rc::new(Cell::new(0));
        let at = Rc::new(Cell::new(None));
        let (h2, c2, at2) = (h.clone(), count.clone(), at.clone());
        h.add_reader(&a, move || {
            at2.set(Some(c2.get()));
            h2.stop();
        })
        .unwrap();
        // Let the first iteration poll (the loop starts idle), then flood it.
        forever(h.clone(), count.clone(), None);
        el.run_forever().unwrap();
        let at = at.get().expect("reader ran");
        assert!(
            at <= u64::from(POLL_EVERY_ITERATIONS) + 2,
            "reader ran only after {at} iterations"
        );
    }

    #[test]
    fn busy_loop_polls_for_io_at_a_bounded_interval_in_time() {
        let clock = ManualClock::new();
        let el = crate::EventLoop::builder()
            .clock(clock.clone())
            .build()
            .unwrap();
        let h = el.handle();
        let (a, mut b) = UnixStream::pair().unwrap();
        let count = Rc::new(Cell::new(0u64));
        let at = Rc::new(Cell::new(None));
        let (h2, c2, at2) = (h.clone(), count.clone(), at.clone());
        h.add_reader(&a, move || {
            at2.set(Some(c2.get()));
            h2.stop();
        })
        .unwrap();
        // Each callback takes 250 µs of loop time: the 1 ms bound (checked at least every
        // CLOCK_CHECK_EVERY iterations) must trigger a poll long before the iteration bound does.
        forever(h.clone(), count.clone(), Some(clock.clone()));
        let h3 = h.clone();
        h.call_soon(move || {
            b.write_all(b"x").unwrap();
            h3.call_soon(move || drop(b));
        });
        el.run_forever().unwrap();
        let at = at.get().expect("reader ran");
        let bound = POLL_EVERY_NS / 250_000 + u64::from(CLOCK_CHECK_EVERY) + 2;
        assert!(
            at <= bound,
            "reader ran after {at} callbacks, bound {bound}"
        );
    }

    /// The iterations `run_turn` runs back to back are the ones a full iteration would have
    /// run: a `stop()` inside a chain ends the run after that callback's iteration, a timer
    /// fires on the first iteration past its deadline, and work from another thread is taken
    /// within `CLOCK_CHECK_EVERY` iterations.
    #[test]
    fn a_chain_run_back_to_back_still_stops_fires_timers_and_takes_remote_work() {
        let clock = ManualClock::new();
        let el = crate::EventLoop::builder()
            .clock(clock.clone())
            .build()
            .unwrap();
        let h = el.handle();
        let count = Rc::new(Cell::new(0u64));
        // Each callback takes 100 µs of loop time; the 50th stops the loop, at 5 ms.
        fn step(h: Handle, count: Rc<Cell<u64>>, clock: ManualClock) {
            count.set(count.get() + 1);
            clock.advance(Duration::from_micros(100));
            if count.get() == 50 {
                h.stop();
            }
            let h2 = h.clone();
            h.call_soon(move || step(h2, count, clock));
        }
        step(h.clone(), count.clone(), clock.clone());
        el.run_forever().unwrap();
        assert_eq!(count.get(), 50, "stop ends the run after its iteration");
        // A timer 1 ms away (on a tick of the wheel): due after ten more callbacks, fired in the
        // first iteration that reaches it.
        let fired_at = Rc::new(Cell::new(None));
        let (f, c, h2) = (fired_at.clone(), count.clone(), h.clone());
        h.call_later(Duration::from_millis(1), move || {
            f.set(Some(c.get()));
            h2.stop();
        });
        el.run_forever().unwrap();
        let fired = fired_at.get().expect("the timer fired") - 50;
        assert!((10..=11).contains(&fired), "fired after {fired} callbacks");
        // Work from another thread, queued by the chain's 5th callback from here: it runs
        // within the next two callbacks' iterations, not after a clock check or a poll.
        let ran = Arc::new(AtomicBool::new(false));
        let seen_at = Rc::new(Cell::new(None));
        fn watch(h: Handle, n: u64, ran: Arc<AtomicBool>, seen_at: Rc<Cell<Option<u64>>>) {
            if n == 5 {
                let (remote, r) = (h.remote(), ran.clone());
                std::thread::spawn(move || {
                    remote.call_soon_threadsafe(move || r.store(true, Ordering::SeqCst))
                })
                .join()
                .unwrap()
                .expect("the loop accepts work");
            }
            if seen_at.get().is_none() && ran.load(Ordering::SeqCst) {
                seen_at.set(Some(n));
            }
            if n == 40 {
                h.stop();
                return;
            }
            let h2 = h.clone();
            h.call_soon(move || watch(h2, n + 1, ran, seen_at));
        }
        watch(h.clone(), 0, ran, seen_at.clone());
        el.run_forever().unwrap();
        let seen = seen_at.get().expect("the remote callback ran");
        assert!(seen <= 7, "seen at callback {seen}");
    }
}
