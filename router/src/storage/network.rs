//! The network in service: one part of the storage contract. It is saved only at the version
//! the writer read, with the change's audit entry in the same step, so that of two replicas'
//! concurrent catalog changes one wins and the other applies its change again on the winner's.

use super::{LineOf, StorageError};
use crate::catalog::NetworkSpec;

/// One conditional save of the network.
#[derive(Clone, Copy)]
pub struct NetworkSave<'a> {
    pub spec: &'a NetworkSpec,
    /// The new network's version ([`crate::catalog::Network::version`]).
    pub version: &'a str,
    /// Saved only while the stored version is this one; `None` saves whatever is stored (at
    /// start, from `--network` or the demo).
    pub expected: Option<&'a str>,
    /// The change's audit entry, appended in the same step (see [`super::Logs::append_audit`]).
    pub audit: Option<LineOf<'a>>,
}

/// What [`Networks::save_network`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkSaved {
    /// Saved (and durable), with the audit entry's number when one was given.
    Saved { audit_seq: Option<u64> },
    /// Another writer saved version `.0` first: nothing was written.
    Moved(Option<String>),
}

/// What one replica serves, as it last said ([`Networks::announce`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    /// Random per process start.
    pub id: String,
    /// Where it listens.
    pub address: String,
    pub started_at_ms: i64,
    pub seen_at_ms: i64,
    pub network_version: String,
    /// The learned models in service (their versions, comma-separated).
    pub models: String,
    /// A digest of the rule sets and policy it was started with.
    pub rules: String,
}

/// What a writer published for every replica to take up ([`Networks::publish`]): the learned
/// models in service, as one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Numbered 1, 2, … per name by the storage.
    pub seq: u64,
    pub published_at_ms: i64,
    /// Who published it (a replica's address, or a command).
    pub by: String,
    pub body: Vec<u8>,
}

/// The saved network, what is published for every replica, and what each replica serves.
pub trait Networks: Send + Sync {
    /// The network last saved, if any.
    fn network(&self) -> Result<Option<NetworkSpec>, StorageError>;

    /// The saved network's version (a cheap read, polled by replicas).
    fn network_version(&self) -> Result<Option<String>, StorageError>;

    /// Saves the network as [`NetworkSave`] says; durable before it returns.
    fn save_network(&self, save: &NetworkSave<'_>) -> Result<NetworkSaved, StorageError>;

    /// Publishes `body` under `name` for every replica to take up, replacing what was there;
    /// the storage numbers it (one more than the last, whoever wrote concurrently) and wakes
    /// the other replicas where it can ([`super::Storage::changes`]). Durable before it returns.
    fn publish(
        &self,
        name: &str,
        by: &str,
        published_at_ms: i64,
        body: &[u8],
    ) -> Result<u64, StorageError>;

    /// The number of what is published under `name` (0: nothing): a cheap read, polled.
    fn publication_seq(&self, name: &str) -> Result<u64, StorageError>;

    /// What is published under `name`.
    fn publication(&self, name: &str) -> Result<Option<Publication>, StorageError>;

    /// Records what a replica serves now (replaces its earlier record; not durable: replicas
    /// say it again every second).
    fn announce(&self, replica: &ReplicaState) -> Result<(), StorageError>;

    /// The replicas seen at or after `since_ms`, by id.
    fn replicas(&self, since_ms: i64) -> Result<Vec<ReplicaState>, StorageError>;
}

/// The replicas seen at or after `since_ms`, by id: the rule of [`Networks::replicas`] for
/// backends that keep them in memory.
pub fn replicas_since<'a>(
    all: impl Iterator<Item = &'a ReplicaState>,
    since_ms: i64,
) -> Vec<ReplicaState> {
    let mut out: Vec<ReplicaState> = all.filter(|r| r.seen_at_ms >= since_ms).cloned().collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}
