//! The built-in plugins, one module each; registered in `registry.rs`.

pub mod cors;
pub mod headers;
pub mod key_auth;
pub mod limit_conn;
pub mod redirect;
pub mod rewrite;
