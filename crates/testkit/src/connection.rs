//! One client connection kept open across requests (HTTP/1.1 keep-alive or one h2c connection), for
//! tests whose point is that a later request on the same connection is answered differently.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Uri, Version};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::client::{Proto, TestResponse};

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

/// A connection to the gateway that requests are sent on one after another.
pub struct KeptConnection {
    addr: SocketAddr,
    sender: Sender,
}

impl KeptConnection {
    /// Opens a connection speaking `proto` (HTTP/1.1 or h2c; TLS is not offered here).
    pub async fn open(addr: SocketAddr, proto: Proto) -> KeptConnection {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let io = TokioIo::new(tcp);
        let sender = match proto {
            Proto::H1 => {
                let (sender, conn) = http1::handshake(io).await.expect("h1 handshake");
                tokio::spawn(conn);
                Sender::H1(sender)
            }
            Proto::H2c => {
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("h2 handshake");
                tokio::spawn(conn);
                Sender::H2(sender)
            }
            Proto::Tls { .. } => panic!("KeptConnection speaks HTTP/1.1 or h2c"),
        };
        KeptConnection { addr, sender }
    }

    /// Sends `GET target` with `headers` on this connection and collects the answer; panics when the
    /// connection is gone.
    pub async fn get(&mut self, target: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut req = Request::builder().method(Method::GET);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                let req = req
                    .uri(target)
                    .header(
                        header::HOST,
                        HeaderValue::from_str(&self.addr.to_string()).expect("host"),
                    )
                    .body(Empty::new())
                    .expect("a valid request");
                sender.ready().await.expect("the connection is still open");
                sender.send_request(req).await.expect("response")
            }
            Sender::H2(sender) => {
                let uri = Uri::try_from(format!("http://{}{target}", self.addr)).expect("a target");
                let req = req
                    .uri(uri)
                    .version(Version::HTTP_2)
                    .body(Empty::new())
                    .expect("a valid request");
                sender.ready().await.expect("the connection is still open");
                sender.send_request(req).await.expect("response")
            }
        };
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.expect("body");
        let trailers = collected.trailers().cloned();
        TestResponse {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        }
    }
}
