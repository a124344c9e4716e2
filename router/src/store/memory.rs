use super::{Store, StoreError};
use crate::catalog::NetworkSpec;
use crate::domain::{Day, Decision};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything in memory: for tests and the simulator. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    decisions: HashMap<String, Arc<Decision>>,
    counts: HashMap<(Day, String), u32>,
    network: Option<NetworkSpec>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StoreError> {
        Ok(self.inner.lock().decisions.get(lead_id).cloned())
    }

    fn put_decision(&self, d: &Arc<Decision>, guide_count: Option<u32>) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if let (Some(n), Some(g)) = (guide_count, d.guide_id()) {
            inner.counts.insert((d.day, g.to_string()), n);
        }
        inner.decisions.insert(d.lead.lead_id.clone(), d.clone());
        Ok(())
    }

    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StoreError> {
        Ok(self
            .inner
            .lock()
            .counts
            .iter()
            .filter(|((d, _), _)| *d == day)
            .map(|((_, g), n)| (g.clone(), *n))
            .collect())
    }

    fn network(&self) -> Result<Option<NetworkSpec>, StoreError> {
        Ok(self.inner.lock().network.clone())
    }

    fn put_network(&self, spec: &NetworkSpec) -> Result<(), StoreError> {
        self.inner.lock().network = Some(spec.clone());
        Ok(())
    }

    fn flush(&self) -> Result<usize, StoreError> {
        Ok(0)
    }

    fn decision_count(&self) -> Result<u64, StoreError> {
        Ok(self.inner.lock().decisions.len() as u64)
    }
}
