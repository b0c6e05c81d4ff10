//! `#[solo::main]` and `#[solo::test]`: an `async fn` run on a new solo event loop. Use them
//! through `solo` (its default feature `macros` re-exports them), not from this crate.
//!
//! Both build a loop, run the fn's body as the loop's main future, then shut the loop down as
//! `solo::run` does (tasks still running are cancelled, the thread pool is stopped), and
//! return what the body returned: `()`, a `Result` (so `?` works in the body), anything
//! `main` or a test may return. The generated code names solo as `::solo`; if you renamed it
//! in Cargo.toml, say where it is with `crate = "my_solo"`.

mod expand;
mod options;

use proc_macro::TokenStream;

use options::Kind;

/// Runs an `async fn main` on a solo event loop.
///
/// ```
/// #[solo::main]
/// async fn main() -> std::io::Result<()> {
///     let task = solo::spawn(async { 6 * 7 });
///     assert_eq!(task.await.unwrap(), 42);
///     solo::time::sleep(std::time::Duration::from_millis(1)).await;
///     Ok(())
/// }
/// ```
///
/// Options, between parentheses and separated by commas:
///
/// - `debug` (or `debug = true`): debug mode (slow-callback reports, the blocked-loop
///   watchdog, stats); `debug = false` keeps it off even with `SOLO_DEBUG=1`. Without it,
///   `SOLO_DEBUG` decides.
/// - `backend = "mio"` or `backend = "polling"`: the reactor backend. Without it,
///   `SOLO_BACKEND` decides (mio by default).
/// - `crate = "path"`: where solo is, if not at `::solo`.
///
/// ```
/// #[solo::main(debug, backend = "polling")]
/// async fn main() {
///     assert!(solo::Handle::current().debug_enabled());
/// }
/// ```
///
/// The fn must be `async`, take no arguments (read `std::env::args()` inside it) and not be
/// generic; each misuse is a compile error that points at what is wrong:
///
/// ```compile_fail
/// #[solo::main]
/// fn main() {} // error: #[solo::main] needs an `async fn`
/// ```
///
/// # Panics
/// If the loop cannot be built (no fd left for its epoll instance), and if the fn is called
/// while another solo loop runs on the thread (loops do not nest). A panic in the body
/// propagates, as from any `main`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` test on a new solo event loop: `#[test]` with a loop.
///
/// ```
/// #[solo::test]
/// async fn spawns() {
///     let t = solo::spawn(async { 1 + 1 });
///     assert_eq!(t.await.unwrap(), 2);
/// }
/// ```
///
/// Options (those of `#[solo::main]`, and):
///
/// - `clock = "manual"`: the loop runs on a `solo::ManualClock`: time stands still until the
///   test moves it, or, when the loop has nothing else to do, jumps to the next timer (so a
///   test sleeps an hour in microseconds, and timers still fire in order). The test gets the
///   clock as its one argument, if it takes one:
///
///   ```
///   use std::time::Duration;
///
///   #[solo::test(clock = "manual")]
///   async fn sleeps_on_the_manual_clock(clock: solo::ManualClock) {
///       let sleep = solo::spawn(solo::time::sleep(Duration::from_secs(3600)));
///       clock.advance(Duration::from_secs(3600));
///       sleep.await.unwrap(); // an hour passed at once
///   }
///   ```
///
/// - `timeout = "30s"` (also `"500ms"`, `"2m"`, `"1.5s"`), or `timeout = "none"`: how long the
///   test may run, in real time (also with the manual clock); 60 s unless given. Past it the
///   loop is stopped and the test fails with a message that names the test and its bound. If
///   the loop does not stop because something blocks it (a callback or poll that never
///   returns), the test process exits 5 s later with that message, rather than hang the test
///   run. A thread watches the bound while the test runs.
///
/// `#[should_panic]`, `#[ignore]` and other attributes work as on any test; the test may
/// return a `Result`. The fn must be `async`, not generic, not carry `#[test]` itself (this
/// adds it), and take no arguments but its clock.
///
/// ```compile_fail
/// #[solo::test]
/// async fn needs_the_option(clock: solo::ManualClock) {} // error: no `clock = "manual"`
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Kind::Test, args.into(), item.into()).into()
}
