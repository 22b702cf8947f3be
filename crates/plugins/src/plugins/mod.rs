//! The built-in plugins, one module each; registered in `registry.rs`.

pub mod key_auth;
pub mod limit_conn;
pub mod rate_limit;
