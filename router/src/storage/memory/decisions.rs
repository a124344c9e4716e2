use super::*;

impl Decisions for MemoryStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StorageError> {
        Ok(self.inner.lock().decisions.get(lead_id).cloned())
    }

    /// Counts are derived from the decisions (see [`Storage::day_counts`]), so `guide_count` is
    /// not kept.
    fn put_decision(
        &self,
        d: &Arc<Decision>,
        _guide_count: Option<u32>,
    ) -> Result<(), StorageError> {
        self.inner
            .lock()
            .decisions
            .insert(d.lead.lead_id.clone(), d.clone());
        Ok(())
    }

    fn replace_decision(
        &self,
        _previous: &Decision,
        d: &Arc<Decision>,
        guide_count: Option<u32>,
    ) -> Result<(), StorageError> {
        self.put_decision(d, guide_count)
    }

    fn open_offers(&self) -> Result<Vec<Arc<Decision>>, StorageError> {
        Ok(self
            .inner
            .lock()
            .decisions
            .values()
            .filter(|d| {
                d.offer
                    .as_ref()
                    .is_some_and(|o| o.status == crate::domain::offer::OfferStatus::Open)
            })
            .cloned()
            .collect())
    }

    /// Decisions of `day` that hold a guide (a routed lead, or an open or accepted offer).
    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StorageError> {
        let mut counts: HashMap<String, u32> = HashMap::new();
        for d in self.inner.lock().decisions.values() {
            if let (true, Some(g)) = (d.day == day, d.guide_id()) {
                *counts.entry(g.to_string()).or_default() += 1;
            }
        }
        Ok(counts.into_iter().collect())
    }

    fn decision_count(&self) -> Result<u64, StorageError> {
        Ok(self.inner.lock().decisions.len() as u64)
    }

    fn scan_decisions(&self, f: &mut dyn FnMut(Arc<Decision>) -> bool) -> Result<(), StorageError> {
        let mut all: Vec<Arc<Decision>> = self.inner.lock().decisions.values().cloned().collect();
        all.sort_by(|a, b| a.lead.lead_id.cmp(&b.lead.lead_id));
        for d in all {
            if !f(d) {
                break;
            }
        }
        Ok(())
    }
}
