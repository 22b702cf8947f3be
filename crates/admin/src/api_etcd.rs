//! The admin API's resources when the configuration comes from etcd: each is read from and written to its
//! key, with its `mod_revision` as `ETag` and `If-Match` as a compare-and-swap on it. A write is checked
//! against the running configuration first, with the same validator as a file, so etcd only ever gets a
//! resource the gateways will take; once written, the answer waits (up to the etcd timeout) until this
//! gateway has applied it, so a client reads its own writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use floodgate_config::{Config, FieldError};
use floodgate_observe::Metrics;
use floodgate_store::etcd::{Condition, EtcdWriter, Validator, WriteError};
use floodgate_store::{keep_masked, mask, ConfigVersions, Kind};
use http::{header, HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use crate::answer::{config_json, error, not_allowed, ok_json, Answer};

/// What the admin API needs to write resources to etcd.
pub struct EtcdWrites {
    /// Reads and writes the keys.
    pub writer: EtcdWriter,
    /// The checks applying a configuration makes beyond its schema (plugins, certificates).
    pub validate: Arc<Validator>,
    /// Where the etcd source says which revision is in service.
    pub metrics: Arc<Metrics>,
    /// Longest wait for a write to be in service here before answering.
    pub wait: Duration,
}

/// A write's request, once its body is read.
pub struct WriteRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The request's fields (`If-Match`).
    pub headers: &'a HeaderMap,
    /// The resource's kind.
    pub kind: Kind,
    /// Its id, when the path names one.
    pub id: Option<&'a str>,
    /// The body, as JSON (`Null` when there is none).
    pub body: Value,
}

impl EtcdWrites {
    /// Answers a GET of one resource: etcd's value and revision, or the running configuration's copy
    /// (without a tag) while etcd cannot be reached.
    pub async fn read(&self, versions: &ConfigVersions, kind: Kind, id: &str) -> Answer {
        match self.writer.read(kind, id).await {
            Ok(Some(stored)) => ok_json(
                StatusCode::OK,
                &masked_resource(kind, id, stored.value),
                Some(&tag(stored.revision)),
            ),
            Ok(None) => not_found(kind, id),
            Err(_) => match kind.get(&config_json(&versions.current().config), id) {
                Ok(resource) => ok_json(StatusCode::OK, &masked_resource(kind, id, resource), None),
                Err(_) => not_found(kind, id),
            },
        }
    }

    /// Answers a PUT, PATCH or DELETE of a resource, or a POST to a list.
    pub async fn write(&self, versions: &ConfigVersions, request: WriteRequest<'_>) -> Answer {
        let WriteRequest {
            method,
            headers,
            kind,
            id,
            body,
        } = request;
        let Ok(if_match) = if_match(headers) else {
            return stale();
        };
        match (method, id) {
            (&Method::PUT, Some(id)) => {
                self.put(
                    versions,
                    kind,
                    id,
                    body,
                    if_match.unwrap_or(Condition::Always),
                )
                .await
            }
            (&Method::PATCH, Some(id)) => {
                let stored = match self.writer.read(kind, id).await {
                    Ok(Some(stored)) => stored,
                    Ok(None) => return not_found(kind, id),
                    Err(e) => return unreachable(&e),
                };
                let mut merged = stored.value;
                merge_patch(&mut merged, body);
                let condition = if_match.unwrap_or(Condition::AtRevision(stored.revision));
                self.put(versions, kind, id, merged, condition).await
            }
            (&Method::POST, None) if kind != Kind::GlobalPlugins => {
                let Some(id) = body.get("id").and_then(Value::as_str).map(str::to_string) else {
                    return invalid(vec![FieldError::new("id", "required to create a resource")]);
                };
                self.put(versions, kind, &id, body, Condition::Absent).await
            }
            (&Method::DELETE, Some(id)) => {
                self.delete(versions, kind, id, if_match.unwrap_or(Condition::Always))
                    .await
            }
            _ => not_allowed(if id.is_some() {
                "GET, HEAD, PUT, PATCH, DELETE"
            } else {
                "GET, HEAD, POST"
            }),
        }
    }

    async fn put(
        &self,
        versions: &ConfigVersions,
        kind: Kind,
        id: &str,
        mut resource: Value,
        condition: Condition,
    ) -> Answer {
        if !resource.is_object() {
            return invalid(vec![FieldError::new(
                "",
                "the resource must be a JSON object",
            )]);
        }
        if kind != Kind::GlobalPlugins {
            match resource.get("id").and_then(Value::as_str) {
                None => resource["id"] = Value::String(id.to_string()),
                Some(own) if own == id => {}
                Some(own) => {
                    return invalid(vec![FieldError::new(
                        "id",
                        format!("{own:?} is not the path's {id:?}"),
                    )])
                }
            }
        }
        // One resource read, checked and put in a copy of the running configuration: no
        // configuration-wide JSON, which at ten thousand routes costs more than the rest together.
        let current = versions.current();
        let running = kind.get_in(&current.config, id);
        let existed = running.is_some();
        let path = kind.path_in(&current.config, id);
        if let Err(errors) = keep_masked_in(kind, id, &path, &mut resource, running) {
            return refused(errors, &path);
        }
        let mut candidate = (*current.config).clone();
        let (path, parsed) = kind.put_in(&mut candidate, id, &resource);
        if let Err(errors) = parsed.and_then(|()| self.check(&candidate, &current.config)) {
            return refused(errors, &path);
        }
        let value = resource;
        match self.writer.put(kind, id, &value, condition).await {
            Ok(revision) => {
                self.wait_applied(revision).await;
                let status = if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                ok_json(
                    status,
                    &masked_resource(kind, id, value),
                    Some(&tag(revision)),
                )
            }
            Err(WriteError::ConditionFailed) if condition == Condition::Absent => error(
                StatusCode::CONFLICT,
                &format!("a {} with id {id:?} already exists", kind.singular()),
                &[],
            ),
            Err(WriteError::ConditionFailed) => stale(),
            Err(e) => unreachable(&e),
        }
    }

    async fn delete(
        &self,
        versions: &ConfigVersions,
        kind: Kind,
        id: &str,
        condition: Condition,
    ) -> Answer {
        match self.writer.read(kind, id).await {
            Ok(Some(_)) => {}
            Ok(None) => return not_found(kind, id),
            Err(e) => return unreachable(&e),
        }
        let current = versions.current();
        let mut candidate = (*current.config).clone();
        kind.remove_in(&mut candidate, id);
        if let Err(errors) = self.check(&candidate, &current.config) {
            return error(
                StatusCode::CONFLICT,
                &format!("the {} {id:?} is in use", kind.singular()),
                &errors,
            );
        }
        match self.writer.delete(kind, id, condition).await {
            Ok(revision) => {
                self.wait_applied(revision).await;
                ok_json(
                    StatusCode::OK,
                    &json!({ "deleted": id, "revision": revision }),
                    None,
                )
            }
            Err(WriteError::ConditionFailed) => stale(),
            Err(e) => unreachable(&e),
        }
    }

    /// The configuration `candidate` would be, checked as applying it would check it; it is the
    /// running configuration with one resource changed, and checked as such.
    fn check(&self, candidate: &Config, running: &Config) -> Result<(), Vec<FieldError>> {
        candidate
            .validate_change(running)
            .map_err(|e| e.field_errors().to_vec())?;
        (self.validate)(candidate)
    }

    async fn wait_applied(&self, revision: i64) {
        let deadline = Instant::now() + self.wait;
        let revision = u64::try_from(revision).unwrap_or_default();
        while self.metrics.config_source.revision() < revision && Instant::now() < deadline {
            // A write is in service within milliseconds: a coarser poll would be most of the wait.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Secrets of `resource` written back masked take `running`'s (the stored resource's), as
/// [`keep_masked`] does for a whole configuration; errors are at the resource's place.
fn keep_masked_in(
    kind: Kind,
    id: &str,
    path: &str,
    resource: &mut Value,
    running: Option<Value>,
) -> Result<(), Vec<FieldError>> {
    // The resource alone in a configuration of its own, where it is the first of its kind.
    let alone = |value: Value| match kind {
        Kind::GlobalPlugins => json!({ "global_plugins": { id: value } }),
        _ => json!({ kind.segment(): [value] }),
    };
    let first = match kind {
        Kind::GlobalPlugins => path.to_string(),
        _ => format!("{}[0]", kind.segment()),
    };
    let mut new = alone(std::mem::take(resource));
    let kept = keep_masked(&mut new, &alone(running.unwrap_or(Value::Null)));
    *resource = kind.get(&new, id).unwrap_or(Value::Null);
    kept.map_err(|errors| {
        errors
            .into_iter()
            .map(|e| match e.path.strip_prefix(&first) {
                Some(within) => FieldError::new(format!("{path}{within}"), e.message),
                None => e,
            })
            .collect()
    })
}

/// A refused change: 400 when only the resource itself is at fault in itself, 409 when it names what
/// does not exist (an upstream) or would break other resources.
fn refused(errors: Vec<FieldError>, path: &str) -> Answer {
    let own = |e: &FieldError| e.path == path || e.path.starts_with(&format!("{path}."));
    let conflict = errors
        .iter()
        .any(|e| !own(e) || e.message.starts_with("no upstream with id"));
    if conflict {
        error(
            StatusCode::CONFLICT,
            "the change conflicts with the rest of the configuration",
            &errors,
        )
    } else {
        invalid(errors)
    }
}

fn invalid(errors: Vec<FieldError>) -> Answer {
    error(StatusCode::BAD_REQUEST, "invalid configuration", &errors)
}

fn not_found(kind: Kind, id: &str) -> Answer {
    error(
        StatusCode::NOT_FOUND,
        &format!("no {} with id {id:?}", kind.singular()),
        &[],
    )
}

fn stale() -> Answer {
    error(
        StatusCode::PRECONDITION_FAILED,
        "the resource changed since it was read: GET it again and retry",
        &[],
    )
}

fn unreachable(e: &WriteError) -> Answer {
    error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), &[])
}

fn tag(revision: i64) -> String {
    format!("\"{revision}\"")
}

/// An `If-Match` that names no revision: it can never match (412).
struct UnusableTag;

/// `If-Match: "REVISION"` as a condition.
fn if_match(headers: &HeaderMap) -> Result<Option<Condition>, UnusableTag> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .map(|revision| Some(Condition::AtRevision(revision)))
        .ok_or(UnusableTag)
}

/// `resource` with its secrets masked, found as they would be in a whole configuration.
fn masked_resource(kind: Kind, id: &str, resource: Value) -> Value {
    let mut document = json!({});
    kind.put(&mut document, id, resource);
    mask(&mut document);
    kind.get(&document, id).unwrap_or(Value::Null)
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(fields) = target {
        for (key, value) in patch {
            if value.is_null() {
                fields.remove(&key);
            } else {
                merge_patch(fields.entry(key).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_merges_objects_removes_nulls_and_replaces_the_rest() {
        let mut target = json!({ "a": 1, "b": { "c": 2, "d": 3 }, "e": [1] });
        merge_patch(
            &mut target,
            json!({ "a": null, "b": { "c": 5 }, "e": [2], "f": "x" }),
        );
        assert_eq!(
            target,
            json!({ "b": { "c": 5, "d": 3 }, "e": [2], "f": "x" })
        );
    }

    #[test]
    fn only_a_revision_in_if_match_is_a_condition() {
        let mut headers = HeaderMap::new();
        assert_eq!(if_match(&headers).ok(), Some(None));
        headers.insert(header::IF_MATCH, "\"42\"".parse().unwrap());
        assert_eq!(
            if_match(&headers).ok(),
            Some(Some(Condition::AtRevision(42)))
        );
        headers.insert(header::IF_MATCH, "\"0123abcd\"".parse().unwrap());
        assert!(if_match(&headers).is_err());
    }

    #[test]
    fn a_change_is_a_conflict_when_it_reaches_past_itself() {
        let own = vec![FieldError::new("routes[2].timeout", "bad")];
        assert_eq!(refused(own, "routes[2]").status(), StatusCode::BAD_REQUEST);
        let dangling = vec![FieldError::new(
            "routes[2].upstream",
            "no upstream with id \"u\"",
        )];
        assert_eq!(
            refused(dangling, "routes[2]").status(),
            StatusCode::CONFLICT
        );
        let elsewhere = vec![FieldError::new(
            "routes[0].upstream",
            "no upstream with id \"u\"",
        )];
        assert_eq!(
            refused(elsewhere, "upstreams[1]").status(),
            StatusCode::CONFLICT
        );
        // `routes[20]` is not inside `routes[2]`.
        let other = vec![FieldError::new("routes[20].timeout", "bad")];
        assert_eq!(refused(other, "routes[2]").status(), StatusCode::CONFLICT);
    }
}
