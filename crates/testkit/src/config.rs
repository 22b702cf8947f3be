//! The configuration most integration tests need, written once: a test says only what differs.

use crate::TestGateway;

/// The top of a configuration: `workers` workers, listener `main` and the admin on free ports.
pub fn head(workers: usize) -> String {
    format!(
        "workers: {workers}\nlisteners: [{{ name: main, address: \"127.0.0.1:0\" }}]\n\
         admin: {{ address: \"127.0.0.1:0\" }}\n"
    )
}

/// Targets at `addresses` as the items of a YAML flow list: `{ address: "a" }, { address: "b" }`.
pub fn target_list(addresses: &[impl AsRef<str>]) -> String {
    addresses
        .iter()
        .map(|a| format!("{{ address: \"{}\" }}", a.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One worker, listener `main` and the admin on free ports, one upstream `backend` with one target, and
/// one route `all` on `/*` to it; plus whatever lines a test adds at the top level, to the upstream or to
/// the route.
#[derive(Debug, Clone, Default)]
pub struct OneRoute {
    target: String,
    top: Vec<String>,
    upstream: Vec<String>,
    route: Vec<String>,
}

impl OneRoute {
    /// Routes everything to the target at `address` (`host:port`).
    pub fn to(address: impl Into<String>) -> Self {
        Self {
            target: address.into(),
            ..Self::default()
        }
    }

    /// Adds a top-level field, as a YAML line (`timeouts: { client_body: 1s }`).
    pub fn top(mut self, line: &str) -> Self {
        self.top.push(line.to_string());
        self
    }

    /// Adds a field to the upstream, as YAML (`read_timeout: 1s`).
    pub fn upstream(mut self, field: &str) -> Self {
        self.upstream.push(field.to_string());
        self
    }

    /// Adds a field to the route, as YAML (`upgrades: []`).
    pub fn route(mut self, field: &str) -> Self {
        self.route.push(field.to_string());
        self
    }

    /// The configuration as YAML.
    pub fn yaml(&self) -> String {
        let mut yaml = head(1);
        for line in &self.top {
            yaml.push_str(line);
            yaml.push('\n');
        }
        yaml.push_str("upstreams:\n  - id: backend\n");
        for field in &self.upstream {
            yaml.push_str(&format!("    {field}\n"));
        }
        yaml.push_str(&format!(
            "    targets: [{{ address: \"{}\" }}]\n",
            self.target
        ));
        let mut route = String::from("id: all, paths: [\"/*\"], upstream: backend");
        for field in &self.route {
            route.push_str(", ");
            route.push_str(field);
        }
        yaml.push_str(&format!("routes:\n  - {{ {route} }}\n"));
        yaml
    }

    /// Starts a gateway with this configuration.
    pub fn start(&self) -> TestGateway {
        TestGateway::start(&self.yaml())
    }
}
