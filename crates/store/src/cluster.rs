//! Connecting to an etcd cluster, the same way for the configuration source, the admin API's writes and
//! the service registry.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions, WatchOptions,
    WatchStream,
};
use floodgate_config::{EtcdDiscoveryConfig, EtcdSourceConfig, EtcdTlsConfig};

/// How to reach a cluster.
pub struct Cluster<'a> {
    /// Its client endpoints.
    pub endpoints: &'a [String],
    /// User and password for its authentication.
    pub credentials: Option<(&'a str, &'a str)>,
    /// Longest wait to connect and for each call.
    pub timeout: Duration,
    /// TLS to it.
    pub tls: Option<&'a EtcdTlsConfig>,
}

impl<'a> From<&'a EtcdSourceConfig> for Cluster<'a> {
    fn from(settings: &'a EtcdSourceConfig) -> Self {
        Cluster {
            endpoints: &settings.endpoints,
            credentials: settings
                .username
                .as_deref()
                .zip(settings.password.as_deref()),
            timeout: settings.timeout.get(),
            tls: settings.tls.as_ref(),
        }
    }
}

impl<'a> From<&'a EtcdDiscoveryConfig> for Cluster<'a> {
    fn from(settings: &'a EtcdDiscoveryConfig) -> Self {
        Cluster {
            endpoints: &settings.endpoints,
            credentials: settings
                .username
                .as_deref()
                .zip(settings.password.as_deref()),
            timeout: settings.timeout.get(),
            tls: settings.tls.as_ref(),
        }
    }
}

impl Cluster<'_> {
    /// A client. `watching`: the connection carries a long-lived watch or lease, so it is kept alive with
    /// pings, which notice a silently dropped connection within the timeout.
    pub async fn connect(&self, watching: bool) -> Result<Client, etcd_client::Error> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.timeout)
            .with_timeout(self.timeout);
        if watching {
            options = options.with_keep_alive(Duration::from_secs(5), self.timeout);
        }
        if let Some((user, password)) = self.credentials {
            options = options.with_user(user, password);
        }
        if let Some(tls) = self.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        Client::connect(self.endpoints, Some(options)).await
    }
}

/// The client's TLS settings, its files read now: a certificate renewed on disk is used from the next
/// connection on.
fn tls_options(tls: &EtcdTlsConfig) -> Result<TlsOptions, etcd_client::Error> {
    let read = |path: &str| {
        std::fs::read(path).map_err(|e| etcd_client::Error::InvalidArgs(format!("{path}: {e}")))
    };
    let mut options = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        options = options.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    if let Some(name) = &tls.server_name {
        options = options.domain_name(name.clone());
    }
    Ok(options)
}

/// The largest message read from etcd: one page of a listing, or one watch response (a transaction
/// of many large values arrives as one). gRPC's default of 4 MiB would make a prefix holding more
/// than that impossible to list or follow.
const MAX_MESSAGE: usize = 256 << 20;
/// Keys read per page of a listing (each value at most etcd's request limit, 1.5 MiB by default).
const PAGE: i64 = 128;

/// Every key under `prefix` with its value, and the revision they were read at: read in pages, all
/// at the first page's revision, so the listing is one consistent snapshot however large.
pub async fn list_prefix(
    client: &Client,
    prefix: &str,
) -> Result<(i64, Vec<(Vec<u8>, Vec<u8>)>), etcd_client::Error> {
    let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
    let end = prefix_end(prefix.as_bytes());
    let mut from = prefix.as_bytes().to_vec();
    let mut revision = 0;
    let mut listed = Vec::new();
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        let response = kv.get(from.clone(), Some(options)).await?;
        if revision == 0 {
            revision = response.header().map_or(0, |h| h.revision());
        }
        let kvs = response.kvs();
        listed.extend(
            kvs.iter()
                .map(|kv| (kv.key().to_vec(), kv.value().to_vec())),
        );
        match kvs.last() {
            Some(last) if response.more() => {
                // The next page starts just after the last key read.
                from = last.key().to_vec();
                from.push(0);
            }
            _ => return Ok((revision, listed)),
        }
    }
}

/// Watches every key under `prefix` from `revision` on, reading responses of any size.
pub async fn watch_prefix(
    client: &Client,
    prefix: &str,
    revision: i64,
) -> Result<WatchStream, etcd_client::Error> {
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision);
    client
        .watch_client()
        .max_decoding_message_size(MAX_MESSAGE)
        .watch(prefix, Some(options))
        .await
}

/// The end of the range of keys starting with `prefix` (etcd's convention: the prefix with its
/// last byte below 0xff incremented and what follows dropped; `\0` for every key).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_past_its_last_incrementable_byte() {
        assert_eq!(prefix_end(b"/fg/"), b"/fg0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }
}
