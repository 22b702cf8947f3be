//! Connecting to an etcd cluster, the same way for the configuration source, the admin API's writes and
//! the service registry.

use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
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
