//! A client of a running gateway's admin API, for the commands that read or change its configuration
//! (`dump`, `diff --admin`, `apply`).

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The environment variable the key is read from when `--api-key` is not given.
pub const API_KEY_ENV: &str = "FLOODGATE_ADMIN_API_KEY";

/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the admin API is, and the key to present.
pub struct AdminClient {
    base: String,
    api_key: Option<String>,
}

/// An answer of the admin API: its status and JSON body.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The body, `Null` when it was not JSON.
    pub body: Value,
}

impl Reply {
    /// The error the body carries, with every field at fault on a line of its own.
    pub fn error_text(&self) -> String {
        let mut text = self.body["error"]
            .as_str()
            .unwrap_or("no error message")
            .to_string();
        for error in self.body["errors"].as_array().into_iter().flatten() {
            let path = error["path"].as_str().unwrap_or_default();
            let message = error["message"].as_str().unwrap_or_default();
            text.push_str(&format!("\n  {path}: {message}"));
        }
        text
    }
}

impl AdminClient {
    /// A client of the admin API at `address` (`127.0.0.1:9180` or `http://host:port`), presenting
    /// `api_key`, or the one in [`API_KEY_ENV`].
    pub fn new(address: &str, api_key: Option<String>) -> AdminClient {
        let base = if address.starts_with("http://") {
            address.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", address.trim_end_matches('/'))
        };
        let api_key = api_key.or_else(|| std::env::var(API_KEY_ENV).ok().filter(|k| !k.is_empty()));
        AdminClient { base, api_key }
    }

    /// Calls `method path` under `/floodgate/admin` with `body` (JSON) and returns the answer, whatever
    /// its status; `Err` only when the gateway could not be reached.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply> {
        let url = format!("{}/floodgate/admin{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url);
        if let Some(key) = &self.api_key {
            request = request.header("x-api-key", key);
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(body)?)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .with_context(|| format!("{url} is not a URL"))?;
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let response = tokio::time::timeout(TIMEOUT, client.request(request))
            .await
            .map_err(|_| anyhow!("{url}: no answer in {TIMEOUT:?}"))?
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{url}: the answer broke off"))?
            .to_bytes();
        Ok(Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// `GET path`, which must answer 200.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let reply = self.call(Method::GET, path, None).await?;
        if reply.status != StatusCode::OK {
            return Err(anyhow!(
                "GET /floodgate/admin{path}: {} {}",
                reply.status.as_u16(),
                reply.error_text()
            ));
        }
        Ok(reply.body)
    }
}
