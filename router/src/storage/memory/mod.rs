mod decisions;
mod logs;
mod network;
mod trails;

use super::{Decisions, LedgerCursor, Logs, Networks, Storage, StorageError, TrailKey, Trails};
use crate::catalog::NetworkSpec;
use crate::domain::trail::TrailEvent;
use crate::domain::{Day, Decision};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Everything in memory: for tests and the simulator. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    decisions: HashMap<String, Arc<Decision>>,
    network: Option<NetworkSpec>,
    trails: BTreeMap<(String, u64), TrailEvent>,
    trail_keys: HashMap<(u8, String), (String, u64)>,
    refunds: HashMap<String, Vec<(String, u64)>>,
    ledger: BTreeMap<LedgerCursor, (String, u64)>,
    audit: BTreeMap<u64, String>,
    disputes: BTreeMap<u64, String>,
    bindings: HashMap<String, u64>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops the decisions of business days before `day`, for long simulations whose old days
    /// are never read again (no replay of an old lead id, no counts of an old day). Returns how
    /// many were dropped. Trails, orders and the ledger are kept.
    pub fn forget_decisions_before(&self, day: Day) -> usize {
        let mut inner = self.inner.lock();
        let before = inner.decisions.len();
        inner.decisions.retain(|_, d| d.day >= day);
        before - inner.decisions.len()
    }
}

impl Storage for MemoryStore {
    fn flush(&self) -> Result<usize, StorageError> {
        Ok(0)
    }

    fn flush_then(&self, done: super::FlushDone) {
        done(Ok(()));
    }
}
