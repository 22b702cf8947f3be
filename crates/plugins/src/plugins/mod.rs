//! The built-in plugins, one module each; registered in `registry.rs`.

pub mod jwt_auth;
pub mod key_auth;
pub mod limit_conn;
