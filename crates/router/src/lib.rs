//! floodgate's compiled route table: host, path, method and header matching

#![forbid(unsafe_code)]
