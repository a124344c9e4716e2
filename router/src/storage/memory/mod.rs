mod decisions;
mod desks;
mod logs;
mod network;
mod trails;

use super::{
    Append, Appended, Decisions, LedgerCursor, Logs, Networks, Storage, StorageError, TrailKey,
    Trails, check_chain, refusal,
};
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
    /// `(version, network)`.
    network: Option<(String, NetworkSpec)>,
    trails: BTreeMap<(String, u64), TrailEvent>,
    trail_keys: HashMap<(u8, String), (String, u64)>,
    refunds: HashMap<String, Vec<(String, u64)>>,
    ledger: BTreeMap<LedgerCursor, (String, u64)>,
    audit: BTreeMap<u64, String>,
    disputes: BTreeMap<u64, String>,
    bindings: HashMap<String, u64>,
    /// Each guide's count per business day.
    counts: HashMap<(Day, String), u32>,
    /// Open offers: `(expires_at_ms, lead_id)`.
    offers: std::collections::BTreeSet<(i64, String)>,
    /// Claimed offers: lead id → lease end (ms).
    leases: HashMap<String, i64>,
    dispute_keys: crate::storage::DisputeIndex,
    replicas: HashMap<String, crate::storage::ReplicaState>,
    publications: HashMap<String, crate::storage::Publication>,
    /// Audit entries by key (`append_audit_once`).
    audit_keys: HashMap<String, u64>,
    /// Offer notices, numbered from 1 in the order written.
    notices: std::collections::VecDeque<crate::storage::OfferNotice>,
    /// The last notice's number (kept when notices are pruned).
    last_notice: u64,
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

impl Inner {
    fn next_audit(&mut self, line: crate::storage::LineOf<'_>) -> u64 {
        let seq = self.audit.keys().next_back().map_or(1, |s| s + 1);
        self.audit.insert(seq, line(seq));
        seq
    }

    /// Why `events` cannot be appended as they are, if they cannot.
    fn check_append(&self, events: &[Append<'_>]) -> Result<Option<Appended>, StorageError> {
        let Some(first) = events.first() else {
            return Ok(None);
        };
        check_chain(events)?;
        let member = &first.event.member_id;
        let head = self
            .trails
            .range((member.clone(), 0)..=(member.clone(), u64::MAX))
            .next_back()
            .map_or(0, |(_, e)| e.seq);
        refusal(events, head, |key| {
            let (tag, id) = key.tag();
            Ok(self
                .trail_keys
                .get(&(tag, id.to_string()))
                .and_then(|at| self.trails.get(at))
                .filter(|e| key.matches(e))
                .cloned())
        })
    }

    /// Writes checked `events` and their keys.
    fn apply_append(&mut self, events: &[Append<'_>]) {
        for Append { event, key, .. } in events {
            let key = *key;
            let at = (event.member_id.clone(), event.seq);
            if let Some(key) = key {
                let (tag, id) = key.tag();
                self.trail_keys.insert((tag, id.to_string()), at.clone());
            }
            if let Some(c) = LedgerCursor::of(event) {
                self.ledger.insert(c, at.clone());
            }
            let order_id = match &event.body {
                crate::domain::trail::EventBody::Refund(r) => Some(&r.order_id),
                crate::domain::trail::EventBody::Adjustment(a) => Some(&a.order_id),
                _ => None,
            };
            if let Some(o) = order_id {
                self.refunds.entry(o.clone()).or_default().push(at.clone());
            }
            if event.binding().is_some() {
                self.bindings.insert(event.member_id.clone(), event.seq);
            }
            self.trails.insert(at, event.clone());
        }
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
