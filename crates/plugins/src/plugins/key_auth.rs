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
use crate::build::BuildCtx;
use crate::consumer::Consumer;
use crate::context::RequestCtx;
use crate::heads::{RequestHead, UpstreamRequest};
use crate::policy::{Flow, Policy};
use crate::query;
use crate::registry::Credential;

/// `plugins.key-auth`.
#[derive(Debug, Deserialize)]
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
}

fn default_name() -> String {
    "apikey".to_string()
}

/// `consumers[].credentials.key-auth`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCredential {
    /// The consumer's key (at least 8 characters).
    pub key: String,
}

/// The built plugin: keys indexed by their SHA-256 digest.
pub struct KeyAuth {
    header: HeaderName,
    query: Option<Box<str>>,
    hide: bool,
    /// Looked up by digest, so the lookup's timing says nothing about the key; the key itself is then
    /// compared in constant time.
    keys: HashMap<[u8; 32], (Box<[u8]>, Arc<Consumer>)>,
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
        let mut keys = HashMap::new();
        for (i, consumer) in cx.consumers.iter().enumerate() {
            for credential in &consumer.credentials {
                if let Credential::KeyAuth(c) = credential {
                    let entry = (c.key.as_bytes().into(), consumer.clone());
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
            header,
            query: (!config.query.is_empty()).then(|| config.query.into()),
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
        let presented = match req.headers.get(&self.header) {
            Some(value) => Some(value.as_bytes()),
            None => self
                .query
                .as_deref()
                .and_then(|name| query::param(req.uri.query(), name))
                .map(str::as_bytes),
        };
        let Some(presented) = presented.filter(|k| !k.is_empty()) else {
            return Flow::Respond(unauthorized("missing API key", "missing_credentials"));
        };
        let consumer = match self.keys.get(&digest_of(presented)) {
            Some((key, consumer)) if bool::from(key.ct_eq(presented)) => consumer.clone(),
            _ => return Flow::Respond(unauthorized("invalid API key", "invalid_credentials")),
        };
        ctx.consumer = Some(consumer);
        if self.hide {
            req.headers.remove(&self.header);
        }
        Flow::Continue
    }

    fn upstream_request(&self, req: &mut UpstreamRequest<'_>, _ctx: &RequestCtx) {
        let Some(name) = self.query.as_deref().filter(|_| self.hide) else {
            return;
        };
        if let Some(path) = query::without_param(req.path.as_str(), name) {
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
