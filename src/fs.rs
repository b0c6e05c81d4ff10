//! Files, through the thread pool, like Python's aiofiles.
//!
//! Regular files are always "ready" to the kernel's readiness APIs, so epoll cannot make file
//! I/O non-blocking. Each function here runs the matching `std::fs` call with
//! [`run_in_executor`](crate::Handle::run_in_executor) and completes on the loop, which keeps
//! serving other work meanwhile. A panic inside the pool (there should be none) comes back as an
//! `io::Error` of kind `Other`.
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

use crate::Handle;

async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let h = Handle::try_current()
        .ok_or_else(|| io::Error::other("solo::fs used outside a running solo event loop"))?;
    h.run_in_executor(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
}

fn owned(p: impl AsRef<Path>) -> PathBuf {
    p.as_ref().to_path_buf()
}

/// Reads a whole file ([`std::fs::read`]).
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let p = owned(path);
    blocking(move || std::fs::read(p)).await
}

/// Reads a whole file as UTF-8 ([`std::fs::read_to_string`]).
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let p = owned(path);
    blocking(move || std::fs::read_to_string(p)).await
}

/// Writes a whole file, creating or truncating it ([`std::fs::write`]).
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let p = owned(path);
    let data = contents.as_ref().to_vec();
    blocking(move || std::fs::write(p, data)).await
}

/// A file's metadata ([`std::fs::metadata`]).
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let p = owned(path);
    blocking(move || std::fs::metadata(p)).await
}

/// Removes a file ([`std::fs::remove_file`]).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let p = owned(path);
    blocking(move || std::fs::remove_file(p)).await
}

/// Creates a directory and its parents ([`std::fs::create_dir_all`]).
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let p = owned(path);
    blocking(move || std::fs::create_dir_all(p)).await
}
