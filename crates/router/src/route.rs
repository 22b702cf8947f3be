//! One compiled route: its conditions, where it is registered, and its place among the others.

use floodgate_config::{PathPattern, RouteConfig};

use crate::conditions::{ConditionError, Conditions};
use crate::host::HostPattern;
use crate::RouterError;

/// A route as the table holds it, shared by every table it stays in.
#[derive(Debug, Clone)]
pub(crate) struct Route<T> {
    pub(crate) conditions: Conditions,
    pub(crate) value: T,
    /// Where it sits in config order, as a key that leaves room for routes inserted later.
    order: u64,
    /// Its hosts (none: any host) and paths, which say where it is registered.
    pub(crate) hosts: Box<[HostPattern]>,
    pub(crate) patterns: Box<[PathPattern]>,
}

impl<T> Route<T> {
    /// Compiles `config`. Fails on a path, host, method or header that cannot be matched.
    pub(crate) fn compile(config: &RouteConfig, value: T, order: u64) -> Result<Self, RouterError> {
        let id = || config.id.clone();
        if config.paths.is_empty() {
            return Err(RouterError::NoPaths { route: id() });
        }
        let patterns = config
            .paths
            .iter()
            .enumerate()
            .map(|(index, path)| {
                PathPattern::parse(path).map_err(|reason| RouterError::InvalidPath {
                    route: id(),
                    index,
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        let hosts = config
            .hosts
            .iter()
            .enumerate()
            .map(|(index, host)| {
                HostPattern::parse(host).map_err(|reason| RouterError::InvalidHost {
                    route: id(),
                    index,
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        let conditions =
            Conditions::parse(&config.methods, &config.headers).map_err(|error| match error {
                ConditionError::Method { index, method } => RouterError::InvalidMethod {
                    route: id(),
                    index,
                    method,
                },
                ConditionError::Header { name, reason } => RouterError::InvalidHeader {
                    route: id(),
                    name,
                    reason,
                },
            })?;
        Ok(Route {
            conditions,
            value,
            order,
            hosts,
            patterns,
        })
    }

    /// The same route at another place in config order.
    pub(crate) fn at_order(&self, order: u64) -> Self
    where
        T: Clone,
    {
        Route {
            order,
            ..self.clone()
        }
    }

    /// How many conditions it has: more come first among routes of one pattern.
    pub(crate) fn weight(&self) -> usize {
        self.conditions.weight()
    }

    /// Its config-order key: lower comes first among routes of equal weight.
    pub(crate) fn order(&self) -> u64 {
        self.order
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;

    /// A route without conditions whose value is `value`, at that place in config order.
    pub(crate) fn route(value: usize) -> Arc<Route<usize>> {
        Arc::new(Route {
            conditions: Conditions::parse(&[], &Default::default()).expect("no conditions"),
            value,
            order: value as u64,
            hosts: Box::new([]),
            patterns: Box::new([]),
        })
    }
}
