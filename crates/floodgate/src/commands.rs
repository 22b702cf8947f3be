//! The commands that read or change a running gateway's configuration through its admin API, with exit
//! codes a CI pipeline can act on: `dump` (0, or 2 when it could not), `diff` (0 same, 1 different,
//! 2 could not compare) and `apply` (0 applied, 1 refused, 2 could not reach the gateway).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use floodgate_config::{parse_json, Config};
use floodgate_store::{mask, Kind};
use http::{Method, StatusCode};
use serde_json::Value;

use crate::admin_client::AdminClient;

/// A command's outcome when it ran to the end.
pub enum Outcome {
    /// Done, or nothing differs: exit 0.
    Done,
    /// A difference (`diff`) or a refusal (`apply`), already reported: exit 1.
    NotDone,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> ExitCode {
        match outcome {
            Outcome::Done => ExitCode::SUCCESS,
            Outcome::NotDone => ExitCode::from(1),
        }
    }
}

/// The running configuration as YAML, secrets masked.
pub async fn dump(client: &AdminClient) -> Result<String> {
    let running = client.get("/config").await?;
    to_yaml(&normalized(running))
}

/// One side of a `diff`.
pub enum Side<'a> {
    /// A configuration file.
    File(&'a Path),
    /// The running configuration of a gateway.
    Running(&'a AdminClient),
    /// A version in a gateway's history.
    Version(&'a AdminClient, u64),
}

impl Side<'_> {
    fn name(&self) -> String {
        match self {
            Side::File(path) => path.display().to_string(),
            Side::Running(_) => "running".to_string(),
            Side::Version(_, version) => format!("version {version}"),
        }
    }

    async fn text(&self, load: impl Fn(&Path) -> Result<Config>) -> Result<String> {
        let json = match self {
            Side::File(path) => serde_json::to_value(load(path)?)?,
            Side::Running(client) => client.get("/config").await?,
            Side::Version(client, version) => client.get(&format!("/history/{version}")).await?,
        };
        to_yaml(&normalized(json))
    }
}

/// Prints what changes from `from` to `to` as a unified diff of their YAML (secrets masked on both
/// sides, so a changed secret does not show); `Done` when nothing does.
pub async fn diff(
    from: Side<'_>,
    to: Side<'_>,
    load: impl Fn(&Path) -> Result<Config>,
) -> Result<Outcome> {
    let (old, new) = (from.text(&load).await?, to.text(&load).await?);
    if old == new {
        return Ok(Outcome::Done);
    }
    let diff = similar::TextDiff::from_lines(&old, &new);
    print!(
        "{}",
        diff.unified_diff()
            .context_radius(3)
            .header(&from.name(), &to.name())
    );
    Ok(Outcome::NotDone)
}

/// Pushes `config` to the gateway: replaced whole where the configuration comes from a file, resource by
/// resource where it comes from etcd (the whole cannot be replaced there).
pub async fn apply(client: &AdminClient, config: &Config) -> Result<Outcome> {
    let body = serde_json::to_value(config)?;
    let reply = client.call(Method::POST, "/config", Some(&body)).await?;
    match reply.status {
        StatusCode::OK => {
            println!("applied: version {}", reply.body["version"]);
            Ok(Outcome::Done)
        }
        StatusCode::METHOD_NOT_ALLOWED => apply_resources(client, &body).await,
        StatusCode::UNAUTHORIZED => Err(anyhow!(
            "the admin API refused the key: {}",
            reply.error_text()
        )),
        status => {
            eprintln!("refused ({}): {}", status.as_u16(), reply.error_text());
            Ok(Outcome::NotDone)
        }
    }
}

/// Makes the gateway's resources those of `config`: puts every resource (what others refer to first),
/// then deletes those it does not list (what refers to others first). Stops at the first refusal.
async fn apply_resources(client: &AdminClient, config: &Value) -> Result<Outcome> {
    let (mut written, mut deleted) = (0, 0);
    for kind in [
        Kind::Upstreams,
        Kind::Consumers,
        Kind::GlobalPlugins,
        Kind::Routes,
    ] {
        for item in kind.list(config)["items"].as_array().into_iter().flatten() {
            let (id, value) = match kind {
                Kind::GlobalPlugins => (item["id"].as_str(), &item["config"]),
                _ => (item["id"].as_str(), item),
            };
            let Some(id) = id else { continue };
            let path = format!("/{}/{id}", kind.segment());
            let reply = client.call(Method::PUT, &path, Some(value)).await?;
            if !reply.status.is_success() {
                eprintln!(
                    "refused: PUT {path} ({}): {}",
                    reply.status.as_u16(),
                    reply.error_text()
                );
                return Ok(Outcome::NotDone);
            }
            written += 1;
        }
    }
    for kind in [
        Kind::Routes,
        Kind::GlobalPlugins,
        Kind::Consumers,
        Kind::Upstreams,
    ] {
        let running = client.get(&format!("/{}", kind.segment())).await?;
        for item in running["items"].as_array().into_iter().flatten() {
            let Some(id) = item["id"].as_str() else {
                continue;
            };
            if kind.get(config, id).is_ok() {
                continue;
            }
            let path = format!("/{}/{id}", kind.segment());
            let reply = client.call(Method::DELETE, &path, None).await?;
            if !reply.status.is_success() {
                eprintln!(
                    "refused: DELETE {path} ({}): {}",
                    reply.status.as_u16(),
                    reply.error_text()
                );
                return Ok(Outcome::NotDone);
            }
            deleted += 1;
        }
    }
    println!("applied resource by resource: {written} written, {deleted} deleted");
    Ok(Outcome::Done)
}

/// A configuration's JSON in one canonical form (defaults written out, secrets masked), so two of them
/// compare by what they mean, not how they were written.
fn normalized(json: Value) -> Value {
    let mut json = match serde_json::to_vec(&json)
        .ok()
        .and_then(|t| parse_json(&t).ok())
    {
        Some(config) => serde_json::to_value(config).unwrap_or(json),
        None => json,
    };
    mask(&mut json);
    json
}

fn to_yaml(json: &Value) -> Result<String> {
    Ok(serde_yaml_ng::to_string(json)?)
}
