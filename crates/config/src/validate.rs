//! Semantic validation: references, uniqueness, addresses and route conflicts, every error with its path.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use crate::{
    Balancer, CertificateResource, Config, ConfigError, FieldError, HashOn, PathPattern,
    RouteConfig, UpstreamConfig,
};

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
const MAX_WEIGHT: u32 = 10_000;

impl Config {
    /// Checks everything serde cannot: references between sections, unique ids, addresses, patterns and route
    /// conflicts. Returns every problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        if let Some(workers) = self.workers {
            if workers == 0 || workers > 1024 {
                errors.push(FieldError::new("workers", "must be between 1 and 1024"));
            }
        }
        self.validate_listeners(&mut errors);
        self.validate_admin(&mut errors);
        self.validate_config_source(&mut errors);
        // The upper bound is what one connection may make the gateway hold before it has a request to
        // route: a few of those per client must not add up to the machine's memory (Envoy caps its own
        // at 8 MiB, nginx's default is 32 KiB).
        let header_bytes = self.limits.max_header_bytes.get();
        if !(1024..=1024 * 1024).contains(&header_bytes) {
            errors.push(FieldError::new(
                "limits.max_header_bytes",
                "must be between 1KiB and 1MiB",
            ));
        }
        for (name, value) in self.timeouts.fields() {
            value.require_nonzero(format!("timeouts.{name}"), &mut errors);
        }
        self.http2.validate_into(&mut errors);
        self.dns.validate_into(&mut errors);
        if let Some(access_log) = &self.access_log {
            access_log.validate(&mut errors);
        }
        if let Some(tracing) = &self.tracing {
            tracing.validate(&mut errors);
        }
        self.validate_upstreams(&mut errors);
        self.validate_routes(&mut errors);
        self.validate_consumers(&mut errors);
        self.validate_certificates(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    fn validate_listeners(&self, errors: &mut Vec<FieldError>) {
        if self.listeners.is_empty() {
            errors.push(FieldError::new(
                "listeners",
                "at least one listener is required",
            ));
        }
        let mut names = HashSet::new();
        let mut addresses: HashMap<SocketAddr, usize> = HashMap::new();
        for (i, listener) in self.listeners.iter().enumerate() {
            let at = format!("listeners[{i}]");
            if listener.name.is_empty() {
                errors.push(FieldError::new(format!("{at}.name"), "must not be empty"));
            } else if !names.insert(listener.name.as_str()) {
                errors.push(FieldError::new(
                    format!("{at}.name"),
                    format!("duplicate listener name {:?}", listener.name),
                ));
            }
            match listener.address.parse::<SocketAddr>() {
                // Port 0 asks the kernel for a free port, so two such listeners never collide.
                Ok(addr) if addr.port() == 0 => {}
                Ok(addr) => {
                    if let Some(first) = addresses.insert(addr, i) {
                        errors.push(FieldError::new(
                            format!("{at}.address"),
                            format!("address {addr} is already used by listeners[{first}]"),
                        ));
                    }
                }
                Err(_) => errors.push(bad_socket_address(
                    format!("{at}.address"),
                    &listener.address,
                )),
            }
            if let Some(tls) = &listener.tls {
                if tls.certificates.is_empty() {
                    errors.push(FieldError::new(
                        format!("{at}.tls.certificates"),
                        "at least one certificate is required",
                    ));
                }
                for (c, cert) in tls.certificates.iter().enumerate() {
                    for (field, file) in [("cert", &cert.cert), ("key", &cert.key)] {
                        if file.is_empty() {
                            errors.push(FieldError::new(
                                format!("{at}.tls.certificates[{c}].{field}"),
                                "must name a PEM file",
                            ));
                        }
                    }
                }
            }
        }
    }

    fn validate_admin(&self, errors: &mut Vec<FieldError>) {
        match self.admin.address.parse::<SocketAddr>() {
            Ok(addr) => {
                if !addr.ip().is_loopback()
                    && self.admin.api_key.as_deref().unwrap_or("").is_empty()
                    && self.admin.api_key_env.as_deref().unwrap_or("").is_empty()
                {
                    errors.push(FieldError::new(
                        "admin.api_key",
                        "required (or api_key_env) when admin.address is not a loopback address",
                    ));
                }
                if self.admin.api_key_env.as_deref() == Some("") {
                    errors.push(FieldError::new(
                        "admin.api_key_env",
                        "must name an environment variable",
                    ));
                }
                if addr.port() != 0
                    && self
                        .listeners
                        .iter()
                        .any(|l| l.address.parse::<SocketAddr>() == Ok(addr))
                {
                    errors.push(FieldError::new(
                        "admin.address",
                        format!("address {addr} is already used by a listener"),
                    ));
                }
            }
            Err(_) => errors.push(bad_socket_address(
                "admin.address".into(),
                &self.admin.address,
            )),
        }
    }

    fn validate_upstreams(&self, errors: &mut Vec<FieldError>) {
        let mut ids = HashSet::new();
        for (i, upstream) in self.upstreams.iter().enumerate() {
            check_id(
                &format!("upstreams[{i}].id"),
                &upstream.id,
                "upstream",
                &mut ids,
                errors,
            );
            self.validate_upstream(i, upstream, errors);
        }
    }

    /// What one upstream, the `i`th, must be on its own (its id's uniqueness aside).
    pub(crate) fn validate_upstream(
        &self,
        i: usize,
        upstream: &UpstreamConfig,
        errors: &mut Vec<FieldError>,
    ) {
        let at = format!("upstreams[{i}]");
        self.validate_discovery(&at, upstream, errors);
        for (t, target) in upstream.targets.iter().enumerate() {
            if let Err(message) = check_host_port(&target.address) {
                errors.push(FieldError::new(
                    format!("{at}.targets[{t}].address"),
                    message,
                ));
            }
            if target.weight == 0 || target.weight > MAX_WEIGHT {
                errors.push(FieldError::new(
                    format!("{at}.targets[{t}].weight"),
                    format!("must be between 1 and {MAX_WEIGHT}"),
                ));
            }
        }
        match (&upstream.balancer, &upstream.hash_on) {
            (Balancer::ConsistentHash, None) => errors.push(FieldError::new(
                format!("{at}.hash_on"),
                "required with balancer consistent_hash (header, cookie, client_ip or path)",
            )),
            (Balancer::ConsistentHash, Some(HashOn::Header | HashOn::Cookie))
                if upstream.hash_key.as_deref().unwrap_or("").is_empty() =>
            {
                errors.push(FieldError::new(
                    format!("{at}.hash_key"),
                    "required when hash_on is header or cookie: the header or cookie name",
                ))
            }
            (Balancer::ConsistentHash, _) | (_, None) => {}
            (_, Some(_)) => errors.push(FieldError::new(
                format!("{at}.hash_on"),
                "only used with balancer consistent_hash",
            )),
        }
        upstream
            .read_timeout
            .require_nonzero(format!("{at}.read_timeout"), errors);
        upstream
            .connect_timeout
            .require_nonzero(format!("{at}.connect_timeout"), errors);
        if upstream.max_connections_per_target == Some(0) {
            errors.push(FieldError::new(
                format!("{at}.max_connections_per_target"),
                "must be at least 1 (omit it for no limit)",
            ));
        }
        upstream
            .health_checks
            .validate_into(&format!("{at}.health_checks"), errors);
        upstream
            .ewma
            .decay
            .require_nonzero(format!("{at}.ewma.decay"), errors);
        if let Some(reports) = &upstream.load_reports {
            reports
                .period
                .require_nonzero(format!("{at}.load_reports.period"), errors);
            if !(1..=100).contains(&reports.min_weight_percent) {
                errors.push(FieldError::new(
                    format!("{at}.load_reports.min_weight_percent"),
                    "must be a percentage, 1 to 100: a target never goes to zero",
                ));
            }
        }
        if let Some(slow) = &upstream.slow_start {
            slow.window
                .require_nonzero(format!("{at}.slow_start.window"), errors);
            if !(slow.aggression > 0.0 && slow.aggression.is_finite()) {
                errors.push(FieldError::new(
                    format!("{at}.slow_start.aggression"),
                    "must be a number above 0",
                ));
            }
            if slow.min_weight_percent > 100 {
                errors.push(FieldError::new(
                    format!("{at}.slow_start.min_weight_percent"),
                    "must be a percentage, 0 to 100",
                ));
            }
        }
        if let Some(breaker) = &upstream.circuit_breaker {
            breaker.validate_into(&format!("{at}.circuit_breaker"), errors);
        }
        if let Some(tls) = &upstream.tls {
            if tls.ca_file.as_deref() == Some("") {
                errors.push(FieldError::new(
                    format!("{at}.tls.ca_file"),
                    "must name a PEM file",
                ));
            }
        }
    }

    fn validate_routes(&self, errors: &mut Vec<FieldError>) {
        let upstream_ids: HashSet<&str> = self.upstreams.iter().map(|u| u.id.as_str()).collect();
        let mut ids = HashSet::new();
        let mut seen: HashMap<RouteIdentity, &str> = HashMap::new();
        for (i, route) in self.routes.iter().enumerate() {
            check_id(
                &format!("routes[{i}].id"),
                &route.id,
                "route",
                &mut ids,
                errors,
            );
            validate_route(i, route, |id| upstream_ids.contains(id), errors);
            check_conflicts(i, route, &mut seen, errors);
        }
    }
}

/// What one route, the `i`th, must be on its own and towards the upstreams (`has_upstream` tells
/// whether an id is one); its id's uniqueness and conflicts with other routes aside.
pub(crate) fn validate_route(
    i: usize,
    route: &RouteConfig,
    has_upstream: impl Fn(&str) -> bool,
    errors: &mut Vec<FieldError>,
) {
    let at = format!("routes[{i}]");
    match (&route.upstream, &route.respond) {
        (Some(upstream), None) => {
            if !has_upstream(upstream.as_str()) {
                errors.push(FieldError::new(
                    format!("{at}.upstream"),
                    format!("no upstream with id {upstream:?}"),
                ));
            }
        }
        (None, Some(respond)) => {
            if !(100..=999).contains(&respond.status) {
                errors.push(FieldError::new(
                    format!("{at}.respond.status"),
                    "must be a status code between 100 and 999",
                ));
            }
        }
        (None, None) => errors.push(FieldError::new(
            format!("{at}.upstream"),
            "required (or give `respond` to answer directly)",
        )),
        (Some(_), Some(_)) => errors.push(FieldError::new(
            format!("{at}.respond"),
            "give either `upstream` or `respond`, not both",
        )),
    }
    if let Some(retries) = &route.retries {
        retries.validate_into(&format!("{at}.retries"), errors);
    }
    if route.paths.is_empty() {
        errors.push(FieldError::new(
            format!("{at}.paths"),
            "at least one path is required",
        ));
    }
    for (p, path) in route.paths.iter().enumerate() {
        if let Err(message) = PathPattern::parse(path) {
            errors.push(FieldError::new(format!("{at}.paths[{p}]"), message));
        }
    }
    for (h, host) in route.hosts.iter().enumerate() {
        if let Err(message) = check_host_pattern(host) {
            errors.push(FieldError::new(format!("{at}.hosts[{h}]"), message));
        }
    }
    for (m, method) in route.methods.iter().enumerate() {
        if !METHODS.contains(&method.as_str()) {
            errors.push(FieldError::new(
                format!("{at}.methods[{m}]"),
                format!(
                    "unknown method {method:?}, expected one of {}",
                    METHODS.join(", ")
                ),
            ));
        }
    }
    for (u, protocol) in route.upgrades.iter().enumerate() {
        let message = if protocol.eq_ignore_ascii_case("h2c") {
            "h2c is never tunnelled: its requests would bypass routing"
        } else if http_header_name_invalid(protocol) {
            "not a protocol name (a token such as \"websocket\")"
        } else {
            continue;
        };
        errors.push(FieldError::new(format!("{at}.upgrades[{u}]"), message));
    }
    for name in route.headers.keys() {
        if http_header_name_invalid(name) {
            errors.push(FieldError::new(
                format!("{at}.headers.{name}"),
                "not a valid header name",
            ));
        }
    }
    route
        .timeout
        .require_nonzero(format!("{at}.timeout"), errors);
}

impl Config {
    /// `certificates[]`: unique ids, PEM text in `cert` and `key` (that they parse and match is
    /// checked when the listeners' TLS is built), and names as hosts are written.
    fn validate_certificates(&self, errors: &mut Vec<FieldError>) {
        let mut ids = HashSet::new();
        for (i, certificate) in self.certificates.iter().enumerate() {
            check_id(
                &format!("certificates[{i}].id"),
                &certificate.id,
                "certificate",
                &mut ids,
                errors,
            );
            validate_certificate(i, certificate, errors);
        }
    }
}

/// What one certificate, the `i`th, must be on its own (its id's uniqueness aside).
pub(crate) fn validate_certificate(
    i: usize,
    certificate: &CertificateResource,
    errors: &mut Vec<FieldError>,
) {
    let at = format!("certificates[{i}]");
    for (field, pem) in [("cert", &certificate.cert), ("key", &certificate.key)] {
        if !pem.contains("-----BEGIN ") {
            errors.push(FieldError::new(format!("{at}.{field}"), "must be PEM text"));
        }
    }
    for (n, name) in certificate.snis.iter().enumerate() {
        if let Err(message) = check_host_pattern(name) {
            errors.push(FieldError::new(format!("{at}.snis[{n}]"), message));
        }
    }
}

/// A route's identity for conflict detection: host, path, and its method and header conditions.
pub(crate) type RouteIdentity = (String, String, BTreeSet<String>, Vec<(String, String)>);

pub(crate) fn check_conflicts<'a>(
    index: usize,
    route: &'a RouteConfig,
    seen: &mut HashMap<RouteIdentity, &'a str>,
    errors: &mut Vec<FieldError>,
) {
    let mut methods: BTreeSet<String> = route.methods.iter().cloned().collect();
    // The router reads GET as GET and HEAD: `[GET]` and `[GET, HEAD]` are one method set.
    if methods.contains("GET") {
        methods.insert("HEAD".to_string());
    }
    let headers: Vec<(String, String)> = route
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let any_host = [String::new()];
    let hosts: &[String] = if route.hosts.is_empty() {
        &any_host
    } else {
        &route.hosts
    };
    let mut reported = HashSet::new();
    for host in hosts {
        for path in &route.paths {
            let key = (
                host.to_ascii_lowercase(),
                path.clone(),
                methods.clone(),
                headers.clone(),
            );
            if let Some(other) = seen.get(&key) {
                if *other != route.id && reported.insert(*other) {
                    errors.push(FieldError::new(
                        format!("routes[{index}]"),
                        format!(
                            "conflicts with route {other:?}: same host, path {path:?}, methods and headers"
                        ),
                    ));
                }
            } else {
                seen.insert(key, &route.id);
            }
        }
    }
}

fn check_id<'a>(
    path: &str,
    id: &'a str,
    kind: &str,
    ids: &mut HashSet<&'a str>,
    errors: &mut Vec<FieldError>,
) {
    if id.is_empty() {
        errors.push(FieldError::new(path, "must not be empty"));
    } else if !ids.insert(id) {
        errors.push(FieldError::new(path, format!("duplicate {kind} id {id:?}")));
    }
}

fn bad_socket_address(path: String, address: &str) -> FieldError {
    FieldError::new(
        path,
        format!("invalid address {address:?}, expected ip:port such as \"127.0.0.1:8080\""),
    )
}

/// Checks a target address of the form `host:port` (IPv6 in brackets).
fn check_host_port(address: &str) -> Result<(), String> {
    if address.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad =
        || format!("invalid address {address:?}, expected host:port such as \"10.0.0.5:8000\"");
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad()),
    }
    if host.parse::<IpAddr>().is_ok() || is_dns_name(host) {
        Ok(())
    } else {
        Err(bad())
    }
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn check_host_pattern(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    if host.contains('*') && !host.starts_with("*.") || name.contains('*') {
        return Err(format!(
            "host {host:?}: a wildcard is only allowed as the first label, as in \"*.example.com\""
        ));
    }
    if is_dns_name(name) || name.parse::<IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(format!("host {host:?} is not a valid host name"))
    }
}

fn http_header_name_invalid(name: &str) -> bool {
    name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use crate::parse_yaml;

    fn errors_of(yaml: &str) -> Vec<String> {
        match parse_yaml(yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.field_errors().iter().map(|e| e.to_string()).collect(),
        }
    }

    const BASE: &str = "listeners: [{ name: main, address: \"127.0.0.1:8080\" }]\n";

    #[test]
    fn missing_upstream_reference_names_the_field() {
        let errors = errors_of(&format!(
            "{BASE}upstreams: [{{ id: users, targets: [{{ address: \"127.0.0.1:1\" }}] }}]\n\
             routes:\n  - {{ id: a, paths: [\"/a\"], upstream: users }}\n  - {{ id: b, paths: [\"/b\"], upstream: users }}\n  - {{ id: c, paths: [\"/c\"], upstream: usr }}\n"
        ));
        assert_eq!(errors, ["routes[2].upstream: no upstream with id \"usr\""]);
    }

    #[test]
    fn reports_duplicates_addresses_targets_and_patterns_together() {
        let errors = errors_of(
            r#"
listeners:
  - { name: a, address: "127.0.0.1:8080" }
  - { name: a, address: "localhost" }
upstreams:
  - { id: u, targets: [] }
  - { id: u, targets: [{ address: "nope" }, { address: "10.0.0.1:80", weight: 0 }] }
routes:
  - { id: r, paths: ["users"], upstream: u }
  - { id: r, paths: ["/a/*/b"], hosts: ["a.*.com"], methods: [FETCH], upstream: u, timeout: 0s }
"#,
        );
        assert_eq!(
            errors,
            [
                "listeners[1].name: duplicate listener name \"a\"",
                "listeners[1].address: invalid address \"localhost\", expected ip:port such as \"127.0.0.1:8080\"",
                "upstreams[0].targets: at least one target is required (or discovery)",
                "upstreams[1].id: duplicate upstream id \"u\"",
                "upstreams[1].targets[0].address: invalid address \"nope\", expected host:port such as \"10.0.0.5:8000\"",
                "upstreams[1].targets[1].weight: must be between 1 and 10000",
                "routes[0].paths[0]: path \"users\" must start with \"/\"",
                "routes[1].id: duplicate route id \"r\"",
                "routes[1].paths[0]: path \"/a/*/b\": \"*\" is only allowed as the last segment, as in \"/prefix/*\"",
                "routes[1].hosts[0]: host \"a.*.com\": a wildcard is only allowed as the first label, as in \"*.example.com\"",
                "routes[1].methods[0]: unknown method \"FETCH\", expected one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH",
                "routes[1].timeout: must be greater than zero",
            ]
        );
    }

    #[test]
    fn path_normalization_errors_name_the_field() {
        let errors = errors_of(
            "listeners:\n  - { name: a, address: \"127.0.0.1:8080\", path_normalization: { escaped_slashes: split } }\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("listeners[0].path_normalization.escaped_slashes: "),
            "{errors:?}"
        );
        let errors = errors_of(
            "listeners:\n  - { name: a, address: \"127.0.0.1:8080\", path_normalization: { merge: false } }\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("merge"), "{errors:?}");
        let errors = errors_of(
            "listeners:\n  - { name: a, address: \"127.0.0.1:8080\", path_normalization: { semicolons: drop } }\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("listeners[0].path_normalization.semicolons: "),
            "{errors:?}"
        );
        let errors = errors_of(
            "listeners:\n  - { name: a, address: \"127.0.0.1:8080\", underscores_in_headers: off }\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("listeners[0].underscores_in_headers: "),
            "{errors:?}"
        );
    }

    #[test]
    fn conflicting_routes_are_rejected() {
        let errors = errors_of(&format!(
            "{BASE}routes:\n  - {{ id: a, paths: [\"/x\"], methods: [GET], respond: {{ body: a }} }}\n  - {{ id: b, paths: [\"/x\"], methods: [GET], respond: {{ body: b }} }}\n  - {{ id: c, paths: [\"/x\"], methods: [POST], respond: {{ body: c }} }}\n  - {{ id: d, paths: [\"/x\"], methods: [HEAD, GET], respond: {{ body: d }} }}\n"
        ));
        assert_eq!(
            errors,
            [
                "routes[1]: conflicts with route \"a\": same host, path \"/x\", methods and headers",
                "routes[3]: conflicts with route \"a\": same host, path \"/x\", methods and headers",
            ]
        );
    }

    #[test]
    fn consistent_hash_needs_hash_on_and_admin_needs_key_off_loopback() {
        let errors = errors_of(&format!(
            "{BASE}admin: {{ address: \"0.0.0.0:9180\" }}\nupstreams:\n  - {{ id: u, balancer: consistent_hash, targets: [{{ address: \"a.internal:80\" }}] }}\n  - {{ id: v, hash_on: path, targets: [{{ address: \"a.internal:80\" }}] }}\n"
        ));
        assert_eq!(
            errors,
            [
                "admin.api_key: required (or api_key_env) when admin.address is not a loopback address",
                "upstreams[0].hash_on: required with balancer consistent_hash (header, cookie, client_ip or path)",
                "upstreams[1].hash_on: only used with balancer consistent_hash",
            ]
        );
    }

    #[test]
    fn header_limit_must_be_sane() {
        for limit in ["512", "1025KiB", "16MiB"] {
            let errors = errors_of(&format!("{BASE}limits: {{ max_header_bytes: {limit} }}\n"));
            assert_eq!(
                errors,
                ["limits.max_header_bytes: must be between 1KiB and 1MiB"],
                "{limit}"
            );
        }
        assert!(errors_of(&format!("{BASE}limits: {{ max_header_bytes: 1MiB }}\n")).is_empty());
        assert_eq!(
            errors_of(&format!("{BASE}timeouts: {{ client_keepalive: 0s }}\n")),
            ["timeouts.client_keepalive: must be greater than zero"]
        );
    }

    #[test]
    fn route_needs_exactly_one_action() {
        let errors = errors_of(&format!("{BASE}routes: [{{ id: a, paths: [\"/\"] }}]\n"));
        assert_eq!(
            errors,
            ["routes[0].upstream: required (or give `respond` to answer directly)"]
        );
    }

    #[test]
    fn valid_full_config_passes() {
        let errors = errors_of(
            r#"
workers: 2
shutdown_timeout: 10s
listeners:
  - { name: public, address: "127.0.0.1:8080" }
limits: { max_header_bytes: 32KiB, max_body_bytes: 1MiB }
upstreams:
  - id: users
    balancer: consistent_hash
    hash_on: header
    hash_key: x-user
    protocol: h2c
    targets: [{ address: "10.0.0.5:8000", weight: 3 }, { address: "users.internal:8000" }]
routes:
  - id: users-api
    hosts: ["api.example.com", "*.example.com"]
    paths: ["/users", "/users/*", "/v1/users/{id}"]
    methods: [GET, POST]
    headers: { x-canary: "true" }
    upstream: users
    timeout: 15s
"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }
}
