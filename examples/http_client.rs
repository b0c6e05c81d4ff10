//! An HTTP client on solo: hyper 1.x's `client::conn::http1` over a solo `TcpStream`, several
//! requests on one keep-alive connection.
//!
//!     cargo run --features hyper --example http_client [http://HOST:PORT/PATH]
//!
//! Without an argument it first starts a small server of its own on 127.0.0.1 (on the same
//! loop), so it works offline. hyper-util's pooled `Client` needs tokio and `Send` futures;
//! `client::conn` needs neither: it hands back a `SendRequest` and a connection future, which
//! runs as a solo task. `tests/https.rs` runs it and `fetch` against the built-in server.

use std::convert::Infallible;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1 as client_http1;
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use solo::hyper::{HyperIo, HyperTimer};
use solo::net::{TcpListener, TcpStream};
use solo::Handle;

/// What one request got back.
#[derive(Debug)]
pub struct Fetched {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// Sends `count` GET requests for `uri` on one connection, one after the other.
pub async fn fetch(uri: &Uri, count: usize) -> Result<Vec<Fetched>, Box<dyn std::error::Error>> {
    let host = uri.host().ok_or("the URI has no host")?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URIs (examples/https.rs has TLS)".into());
    }
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port)).await?;
    let (mut sender, conn) = client_http1::handshake(HyperIo::new(stream)).await?;
    // The connection's I/O runs as a task; it ends when `sender` is dropped.
    let conn = Handle::current().spawn(conn);
    let mut out = Vec::new();
    for _ in 0..count {
        let authority = uri.authority().ok_or("the URI has no authority")?.as_str();
        let req = Request::get(uri.clone())
            .header(hyper::header::HOST, authority)
            .body(Empty::<Bytes>::new())?;
        let res = sender.send_request(req).await?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        out.push(Fetched {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    drop(sender);
    conn.await??;
    Ok(out)
}

/// The built-in server: answers every request with its path.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let mut incoming = listener.incoming();
    loop {
        let (conn, _) = incoming.next().await?;
        drop(Handle::current().spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                let text = format!("you asked for {}", req.uri().path());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
            });
            let _ = server_http1::Builder::new()
                .timer(HyperTimer)
                .serve_connection(HyperIo::new(conn), service)
                .await;
        }));
    }
}

/// Fetches `uri` three times, or, without one, starts the built-in server and fetches from it.
pub fn run(uri: Option<&str>) -> Result<Vec<Fetched>, Box<dyn std::error::Error>> {
    solo::run(async move {
        let uri: Uri = match uri {
            Some(u) => u.parse()?,
            None => {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = listener.local_addr()?;
                drop(Handle::current().spawn(serve(listener)));
                format!("http://{addr}/hello").parse()?
            }
        };
        fetch(&uri, 3).await
    })?
}

#[allow(dead_code)] // the tests include this file for `run`, `fetch` and `serve` only
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1);
    for (i, f) in run(arg.as_deref())?.iter().enumerate() {
        println!("request {}: {} {}", i + 1, f.status, f.body);
    }
    Ok(())
}
