//! `solo::sync`: FIFO order, no barging, and cancellation that loses no permit and no item, for
//! each primitive; closed channels; bad input (task_done too often, capacity 0); waiters
//! polled by another loop or after their loop is gone.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::StreamExt;
use solo::sync::{channel, oneshot, Event, Mutex, Queue, Semaphore, TryRecvError};
use solo::{EventLoop, Handle, JoinHandle};

mod common;

use common::{run_once, Counted};

type Log = Rc<RefCell<Vec<String>>>;

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    let w = futures::task::noop_waker();
    f.poll(&mut Context::from_waker(&w))
}

/// A task that waits for one permit, logs `name`, and holds the permit until `release` fires.
fn holder(
    h: &Handle,
    sem: &Rc<Semaphore>,
    log: &Log,
    name: &str,
    release: Rc<Event>,
) -> JoinHandle<()> {
    let (sem, log, name) = (sem.clone(), log.clone(), name.to_string());
    h.spawn(async move {
        let _p = sem.acquire().await;
        log.borrow_mut().push(name);
        release.wait().await;
    })
}

// ---- Semaphore ----

#[test]
fn semaphore_serves_waiters_in_order_and_newcomers_do_not_barge() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let sem = Rc::new(Semaphore::new(0));
    let log: Log = Rc::default();
    let go = Rc::new(Event::new());
    let tasks: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| holder(&h, &sem, &log, n, go.clone()))
        .collect();
    run_once(&el);
    // A waiter for two permits, behind them.
    let (s, l) = (sem.clone(), log.clone());
    let big = h.spawn(async move {
        let p = s.acquire_many(2).await;
        l.borrow_mut().push(format!("big{}", p.permits()));
    });
    run_once(&el);
    sem.add_permits(1);
    assert!(
        sem.try_acquire().is_err(),
        "a waiter is in line: no barging"
    );
    run_once(&el);
    sem.add_permits(3);
    run_once(&el);
    assert_eq!(*log.borrow(), ["a", "b", "c"]);
    assert_eq!(
        sem.available_permits(),
        1,
        "big needs two: it waits in front"
    );
    assert!(
        sem.try_acquire().is_err(),
        "the one free permit is kept for big"
    );
    go.set();
    el.run_until_complete(async move {
        for t in tasks {
            t.await.unwrap();
        }
        big.await.unwrap();
    })
    .unwrap();
    assert_eq!(log.borrow().last().unwrap(), "big2");
    assert_eq!(sem.available_permits(), 4);
}

#[test]
fn a_semaphore_waiter_cancelled_while_a_permit_is_handed_to_it_gives_it_to_the_next() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let sem = Rc::new(Semaphore::new(1));
    let log: Log = Rc::default();
    let go = Rc::new(Event::new());
    let first = holder(&h, &sem, &log, "first", go.clone());
    run_once(&el);
    let a = holder(&h, &sem, &log, "a", go.clone());
    let b = holder(&h, &sem, &log, "b", go.clone());
    run_once(&el);
    assert_eq!(sem.available_permits(), 0);
    // `first` lets go: the permit is handed to `a` and `a` is woken; before `a` runs, it is
    // cancelled (its future is dropped unpolled, at the next safe point).
    go.set();
    go.clear();
    run_once(&el); // first ends, hands the permit to a
    a.cancel();
    run_once(&el); // a's future is dropped: the permit goes on to b
    run_once(&el);
    assert_eq!(*log.borrow(), ["first", "b"]);
    assert_eq!(sem.available_permits(), 0, "b holds it");
    go.set();
    el.run_until_complete(async move {
        first.await.unwrap();
        assert!(a.await.unwrap_err().is_cancelled());
        b.await.unwrap();
    })
    .unwrap();
    assert_eq!(sem.available_permits(), 1, "no permit lost, none made up");
}

#[test]
fn semaphore_handoff_and_cancellation_by_hand() {
    let sem = Semaphore::new(1);
    let p = sem.try_acquire().unwrap();
    let mut big = Box::pin(sem.acquire_many(2));
    let mut small = pin!(sem.acquire());
    assert!(poll_once(big.as_mut()).is_pending());
    assert!(poll_once(small.as_mut()).is_pending());
    drop(p);
    assert!(
        poll_once(small.as_mut()).is_pending(),
        "big is first in line"
    );
    // The big waiter leaves the front: the small one is served at once.
    big.set(sem.acquire_many(2)); // drops the old future (cancelled), makes a fresh one
    let Poll::Ready(s) = poll_once(small.as_mut()) else {
        panic!("small is served once big left the line")
    };
    assert_eq!(sem.available_permits(), 0);
    // Served (handed the permits) but dropped before it ran: they come back.
    sem.add_permits(1);
    assert!(poll_once(big.as_mut()).is_pending());
    drop(s);
    assert_eq!(sem.available_permits(), 0, "handed to big");
    drop(big);
    assert_eq!(sem.available_permits(), 2);
    // Owned permits and forget.
    let sem = Rc::new(Semaphore::new(2));
    let p = sem.try_acquire_owned().unwrap();
    assert!(Rc::ptr_eq(p.semaphore(), &sem));
    p.forget();
    assert_eq!(sem.available_permits(), 1);
    let mut owned = pin!(sem.acquire_many_owned(1));
    let Poll::Ready(p) = poll_once(owned.as_mut()) else {
        panic!("a free permit")
    };
    assert_eq!(p.permits(), 1);
    drop(p);
    assert_eq!(sem.available_permits(), 1);
    sem.add_permits(usize::MAX);
    assert_eq!(sem.available_permits(), usize::MAX, "saturates");
}

#[test]
fn a_waiter_started_on_one_loop_finishes_on_another_after_the_first_is_gone() {
    let _watchdog = common::watchdog!();
    let sem = Semaphore::new(0);
    let mut acquire = pin!(sem.acquire());
    let first = EventLoop::new().unwrap();
    first
        .run_until_complete(async {
            assert!(poll_once(acquire.as_mut()).is_pending(), "waits in line");
        })
        .unwrap();
    drop(first);
    // Served while no loop runs: the waker it stored belongs to a loop that is gone (a no-op).
    sem.add_permits(1);
    let second = EventLoop::new().unwrap();
    let permit = second.run_until_complete(acquire.as_mut()).unwrap();
    assert_eq!(permit.permits(), 1);
    drop(permit);
    assert_eq!(sem.available_permits(), 1);
    // And queue items too: a get that was waiting on a dropped loop's task is dropped with
    // that task's future, leaving the line.
    let q = Rc::new(Queue::new(1));
    let el = EventLoop::new().unwrap();
    let q2 = q.clone();
    let t = el.handle().spawn(async move { q2.get().await });
    run_once(&el);
    drop(el);
    drop(t);
    q.try_put(5).unwrap();
    assert_eq!(q.try_get(), Ok(5), "the dead getter took nothing");
}

// ---- Mutex ----

#[test]
fn a_mutex_held_across_an_await_by_a_cancelled_task_is_unlocked_for_the_next() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let m = Rc::new(Mutex::new(Vec::<&str>::new()));
    let never = Rc::new(Event::new());
    let (m1, n1) = (m.clone(), never.clone());
    let holder = h.spawn(async move {
        let mut g = m1.lock().await;
        g.push("holder");
        n1.wait().await; // holds the guard across an await, forever
        g.push("never");
    });
    run_once(&el);
    let (m2, m3) = (m.clone(), m.clone());
    let second = h.spawn(async move { m2.lock().await.push("second") });
    let third = h.spawn(async move { m3.lock().await.push("third") });
    run_once(&el);
    assert!(m.is_locked());
    assert!(m.try_lock().is_err());
    holder.cancel();
    el.run_until_complete(async move {
        assert!(holder.await.unwrap_err().is_cancelled());
        second.await.unwrap();
        third.await.unwrap();
    })
    .unwrap();
    assert!(!m.is_locked());
    assert_eq!(*m.try_lock().unwrap(), ["holder", "second", "third"]);
    let mut m = Rc::try_unwrap(m).unwrap();
    m.get_mut().push("mut");
    assert_eq!(m.into_inner().len(), 4);
}

// ---- Event ----

#[test]
fn an_event_set_before_anyone_waits_and_a_set_then_clear_still_wakes_the_waiters() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let ev = Rc::new(Event::new());
    ev.set();
    ev.set(); // twice: no harm
    let e = ev.clone();
    assert_eq!(
        el.run_until_complete(async move {
            e.wait().await;
            1
        })
        .unwrap(),
        1
    );
    ev.clear();
    let woke = Rc::new(Cell::new(0));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let (e, w) = (ev.clone(), woke.clone());
            h.spawn(async move {
                e.wait().await;
                w.set(w.get() + 1);
            })
        })
        .collect();
    run_once(&el);
    assert_eq!(woke.get(), 0);
    ev.set();
    ev.clear(); // before they run: they were set free all the same (asyncio's rule)
    let (e, w) = (ev.clone(), woke.clone());
    let late = h.spawn(async move {
        e.wait().await;
        w.set(w.get() + 100);
    });
    run_once(&el);
    run_once(&el);
    assert_eq!(woke.get(), 3, "the late waiter waits for the next set");
    ev.set();
    el.run_until_complete(async move {
        for t in waiters {
            t.await.unwrap();
        }
        late.await.unwrap();
    })
    .unwrap();
    assert_eq!(woke.get(), 103);
}

// ---- Queue ----

#[test]
fn a_put_on_a_full_queue_cancelled_leaves_nothing_and_the_next_put_goes_in_order() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let q = Rc::new(Queue::new(1));
    q.try_put("a").unwrap();
    assert!(q.is_full());
    assert_eq!(q.try_put("x").unwrap_err().into_inner(), "x");
    let puts: Vec<_> = ["b", "c", "d"]
        .iter()
        .map(|&v| {
            let q = q.clone();
            h.spawn(async move { q.put(v).await })
        })
        .collect();
    run_once(&el);
    puts[0].cancel(); // b's put is waiting: cancelled, b never enters
    run_once(&el);
    let q2 = q.clone();
    let got = el
        .run_until_complete(async move {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(q2.get().await);
            }
            got
        })
        .unwrap();
    assert_eq!(got, ["a", "c", "d"]);
    assert!(q.is_empty());
    assert_eq!(q.unfinished(), 3, "a, c, d entered; b did not");
    for p in puts {
        let _ = el.run_until_complete(p).unwrap();
    }
}

#[test]
fn a_get_cancelled_after_an_item_was_handed_to_it_gives_the_item_back() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let q: Rc<Queue<u32>> = Rc::new(Queue::new(4));
    let getter = |q: &Rc<Queue<u32>>| {
        let q = q.clone();
        h.spawn(async move { q.get().await })
    };
    let (g1, g2) = (getter(&q), getter(&q));
    run_once(&el);
    q.try_put(7).unwrap(); // handed to g1, which is woken
    g1.cancel(); // dropped before it runs
    assert_eq!(
        el.run_until_complete(g2).unwrap().unwrap(),
        7,
        "passed on to g2"
    );
    assert!(el
        .run_until_complete(g1)
        .unwrap()
        .unwrap_err()
        .is_cancelled());
    // With nobody else waiting, it goes back to the front of the queue.
    let g3 = getter(&q);
    run_once(&el);
    q.try_put(1).unwrap();
    q.try_put(2).unwrap();
    g3.cancel();
    run_once(&el);
    assert_eq!((q.try_get(), q.try_get()), (Ok(1), Ok(2)));
    assert!(q.try_get().is_err());
}

#[test]
fn queue_capacity_zero_is_a_rendezvous() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let q = Rc::new(Queue::new(0));
    assert!(q.is_full() && q.capacity() == 0);
    assert!(q.try_put(1).is_err(), "nobody waits to take it");
    let q2 = q.clone();
    let put = h.spawn(async move { q2.put(2).await });
    run_once(&el);
    assert!(!put.is_finished(), "waits for a get");
    assert_eq!(q.len(), 0, "nothing is buffered");
    assert_eq!(q.try_get(), Ok(2), "taken straight from the waiting put");
    el.run_until_complete(put).unwrap().unwrap();
    // A waiting get makes try_put succeed.
    let q3 = q.clone();
    let get = h.spawn(async move { q3.get().await });
    run_once(&el);
    q.try_put(3).unwrap();
    assert_eq!(el.run_until_complete(get).unwrap().unwrap(), 3);
}

#[test]
fn join_and_task_done_as_asyncio_and_task_done_too_often_is_an_error() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let q = Rc::new(Queue::unbounded());
    assert_eq!(q.capacity(), usize::MAX);
    assert!(q.task_done().is_err(), "nothing was put");
    el.run_until_complete(q.join()).unwrap(); // nothing unfinished: at once
    for i in 0..3 {
        q.try_put(i).unwrap();
    }
    let q2 = q.clone();
    let joined = h.spawn(async move { q2.join().await });
    run_once(&el);
    for _ in 0..3 {
        q.try_get().unwrap();
    }
    q.task_done().unwrap();
    q.task_done().unwrap();
    run_once(&el);
    assert!(!joined.is_finished());
    q.task_done().unwrap();
    q.try_put(9).unwrap(); // after the count reached zero: the joiner was set free already
    el.run_until_complete(joined).unwrap().unwrap();
    assert_eq!(q.unfinished(), 1);
    q.task_done().unwrap();
    let err = q.task_done().unwrap_err();
    assert_eq!(
        err.to_string(),
        "task_done() called more times than items were put"
    );
    assert_eq!(q.unfinished(), 0, "the error changed nothing");
}

// ---- oneshot ----

#[test]
fn oneshot_closed_sides_and_values_nobody_takes() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    // The receiver gone: send hands the value back.
    let (tx, rx) = oneshot::channel::<String>();
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send("back".into()), Err("back".to_string()));
    // Closed by the receiver: the sender's `closed()` wakes.
    let (mut tx, mut rx) = oneshot::channel::<u8>();
    let waiting = h.spawn(async move {
        tx.closed().await;
        tx.send(1)
    });
    run_once(&el);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    rx.close();
    assert_eq!(el.run_until_complete(waiting).unwrap().unwrap(), Err(1));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    // A value sent and never taken is dropped with the receiver.
    let drops = Rc::new(Cell::new(0));
    let (tx, rx) = oneshot::channel();
    assert!(tx.send(Counted(drops.clone())).is_ok());
    drop(rx);
    assert_eq!(drops.get(), 1);
    // Polled again after it yielded: an error, not a hang or a panic.
    let (tx, mut rx) = oneshot::channel();
    tx.send(5).unwrap();
    assert_eq!(poll_once(Pin::new(&mut rx)), Poll::Ready(Ok(5)));
    assert!(matches!(poll_once(Pin::new(&mut rx)), Poll::Ready(Err(_))));
}

// ---- channel ----

#[test]
fn a_send_after_every_receiver_is_gone_returns_the_value_and_queued_values_are_dropped() {
    let drops = Rc::new(Cell::new(0));
    let (tx, rx) = channel::unbounded();
    let rx2 = rx.clone();
    tx.send(Counted(drops.clone())).unwrap();
    tx.send(Counted(drops.clone())).unwrap();
    drop(rx);
    assert!(!tx.is_closed(), "one receiver is left");
    drop(rx2);
    assert_eq!(drops.get(), 2, "nobody can take them: dropped");
    assert!(tx.is_closed());
    let back = tx.send(Counted(drops.clone())).unwrap_err().into_inner();
    assert_eq!(drops.get(), 2, "handed back, not dropped");
    drop(back);
    assert_eq!(drops.get(), 3);
}

/// Sends on its channel when dropped.
struct SendsOnDrop(channel::Sender<SendsOnDrop>, Rc<Cell<u32>>);

impl Drop for SendsOnDrop {
    fn drop(&mut self) {
        let r = self.0.send(SendsOnDrop(self.0.clone(), self.1.clone()));
        if let Err(e) = r {
            self.1.set(self.1.get() + 1);
            // Its own drop would send again: forget it (the point was the refused send).
            std::mem::forget(e.into_inner());
        }
    }
}

#[test]
fn a_queued_value_that_sends_when_dropped_with_the_last_receiver_is_refused_not_a_panic() {
    let refused = Rc::new(Cell::new(0));
    let (tx, rx) = channel::unbounded();
    tx.send(SendsOnDrop(tx.clone(), refused.clone())).unwrap();
    drop(rx);
    assert_eq!(refused.get(), 1);
}

#[test]
fn receivers_get_what_is_left_then_none_and_are_served_in_order() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (tx, rx) = channel::unbounded::<u32>();
    let log: Log = Rc::default();
    let receivers: Vec<_> = (0..3)
        .map(|i| {
            let (rx, log) = (rx.clone(), log.clone());
            h.spawn(async move {
                while let Some(v) = rx.recv().await {
                    log.borrow_mut().push(format!("r{i}:{v}"));
                }
                log.borrow_mut().push(format!("r{i}:end"));
            })
        })
        .collect();
    run_once(&el);
    for v in 0..3 {
        tx.send(v).unwrap(); // each handed to the next receiver in line
    }
    run_once(&el);
    assert_eq!(*log.borrow(), ["r0:0", "r1:1", "r2:2"]);
    tx.send(10).unwrap(); // r0 is first in line again
    let tx2 = tx.clone();
    drop(tx);
    assert!(!rx.is_closed(), "a clone is alive");
    drop(tx2); // r1 and r2, waiting, are served the end
    assert!(rx.is_closed());
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    el.run_until_complete(async move {
        for t in receivers {
            t.await.unwrap();
        }
    })
    .unwrap();
    assert_eq!(log.borrow()[3..], ["r0:10", "r0:end", "r1:end", "r2:end"]);
    // What is queued when the senders go comes first, then the end; as a Stream too.
    let (tx, rx) = channel::unbounded();
    for v in [1, 2, 3] {
        tx.send(v).unwrap();
    }
    drop(tx);
    assert_eq!(rx.len(), 3);
    assert_eq!(rx.try_recv(), Ok(1));
    let all: Vec<u32> = el.run_until_complete(rx.collect()).unwrap();
    assert_eq!(all, [2, 3]);
}

#[test]
fn a_recv_cancelled_after_a_value_was_handed_to_it_passes_it_on() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (tx, rx) = channel::unbounded::<&str>();
    let (rx1, rx2) = (rx.clone(), rx.clone());
    let r1 = h.spawn(async move { rx1.recv().await });
    let r2 = h.spawn(async move { rx2.recv().await });
    run_once(&el);
    tx.send("v").unwrap();
    r1.cancel();
    assert_eq!(el.run_until_complete(r2).unwrap().unwrap(), Some("v"));
    assert!(el
        .run_until_complete(r1)
        .unwrap()
        .unwrap_err()
        .is_cancelled());
    assert!(rx.is_empty());
}
