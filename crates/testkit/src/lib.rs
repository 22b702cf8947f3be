//! Test helpers for floodgate: spawn a gateway, mock upstreams, certificates

#![forbid(unsafe_code)]
