//! The built-in plugins: one line each in the `plugins!` call below, which generates [`Plugin`] (the
//! statically dispatched enum), the consumers' credential parser and [`PLUGIN_PRIORITIES`].

use std::any::Any;
use std::sync::Arc;

use floodgate_config::FieldError;
use http::StatusCode;
use serde_json::Value;

use crate::build_ctx::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::{RequestHead, ResponseHead, UpstreamRequest};
use crate::policy::{Flow, Policy};

use crate::plugins::*;

/// The schemas of the built-in plugins' configurations and credentials ([`plugin_schemas`]).
pub struct PluginSchemas {
    /// `plugins.<name>`'s schema, by plugin name.
    pub configs: serde_json::Map<String, Value>,
    /// `consumers[].credentials.<name>`'s schema, for the plugins that take credentials.
    pub credentials: serde_json::Map<String, Value>,
    /// The definitions those refer to, by name.
    pub definitions: serde_json::Map<String, Value>,
}

macro_rules! plugins {
    ($($variant:ident => $ty:ty,)*) => {
        /// A built plugin instance, one variant per built-in plugin.
        pub enum Plugin {
            $(
                #[allow(missing_docs)]
                $variant($ty),
            )*
        }

        /// The names of the plugins that authenticate requests and name their consumer.
        pub const AUTHENTICATING_PLUGINS: &[&str] = &{
            const ALL: [(&str, bool); [$( <$ty as Policy>::NAME, )*].len()] =
                [$( (<$ty as Policy>::NAME, <$ty as Policy>::AUTHENTICATES), )*];
            const COUNT: usize = {
                let mut count = 0;
                let mut i = 0;
                while i < ALL.len() {
                    if ALL[i].1 {
                        count += 1;
                    }
                    i += 1;
                }
                count
            };
            let mut names = [""; COUNT];
            let (mut i, mut at) = (0, 0);
            while i < ALL.len() {
                if ALL[i].1 {
                    names[at] = ALL[i].0;
                    at += 1;
                }
                i += 1;
            }
            names
        };

        /// Every built-in plugin's configuration schema and, for those that take one, its consumer
        /// credential's, by plugin name, with the definitions they refer to (`#/$defs/...`).
        pub fn plugin_schemas() -> PluginSchemas {
            let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
            let mut configs = serde_json::Map::new();
            let mut credentials = serde_json::Map::new();
            $(
                configs.insert(
                    <$ty as Policy>::NAME.to_string(),
                    generator.subschema_for::<<$ty as Policy>::Config>().to_value(),
                );
                if std::any::TypeId::of::<<$ty as Policy>::Credential>()
                    != std::any::TypeId::of::<crate::policy::NoCredential>()
                {
                    credentials.insert(
                        <$ty as Policy>::NAME.to_string(),
                        generator.subschema_for::<<$ty as Policy>::Credential>().to_value(),
                    );
                }
            )*
            let definitions = generator
                .definitions()
                .iter()
                .map(|(name, schema)| (name.clone(), schema.clone()))
                .collect();
            PluginSchemas { configs, credentials, definitions }
        }

        /// Every built-in plugin's name and priority (higher runs first in every phase).
        pub const PLUGIN_PRIORITIES: &[(&str, u16)] = &[
            $( (<$ty as Policy>::NAME, <$ty as Policy>::PRIORITY), )*
        ];

        impl Plugin {
            /// The plugin's name.
            pub fn name(&self) -> &'static str {
                match self { $( Plugin::$variant(_) => <$ty as Policy>::NAME, )* }
            }

            /// This instance's priority (its place in every phase).
            pub fn priority(&self) -> u16 {
                match self { $( Plugin::$variant(p) => p.priority(), )* }
            }

            /// Whether it authenticates requests.
            pub fn authenticates(&self) -> bool {
                match self { $( Plugin::$variant(_) => <$ty as Policy>::AUTHENTICATES, )* }
            }

            /// Builds the plugin named `name` from its configuration.
            pub(crate) fn build(
                name: &str,
                value: &Value,
                cx: &mut BuildCtx<'_>,
            ) -> Result<Plugin, Vec<FieldError>> {
                $(
                    if name == <$ty as Policy>::NAME {
                        let config = parse::<<$ty as Policy>::Config>(value, &cx.at)?;
                        return <$ty as Policy>::build(config, cx).map(Plugin::$variant);
                    }
                )*
                Err(vec![FieldError::new(cx.at.clone(), unknown(name))])
            }

            pub(crate) fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
                match self { $( Plugin::$variant(p) => p.request(req, ctx), )* }
            }

            pub(crate) fn upstream_request(&self, req: &mut UpstreamRequest<'_>, ctx: &RequestCtx) {
                match self { $( Plugin::$variant(p) => p.upstream_request(req, ctx), )* }
            }

            pub(crate) fn response(&self, resp: &mut ResponseHead<'_>, ctx: &RequestCtx) {
                match self { $( Plugin::$variant(p) => p.response(resp, ctx), )* }
            }

            pub(crate) fn log(&self, ctx: &mut RequestCtx, status: StatusCode) {
                match self { $( Plugin::$variant(p) => p.log(ctx, status), )* }
            }
        }

        /// Parses `credentials.<name>` of a consumer, at path `at`, as plugin `name`'s credential
        /// type; returns the plugin's name and the credential for [`crate::Consumer::credential`].
        pub(crate) fn parse_credential(
            name: &str,
            value: &Value,
            at: &str,
        ) -> Result<(&'static str, Arc<dyn Any + Send + Sync>), Vec<FieldError>> {
            $(
                if name == <$ty as Policy>::NAME {
                    let credential = parse::<<$ty as Policy>::Credential>(value, at)?;
                    let errors = <$ty as Policy>::check_credential(&credential, at);
                    return if errors.is_empty() {
                        Ok((<$ty as Policy>::NAME, Arc::new(credential)))
                    } else {
                        Err(errors)
                    };
                }
            )*
            Err(vec![FieldError::new(at.to_string(), unknown(name))])
        }
    };
}

plugins! {
    JwtAuth => jwt_auth::JwtAuth,
    KeyAuth => key_auth::KeyAuth,
    BasicAuth => basic_auth::BasicAuth,
    AuthFailureLimit => auth_failure_limit::AuthFailureLimit,
    IpRestriction => ip_restriction::IpRestriction,
    RateLimit => rate_limit::RateLimit,
    LimitConn => limit_conn::LimitConn,
    Cors => cors::Cors,
    Headers => headers::Headers,
    FaultInjection => fault_injection::FaultInjection,
    TrafficSplit => traffic_split::TrafficSplit,
    ProxyMirror => proxy_mirror::ProxyMirror,
    Rewrite => rewrite::Rewrite,
    Redirect => redirect::Redirect,
}

fn unknown(name: &str) -> String {
    let known: Vec<&str> = PLUGIN_PRIORITIES.iter().map(|(n, _)| *n).collect();
    format!("unknown plugin {name:?} (known: {})", known.join(", "))
}

/// Deserialises `value`, naming the field at fault under `at`.
fn parse<T: serde::de::DeserializeOwned>(value: &Value, at: &str) -> Result<T, Vec<FieldError>> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." || inner.is_empty() {
            at.to_string()
        } else {
            format!("{at}.{inner}")
        };
        vec![FieldError::new(path, e.into_inner().to_string())]
    })
}
