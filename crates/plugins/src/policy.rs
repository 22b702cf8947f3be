//! [`Policy`]: what a plugin is.

use floodgate_config::FieldError;
use http::StatusCode;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};

use crate::answer::Answer;
use crate::build_ctx::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::{RequestHead, ResponseHead, UpstreamRequest};

/// The credential type of a plugin that takes none: any value is refused.
#[derive(Debug)]
pub enum NoCredential {}

impl<'de> Deserialize<'de> for NoCredential {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "this plugin takes no consumer credentials",
        ))
    }
}

/// Described as a schema that no value matches.
impl schemars::JsonSchema for NoCredential {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NoCredential".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::Schema::from(false)
    }
}

/// What the `request` phase decided.
pub enum Flow {
    /// Go on to the next plugin, then to the upstream.
    Continue,
    /// Answer the client with this response; nothing is forwarded.
    Respond(Answer),
}

/// A built-in plugin: its configuration, how it is built once per snapshot, and its phases.
///
/// Phases run on the request path: they must not block, lock or do I/O. Anything slow (fetching keys,
/// syncing counters) runs in a background task started at build time and shares its result through
/// atomics or an `ArcSwap`.
pub trait Policy: Sized + Send + Sync + 'static {
    /// The plugin's name under `plugins:` (`jwt-auth`).
    const NAME: &'static str;
    /// Its place in every phase: a higher priority runs first. Listed in [`crate::PLUGIN_PRIORITIES`].
    const PRIORITY: u16;
    /// Whether the plugin authenticates a request and names its consumer. A consumer's own plugins run
    /// after every authentication plugin, so a consumer may not carry one.
    const AUTHENTICATES: bool = false;
    /// Its configuration under `plugins.<NAME>`.
    type Config: DeserializeOwned + schemars::JsonSchema;
    /// What a consumer's `credentials.<NAME>` holds; [`NoCredential`] for a plugin
    /// that takes none.
    type Credential: DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static;

    /// Builds the plugin from its configuration. Errors name fields under `cx.at`.
    fn build(config: Self::Config, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>>;

    /// This instance's priority: [`Self::PRIORITY`], unless its configuration moves it (a limit whose
    /// key does not need the consumer runs before authentication, so refused logins count too).
    fn priority(&self) -> u16 {
        Self::PRIORITY
    }

    /// Checks a consumer's credential beyond what deserialising it checked; errors name fields under
    /// `at` (the credential's path).
    fn check_credential(_credential: &Self::Credential, _at: &str) -> Vec<FieldError> {
        Vec::new()
    }

    /// Before forwarding: may answer the request itself.
    fn request(&self, _req: &mut RequestHead<'_>, _ctx: &mut RequestCtx) -> Flow {
        Flow::Continue
    }

    /// Shapes the request sent to the upstream.
    fn upstream_request(&self, _req: &mut UpstreamRequest<'_>, _ctx: &RequestCtx) {}

    /// Shapes the response head going back to the client.
    fn response(&self, _resp: &mut ResponseHead<'_>, _ctx: &RequestCtx) {}

    /// After the response has ended (or the client went away).
    fn log(&self, _ctx: &mut RequestCtx, _status: StatusCode) {}
}
