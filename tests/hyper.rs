//! hyper on solo: the hello_http example served in-process, driven by hyper's own HTTP/1
//! client over a solo TcpStream (a real HTTP client, not hand-written bytes).

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use solo::hyper::{HyperExecutor, HyperIo, HyperTimer};
use solo::net::TcpStream;
use solo::{EventLoop, Handle};

mod common;

#[allow(dead_code)]
#[path = "../examples/hello_http.rs"]
mod hello_http;

#[test]
fn hello_http_answers_a_real_http_client() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let addr = common::start_server(hello_http::serve);

        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
            .await
            .unwrap();
        drop(Handle::current().spawn(conn));
        // Several requests on one keep-alive connection.
        for _ in 0..3 {
            let req = hyper::Request::get(format!("http://{addr}/"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let res = sender.send_request(req).await.unwrap();
            assert_eq!(res.status(), 200);
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"Hello, World!");
        }
    })
    .unwrap();
}

#[test]
fn hyper_timer_and_executor_run_on_the_loop_clock() {
    let _watchdog = common::watchdog!();
    use hyper::rt::{Executor, Timer};
    let (el, clock) = common::manual();
    el.run_until_complete(async {
        let t0 = HyperTimer.now();
        HyperTimer.sleep(Duration::from_secs(30)).await;
        assert_eq!(HyperTimer.now() - t0, Duration::from_secs(30));
        let (tx, rx) = futures::channel::oneshot::channel();
        HyperExecutor.execute(async move { tx.send(5).unwrap() });
        assert_eq!(rx.await.unwrap(), 5);
    })
    .unwrap();
    assert_eq!(clock.elapsed(), Duration::from_secs(30));
}
