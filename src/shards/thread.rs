//! One shard's thread: pin it, build its loop, wait for the peers, run the entry point until it
//! returns or, once asked to stop, until the grace period ends; then shut the loop down.

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use super::channel::Mailbox;
use super::error::FailureKind;
use super::peer::Peer;
use super::shard::{Local, Shard, StopReason};
use super::supervisor::Event;
use super::Builder;
use crate::error::panic_message;
use crate::RunError;

/// What a shard's thread starts with.
pub(crate) struct ShardSetup<'a> {
    pub(crate) index: usize,
    pub(crate) cpu: Option<usize>,
    pub(crate) builder: &'a Builder,
    pub(crate) supervisor: Arc<Mailbox<Event>>,
    pub(crate) peers: mpsc::Receiver<Arc<[Peer]>>,
}

/// Tells the supervisor that the thread is done, whatever way it leaves (a panic included).
struct EndReport {
    index: usize,
    failed: bool,
    supervisor: Arc<Mailbox<Event>>,
}

impl Drop for EndReport {
    fn drop(&mut self) {
        let _ = self.supervisor.push(Event::Ended(self.index, self.failed));
    }
}

pub(crate) fn shard_thread<F, Fut, T, E>(setup: ShardSetup<'_>, entry: &F) -> Result<T, FailureKind>
where
    F: Fn(Shard) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let ShardSetup {
        index,
        cpu,
        builder,
        supervisor,
        peers,
    } = setup;
    // Declared first, so dropped last: after the loop has shut down.
    let mut end = EndReport {
        index,
        failed: true,
        supervisor: supervisor.clone(),
    };
    // Pinning is an optimisation: a CPU the process may not use (or no sched_setaffinity)
    // leaves the shard unpinned rather than failing it; `Shard::core` tells.
    let core = cpu.filter(|&c| super::pin::pin_current_thread(c).is_ok());
    let local = Local::install(index);
    let el = match catch_unwind(AssertUnwindSafe(|| (builder.loop_builder)(index).build())) {
        Ok(Ok(el)) => el,
        Ok(Err(e)) => return Err(FailureKind::Startup(e)),
        Err(p) => return Err(FailureKind::Panicked(panic_message(&*p).to_string())),
    };
    let _ = supervisor.push(Event::Started(index, el.handle().remote()));
    let Ok(peers) = peers.recv() else {
        // The supervisor is gone without handing out the peers: it is unwinding.
        return Err(FailureKind::Panicked(
            "the supervisor ended before the shards started".into(),
        ));
    };
    let shard = Shard {
        local: local.clone(),
        peers,
        core,
        supervisor: supervisor.clone(),
    };

    let grace = builder.grace;
    let stopped = local.clone();
    let mut main = pin!(async move {
        // Called inside the running loop, so that the entry may use it before its first
        // await (bind, spawn, `Handle::current`).
        let mut fut = pin!(entry(shard));
        let mut cut = pin!(async {
            stopped.stopped().await;
            crate::time::sleep(grace).await;
        });
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            cut.as_mut().poll(cx).map(|()| None)
        })
        .await
    });
    let ran = catch_unwind(AssertUnwindSafe(|| loop {
        match el.run_until_complete(main.as_mut()) {
            // `Handle::current().stop()` on the shard's loop: a normal end, asked for from
            // inside, as `Shard::stop_all` would. Every shard stops, and this one's entry,
            // kept, runs on with its grace period to end as it would at any stop.
            Err(RunError::Stopped) => {
                local.stop(StopReason::Requested(index));
                let _ = supervisor.push(Event::StopAll(index));
            }
            ran => break ran,
        }
    }));
    // The tasks the entry left get what is left of the grace period after a stop (a server's
    // connections finish their requests); after a plain return they are cancelled, as
    // `solo::run` does.
    let left = local
        .stopped_at()
        .map_or(Duration::ZERO, |at| grace.saturating_sub(at.elapsed()));
    drop(local);
    el.shutdown(left);
    let result = match ran {
        Ok(Ok(Some(Ok(v)))) => Ok(v),
        Ok(Ok(Some(Err(e)))) => Err(FailureKind::Error(e.into())),
        Ok(Ok(None)) => Err(FailureKind::Cancelled(grace)),
        Ok(Err(e)) => Err(FailureKind::Error(Box::new(e))),
        Err(p) => Err(FailureKind::Panicked(panic_message(&*p).to_string())),
    };
    end.failed = result.is_err();
    result
}
