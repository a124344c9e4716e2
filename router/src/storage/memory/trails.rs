use super::*;

impl Trails for MemoryStore {
    fn trail_head(&self, member_id: &str) -> Result<Option<(u64, String)>, StorageError> {
        let inner = self.inner.lock();
        let last = inner
            .trails
            .range((member_id.to_string(), 0)..=(member_id.to_string(), u64::MAX))
            .next_back();
        Ok(last.map(|(_, e)| (e.seq, e.hash.clone())))
    }

    fn trail_from(
        &self,
        member_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError> {
        let inner = self.inner.lock();
        Ok(inner
            .trails
            .range((member_id.to_string(), from_seq)..=(member_id.to_string(), u64::MAX))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn trail_before(
        &self,
        member_id: &str,
        before_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError> {
        let inner = self.inner.lock();
        Ok(inner
            .trails
            .range((member_id.to_string(), 0)..(member_id.to_string(), before_seq))
            .rev()
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn trail_event(&self, key: TrailKey<'_>) -> Result<Option<TrailEvent>, StorageError> {
        let inner = self.inner.lock();
        let (tag, id) = key.tag();
        Ok(inner
            .trail_keys
            .get(&(tag, id.to_string()))
            .and_then(|at| inner.trails.get(at))
            .filter(|e| key.matches(e))
            .cloned())
    }

    fn append_events(&self, events: &[Append<'_>]) -> Result<Appended, StorageError> {
        let mut inner = self.inner.lock();
        if let Some(refused) = inner.check_append(events)? {
            return Ok(refused);
        }
        inner.apply_append(events);
        Ok(Appended::Stored)
    }

    fn ledger_events(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<&LedgerCursor>,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError> {
        let inner = self.inner.lock();
        Ok(inner
            .ledger
            .range(LedgerCursor::first_at(from_ms)..)
            .filter(|(c, _)| after.is_none_or(|a| *c > a))
            .take_while(|(c, _)| c.occurred_at_ms < to_ms)
            .filter_map(|(_, at)| inner.trails.get(at).cloned())
            .take(limit)
            .collect())
    }

    fn follow_ups_of(&self, order_id: &str) -> Result<Vec<TrailEvent>, StorageError> {
        let inner = self.inner.lock();
        Ok(inner
            .refunds
            .get(order_id)
            .into_iter()
            .flatten()
            .filter_map(|at| inner.trails.get(at).cloned())
            .collect())
    }

    fn scan_trails(&self, f: &mut dyn FnMut(TrailEvent) -> bool) -> Result<(), StorageError> {
        let events: Vec<TrailEvent> = self.inner.lock().trails.values().cloned().collect();
        for e in events {
            if !f(e) {
                break;
            }
        }
        Ok(())
    }

    fn latest_binding(&self, member_id: &str) -> Result<Option<TrailEvent>, StorageError> {
        let inner = self.inner.lock();
        Ok(inner
            .bindings
            .get(member_id)
            .and_then(|&seq| inner.trails.get(&(member_id.to_string(), seq)))
            .cloned())
    }

    fn members_of(
        &self,
        guide_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let inner = self.inner.lock();
        let mut out: Vec<String> = inner
            .trails
            .values()
            .filter(|e| e.binding().is_some_and(|b| b.state.guide_id == guide_id))
            .map(|e| e.member_id.clone())
            .filter(|m| after.is_none_or(|a| m.as_str() > a))
            .collect();
        out.sort();
        out.dedup();
        out.truncate(limit);
        Ok(out)
    }
}
