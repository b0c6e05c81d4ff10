//! [`Flags`]: the shard options of a server's command line, `--shards N [--share
//! reuseport|acceptor] [--pin]`, read with clear errors, so that every sharded program takes
//! them alike.
//!
//! ```
//! use solo::shards::{Flags, Share};
//!
//! let args = ["127.0.0.1:7000", "--shards", "4", "--pin"].map(String::from);
//! let (rest, flags) = Flags::take(args)?;
//! assert_eq!(rest, ["127.0.0.1:7000"]); // the program's own arguments, in order
//! let flags = flags.expect("--shards was given");
//! assert_eq!((flags.count, flags.share, flags.pin), (4, Share::Acceptor, true));
//! let builder = flags.builder(); // solo::shards::Builder with the count and the pinning
//!
//! let bad = Flags::take(["--shards", "0"].map(String::from)).unwrap_err();
//! assert!(bad.to_string().contains("at least 1"));
//! # Ok::<(), solo::shards::ShardsError>(())
//! ```

use std::error::Error;
use std::future::Future;

use super::{Builder, Port, Shard, ShardsError, Share};
use crate::signal::SignalKind;
use crate::Handle;

/// The shard options of a command line: see [`Flags::take`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Flags {
    /// `--shards N`: how many shards, at least 1. More than the CPUs is allowed (they then
    /// share CPUs, as [`Builder::count`] says).
    pub count: usize,
    /// `--share reuseport|acceptor`: how the shards share a port (default: acceptor).
    pub share: Share,
    /// `--pin`: pin shard `i` to the `i`-th CPU ([`Builder::pin`]).
    pub pin: bool,
}

impl Flags {
    /// The options as a usage line shows them.
    pub const USAGE: &'static str = "[--shards N [--share reuseport|acceptor] [--pin]]";

    /// Takes `--shards N`, `--share MODE` and `--pin` out of `args` (a program's arguments,
    /// without its name): returns the other arguments, in order, and the options if
    /// `--shards` was given. [`ShardsError::Config`], naming the argument, for a missing or
    /// bad value (`--shards 0`, `--shards abc`, `--share bogus`), a flag given twice, or
    /// `--share`/`--pin` without `--shards`.
    pub fn take(
        args: impl IntoIterator<Item = String>,
    ) -> Result<(Vec<String>, Option<Flags>), ShardsError> {
        let bad = |why: String| ShardsError::Config(why);
        let (mut rest, mut count, mut share, mut pin) = (Vec::new(), None, None, false);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--shards" => {
                    let n = args
                        .next()
                        .ok_or_else(|| bad("--shards needs a count".into()))?;
                    let n = match n.parse::<usize>() {
                        Ok(0) => return Err(bad("--shards 0: there must be at least 1".into())),
                        Ok(n) => n,
                        Err(_) => return Err(bad(format!("--shards {n}: not a count"))),
                    };
                    if count.replace(n).is_some() {
                        return Err(bad("--shards is given twice".into()));
                    }
                }
                "--share" => {
                    let mode = args.next().ok_or_else(|| {
                        bad("--share needs a mode (reuseport or acceptor)".into())
                    })?;
                    let mode = mode
                        .parse::<Share>()
                        .map_err(|e| bad(format!("--share {mode}: {e}")))?;
                    if share.replace(mode).is_some() {
                        return Err(bad("--share is given twice".into()));
                    }
                }
                "--pin" => pin = true,
                _ => rest.push(arg),
            }
        }
        match count {
            Some(count) => Ok((
                rest,
                Some(Flags {
                    count,
                    share: share.unwrap_or_default(),
                    pin,
                }),
            )),
            None if share.is_some() || pin => {
                Err(bad("--share and --pin go with --shards N".into()))
            }
            None => Ok((rest, None)),
        }
    }

    /// A [`Builder`] with these options' count and pinning (the rest at their defaults).
    pub fn builder(&self) -> Builder {
        Builder::new().count(self.count).pin(self.pin)
    }

    /// Runs a sharded server on `port` (bound with these options' [`share`](Flags::share)),
    /// as solo's example servers do: `serve(shard, port)` on every shard of a
    /// [`builder`](Flags::builder), and shard 0 also prints the port's
    /// [`summary`](Port::summary) (connections per shard) to stderr at each SIGUSR1. Returns
    /// what [`Builder::run`] returns; a SIGUSR1 that cannot be listened for fails shard 0.
    pub fn serve<F, Fut, T, E>(&self, port: &Port, serve: F) -> Result<Vec<T>, ShardsError>
    where
        F: Fn(Shard, Port) -> Fut + Sync,
        Fut: Future<Output = Result<T, E>>,
        T: Send,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        self.builder().run(|shard| {
            let port = port.clone();
            // Set up on the shard's loop, before its entry's first await.
            let report = match shard.index() {
                0 => print_summary_on(&port, SignalKind::user_defined1()),
                _ => Ok(()),
            };
            let served = serve(shard, port);
            async move {
                report?;
                served.await.map_err(Into::into)
            }
        })
    }
}

/// On the current loop, prints `port`'s summary to stderr at each `signal`, while it runs.
fn print_summary_on(port: &Port, signal: SignalKind) -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut signals = crate::signal::signal(signal)?;
    let port = port.clone();
    drop(Handle::current().spawn(async move {
        while signals.recv().await.is_some() {
            eprintln!("{}", port.summary());
        }
    }));
    Ok(())
}
