//! The gateway tested from outside: each module starts real gateways, upstreams and clients on 127.0.0.1
//! and asserts what crosses the sockets. One test binary for all of them, so the suite links the gateway
//! once rather than once per file.

mod balancing;
mod balancing_ewma;
mod circuit_breaker;
mod client_gone;
mod dns;
mod docs_examples;
mod errors;
mod example_api_gateway;
mod expect_continue;
mod grpc;
mod health_checks;
mod http2_limits;
mod keepalive;
mod method_routing;
mod observability;
mod overload;
mod path_normalization;
mod plugin_auth;
mod plugin_chain;
mod plugin_cors;
mod plugin_credential_params;
mod plugin_credential_twins;
mod plugin_fault_injection;
mod plugin_guessing;
mod plugin_ip_restriction;
mod plugin_jwt_auth;
mod plugin_jwt_expiry;
mod plugin_proxy_mirror;
mod plugin_rate_limit;
mod plugin_traffic_split;
mod plugin_transforms;
mod proxy_protocol;
mod proxying;
mod reload;
mod request_fields;
mod resilience;
mod response_framing;
mod retry_bodies;
mod server_http1;
mod smuggling;
mod timeouts;
mod tls;
mod upstream_http1;
mod websocket;
