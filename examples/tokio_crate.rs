//! A tokio-only crate on solo: reqwest (an HTTP client built on tokio's sockets, timers and
//! `tokio::spawn`) called from a solo task through `async_compat::Compat`, against a server
//! that the same solo loop serves.
//!
//!     cargo run --features hyper --example tokio_crate
//!
//! `Compat` enters a tokio runtime around every poll of the future it wraps: the future itself
//! is polled by solo, on solo's thread, while tokio's reactor, timers and spawned tasks (here
//! reqwest's connection tasks) run on one background thread that async-compat starts on first
//! use. Without `Compat`, reqwest panics with "there is no reactor running, must be called from
//! the context of a Tokio 1.x runtime". `tests/interop.rs` runs `fetch` and `run`.

use std::convert::Infallible;
use std::time::Duration;

use async_compat::Compat;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use solo::hyper::{HyperIo, HyperTimer};
use solo::net::TcpListener;
use solo::Handle;

/// GETs `url` with `client` (tokio-only) from solo, within `limit` (a tokio timer, which works
/// inside `Compat` too): the status and the body.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    limit: Duration,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    Compat::new(async {
        let res = tokio::time::timeout(limit, client.get(url).send()).await??;
        let status = res.status().as_u16();
        Ok((status, res.text().await?))
    })
    .await
}

/// The local server, on solo: answers every request with a line naming its path.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let mut incoming = listener.incoming();
    loop {
        let (conn, _) = incoming.next().await?;
        drop(Handle::current().spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                let text = format!("solo served {}", req.uri().path());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
            });
            let _ = http1::Builder::new()
                .timer(HyperTimer)
                .serve_connection(HyperIo::new(conn), service)
                .await;
        }));
    }
}

/// Starts the server on 127.0.0.1 and fetches three paths from it with one reqwest client
/// (its pool keeps the connection).
pub fn run() -> Result<Vec<(u16, String)>, Box<dyn std::error::Error>> {
    solo::run(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        drop(Handle::current().spawn(serve(listener)));
        // Built inside Compat too: reqwest's connector may look for the runtime when built. No
        // proxy: the server is on this machine, whatever the environment says.
        let client = Compat::new(async { reqwest::Client::builder().no_proxy().build() }).await?;
        let mut out = Vec::new();
        for path in ["/one", "/two", "/three"] {
            let url = format!("http://{addr}{path}");
            out.push(fetch(&client, &url, Duration::from_secs(10)).await?);
        }
        Ok(out)
    })?
}

#[allow(dead_code)] // the tests include this file for `fetch`, `serve` and `run` only
fn main() -> Result<(), Box<dyn std::error::Error>> {
    for (status, body) in run()? {
        println!("reqwest on solo: {status} {body}");
    }
    Ok(())
}
