//! How a change reaches the gateway: the admin API sends the whole new configuration over a channel to the
//! one task that owns the gateway, which builds and applies it (or refuses it) and answers.

use floodgate_config::{Config, FieldError};
use tokio::sync::{mpsc, oneshot};

use crate::{Applied, ChangeSource};

/// Why a configuration was not applied. Nothing of it was: the running configuration is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// It is invalid; every field at fault is listed.
    #[error("invalid configuration")]
    Invalid(Vec<FieldError>),
    /// It is valid but could not be put in place (a listener's address could not be bound).
    #[error("{0}")]
    Failed(String),
    /// The gateway is stopping and applies nothing more.
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

/// A configuration to apply, and where to send the outcome.
pub struct ApplyRequest {
    /// The whole configuration that is to replace the running one.
    pub config: Config,
    /// What asks for it.
    pub source: ChangeSource,
    /// Gets the version applied, or why not.
    pub reply: oneshot::Sender<Result<std::sync::Arc<Applied>, ApplyError>>,
}

/// The sending side of the apply channel, held by whatever may change the configuration.
#[derive(Clone)]
pub struct Applier {
    requests: mpsc::Sender<ApplyRequest>,
}

impl Applier {
    /// A channel for apply requests. Changes queue (a few at most: each is applied before the next is
    /// read), so two writers never interleave.
    pub fn channel() -> (Applier, mpsc::Receiver<ApplyRequest>) {
        let (requests, receiver) = mpsc::channel(16);
        (Applier { requests }, receiver)
    }

    /// Applies `config`, waiting for the outcome.
    pub async fn apply(
        &self,
        config: Config,
        source: ChangeSource,
    ) -> Result<std::sync::Arc<Applied>, ApplyError> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send(ApplyRequest {
                config,
                source,
                reply,
            })
            .await
            .map_err(|_| ApplyError::ShuttingDown)?;
        outcome.await.unwrap_or(Err(ApplyError::ShuttingDown))
    }
}
