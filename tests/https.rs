//! HTTPS on solo: `examples/https.rs` served in-process and driven by a rustls client (trusting
//! the certificate the example generated) through hyper's own client, over HTTP/1.1 and HTTP/2;
//! clients that fail (no TLS, an untrusted certificate, a hang-up mid-handshake) do not stop the
//! server. Also `examples/http_client.rs` against its built-in server.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::client::TlsStream;
use futures_rustls::rustls::crypto::ring;
use futures_rustls::rustls::pki_types::{CertificateDer, ServerName};
use futures_rustls::rustls::{ClientConfig, RootCertStore};
use futures_rustls::TlsConnector;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::{http1, http2};
use hyper::{Request, StatusCode, Version};
use solo::hyper::{HyperExecutor, HyperIo, HyperTimer};
use solo::net::TcpStream;
use solo::{EventLoop, Handle};

mod common;

#[allow(dead_code)]
#[path = "../examples/https.rs"]
mod https;

#[allow(dead_code)]
#[path = "../examples/http_client.rs"]
mod http_client;

/// Starts the example's server on an ephemeral port; returns its address and certificate.
fn start_https() -> (SocketAddr, CertificateDer<'static>) {
    let (cert, key) = https::self_signed();
    let tls = https::acceptor(cert.clone(), key).unwrap();
    let addr = common::start_server(move |l| https::serve(l, tls));
    (addr, cert)
}

/// A rustls client that trusts `cert` only and offers `alpn`.
fn connector(cert: &CertificateDer<'static>, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(addr: SocketAddr, c: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    c.connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// An HTTP/2 connection to the server, its driver spawned as a task.
async fn h2(addr: SocketAddr, cert: &CertificateDer<'static>) -> http2::SendRequest<Full<Bytes>> {
    let tls = tls_connect(addr, &connector(cert, &[b"h2"])).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) = http2::Builder::new(HyperExecutor)
        .timer(HyperTimer)
        .handshake(HyperIo::from_futures_io(tls))
        .await
        .unwrap();
    drop(Handle::current().spawn(conn));
    sender
}

/// An HTTP/1.1 connection to the server, its driver spawned as a task.
async fn h1(addr: SocketAddr, cert: &CertificateDer<'static>) -> http1::SendRequest<Full<Bytes>> {
    let tls = tls_connect(addr, &connector(cert, &[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (sender, conn) = http1::handshake(HyperIo::from_futures_io(tls))
        .await
        .unwrap();
    drop(Handle::current().spawn(conn));
    sender
}

fn get(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::get(format!("https://localhost:{}/", addr.port()))
        .body(Full::default())
        .unwrap()
}

fn post(addr: SocketAddr, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(format!("https://localhost:{}/", addr.port()))
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn body_of(res: hyper::Response<hyper::body::Incoming>) -> (StatusCode, Version, Bytes) {
    let (status, version) = (res.status(), res.version());
    (
        status,
        version,
        res.into_body().collect().await.unwrap().to_bytes(),
    )
}

/// Bytes that are not zero, so that a read that returned zeroed memory would show.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8 + 1).collect()
}

#[test]
fn https_serves_http2_with_concurrent_streams_on_one_connection() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (addr, cert) = start_https();
        let sender = h2(addr, &cert).await;
        // Eight requests in flight at once: each is an HTTP/2 stream, served by a task of its
        // own that HyperExecutor spawned on this one thread.
        let requests = (0..8).map(|_| {
            let mut s = sender.clone();
            async move {
                let res = s.send_request(get(addr)).await.unwrap();
                let n: u64 = res.headers()["x-served"].to_str().unwrap().parse().unwrap();
                let (status, version, body) = body_of(res).await;
                (status, version, body, n)
            }
        });
        let mut served = Vec::new();
        for (status, version, body, n) in futures::future::join_all(requests).await {
            assert_eq!(status, 200);
            assert_eq!(version, Version::HTTP_2);
            assert_eq!(&body[..], b"Hello, HTTP/2.0!");
            served.push(n);
        }
        // The !Send service state (an Rc<Cell>) counted each stream once.
        served.sort_unstable();
        assert_eq!(served, (1..=8).collect::<Vec<u64>>());
    })
    .unwrap();
}

#[test]
fn https_serves_http1_with_keep_alive() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (addr, cert) = start_https();
        let mut sender = h1(addr, &cert).await;
        for _ in 0..3 {
            let (status, version, body) =
                body_of(sender.send_request(get(addr)).await.unwrap()).await;
            assert_eq!(status, 200);
            assert_eq!(version, Version::HTTP_11);
            assert_eq!(&body[..], b"Hello, HTTP/1.1!");
        }
    })
    .unwrap();
}

/// A body of several TLS records each way: every byte goes through `HyperIo`'s generic read
/// path (the TLS stream is not a solo socket) in reads capped at `GENERIC_READ_MAX`.
#[test]
fn https_echoes_a_large_body_over_both_protocols() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (addr, cert) = start_https();
        let data = pattern(3 * solo::hyper::GENERIC_READ_MAX + 12345);
        let mut s2 = h2(addr, &cert).await;
        let (status, _, body) =
            body_of(s2.send_request(post(addr, data.clone())).await.unwrap()).await;
        assert_eq!(status, 200);
        assert!(body[..] == data[..], "HTTP/2 echo differs");
        let mut s1 = h1(addr, &cert).await;
        let (status, _, body) =
            body_of(s1.send_request(post(addr, data.clone())).await.unwrap()).await;
        assert_eq!(status, 200);
        assert!(body[..] == data[..], "HTTP/1.1 echo differs");
        // Past the example's limit: refused with 413, not buffered.
        let big = pattern(https::MAX_BODY + 1);
        let (status, _, _) = body_of(s2.send_request(post(addr, big)).await.unwrap()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    })
    .unwrap();
}

#[test]
fn https_survives_clients_that_fail_the_handshake() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (addr, cert) = start_https();

        // Plain HTTP to the TLS port: the server ends the connection (after a TLS alert at most).
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer).await;
        assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

        // A client that trusts another certificate: its handshake fails, with a clear error.
        let (other, _) = https::self_signed();
        let err = tls_connect(addr, &connector(&other, &[b"h2"]))
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");

        // A client that hangs up in the middle of the handshake.
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01])
            .await
            .unwrap();
        drop(half);

        // A client offering no ALPN gets HTTP/1.1.
        let tls = tls_connect(addr, &connector(&cert, &[])).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), None);
        let (mut s, conn) = http1::handshake(HyperIo::from_futures_io(tls))
            .await
            .unwrap();
        drop(Handle::current().spawn(conn));
        let (status, _, body) = body_of(s.send_request(get(addr)).await.unwrap()).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, &b"Hello, HTTP/1.1!"[..])
        );

        // And the server still serves HTTP/2.
        let mut s2 = h2(addr, &cert).await;
        let (status, _, body) = body_of(s2.send_request(get(addr)).await.unwrap()).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, &b"Hello, HTTP/2.0!"[..])
        );
    })
    .unwrap();
}

#[test]
fn http_client_example_fetches_from_its_server() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let addr = common::start_server(http_client::serve);
        let uri = format!("http://{addr}/hello").parse().unwrap();
        let got = http_client::fetch(&uri, 3).await.unwrap();
        assert_eq!(got.len(), 3);
        for f in got {
            assert_eq!((f.status, f.body.as_str()), (200, "you asked for /hello"));
        }
        // Bad input: TLS URIs, no host, nothing listening.
        let e = http_client::fetch(&"https://localhost/".parse().unwrap(), 1).await;
        assert!(e.unwrap_err().to_string().contains("only http://"));
        let e = http_client::fetch(&"/just/a/path".parse().unwrap(), 1).await;
        assert!(e.unwrap_err().to_string().contains("no host"));
        let (l, closed) = common::local_listener();
        drop(l);
        let e = http_client::fetch(&format!("http://{closed}/").parse().unwrap(), 1).await;
        assert!(e.is_err());
    })
    .unwrap();
}

/// `examples/http_client`'s program: it starts its own server and gets three answers.
#[test]
fn http_client_example_runs_offline() {
    let _watchdog = common::watchdog!();
    let got = http_client::run(None).unwrap();
    assert_eq!(got.len(), 3);
    assert!(got
        .iter()
        .all(|f| f.status == 200 && f.body == "you asked for /hello"));
    let e = http_client::run(Some("not a uri")).unwrap_err();
    assert!(e.to_string().contains("invalid"), "{e}");
}
