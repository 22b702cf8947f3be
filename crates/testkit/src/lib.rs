//! Test helpers for floodgate's integration tests: an in-process gateway, mock upstreams (HTTP/1.1, h2c,
//! TLS, gRPC, WebSocket), certificates, and clients for every protocol the gateway speaks.
//!
//! Everything runs on real sockets on 127.0.0.1 with ephemeral ports. This crate is for tests only: its
//! helpers panic with a clear message instead of returning errors, so tests stay short.

#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

pub mod certs;
pub mod client;
pub mod config;
pub mod connection;
pub mod dns;
pub mod etcd;
pub mod fn_upstream;
pub mod gateway;
pub mod json_lines;
pub mod jwt;
pub mod load;
pub mod otlp;
pub mod process;
pub mod redis_server;
pub mod redis_topologies;
pub mod scripted;
pub mod upstream;
pub mod wait;

pub use certs::TestCerts;
pub use client::{
    get, get_request, presented_certificate, raw_exchange, read_body, read_to_close, request,
    request_to_host, send, send_on, Proto, TestResponse,
};
pub use config::OneRoute;
pub use connection::KeptConnection;
pub use dns::TestDns;
pub use etcd::TestEtcd;
pub use fn_upstream::FnUpstream;
pub use gateway::{free_port, TestGateway};
pub use json_lines::json_lines;
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use process::Floodgate;
pub use redis_server::TestRedis;
pub use redis_topologies::{TestRedisCluster, TestRedisSentinel};
pub use scripted::{Reply, ScriptedRequest, ScriptedUpstream};
pub use upstream::{grpc_health_server, MockUpstream};
pub use wait::eventually;
