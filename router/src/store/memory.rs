use super::{LedgerCursor, Store, StoreError, TrailKey};
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

impl Store for MemoryStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StoreError> {
        Ok(self.inner.lock().decisions.get(lead_id).cloned())
    }

    /// Counts are derived from the decisions (see [`Store::day_counts`]), so `guide_count` is
    /// not kept.
    fn put_decision(&self, d: &Arc<Decision>, _guide_count: Option<u32>) -> Result<(), StoreError> {
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
    ) -> Result<(), StoreError> {
        self.put_decision(d, guide_count)
    }

    fn open_offers(&self) -> Result<Vec<Arc<Decision>>, StoreError> {
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
    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StoreError> {
        let mut counts: HashMap<String, u32> = HashMap::new();
        for d in self.inner.lock().decisions.values() {
            if let (true, Some(g)) = (d.day == day, d.guide_id()) {
                *counts.entry(g.to_string()).or_default() += 1;
            }
        }
        Ok(counts.into_iter().collect())
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

    fn flush_then(&self, done: super::FlushDone) {
        done(Ok(()));
    }

    fn decision_count(&self) -> Result<u64, StoreError> {
        Ok(self.inner.lock().decisions.len() as u64)
    }

    fn scan_decisions(&self, f: &mut dyn FnMut(Arc<Decision>) -> bool) -> Result<(), StoreError> {
        let mut all: Vec<Arc<Decision>> = self.inner.lock().decisions.values().cloned().collect();
        all.sort_by(|a, b| a.lead.lead_id.cmp(&b.lead.lead_id));
        for d in all {
            if !f(d) {
                break;
            }
        }
        Ok(())
    }

    fn trail_head(&self, member_id: &str) -> Result<Option<(u64, String)>, StoreError> {
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
    ) -> Result<Vec<TrailEvent>, StoreError> {
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
    ) -> Result<Vec<TrailEvent>, StoreError> {
        let inner = self.inner.lock();
        Ok(inner
            .trails
            .range((member_id.to_string(), 0)..(member_id.to_string(), before_seq))
            .rev()
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn trail_event(&self, key: TrailKey<'_>) -> Result<Option<TrailEvent>, StoreError> {
        let inner = self.inner.lock();
        let (tag, id) = key.tag();
        Ok(inner
            .trail_keys
            .get(&(tag, id.to_string()))
            .and_then(|at| inner.trails.get(at))
            .filter(|e| key.matches(e))
            .cloned())
    }

    fn append_trail(
        &self,
        event: &TrailEvent,
        _line: &str,
        key: Option<TrailKey<'_>>,
    ) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        let at = (event.member_id.clone(), event.seq);
        if let Some(key) = key {
            let (tag, id) = key.tag();
            inner.trail_keys.insert((tag, id.to_string()), at.clone());
        }
        if let Some(c) = LedgerCursor::of(event) {
            inner.ledger.insert(c, at.clone());
        }
        let order_id = match &event.body {
            crate::domain::trail::EventBody::Refund(r) => Some(&r.order_id),
            crate::domain::trail::EventBody::Adjustment(a) => Some(&a.order_id),
            _ => None,
        };
        if let Some(o) = order_id {
            inner.refunds.entry(o.clone()).or_default().push(at.clone());
        }
        if event.binding().is_some() {
            inner.bindings.insert(event.member_id.clone(), event.seq);
        }
        inner.trails.insert(at, event.clone());
        Ok(())
    }

    fn ledger_events(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<&LedgerCursor>,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StoreError> {
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

    fn follow_ups_of(&self, order_id: &str) -> Result<Vec<TrailEvent>, StoreError> {
        let inner = self.inner.lock();
        Ok(inner
            .refunds
            .get(order_id)
            .into_iter()
            .flatten()
            .filter_map(|at| inner.trails.get(at).cloned())
            .collect())
    }

    fn scan_trails(&self, f: &mut dyn FnMut(TrailEvent) -> bool) -> Result<(), StoreError> {
        let events: Vec<TrailEvent> = self.inner.lock().trails.values().cloned().collect();
        for e in events {
            if !f(e) {
                break;
            }
        }
        Ok(())
    }

    fn latest_binding(&self, member_id: &str) -> Result<Option<TrailEvent>, StoreError> {
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
    ) -> Result<Vec<String>, StoreError> {
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

    fn append_audit(&self, seq: u64, line: &str) -> Result<(), StoreError> {
        self.inner.lock().audit.insert(seq, line.to_string());
        Ok(())
    }

    fn audit_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(self
            .inner
            .lock()
            .audit
            .range(from_seq..)
            .take(limit)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    fn audit_head(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.inner.lock().audit.keys().next_back().copied())
    }

    fn put_dispute(&self, seq: u64, line: &str) -> Result<(), StoreError> {
        self.inner.lock().disputes.insert(seq, line.to_string());
        Ok(())
    }

    fn disputes_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(self
            .inner
            .lock()
            .disputes
            .range(from_seq..)
            .take(limit)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    fn dispute_head(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.inner.lock().disputes.keys().next_back().copied())
    }
}
