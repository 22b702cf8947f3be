//! floodgate's data plane: listeners, TLS, HTTP server, forwarding and upstream connection pools

#![forbid(unsafe_code)]
