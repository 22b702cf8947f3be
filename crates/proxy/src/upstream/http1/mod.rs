//! floodgate's HTTP/1.1 client for upstream connections.
//!
//! The request's own task writes the request head, streams the body, reads the response head and then,
//! as the client reads it, the response body, all on the connection it checked out of its worker's
//! pool. hyper's client would put a task, a channel and a oneshot between the request and the socket,
//! so every request would cost two extra task wake-ups and a hand-over of each body chunk; on a
//! keep-alive connection to a nearby upstream that was a large share of the gateway's own CPU time.
//! HTTP/2 upstreams, which multiplex many requests over one connection, still use hyper's client.

pub(crate) mod body;
mod conn;
mod send;

pub use body::UpstreamBody;
pub use conn::{Http1Conn, ReadTimeout};
pub use send::{send, SendError};
