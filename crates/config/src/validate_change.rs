//! Validating a changed configuration at the cost of its change: a configuration made from one that
//! passed [`Config::validate`] by replacing, adding or removing a few resources (an etcd watch event, an
//! admin API write) is checked where it can differ from that one, not resource by resource.
//!
//! A resource shared with the valid configuration (the same `Arc`) is known sound on its own and
//! known not to clash with the others it shared that configuration with. So only the new resources get
//! their own checks, and the checks between resources (unique ids, references, route conflicts) are
//! made between a new resource and the rest. What is left proportional to the configuration's size is a
//! walk comparing pointers and a scan comparing ids and paths, with no allocation per resource.

use std::collections::HashMap;
use std::sync::Arc;

use crate::validate::{check_conflicts, validate_certificate, validate_route, RouteIdentity};
use crate::{Config, ConfigError, FieldError};

/// Past this share of new resources the whole check is as cheap, and simpler.
const MOST_CHANGED: usize = 8;

impl Config {
    /// Checks this configuration, known to be `valid` (which passed [`Config::validate`]) with some
    /// resources replaced, added or removed, and reports the errors [`Config::validate`] would. Settings
    /// other than resources that differ from `valid`'s, or a change to many resources, are checked whole.
    pub fn validate_change(&self, valid: &Config) -> Result<(), ConfigError> {
        if !self.same_settings(valid) {
            return self.validate();
        }
        let upstreams = Fresh::between(&valid.upstreams, &self.upstreams);
        let routes = Fresh::between(&valid.routes, &self.routes);
        let consumers = Fresh::between(&valid.consumers, &self.consumers);
        let certificates = Fresh::between(&valid.certificates, &self.certificates);
        let changed =
            upstreams.new.len() + routes.new.len() + consumers.new.len() + certificates.new.len();
        let size = self.upstreams.len()
            + self.routes.len()
            + self.consumers.len()
            + self.certificates.len();
        if changed * MOST_CHANGED > size.max(MOST_CHANGED) {
            return self.validate();
        }
        let mut errors = Vec::new();
        for &i in &upstreams.new {
            check_unique(
                &self.upstreams,
                i,
                |u| &u.id,
                "upstreams",
                "upstream",
                &mut errors,
            );
            self.validate_upstream(i, &self.upstreams[i], &mut errors);
        }
        let has_upstream = |id: &str| self.upstreams.iter().any(|u| u.id == id);
        let gone: Vec<&str> = upstreams
            .gone
            .iter()
            .map(|&g| valid.upstreams[g].id.as_str())
            .filter(|id| !has_upstream(id))
            .collect();
        if !gone.is_empty() {
            // A route that named a removed upstream now names nothing.
            for (i, route) in self.routes.iter().enumerate() {
                match route.upstream.as_deref() {
                    Some(id) if gone.contains(&id) && !routes.new.contains(&i) => {
                        errors.push(FieldError::new(
                            format!("routes[{i}].upstream"),
                            format!("no upstream with id {id:?}"),
                        ))
                    }
                    _ => {}
                }
            }
        }
        for &i in &routes.new {
            check_unique(&self.routes, i, |r| &r.id, "routes", "route", &mut errors);
            validate_route(i, &self.routes[i], has_upstream, &mut errors);
        }
        self.check_new_routes_conflicts(&routes.new, &mut errors);
        for &i in &consumers.new {
            check_unique(
                &self.consumers,
                i,
                |c| &c.id,
                "consumers",
                "consumer",
                &mut errors,
            );
        }
        for &i in &certificates.new {
            check_unique(
                &self.certificates,
                i,
                |c| &c.id,
                "certificates",
                "certificate",
                &mut errors,
            );
            validate_certificate(i, &self.certificates[i], &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    /// Whether every setting but the resources is `other`'s. Written field by field so that a new
    /// field of [`Config`] cannot be forgotten here.
    fn same_settings(&self, other: &Config) -> bool {
        let Config {
            workers,
            shutdown_timeout,
            listeners,
            admin,
            limits,
            timeouts,
            http2,
            access_log,
            dns,
            upstreams: _,
            routes: _,
            global_plugins,
            consumers: _,
            certificates: _,
            real_ip,
            config_source,
        } = self;
        *workers == other.workers
            && *shutdown_timeout == other.shutdown_timeout
            && *listeners == other.listeners
            && *admin == other.admin
            && *limits == other.limits
            && *timeouts == other.timeouts
            && *http2 == other.http2
            && *access_log == other.access_log
            && *dns == other.dns
            && *global_plugins == other.global_plugins
            && *real_ip == other.real_ip
            && *config_source == other.config_source
    }

    /// Conflicts between the new routes (indices into `routes`) and the others, reported as
    /// [`Config::validate`] reports them: at the later route of a conflicting pair. Only routes that
    /// share a path with a new route can conflict with it, so only those are looked at.
    fn check_new_routes_conflicts(&self, new: &[usize], errors: &mut Vec<FieldError>) {
        if new.is_empty() {
            return;
        }
        let shares_a_path = |i: usize| {
            let route = &self.routes[i];
            new.iter().any(|&n| {
                let other = &self.routes[n];
                route.paths.iter().any(|path| other.paths.contains(path))
            })
        };
        let mut seen: HashMap<RouteIdentity, &str> = HashMap::new();
        for (i, route) in self.routes.iter().enumerate() {
            // Two routes of the valid configuration did not conflict there and do not now, so
            // whatever this finds involves a new route.
            if new.contains(&i) || shares_a_path(i) {
                check_conflicts(i, route, &mut seen, errors);
            }
        }
    }
}

/// The `i`th item's id, unless empty, is no other item's; reported as [`Config::validate`] does, at
/// each item whose id an earlier one has.
fn check_unique<T>(
    items: &[Arc<T>],
    i: usize,
    id: impl Fn(&T) -> &str,
    section: &str,
    kind: &str,
    errors: &mut Vec<FieldError>,
) {
    let own = id(&items[i]);
    if own.is_empty() {
        errors.push(FieldError::new(
            format!("{section}[{i}].id"),
            "must not be empty",
        ));
        return;
    }
    // As the whole check has it: every item with an id an earlier item has is at fault.
    let earlier = items[..i].iter().any(|item| id(item) == own);
    let later = items
        .iter()
        .enumerate()
        .skip(i + 1)
        .filter(|(_, item)| id(item) == own)
        .map(|(j, _)| j);
    for at in earlier.then_some(i).into_iter().chain(later) {
        let error = FieldError::new(
            format!("{section}[{at}].id"),
            format!("duplicate {kind} id {own:?}"),
        );
        if !errors.contains(&error) {
            errors.push(error);
        }
    }
}

/// Which items of a section are new since the valid configuration: not the same `Arc` as one of its.
#[derive(Debug, Default, PartialEq)]
struct Fresh {
    /// Indices of the new items, ascending.
    new: Vec<usize>,
    /// Indices in the valid configuration of its items gone (or moved, which is checked as gone).
    gone: Vec<usize>,
}

impl Fresh {
    /// Walks both lists side by side, as a change leaves them: the same items in the same order but
    /// for one replaced, inserted or removed here and there. An item out of that order counts as new,
    /// which costs a check, never a miss.
    fn between<T>(valid: &[Arc<T>], next: &[Arc<T>]) -> Fresh {
        let same = |i: usize, j: usize| matches!((next.get(i), valid.get(j)), (Some(a), Some(b)) if Arc::ptr_eq(a, b));
        let mut fresh = Fresh::default();
        let (mut i, mut j) = (0, 0);
        while i < next.len() {
            if same(i, j) {
                i += 1;
                j += 1;
            } else if same(i, j + 1) {
                // valid[j] is gone.
                fresh.gone.push(j);
                j += 1;
            } else if same(i + 1, j) || j >= valid.len() {
                // next[i] is inserted.
                fresh.new.push(i);
                i += 1;
            } else {
                // next[i] replaces valid[j].
                fresh.new.push(i);
                fresh.gone.push(j);
                i += 1;
                j += 1;
            }
        }
        fresh.gone.extend(j..valid.len());
        fresh
    }
}

#[cfg(test)]
mod tests;
