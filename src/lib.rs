//! # solo
//!
//! A small, fast, single-threaded event loop for Rust, built on mio, with asyncio's callback API
//! (`call_soon`, `call_later`, `call_at`, `add_reader`/`add_writer`) and a task queue that runs
//! futures.
//!
//! ```
//! use std::time::Duration;
//!
//! let el = solo::EventLoop::new()?;
//! let h = el.handle();
//! h.call_soon(|| println!("first"));
//! let t = h.call_later(Duration::from_millis(50), || println!("never"));
//! t.cancel();
//! let task = h.spawn(async { 42 });
//! let v = el.run_until_complete(async move { task.await })?;
//! assert_eq!(v.unwrap(), 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The rule the whole crate lives by is asyncio's: *never block the event loop*. Read
//! `ARCHITECTURE.md` for how one iteration of the loop works.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod async_fd;
mod await_point;
mod callback;
mod clock;
mod coop;
pub mod debug;
mod error;
mod event_loop;
mod executor;
pub mod fs;
#[cfg(feature = "hyper")]
pub mod hyper;
#[doc(hidden)]
#[cfg(feature = "macros")]
pub mod macro_support;
pub mod monitor;
pub mod net;
pub mod process;
mod reactor;
mod reclaim;
pub mod shards;
mod shared;
pub mod signal;
mod signal_pipe;
mod stack;
pub mod sync;
mod task;
mod task_group;
pub mod time;
mod timer;

pub use async_fd::Async;
pub use callback::CallbackKind;
pub use clock::ManualClock;
pub use error::{Error, JoinError, LoopClosed, RunError};
pub use event_loop::{call_at, call_later, call_soon, spawn, spawn_named};
pub use event_loop::{
    run, run_in_executor, Builder, CallbackHandle, CancelledTask, EventLoop, ExceptionContext,
    Handle, Remote, RemoteJoinHandle, ShutdownReport,
};
pub use executor::{
    default_threads, Blocking, Executor, Job, ThreadPool, TrySubmitError, DEFAULT_IDLE_TIMEOUT,
};
pub use reactor::Backend;
pub use task::{yield_now, JoinHandle};
pub use task_group::{ChildError, GroupError, JoinNext, TaskGroup};

/// README.md's Rust blocks, compiled and run by `cargo test` as doctests so that they cannot rot
/// (its shell and transcript blocks are tagged `sh`/`text`, which rustdoc skips).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// `#[solo::main]` and `#[solo::test]`: an `async fn` run on a new loop (feature `macros`, on by
/// default).
#[cfg(feature = "macros")]
pub use solo_macros::{main, test};
