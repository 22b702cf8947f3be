use super::*;
use crate::{parse_yaml, CertificateResource, ConsumerConfig, RouteConfig, UpstreamConfig};

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n";

/// A valid configuration with a bit of everything: routes sharing paths by host and method, upstreams
/// in use and not, consumers and certificates.
fn valid() -> Config {
    let mut yaml = String::from(
        "listeners: [{ name: main, address: \"127.0.0.1:0\" }]\n\
         upstreams:\n\
         \x20 - { id: a, targets: [{ address: \"127.0.0.1:1\" }] }\n\
         \x20 - { id: b, targets: [{ address: \"127.0.0.1:2\" }] }\n\
         \x20 - { id: unused, targets: [{ address: \"127.0.0.1:3\" }] }\n\
         consumers: [{ id: alice }, { id: bob }]\n\
         routes:\n",
    );
    for i in 0..20 {
        let upstream = if i % 3 == 0 { "b" } else { "a" };
        let line = match i % 4 {
            0 => format!("  - {{ id: r{i}, paths: [\"/p{i}/*\"], upstream: {upstream} }}\n"),
            1 => format!("  - {{ id: r{i}, paths: [\"/shared\"], methods: [M{i}], upstream: {upstream} }}\n"),
            2 => format!("  - {{ id: r{i}, hosts: [\"h{i}.example\"], paths: [\"/shared\"], upstream: {upstream} }}\n"),
            _ => format!("  - {{ id: r{i}, paths: [\"/u/{{id}}/{i}\"], respond: {{ status: 200 }} }}\n"),
        };
        yaml.push_str(&line);
    }
    // Distinct methods for the `/shared` routes that list them, so the base has no conflict.
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    let mut m = 0;
    for i in 0..20 {
        if i % 4 == 1 {
            yaml = yaml.replace(&format!("[M{i}]"), &format!("[{}]", methods[m]));
            m += 1;
        }
    }
    let mut config = parse_yaml(&yaml).expect("the base parses");
    config.certificates = vec![
        Arc::new(certificate("c1", PEM)),
        Arc::new(certificate("c2", PEM)),
    ];
    config.validate().expect("the base is valid");
    config
}

fn certificate(id: &str, pem: &str) -> CertificateResource {
    serde_json::from_value(serde_json::json!({
        "id": id, "cert": pem, "key": pem.replace("CERTIFICATE", "PRIVATE KEY"), "snis": ["a.example"]
    }))
    .expect("a certificate")
}

fn route(yaml: &str) -> Arc<RouteConfig> {
    Arc::new(serde_yaml_ng::from_str(yaml).expect("a route"))
}

fn upstream(yaml: &str) -> Arc<UpstreamConfig> {
    Arc::new(serde_yaml_ng::from_str(yaml).expect("an upstream"))
}

fn errors(outcome: Result<(), ConfigError>) -> Vec<String> {
    let mut errors: Vec<String> = match outcome {
        Ok(()) => Vec::new(),
        Err(e) => e.field_errors().iter().map(ToString::to_string).collect(),
    };
    errors.sort();
    errors
}

/// The change's check finds exactly what the whole check finds.
fn agree(base: &Config, changed: &Config) -> Vec<String> {
    let whole = errors(changed.validate());
    let change = errors(changed.validate_change(base));
    assert_eq!(
        change, whole,
        "the change's check and the whole check disagree"
    );
    whole
}

/// Each change, alone, applied to the base: what it breaks (or not) is found by both checks.
#[test]
fn each_change_is_judged_as_the_whole_check_judges_it() {
    let base = valid();
    type Change = (&'static str, fn(&mut Config), &'static [&'static str]);
    let changes: &[Change] = &[
        ("a route changes its path", |c| c.routes[4] = route("{ id: r4, paths: [\"/moved/*\"], upstream: b }"), &[]),
        ("a route takes another's path and methods", |c| {
            c.routes[8] = route("{ id: r8, paths: [\"/shared\"], methods: [GET], upstream: a }")
        }, &["routes[8]: conflicts with route \"r1\": same host, path \"/shared\", methods and headers"]),
        ("an earlier route takes a later one's path", |c| {
            c.routes[0] = route("{ id: r0, paths: [\"/p4/*\"], upstream: a }")
        }, &["routes[4]: conflicts with route \"r0\": same host, path \"/p4/*\", methods and headers"]),
        ("a route names a missing upstream", |c| {
            c.routes[5] = route("{ id: r5, paths: [\"/shared\"], methods: [POST], upstream: nope }")
        }, &["routes[5].upstream: no upstream with id \"nope\""]),
        ("a route keeps its place and forwards elsewhere", |c| {
            c.routes[4] = route("{ id: r4, paths: [\"/p4/*\"], upstream: b, timeout: 5s }")
        }, &[]),
        ("a route keeps its place and names a missing upstream", |c| {
            c.routes[4] = route("{ id: r4, paths: [\"/p4/*\"], upstream: nope }")
        }, &["routes[4].upstream: no upstream with id \"nope\""]),
        ("a route gets a bad path", |c| c.routes[6] = route("{ id: r6, paths: [\"no-slash\"], upstream: a }"), &[]),
        ("a route takes another's id", |c| c.routes[7] = route("{ id: r2, paths: [\"/x\"], upstream: a }"), &["routes[7].id: duplicate route id \"r2\""]),
        ("an earlier route takes a later one's id", |c| c.routes[1] = route("{ id: r9, paths: [\"/x\"], upstream: a }"), &["routes[9].id: duplicate route id \"r9\""]),
        ("a route is inserted", |c| c.routes.insert(3, route("{ id: new, paths: [\"/new\"], upstream: a }")), &[]),
        ("a conflicting route is inserted", |c| {
            c.routes.insert(10, route("{ id: new, hosts: [\"H2.example\"], paths: [\"/shared\"], upstream: a }"))
        }, &["routes[10]: conflicts with route \"r2\": same host, path \"/shared\", methods and headers"]),
        ("a route is removed", |c| drop(c.routes.remove(11)), &[]),
        ("an unused upstream is removed", |c| drop(c.upstreams.remove(2)), &[]),
        ("a used upstream is removed", |c| drop(c.upstreams.remove(1)), &[
            "routes[0].upstream: no upstream with id \"b\"",
            "routes[12].upstream: no upstream with id \"b\"",
            "routes[18].upstream: no upstream with id \"b\"",
            "routes[6].upstream: no upstream with id \"b\"",
            "routes[9].upstream: no upstream with id \"b\"",
        ]),
        ("an upstream is replaced by a broken one", |c| {
            c.upstreams[0] = upstream("{ id: a, targets: [{ address: \"nowhere\" }] }")
        }, &[]),
        ("an upstream takes another's id", |c| {
            c.upstreams.push(upstream("{ id: a, targets: [{ address: \"127.0.0.1:9\" }] }"))
        }, &["upstreams[3].id: duplicate upstream id \"a\""]),
        ("a consumer takes another's id", |c| {
            c.consumers.insert(0, Arc::new(serde_yaml_ng::from_str::<ConsumerConfig>("{ id: bob }").unwrap()))
        }, &["consumers[2].id: duplicate consumer id \"bob\""]),
        ("a certificate is not PEM", |c| c.certificates[1] = Arc::new(certificate("c2", "junk")), &[]),
        ("a certificate takes another's id", |c| c.certificates.push(Arc::new(certificate("c1", PEM))), &[
            "certificates[2].id: duplicate certificate id \"c1\"",
        ]),
    ];
    for (what, change, expected) in changes {
        let mut changed = base.clone();
        change(&mut changed);
        let found = agree(&base, &changed);
        if !expected.is_empty() {
            assert_eq!(found, *expected, "{what}");
        } else if what.contains("bad") || what.contains("broken") || what.contains("not PEM") {
            assert!(!found.is_empty(), "{what}: nothing found");
        } else {
            assert!(found.is_empty(), "{what}: {found:?}");
        }
    }
}

/// Many changes at once, drawn at random from a fixed seed: replaced, inserted and removed resources
/// of every kind, sound and broken; the two checks always agree.
#[test]
fn random_changes_are_judged_as_the_whole_check_judges_them() {
    let base = valid();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    let paths = ["/shared", "/p4/*", "/new", "/u/{id}/3", "bad", "/p8/*"];
    let hosts = ["", "h2.example", "H6.EXAMPLE"];
    let methods = ["", "GET", "POST"];
    let upstreams = ["a", "b", "unused", "gone"];
    let mut judged_invalid = 0;
    for _ in 0..400 {
        let mut changed = base.clone();
        for _ in 0..1 + next(3) {
            match next(6) {
                0..=2 => {
                    let id = format!("r{}", next(24));
                    let host = hosts[next(hosts.len())];
                    let method = methods[next(methods.len())];
                    let yaml = format!(
                        "{{ id: {id}, paths: [\"{}\"]{}{}, upstream: {} }}",
                        paths[next(paths.len())],
                        if host.is_empty() {
                            String::new()
                        } else {
                            format!(", hosts: [\"{host}\"]")
                        },
                        if method.is_empty() {
                            String::new()
                        } else {
                            format!(", methods: [{method}]")
                        },
                        upstreams[next(upstreams.len())],
                    );
                    let at = next(changed.routes.len() + 1);
                    if next(2) == 0 && at < changed.routes.len() {
                        changed.routes[at] = route(&yaml);
                    } else {
                        changed.routes.insert(at, route(&yaml));
                    }
                }
                3 => {
                    let at = next(changed.routes.len());
                    changed.routes.remove(at);
                }
                4 => {
                    let at = next(changed.upstreams.len());
                    changed.upstreams.remove(at);
                }
                _ => {
                    let id = ["a", "b", "c"][next(3)];
                    changed.upstreams.insert(
                        next(changed.upstreams.len() + 1),
                        upstream(&format!(
                            "{{ id: {id}, targets: [{{ address: \"127.0.0.1:7\" }}] }}"
                        )),
                    );
                }
            }
        }
        if !agree(&base, &changed).is_empty() {
            judged_invalid += 1;
        }
    }
    // The draw breaks some configurations and not others, so both outcomes were compared.
    assert!(
        (50..350).contains(&judged_invalid),
        "{judged_invalid} of 400 invalid"
    );
}

#[test]
fn changed_settings_or_many_changes_are_checked_whole() {
    let base = valid();
    let mut changed = base.clone();
    changed.workers = Some(0);
    assert_eq!(
        agree(&base, &changed),
        ["workers: must be between 1 and 1024"]
    );
    // A copy with every resource new (a file read again) finds the same as the whole check.
    let reread = parse_yaml(&serde_yaml_ng::to_string(&base).unwrap()).unwrap();
    assert!(agree(&base, &reread).is_empty());
}

#[test]
fn new_and_gone_items_are_told_apart() {
    let items: Vec<Arc<u8>> = (0..6).map(Arc::new).collect();
    let mut next = items.clone();
    next[2] = Arc::new(2);
    next.remove(4);
    next.push(Arc::new(8));
    assert_eq!(
        Fresh::between(&items, &next),
        Fresh {
            new: vec![2, 5],
            gone: vec![2, 4]
        }
    );
}
