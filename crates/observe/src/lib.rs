//! floodgate's metrics, access log and logging set-up

#![forbid(unsafe_code)]
