//! The built-in plugins, one module each; registered in `registry.rs`.

pub mod auth_failure_limit;
pub mod basic_auth;
pub mod cors;
pub mod fault_injection;
pub mod headers;
pub mod ip_restriction;
pub mod jwt_auth;
pub mod key_auth;
pub mod limit_conn;
pub mod proxy_mirror;
pub mod rate_limit;
pub mod redirect;
pub mod rewrite;
pub mod traffic_split;

#[cfg(test)]
mod test_chain;
