//! An HTTP/1.1 and h2c upstream whose every answer a test writes as a function: for targets that are slow,
//! fail, report their load or count what they get.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running upstream; stops when dropped.
pub struct FnUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FnUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FnUpstream {
    /// Serves HTTP/1.1 on a free port, answering each request with `answer(request)`.
    pub async fn start<F, Fut>(answer: F) -> FnUpstream
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), answer).await
    }

    /// Serves HTTP/1.1 on `addr`, answering each request with `answer(request)`: for servers a DNS
    /// name points at, whose records carry an address and no port (`127.0.0.2:P` beside
    /// `127.0.0.1:P`: the whole of 127.0.0.0/8 is loopback on Linux).
    pub async fn start_on<F, Fut>(addr: SocketAddr, answer: F) -> FnUpstream
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let answer = answer.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(req).await) }
                    });
                    // HTTP/1.1, or HTTP/2 with prior knowledge, as the connection's preface says.
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FnUpstream { addr, task }
    }

    /// `host:port`, for a config file.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }
}
