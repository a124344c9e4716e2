use super::*;
use crate::storage::{Committed, RouteCommit, lease_due, open_offer};

impl Decisions for MemoryStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StorageError> {
        Ok(self.inner.lock().decisions.get(lead_id).cloned())
    }

    /// Everything under the one lock: the check and the writes are one step.
    fn commit_route(&self, c: &RouteCommit<'_>) -> Result<Committed, StorageError> {
        c.check()?;
        let mut inner = self.inner.lock();
        let d = c.decision;
        let stored = inner.decisions.get(&d.lead.lead_id);
        match (c.replaces, stored) {
            (None, Some(s)) => return Ok(Committed::Replayed(s.clone())),
            (Some(v), Some(s)) if s.version != v => return Ok(Committed::Moved(Some(s.clone()))),
            (Some(_), None) => return Ok(Committed::Moved(None)),
            _ => {}
        }
        let used = match c.take {
            Some(t) => {
                let used = inner
                    .counts
                    .get(&(t.day, t.guide_id.to_string()))
                    .copied()
                    .unwrap_or(0);
                if used >= t.capacity {
                    return Ok(Committed::Full { used });
                }
                Some(used + 1)
            }
            None => None,
        };
        if let Some(at) = c.head {
            let head = inner
                .trails
                .range((at.member_id.to_string(), 0)..=(at.member_id.to_string(), u64::MAX))
                .next_back()
                .map(|(_, e)| e.seq);
            if !at.is(head) {
                return Ok(Committed::HeadMoved(None));
            }
        }
        match inner.check_append(c.events)? {
            None => {}
            Some(Appended::HeadMoved) => return Ok(Committed::HeadMoved(None)),
            Some(Appended::Replayed(_) | Appended::Stored) => {
                return Err(StorageError::Backend(
                    "a route's events carry no id key".into(),
                ));
            }
        }
        inner.apply_append(c.events);
        if let (Some(t), Some(used)) = (c.take, used) {
            inner.counts.insert((t.day, t.guide_id.to_string()), used);
        }
        if let Some((g, day)) = c.release
            && let Some(n) = inner.counts.get_mut(&(day, g.to_string()))
        {
            *n = n.saturating_sub(1);
        }
        if let Some(prev) = inner
            .decisions
            .insert(d.lead.lead_id.clone(), d.clone())
            .and_then(|p| open_offer(&p))
        {
            inner.offers.remove(&prev);
            inner.leases.remove(&prev.1);
        }
        if let Some(open) = open_offer(d) {
            inner.offers.insert(open);
        }
        for n in c.notices {
            inner.last_notice += 1;
            let id = crate::storage::NoticeId(0, inner.last_notice);
            inner
                .notices
                .push_back(crate::storage::OfferNotice { id, ..n.clone() });
        }
        Ok(Committed::Stored { used })
    }

    fn guide_count(&self, guide_id: &str, day: Day) -> Result<u32, StorageError> {
        Ok(self
            .inner
            .lock()
            .counts
            .get(&(day, guide_id.to_string()))
            .copied()
            .unwrap_or(0))
    }

    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StorageError> {
        let mut out: Vec<(String, u32)> = self
            .inner
            .lock()
            .counts
            .iter()
            .filter(|((d, _), n)| *d == day && **n > 0)
            .map(|((_, g), n)| (g.clone(), *n))
            .collect();
        out.sort();
        Ok(out)
    }

    fn claim_due_offers(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<Arc<Decision>>, StorageError> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let due = lease_due(
            &inner.offers,
            &mut inner.leases,
            now_ms,
            lease_until_ms,
            limit,
        );
        Ok(due
            .iter()
            .filter_map(|lead| inner.decisions.get(lead).cloned())
            .collect())
    }

    fn open_offer_count(&self) -> Result<usize, StorageError> {
        Ok(self.inner.lock().offers.len())
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
