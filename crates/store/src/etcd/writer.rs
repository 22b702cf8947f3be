//! Writes to etcd on the admin API's behalf: one resource put or deleted at a time, each optionally only
//! if the key is still at the revision the caller read (a compare-and-swap on its `mod_revision`), so two
//! administrators never overwrite each other's change unseen.

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use floodgate_config::EtcdSourceConfig;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::Kind;

/// When a write may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Always.
    Always,
    /// Only while the key was last modified at this revision (`If-Match`).
    AtRevision(i64),
    /// Only while the key does not exist (a create).
    Absent,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// etcd could not be reached or refused the call.
    #[error("etcd cannot be reached: {0}")]
    Unreachable(String),
    /// The condition did not hold: the key changed (or exists) since it was read.
    #[error("the resource changed since it was read")]
    ConditionFailed,
}

/// A resource as etcd holds it: its value and the revision it was last modified at.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The value, as JSON.
    pub value: Value,
    /// Its `mod_revision`: what `If-Match` names.
    pub revision: i64,
}

/// Reads and writes single resources under the prefix.
pub struct EtcdWriter {
    settings: EtcdSourceConfig,
}

impl EtcdWriter {
    /// A writer for the cluster and prefix of `settings`.
    pub fn new(settings: EtcdSourceConfig) -> EtcdWriter {
        EtcdWriter { settings }
    }

    fn key(&self, kind: Kind, id: &str) -> String {
        format!("{}/{}/{id}", self.settings.prefix, kind.segment())
    }

    async fn connect(&self) -> Result<Client, WriteError> {
        Cluster::from(&self.settings)
            .connect(false)
            .await
            .map_err(|e| WriteError::Unreachable(e.to_string()))
    }

    /// The resource `kind`/`id` as etcd holds it now, if it exists. A value that is not JSON reads as a
    /// JSON string of its bytes.
    pub async fn read(&self, kind: Kind, id: &str) -> Result<Option<Stored>, WriteError> {
        let mut client = self.connect().await?;
        let response = client
            .get(self.key(kind, id), None)
            .await
            .map_err(|e| WriteError::Unreachable(e.to_string()))?;
        Ok(response.kvs().first().map(|kv| Stored {
            value: serde_json::from_slice(kv.value()).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(kv.value()).into_owned())
            }),
            revision: kv.mod_revision(),
        }))
    }

    /// Puts `value` at `kind`/`id` when `condition` holds; returns the revision of the write.
    pub async fn put(
        &self,
        kind: Kind,
        id: &str,
        value: &Value,
        condition: Condition,
    ) -> Result<i64, WriteError> {
        let key = self.key(kind, id);
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.transact(&key, condition, TxnOp::put(key.clone(), bytes, None))
            .await
    }

    /// Deletes `kind`/`id` when `condition` holds; returns the revision of the delete.
    pub async fn delete(
        &self,
        kind: Kind,
        id: &str,
        condition: Condition,
    ) -> Result<i64, WriteError> {
        let key = self.key(kind, id);
        self.transact(&key, condition, TxnOp::delete(key.clone(), None))
            .await
    }

    async fn transact(
        &self,
        key: &str,
        condition: Condition,
        op: TxnOp,
    ) -> Result<i64, WriteError> {
        let compare = match condition {
            Condition::Always => None,
            Condition::AtRevision(revision) => {
                Some(Compare::mod_revision(key, CompareOp::Equal, revision))
            }
            Condition::Absent => Some(Compare::create_revision(key, CompareOp::Equal, 0)),
        };
        let txn = match compare {
            Some(compare) => Txn::new().when([compare]).and_then([op]),
            None => Txn::new().and_then([op]),
        };
        let mut client = self.connect().await?;
        let response = client
            .txn(txn)
            .await
            .map_err(|e| WriteError::Unreachable(e.to_string()))?;
        if !response.succeeded() {
            return Err(WriteError::ConditionFailed);
        }
        Ok(response.header().map_or(0, |h| h.revision()))
    }
}
