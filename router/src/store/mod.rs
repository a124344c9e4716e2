//! Storage behind the [`Store`] trait: [`SledStore`] is the embedded default, [`MemoryStore`]
//! serves tests and the simulator.
//!
//! Guarantees (DESIGN §6): a stored decision is visible to [`Store::decision`] as soon as
//! [`Store::put_decision`] returns; it becomes durable within the configured flush interval
//! (`flush_every_ms`, default 100 ms), or before the reply when the engine flushes synchronously.
//! After any crash, [`Store::day_counts`] agrees with the decisions that survived (sled derives the
//! counts from an index written with each decision; see [`SledStore`]).

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
    /// Stores a decision. `guide_count` is set when the decision took a guide's capacity: that
    /// guide's count for the decision's day including this decision (a store may keep it, or
    /// derive counts from its decisions as sled does).
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
