//! [`Store`]: an open connection to the configured Redis.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisConnectionInfo, TlsMode};

use crate::batch::{Batch, Replies};
use crate::config::{RedisConfig, RedisTls};
use crate::StoreError;

/// An open connection to a store. Dropped and opened again after a failed batch: no reconnect
/// happens behind the caller's back, so a failover (a new Sentinel master, a moved Cluster slot)
/// is found by the next [`Store::connect`].
pub struct Store {
    connection: Connection,
}

enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Store {
    /// Connects to the store `config` names, within its `timeout`.
    pub async fn connect(config: &RedisConfig) -> Result<Self, StoreError> {
        let timeout = config.timeout.0;
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let connection = if let Some(nodes) = &config.cluster {
            let mut builder = ClusterClient::builder(nodes.clone())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(0);
            if let Some(tls) = &config.tls {
                builder = builder.certs(certificates(tls)?);
            }
            Connection::Cluster(builder.build()?.get_async_connection().await?)
        } else if let Some(sentinel) = &config.sentinel {
            let mut redis = RedisConnectionInfo::default().set_db(sentinel.db);
            if let Some(password) = &sentinel.password {
                redis = redis.set_password(password.clone());
            }
            let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis);
            if sentinel.tls {
                node = node.set_tls_mode(TlsMode::Secure);
            }
            let urls: Vec<_> = sentinel
                .urls
                .iter()
                .map(|u| u.as_str().into_connection_info())
                .collect::<Result<_, _>>()?;
            let mut client = SentinelClient::build(
                urls,
                sentinel.master.clone(),
                Some(node),
                SentinelServerType::Master,
            )?;
            Connection::Single(client.get_async_connection_with_config(&settings).await?)
        } else {
            let url = config.url.as_deref().unwrap_or_default();
            let client = match &config.tls {
                Some(tls) if url.starts_with("rediss://") => {
                    Client::build_with_tls(url, certificates(tls)?)?
                }
                _ => Client::open(url)?,
            };
            Connection::Single(
                client
                    .get_multiplexed_async_connection_with_config(&settings)
                    .await?,
            )
        };
        Ok(Self { connection })
    }

    /// Sends `batch` as one pipeline and reads every reply.
    pub async fn run(&mut self, batch: &Batch) -> Result<Replies, StoreError> {
        match &mut self.connection {
            Connection::Single(c) => run_on(c, batch).await,
            Connection::Cluster(c) => run_on(c, batch).await,
        }
    }
}

async fn run_on(
    connection: &mut impl ConnectionLike,
    batch: &Batch,
) -> Result<Replies, StoreError> {
    if batch.is_empty() {
        return Ok(Replies::default());
    }
    let values: Vec<redis::Value> = batch.pipeline().query_async(connection).await?;
    batch.replies(values)
}

fn certificates(tls: &RedisTls) -> Result<redis::TlsCertificates, StoreError> {
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path).map_err(|source| StoreError::File {
            path: path.display().to_string(),
            source,
        })
    };
    let root_cert = tls.ca.as_ref().map(read).transpose()?;
    let client_tls = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        _ => None,
    };
    Ok(redis::TlsCertificates {
        client_tls,
        root_cert,
    })
}
