//! Storage behind the [`Store`] trait: [`SledStore`] is the embedded default, [`MemoryStore`]
//! serves tests and the simulator.
//!
//! Guarantees (DESIGN §6): a decision and its guide's count for the day are written in one atomic
//! batch, so after any crash counts agree with decisions. Routing decisions become durable within
//! the configured flush interval (sled's `flush_every_ms`, default 100 ms), or before the reply when
//! the engine is configured to flush synchronously.

mod codec;
mod memory;
mod sled_store;

pub use memory::MemoryStore;
pub use sled_store::{SledConfig, SledStore};

use crate::catalog::NetworkSpec;
use crate::domain::{Day, Decision};
use std::sync::Arc;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Backend(String),
    #[error("stored record {key:?} is corrupt: {why}")]
    Corrupt { key: String, why: String },
    #[error("the data directory {path} is in use by another process (sled holds a lock on it)")]
    Locked { path: String },
}

/// What the engine needs from storage.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The decision stored for `lead_id`, if any.
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StoreError>;
    /// Writes a decision and, when it assigned a guide, that guide's count for the decision's day,
    /// atomically.
    fn put_decision(
        &self,
        decision: &Arc<Decision>,
        guide_count: Option<u32>,
    ) -> Result<(), StoreError>;
    /// Every guide's count for one business day.
    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StoreError>;
    /// The network last saved, if any.
    fn network(&self) -> Result<Option<NetworkSpec>, StoreError>;
    /// Saves the network in service.
    fn put_network(&self, spec: &NetworkSpec) -> Result<(), StoreError>;
    /// Makes every write so far durable; returns the bytes flushed where known.
    fn flush(&self) -> Result<usize, StoreError>;
    /// Number of stored decisions.
    fn decision_count(&self) -> Result<u64, StoreError>;
}
