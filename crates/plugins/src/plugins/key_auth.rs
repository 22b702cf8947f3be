//! `key-auth`: a consumer's API key in a header or a query parameter.

use std::collections::HashMap;
use std::sync::Arc;

use floodgate_config::FieldError;
use http::uri::PathAndQuery;
use http::{header, HeaderName, HeaderValue, StatusCode};
use ring::digest::{digest, SHA256};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::answer::Answer;
use crate::build_ctx::BuildCtx;
use crate::consumer::Consumer;
use crate::context::RequestCtx;
use crate::copies::{one_credential, ConflictingCopies};
use crate::heads::{RequestHead, UpstreamRequest};
use crate::policy::{Flow, Policy};
use crate::query::{ParamName, Separators};

/// `plugins.key-auth`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyAuthConfig {
    /// Header the key is read from. Default `apikey`.
    #[serde(default = "default_name")]
    pub header: String,
    /// Query parameter the key is read from when the header is absent; `""` turns it off. Default
    /// `apikey`.
    #[serde(default = "default_name")]
    pub query: String,
    /// Remove the key (header and query parameter) before forwarding. Default `false`.
    #[serde(default)]
    pub hide_credentials: bool,
    /// What the query is split into parameters on: `"&"`, or `"&;"` for an upstream that also splits
    /// on `;` (old Python `parse_qs`, Perl CGI), so a key after a `;` is read and hidden too.
    /// Default `"&"`.
    #[serde(default = "default_separators")]
    pub query_separators: String,
}

fn default_name() -> String {
    "apikey".to_string()
}

fn default_separators() -> String {
    "&".to_string()
}

/// `consumers[].credentials.key-auth`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyCredential {
    /// The consumer's key (at least 8 characters).
    pub key: String,
}

impl std::fmt::Debug for KeyCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A key is a secret: never in a debug line.
        f.debug_struct("KeyCredential").finish_non_exhaustive()
    }
}

/// The built plugin: keys indexed by their SHA-256 digest.
pub struct KeyAuth {
    header: HeaderName,
    /// Whether `header` has a `-` or `_`, so a name an upstream reads as the same (its twin).
    header_has_twins: bool,
    query: Option<ParamName>,
    hide: bool,
    /// Looked up by digest, so the lookup's timing says nothing about the key; the key itself is then
    /// compared in constant time.
    keys: HashMap<[u8; 32], KeyEntry>,
}

/// A consumer's key, and the consumer.
struct KeyEntry {
    key: Box<[u8]>,
    consumer: Arc<Consumer>,
}

impl Policy for KeyAuth {
    const NAME: &'static str = "key-auth";
    const PRIORITY: u16 = 2500;
    const AUTHENTICATES: bool = true;
    type Config = KeyAuthConfig;
    type Credential = KeyCredential;

    fn build(config: KeyAuthConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let header = HeaderName::from_bytes(config.header.as_bytes()).map_err(|_| {
            vec![cx.error(
                "header",
                format!("{:?} is not a header name", config.header),
            )]
        })?;
        let separators = Separators::parse(&config.query_separators)
            .map_err(|e| vec![cx.error("query_separators", e)])?;
        let query = (!config.query.is_empty())
            .then(|| ParamName::configured(&config.query, separators))
            .transpose()
            .map_err(|e| vec![cx.error("query", e)])?;
        let mut keys = HashMap::new();
        for (i, consumer) in cx.consumers.iter().enumerate() {
            {
                if let Some(c) = consumer.credential::<KeyCredential>(Self::NAME) {
                    let entry = KeyEntry {
                        key: c.key.as_bytes().into(),
                        consumer: consumer.clone(),
                    };
                    if keys.insert(digest_of(c.key.as_bytes()), entry).is_some() {
                        return Err(vec![FieldError::new(
                            format!("consumers[{i}].credentials.key-auth.key"),
                            "the same key is given to another consumer",
                        )]);
                    }
                }
            }
        }
        Ok(Self {
            header_has_twins: floodgate_http1::can_have_twins(header.as_str().as_bytes()),
            header,
            query,
            hide: config.hide_credentials,
            keys,
        })
    }

    fn check_credential(credential: &KeyCredential, at: &str) -> Vec<FieldError> {
        if credential.key.len() < 8 {
            return vec![FieldError::new(
                format!("{at}.key"),
                "must be at least 8 characters",
            )];
        }
        Vec::new()
    }

    fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        // A twin of the header (`x_api_key` for `x-api-key`) is the header to an upstream reading
        // `HTTP_X_API_KEY`: a copy of the key like any other. Looked for in one pass over the names,
        // and read only when there is one.
        let twinned = self.header_has_twins && floodgate_http1::has_twin(req.headers, &self.header);
        let headers = &*req.headers;
        let twin_copies = twinned
            .then(|| {
                floodgate_http1::twins(headers, &self.header)
                    .flat_map(|twin| headers.get_all(twin).iter())
            })
            .into_iter()
            .flatten();
        // Every copy of the key (field lines, twins, parameters) must be the same key
        // ([`one_credential`]).
        let copies = headers
            .get_all(&self.header)
            .iter()
            .chain(twin_copies)
            .map(HeaderValue::as_bytes)
            .chain(
                self.query
                    .iter()
                    .flat_map(|name| name.params(req.uri.query()))
                    .map(str::as_bytes),
            );
        let presented = match one_credential(copies) {
            Ok(Some(key)) => key,
            Ok(None) => {
                return Flow::Respond(unauthorized("missing API key", "missing_credentials"))
            }
            Err(ConflictingCopies) => {
                return Flow::Respond(
                    unauthorized("invalid API key", "conflicting_credentials")
                        .refusing_credentials(),
                )
            }
        };
        let consumer = match self.keys.get(&digest_of(presented)) {
            Some(entry) if bool::from(entry.key.ct_eq(presented)) => entry.consumer.clone(),
            _ => {
                return Flow::Respond(
                    unauthorized("invalid API key", "invalid_credentials").refusing_credentials(),
                )
            }
        };
        ctx.consumer = Some(consumer);
        if self.hide {
            floodgate_http1::remove_with_twins(req.headers, &self.header);
        } else if twinned {
            // Checked as the same key, a twin still goes: the upstream gets the one spelling the
            // gateway was configured with.
            floodgate_http1::remove_twins(req.headers, &[&self.header]);
        }
        Flow::Continue
    }

    fn upstream_request(&self, req: &mut UpstreamRequest<'_>, _ctx: &RequestCtx) {
        let Some(name) = self.query.as_ref().filter(|_| self.hide) else {
            return;
        };
        if let Some(path) = name.without(req.path.as_str()) {
            if let Ok(path) = PathAndQuery::try_from(path) {
                *req.path = path;
            }
        }
    }
}

fn digest_of(key: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, key).as_ref());
    out
}

fn unauthorized(message: &'static str, reason: &'static str) -> Answer {
    Answer::error(StatusCode::UNAUTHORIZED, message, reason).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Key realm=\"floodgate\""),
    )
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use serde_json::{json, Value};

    use super::*;
    use crate::plugins::test_chain::{build_route, request_on, Outcome};
    use crate::PluginSet;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn consumer(id: &str, key: &str) -> Value {
        json!({"id": id, "credentials": {"key-auth": {"key": key}}})
    }

    fn alice(config: Value) -> PluginSet {
        let consumers = vec![
            consumer("alice", "alice-key-0001"),
            consumer("bob", "bob-key-0002"),
        ];
        build_route("key-auth", config, consumers).unwrap()
    }

    fn assert_401(outcome: &Outcome, message: &str, reason: &str) {
        let answer = outcome.answer.as_ref().expect("answered");
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.error, Some(message));
        assert_eq!(answer.reason, reason);
        assert_eq!(
            answer.headers.get(header::WWW_AUTHENTICATE).unwrap(),
            "Key realm=\"floodgate\""
        );
        assert!(outcome.ctx.consumer.is_none());
    }

    #[test]
    fn a_key_in_the_header_or_the_query_names_its_consumer() {
        let set = alice(json!({}));
        let by_header = request_on(&set, CLIENT, &[("apikey", "alice-key-0001")], "/a");
        assert!(by_header.answer.is_none());
        assert_eq!(by_header.ctx.consumer_id().map(|id| &**id), Some("alice"));
        assert!(
            by_header.headers.contains_key("apikey"),
            "kept unless hidden"
        );
        let by_query = request_on(&set, CLIENT, &[], "/a?x=1&apikey=bob-key-0002");
        assert!(by_query.answer.is_none());
        assert_eq!(by_query.ctx.consumer_id().map(|id| &**id), Some("bob"));
        assert_eq!(by_query.path.as_str(), "/a?x=1&apikey=bob-key-0002");
        // The same key in both places is one key.
        let both = request_on(
            &set,
            CLIENT,
            &[("apikey", "bob-key-0002")],
            "/?apikey=bob-key-0002",
        );
        assert_eq!(both.ctx.consumer_id().map(|id| &**id), Some("bob"));
    }

    /// The gateway checks one copy of the key and an upstream may read another, so different keys in
    /// one request are refused whichever of them is right.
    #[test]
    fn different_keys_in_one_request_are_401() {
        let set = alice(json!({}));
        for (fields, target) in [
            (&[("apikey", "bob-key-0002")][..], "/?apikey=nope-nope"),
            (
                &[("apikey", "bob-key-0002"), ("apikey", "nope-nope")][..],
                "/",
            ),
            (&[][..], "/?apikey=bob-key-0002&api%6Bey=nope-nope"),
        ] {
            let outcome = request_on(&set, CLIENT, fields, target);
            assert_401(&outcome, "invalid API key", "conflicting_credentials");
        }
    }

    #[test]
    fn missing_empty_and_wrong_keys_are_401() {
        let set = alice(json!({}));
        assert_401(
            &request_on(&set, CLIENT, &[], "/"),
            "missing API key",
            "missing_credentials",
        );
        let empty = request_on(&set, CLIENT, &[("apikey", "")], "/");
        assert_401(&empty, "missing API key", "missing_credentials");
        assert_401(
            &request_on(&set, CLIENT, &[], "/?apikey="),
            "missing API key",
            "missing_credentials",
        );
        for wrong in ["alice-key-0002", "alice-key-000", "alice-key-00011"] {
            let outcome = request_on(&set, CLIENT, &[("apikey", wrong)], "/");
            assert_401(&outcome, "invalid API key", "invalid_credentials");
        }
    }

    #[test]
    fn hide_credentials_removes_the_header_and_only_the_key_parameter() {
        let set = alice(json!({"hide_credentials": true}));
        let by_header = request_on(&set, CLIENT, &[("apikey", "alice-key-0001")], "/a?x=1");
        assert!(!by_header.headers.contains_key("apikey"));
        assert_eq!(by_header.path.as_str(), "/a?x=1");
        let by_query = request_on(&set, CLIENT, &[], "/a?x=1&apikey=bob-key-0002&y=2");
        assert!(by_query.answer.is_none());
        assert_eq!(by_query.path.as_str(), "/a?x=1&y=2");
        let alone = request_on(&set, CLIENT, &[], "/a?apikey=bob-key-0002");
        assert_eq!(alone.path.as_str(), "/a");
    }

    #[test]
    fn a_custom_header_and_no_query() {
        let set = alice(json!({"header": "x-api-key", "query": ""}));
        let ok = request_on(&set, CLIENT, &[("x-api-key", "alice-key-0001")], "/");
        assert!(ok.answer.is_none());
        let query = request_on(&set, CLIENT, &[], "/?apikey=alice-key-0001");
        assert_401(&query, "missing API key", "missing_credentials");
    }

    #[test]
    fn a_twin_of_the_header_is_a_copy_of_the_key_and_never_forwarded() {
        for (configured, twin) in [
            ("x-api-key", "x_api_key"),
            ("x-api-key", "x_api-key"),
            ("x_api_key", "x-api-key"),
        ] {
            let set = alice(json!({"header": configured, "query": ""}));
            let same = request_on(
                &set,
                CLIENT,
                &[(configured, "alice-key-0001"), (twin, "alice-key-0001")],
                "/",
            );
            assert!(same.answer.is_none());
            assert_eq!(same.headers.get(configured).unwrap(), "alice-key-0001");
            assert!(
                !same.headers.contains_key(twin),
                "{twin} is never forwarded"
            );
            let differing = request_on(
                &set,
                CLIENT,
                &[(configured, "alice-key-0001"), (twin, "bob-key-0002")],
                "/",
            );
            assert_401(&differing, "invalid API key", "conflicting_credentials");
            let alone = request_on(&set, CLIENT, &[(twin, "bob-key-0002")], "/");
            assert_eq!(alone.ctx.consumer_id().map(|id| &**id), Some("bob"));
            assert!(alone.headers.is_empty(), "{:?}", alone.headers);
        }
        let hidden = alice(json!({"header": "x-api-key", "hide_credentials": true}));
        let all = request_on(
            &hidden,
            CLIENT,
            &[
                ("x-api-key", "alice-key-0001"),
                ("x_api_key", "alice-key-0001"),
                ("x-api_key", "alice-key-0001"),
            ],
            "/",
        );
        assert!(all.answer.is_none());
        assert!(all.headers.is_empty(), "{:?}", all.headers);
    }

    #[test]
    fn short_and_shared_keys_and_bad_header_names_are_refused_by_path() {
        let errors = build_route("key-auth", json!({}), vec![consumer("a", "short")])
            .err()
            .unwrap();
        assert_eq!(errors[0].path, "consumers[0].credentials.key-auth.key");
        let shared = vec![consumer("a", "same-key-123"), consumer("b", "same-key-123")];
        let errors = build_route("key-auth", json!({}), shared).err().unwrap();
        assert_eq!(errors[0].path, "consumers[1].credentials.key-auth.key");
        assert_eq!(
            errors[0].message,
            "the same key is given to another consumer"
        );
        let errors = build_route("key-auth", json!({"header": "bad header"}), vec![])
            .err()
            .unwrap();
        assert_eq!(errors[0].path, "routes[0].plugins.key-auth.header");
        let errors = build_route("key-auth", json!({"query_separators": "&&"}), vec![])
            .err()
            .unwrap();
        assert_eq!(
            errors[0].path,
            "routes[0].plugins.key-auth.query_separators"
        );
        assert_eq!(errors[0].message, "\"&&\" is not \"&\" or \"&;\"");
        let errors = build_route("key-auth", json!({"query": " "}), vec![])
            .err()
            .unwrap();
        assert_eq!(errors[0].path, "routes[0].plugins.key-auth.query");
        let errors = build_route("key-auth", json!({"hidden": true}), vec![])
            .err()
            .unwrap();
        assert!(errors[0].message.contains("unknown field"));
    }
}
