//! The admin REST API under `/floodgate/admin/`: the running configuration and its resources, read with
//! secrets masked; the whole configuration replaced at once (with `If-Match` against lost updates); the
//! versions applied, and a rollback to one of them. Resources are read-only while the configuration comes
//! from a file (`config_source: file`, as in Kong's DB-less mode): the file stays the source of truth, and
//! a replacement made here lasts until the next SIGHUP re-reads it.

use std::sync::Arc;

use bytes::Bytes;
use floodgate_config::{parse_json, parse_yaml, Config, ConfigError, FieldError};
use floodgate_store::{
    etag_of, keep_masked, mask, Applied, Applier, ApplyError, ChangeSource, ConfigVersions, Kind,
};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::answer::{config_json, error, not_allowed, ok_json, Answer};
use crate::api_etcd::{EtcdWrites, WriteRequest};
use crate::api_key::ApiKey;

/// Where the admin API lives on the admin listener.
pub const PREFIX: &str = "/floodgate/admin";

/// Largest request body the admin API reads; a larger one gets 413 and nothing is applied.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What the admin API reads and changes.
pub struct AdminApi {
    /// The configurations applied, the running one last.
    pub versions: Arc<ConfigVersions>,
    /// Where changes go to be applied.
    pub applier: Applier,
    /// The key callers must present in `X-API-Key`; `None` lets every caller in (validation allows that
    /// only on a loopback address).
    pub api_key: Option<ApiKey>,
    /// Set when the configuration comes from etcd (`config_source.type: etcd`): resources are then read
    /// from and written to their keys, and the whole configuration cannot be replaced here.
    pub etcd: Option<EtcdWrites>,
    /// The configuration's JSON Schema, plugins included, for `GET /floodgate/admin/schema`.
    pub schema: String,
}

impl AdminApi {
    /// Answers one request under [`PREFIX`].
    pub async fn respond(&self, req: Request<Incoming>) -> Answer {
        if let Some(key) = &self.api_key {
            let presented = req.headers().get("x-api-key").map(HeaderValue::as_bytes);
            if !presented.is_some_and(|p| key.matches(p)) {
                let mut answer = error(
                    StatusCode::UNAUTHORIZED,
                    "a valid X-API-Key is required",
                    &[],
                );
                answer.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("X-API-Key"),
                );
                return answer;
            }
        }
        let path = req.uri().path().strip_prefix(PREFIX).unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = req.method().clone();
        match (segments.as_slice(), &method) {
            (["config"], &Method::GET | &Method::HEAD) => self.get_config(),
            (["config"] | ["history", _, "rollback"], &Method::POST | &Method::PUT)
                if self.etcd.is_some() =>
            {
                let mut answer = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "the configuration comes from etcd: change its resources (PUT /floodgate/admin/routes/<id>, ...) or its keys",
                    &[],
                );
                answer
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                answer
            }
            (["config"], &Method::POST | &Method::PUT) => self.replace_config(req).await,
            (["config"], _) => not_allowed("GET, POST, PUT"),
            (["schema"], &Method::GET | &Method::HEAD) => {
                let mut answer = Response::new(Full::new(Bytes::from(self.schema.clone())));
                answer.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/schema+json"),
                );
                answer
            }
            (["schema"], _) => not_allowed("GET"),
            (["history"], &Method::GET | &Method::HEAD) => self.history(),
            (["history"], _) => not_allowed("GET"),
            (["history", version], &Method::GET | &Method::HEAD) => match self.version(version) {
                Some(applied) => config_answer(&applied),
                None => no_version(version),
            },
            (["history", _], _) => not_allowed("GET"),
            (["history", version, "rollback"], &Method::POST) => self.rollback(version).await,
            (["history", _, "rollback"], _) => not_allowed("POST"),
            ([kind], _) | ([kind, _], _) if Kind::from_segment(kind).is_some() => {
                let kind = Kind::from_segment(kind).unwrap_or(Kind::Routes);
                let id = segments.get(1).map(|id| id.to_string());
                let reading = method == Method::GET || method == Method::HEAD;
                match (&self.etcd, reading, id.as_deref()) {
                    (_, true, None) | (None, true, Some(_)) => self.resource(kind, id.as_deref()),
                    (None, false, _) => read_only(),
                    (Some(etcd), true, Some(id)) => etcd.read(&self.versions, kind, id).await,
                    (Some(etcd), false, id) => {
                        let (parts, body) = req.into_parts();
                        let body = match read_body(body).await {
                            Ok(body) => body,
                            Err(answer) => return answer,
                        };
                        let body = if body.is_empty() {
                            Value::Null
                        } else {
                            match serde_json::from_slice(&body) {
                                Ok(value) => value,
                                Err(e) => {
                                    return invalid(&[FieldError::new(
                                        "",
                                        format!("not valid JSON: {e}"),
                                    )])
                                }
                            }
                        };
                        let request = WriteRequest {
                            method: &method,
                            headers: &parts.headers,
                            kind,
                            id,
                            body,
                        };
                        etcd.write(&self.versions, request).await
                    }
                }
            }
            _ => error(StatusCode::NOT_FOUND, "no such admin resource", &[]),
        }
    }

    fn get_config(&self) -> Answer {
        config_answer(&self.versions.current())
    }

    fn resource(&self, kind: Kind, id: Option<&str>) -> Answer {
        let unmasked = config_json(&self.versions.current().config);
        let mut config = unmasked.clone();
        mask(&mut config);
        match id {
            None => ok_json(StatusCode::OK, &kind.list(&config), None),
            Some(id) => match (kind.get(&config, id), kind.get(&unmasked, id)) {
                // The tag is of the stored resource, secrets and all: a changed secret changes it.
                (Ok(resource), Ok(stored)) => {
                    ok_json(StatusCode::OK, &resource, Some(&etag_of(&stored)))
                }
                (Err(e), _) | (_, Err(e)) => error(StatusCode::NOT_FOUND, &e.to_string(), &[]),
            },
        }
    }

    async fn replace_config(&self, req: Request<Incoming>) -> Answer {
        let (parts, body) = req.into_parts();
        let current = self.versions.current();
        if !if_match(&parts.headers, current.etag()) {
            return error(
                StatusCode::PRECONDITION_FAILED,
                "the configuration changed since it was read: GET it again and retry",
                &[],
            );
        }
        let body = match read_body(body).await {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let config = match parse_body(&parts.headers, &body, &current.config) {
            Ok(config) => config,
            Err(errors) => return invalid(&errors),
        };
        self.apply(config, ChangeSource::Admin).await
    }

    async fn apply(&self, config: Config, source: ChangeSource) -> Answer {
        match self.applier.apply(config, source).await {
            Ok(applied) => {
                let body = json!({ "version": applied.version, "etag": applied.etag() });
                ok_json(StatusCode::OK, &body, Some(applied.etag()))
            }
            Err(ApplyError::Invalid(errors)) => invalid(&errors),
            Err(e @ ApplyError::Failed(_)) => error(StatusCode::CONFLICT, &e.to_string(), &[]),
            Err(e @ ApplyError::ShuttingDown) => {
                error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), &[])
            }
        }
    }

    fn history(&self) -> Answer {
        let current = self.versions.current().version;
        let items: Vec<Value> = self
            .versions
            .all()
            .iter()
            .rev()
            .map(|v| {
                json!({
                    "version": v.version,
                    "applied_at": humantime::format_rfc3339_seconds(v.applied_at).to_string(),
                    "source": v.source.as_str(),
                    "etag": v.etag(),
                    "current": v.version == current,
                })
            })
            .collect();
        ok_json(
            StatusCode::OK,
            &json!({ "total": items.len(), "items": items }),
            None,
        )
    }

    fn version(&self, version: &str) -> Option<Arc<Applied>> {
        version
            .parse::<u64>()
            .ok()
            .and_then(|v| self.versions.get(v))
    }

    async fn rollback(&self, version: &str) -> Answer {
        match self.version(version) {
            Some(applied) => {
                self.apply(Config::clone(&applied.config), ChangeSource::Rollback)
                    .await
            }
            None => no_version(version),
        }
    }
}

/// The whole body, up to [`MAX_BODY_BYTES`] (413 past it).
async fn read_body(body: Incoming) -> Result<Bytes, Answer> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            &[],
        )),
        Err(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "the body could not be read",
            &[],
        )),
    }
}

/// A configuration from a request body: JSON, or YAML when the content type says so. Secrets written as
/// the mask keep the running configuration's.
fn parse_body(
    headers: &HeaderMap,
    body: &[u8],
    current: &Config,
) -> Result<Config, Vec<FieldError>> {
    let yaml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("yaml"));
    let mut document: Value = if yaml {
        let text = std::str::from_utf8(body)
            .map_err(|_| vec![FieldError::new("", "the body is not UTF-8")])?;
        // Through the YAML loader first, so a YAML body's errors read as a file's would.
        let config = parse_yaml(text).map_err(|e| field_errors(&e))?;
        config_json(&config)
    } else {
        serde_json::from_slice(body)
            .map_err(|e| vec![FieldError::new("", format!("not valid JSON: {e}"))])?
    };
    keep_masked(&mut document, &config_json(current))?;
    let text = serde_json::to_vec(&document).unwrap_or_default();
    parse_json(&text).map_err(|e| field_errors(&e))
}

fn field_errors(e: &ConfigError) -> Vec<FieldError> {
    match e.field_errors() {
        [] => vec![FieldError::new("", e.to_string())],
        errors => errors.to_vec(),
    }
}

/// Whether `If-Match`, when present, names the running configuration's tag (or is `*`).
fn if_match(headers: &HeaderMap, current: &str) -> bool {
    let Some(wanted) = headers.get(header::IF_MATCH) else {
        return true;
    };
    wanted.to_str().is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag == current)
    })
}

fn no_version(version: &str) -> Answer {
    error(
        StatusCode::NOT_FOUND,
        &format!("no version {version:?} in the history"),
        &[],
    )
}

fn masked(config: &Config) -> Value {
    let mut json = config_json(config);
    mask(&mut json);
    json
}

fn config_answer(applied: &Applied) -> Answer {
    let mut answer = ok_json(
        StatusCode::OK,
        &masked(&applied.config),
        Some(applied.etag()),
    );
    if let Ok(version) = HeaderValue::from_str(&applied.version.to_string()) {
        answer
            .headers_mut()
            .insert("x-floodgate-config-version", version);
    }
    answer
}

fn read_only() -> Answer {
    let mut answer = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "resources are read-only while the configuration comes from a file; replace it whole with POST /floodgate/admin/config",
        &[],
    );
    answer
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    answer
}

fn invalid(errors: &[FieldError]) -> Answer {
    error(StatusCode::BAD_REQUEST, "invalid configuration", errors)
}
