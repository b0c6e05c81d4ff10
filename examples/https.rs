//! HTTPS on solo: hyper 1.x serving HTTP/1.1 and HTTP/2 over TLS (futures-rustls), the protocol
//! chosen per connection by ALPN, with a self-signed certificate generated at start (rcgen).
//!
//!     cargo run --features hyper --example https [ADDR]   (default 127.0.0.1:8443)
//!     curl -k --http2 https://127.0.0.1:8443/              Hello, HTTP/2.0!
//!     curl -k --http1.1 https://127.0.0.1:8443/            Hello, HTTP/1.1!
//!     curl -k --data-binary @file https://127.0.0.1:8443/  the file back (at most 8 MiB)
//!
//! The TLS stream is a futures-io stream over solo's `TcpStream`;
//! `solo::hyper::HyperIo::from_futures_io` turns it into hyper's I/O. HTTP/2 runs each request's stream as a task of its own, spawned by
//! `solo::hyper::HyperExecutor` on the loop's one thread: neither the service nor hyper's
//! futures need to be `Send`. `tests/https.rs` drives it with a rustls client through hyper's
//! client, `tests/real_clients.sh` with curl.

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::sync::Arc;

use futures_rustls::rustls::crypto::ring;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use futures_rustls::rustls::ServerConfig;
use futures_rustls::TlsAcceptor;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use solo::hyper::{HyperExecutor, HyperIo, HyperTimer};
use solo::net::TcpListener;
use solo::Handle;

/// The largest request body echoed back; a larger one gets 413.
pub const MAX_BODY: usize = 8 << 20;

/// A certificate for `localhost` and `127.0.0.1`, signed by its own key, and the key.
pub fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("generate a self-signed certificate");
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    (generated.cert.der().clone(), key.into())
}

/// The server's TLS side: ring's cryptography, TLS 1.2 and 1.3, ALPN offering HTTP/2 first.
pub fn acceptor(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, futures_rustls::rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// GET: a greeting naming the HTTP version; POST: the body back (at most [`MAX_BODY`] bytes).
/// Every response carries `x-served`, this server's count of requests so far: a `Rc<Cell>`
/// held across an `.await`, so the service's futures are `!Send`, as hyper's HTTP/2 allows with
/// `HyperExecutor`.
async fn service(
    served: Rc<Cell<u64>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = if req.method() == Method::POST {
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(body) => Response::new(Full::new(body.to_bytes())),
            Err(_) => Response::builder()
                .status(StatusCode::PAYLOAD_TOO_LARGE)
                .body(Full::new(Bytes::from_static(b"body too large\n")))
                .expect("a valid response"),
        }
    } else {
        let hello = format!("Hello, {:?}!", req.version());
        Response::new(Full::new(Bytes::from(hello)))
    };
    served.set(served.get() + 1);
    res.headers_mut()
        .insert("x-served", HeaderValue::from(served.get()));
    Ok(res)
}

/// Serves every accepted connection as a task: the TLS handshake, then HTTP/2 if the client
/// chose `h2` by ALPN, HTTP/1.1 otherwise. A connection that fails (a client that does not
/// speak TLS, or does not trust the certificate) ends alone; the server serves on.
pub async fn serve(listener: TcpListener, tls: TlsAcceptor) -> std::io::Result<()> {
    let served = Rc::new(Cell::new(0));
    let mut incoming = listener.incoming();
    loop {
        let (conn, _) = incoming.next().await?;
        let _ = conn.set_nodelay(true);
        let tls = tls.clone();
        let served = served.clone();
        drop(Handle::current().spawn(async move {
            let Ok(stream) = tls.accept(conn).await else {
                return;
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = HyperIo::from_futures_io(stream);
            let service = service_fn(move |req| service(served.clone(), req));
            let _ = if h2 {
                http2::Builder::new(HyperExecutor)
                    .timer(HyperTimer)
                    .serve_connection(io, service)
                    .await
            } else {
                http1::Builder::new()
                    .timer(HyperTimer)
                    .serve_connection(io, service)
                    .await
            };
        }));
    }
}

#[allow(dead_code)] // the tests include this file for `serve` and the TLS helpers only
fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8443".into());
    let (cert, key) = self_signed();
    let tls = acceptor(cert, key).map_err(std::io::Error::other)?;
    solo::run(async move {
        let listener = TcpListener::bind(&addr)?;
        println!(
            "https (hyper over rustls on solo, HTTP/1.1 and HTTP/2) on https://{}/ \
             (self-signed certificate: curl -k)",
            listener.local_addr()?
        );
        serve(listener, tls).await
    })?
}
