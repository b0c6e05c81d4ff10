//! Files, through the thread pool, like Python's aiofiles.
//!
//! Regular files are always "ready" to the kernel's readiness APIs, so epoll cannot make file
//! I/O non-blocking. Each function here runs the matching `std::fs` call with
//! [`run_in_executor`](crate::Handle::run_in_executor) and completes on the loop, which keeps
//! serving other work meanwhile.
//!
//! # Errors
//! Each function fails with the error of its `std::fs` call, and also (kind `Other`, carrying a
//! [`solo::Error`](crate::Error)):
//! - outside a running loop: [`Error::OutsideLoop`], naming the
//!   function (`solo::fs::read`);
//! - when the loop's pool was shut down before the job ran (the loop is shutting down):
//!   [`Error::LoopClosed`];
//! - if the job panicked on the pool (there should be no such panic):
//!   [`Error::JobPanicked`].
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("solo-fs-doc-{}", std::process::id()));
//! let file = dir.join("hello.txt");
//! let text = solo::run(async move {
//!     solo::fs::create_dir_all(&dir).await?;
//!     solo::fs::write(&file, "hello").await?;
//!     let text = solo::fs::read_to_string(&file).await?;
//!     solo::fs::remove_file(&file).await?;
//!     std::fs::remove_dir(&dir)?;
//!     std::io::Result::Ok(text)
//! }).unwrap().unwrap();
//! assert_eq!(text, "hello");
//! ```

use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{self, Error};
use crate::Handle;

/// Runs `f` on the pool of the loop running on this thread, on behalf of the user's `call`.
async fn blocking<T, F>(call: &'static str, f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let h = Handle::try_current().ok_or_else(|| error::outside_loop(call))?;
    h.run_in_executor(f).await.unwrap_or_else(|e| {
        Err(if e.is_cancelled() {
            // The loop's own pool drops jobs unrun only once it is shut down.
            error::loop_closed(call)
        } else {
            let message = e.to_string();
            let message = message.strip_prefix("task panicked: ").unwrap_or(&message);
            Error::JobPanicked {
                call,
                message: message.to_string(),
            }
            .into()
        })
    })
}

fn owned(p: impl AsRef<Path>) -> PathBuf {
    p.as_ref().to_path_buf()
}

/// Reads a whole file ([`std::fs::read`]).
///
/// # Errors
/// Those of [`std::fs::read`], and solo's (see the [module docs](self#errors)).
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let p = owned(path);
    blocking("solo::fs::read", move || std::fs::read(p)).await
}

/// Reads a whole file as UTF-8 ([`std::fs::read_to_string`]).
///
/// # Errors
/// Those of [`std::fs::read_to_string`], and solo's (see the [module docs](self#errors)).
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let p = owned(path);
    blocking("solo::fs::read_to_string", move || {
        std::fs::read_to_string(p)
    })
    .await
}

/// Writes a whole file, creating or truncating it ([`std::fs::write`]).
///
/// # Errors
/// Those of [`std::fs::write`], and solo's (see the [module docs](self#errors)).
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let p = owned(path);
    let data = contents.as_ref().to_vec();
    blocking("solo::fs::write", move || std::fs::write(p, data)).await
}

/// A file's metadata ([`std::fs::metadata`]).
///
/// # Errors
/// Those of [`std::fs::metadata`], and solo's (see the [module docs](self#errors)).
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let p = owned(path);
    blocking("solo::fs::metadata", move || std::fs::metadata(p)).await
}

/// Removes a file ([`std::fs::remove_file`]).
///
/// # Errors
/// Those of [`std::fs::remove_file`], and solo's (see the [module docs](self#errors)).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let p = owned(path);
    blocking("solo::fs::remove_file", move || std::fs::remove_file(p)).await
}

/// Creates a directory and its parents ([`std::fs::create_dir_all`]).
///
/// # Errors
/// Those of [`std::fs::create_dir_all`], and solo's (see the [module docs](self#errors)).
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let p = owned(path);
    blocking("solo::fs::create_dir_all", move || {
        std::fs::create_dir_all(p)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_that_panics_on_the_pool_is_a_typed_error() {
        let el = crate::EventLoop::new().unwrap();
        let e = el
            .run_until_complete(blocking("solo::fs::read", || -> io::Result<()> {
                panic!("boom")
            }))
            .unwrap()
            .unwrap_err();
        assert_eq!(
            Error::of(&e),
            Some(&Error::JobPanicked {
                call: "solo::fs::read",
                message: "boom".into()
            })
        );
    }
}
