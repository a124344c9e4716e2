//! Storage behind the [`Store`] trait: [`SledStore`] is the embedded default, [`MemoryStore`]
//! serves tests and the simulator.
//!
//! Guarantees (DESIGN §6): a stored decision is visible to [`Store::decision`] as soon as
//! [`Store::put_decision`] returns; it becomes durable within the configured flush interval
//! (`flush_every_ms`, default 100 ms), or before the reply when the engine flushes synchronously.
//! After any crash, [`Store::day_counts`] agrees with the decisions that survived (sled derives the
//! counts from an index written with each decision; see [`SledStore`]).

mod binding_cache;
pub(crate) mod codec;
mod memory;
mod sled_store;
mod trail_log;

pub use memory::MemoryStore;
pub use sled_store::{SledConfig, SledStore};
pub use trail_log::{MemberGuard, TrailLog};

use crate::catalog::NetworkSpec;
use crate::domain::trail::{EventBody, TrailEvent};
use crate::domain::{Day, Decision};
use std::sync::Arc;

/// The idempotency key under which a trail event is found again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailKey<'a> {
    Touch(&'a str),
    Order(&'a str),
    Refund(&'a str),
    Adjustment(&'a str),
}

impl TrailKey<'_> {
    /// Whether `e` is the event this key names (a pointer left by a crash may name another).
    pub fn matches(&self, e: &TrailEvent) -> bool {
        match self {
            TrailKey::Touch(id) => e.touch().is_some_and(|t| t.touch_id == *id),
            TrailKey::Order(id) => e.order().is_some_and(|o| o.facts.order_id == *id),
            TrailKey::Refund(id) => e.refund().is_some_and(|r| r.refund_id == *id),
            TrailKey::Adjustment(id) => e.adjustment().is_some_and(|a| a.adjustment_id == *id),
        }
    }

    fn tag(&self) -> (u8, &str) {
        match self {
            TrailKey::Touch(id) => (b't', id),
            TrailKey::Order(id) => (b'o', id),
            TrailKey::Refund(id) => (b'r', id),
            TrailKey::Adjustment(id) => (b'a', id),
        }
    }
}

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

/// Where a ledger read stopped: the last event's `occurred_at`, kind (`b'o'` order, `b'a'`
/// adjustment, `b'r'`
/// refund) and id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LedgerCursor {
    pub occurred_at_ms: i64,
    pub tag: u8,
    pub id: String,
}

impl LedgerCursor {
    /// Sorts before every event at `occurred_at_ms`: where a window starts or ends.
    pub fn first_at(occurred_at_ms: i64) -> Self {
        Self {
            occurred_at_ms,
            tag: 0,
            id: String::new(),
        }
    }

    /// The cursor of an order or refund event.
    pub fn of(e: &TrailEvent) -> Option<Self> {
        let (tag, id) = match &e.body {
            EventBody::Order(o) => (b'o', o.facts.order_id.clone()),
            EventBody::Refund(r) => (b'r', r.refund_id.clone()),
            EventBody::Adjustment(a) => (b'a', a.adjustment_id.clone()),
            _ => return None,
        };
        Some(Self {
            occurred_at_ms: e.occurred_at_ms,
            tag,
            id,
        })
    }
}

/// Called once with the outcome of a flush.
pub type FlushDone = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

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
    /// Replaces a stored decision (an offer that moved on, was accepted or exhausted).
    /// `guide_count` as for [`Store::put_decision`], for the decision's new guide; the old
    /// guide's count no longer includes it.
    fn replace_decision(
        &self,
        previous: &Decision,
        decision: &Arc<Decision>,
        guide_count: Option<u32>,
    ) -> Result<(), StoreError>;
    /// Decisions whose offer is open (read at start, to expire them on time).
    fn open_offers(&self) -> Result<Vec<Arc<Decision>>, StoreError>;
    /// Every guide's count for one business day.
    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StoreError>;
    /// The network last saved, if any.
    fn network(&self) -> Result<Option<NetworkSpec>, StoreError>;
    /// Saves the network in service.
    fn put_network(&self, spec: &NetworkSpec) -> Result<(), StoreError>;
    /// Makes every write so far durable; returns the bytes flushed where known.
    fn flush(&self) -> Result<usize, StoreError>;
    /// Calls `done` once every write made before this call is durable, or the flush failed.
    /// Does not block: concurrent callers share one disk sync (group commit).
    fn flush_then(&self, done: FlushDone);
    /// Whether concurrent durable requests share flushes (group commit, the default). False
    /// only where a store is configured to measure what group commit buys: then callers run
    /// each durable request's writes and its flush alone, one request at a time, so that every
    /// request pays for a flush of its own.
    fn shares_flushes(&self) -> bool {
        true
    }
    /// Number of stored decisions.
    fn decision_count(&self) -> Result<u64, StoreError>;
    /// Every stored decision (after a flush), in lead-id order, until `f` returns false.
    fn scan_decisions(&self, f: &mut dyn FnMut(Arc<Decision>) -> bool) -> Result<(), StoreError>;

    /// `(seq, hash)` of a member's last trail event.
    fn trail_head(&self, member_id: &str) -> Result<Option<(u64, String)>, StoreError>;
    /// A member's events with `seq >= from_seq`, ascending, at most `limit`.
    fn trail_from(
        &self,
        member_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StoreError>;
    /// A member's events with `seq < before_seq`, descending (newest first), at most `limit`.
    fn trail_before(
        &self,
        member_id: &str,
        before_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StoreError>;
    /// The event recorded under an idempotency key.
    fn trail_event(&self, key: TrailKey<'_>) -> Result<Option<TrailEvent>, StoreError>;
    /// Appends `event` (the member's next `seq`; the caller serialises appends per member) and
    /// indexes it under `key` when given (binding and offer events have none: they are found
    /// through the member's binding pointer, the decision, or a scan). Visible at once; durable after the next [`Store::flush`], or within
    /// the flush interval.
    /// `line` is `event.to_line()`, passed in because the caller has it already.
    fn append_trail(
        &self,
        event: &TrailEvent,
        line: &str,
        key: Option<TrailKey<'_>>,
    ) -> Result<(), StoreError>;
    /// Order and refund events whose `occurred_at` lies in `[from_ms, to_ms)`, by `occurred_at`
    /// then kind (`o` before `r`) then id, starting after `after` when given, at most `limit`.
    fn ledger_events(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<&LedgerCursor>,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StoreError>;
    /// The refund and adjustment events of an order, by `seq` (indexed when appended).
    fn follow_ups_of(&self, order_id: &str) -> Result<Vec<TrailEvent>, StoreError>;
    /// The member's latest binding event (indexed when appended).
    fn latest_binding(&self, member_id: &str) -> Result<Option<TrailEvent>, StoreError>;
    /// Members who have been bound to `guide_id` at some time, by member id, after `after`,
    /// at most `limit`. A superset: the caller checks each member's latest binding.
    fn members_of(
        &self,
        guide_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// Every trail event, by member then `seq`, until `f` returns false.
    fn scan_trails(&self, f: &mut dyn FnMut(TrailEvent) -> bool) -> Result<(), StoreError>;

    /// As [`Store::scan_trails`], passing each record that cannot be read to `damaged` and going
    /// on (an export of a damaged directory keeps what it can and says what it could not).
    fn scan_trails_lossy(
        &self,
        f: &mut dyn FnMut(TrailEvent) -> bool,
        damaged: &mut dyn FnMut(StoreError),
    ) -> Result<(), StoreError> {
        let _ = damaged;
        self.scan_trails(f)
    }

    /// Appends the audit entry `seq` (one JSON line; the caller serialises appends). Durable
    /// after the next [`Store::flush`].
    fn append_audit(&self, seq: u64, line: &str) -> Result<(), StoreError>;
    /// Audit entries with `seq >= from_seq`, ascending, at most `limit`.
    fn audit_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError>;
    /// The last audit entry's `seq`.
    fn audit_head(&self) -> Result<Option<u64>, StoreError>;

    /// Saves dispute `seq` (one JSON line), replacing an earlier version. The caller serialises
    /// writes per dispute. Durable after the next [`Store::flush`].
    fn put_dispute(&self, seq: u64, line: &str) -> Result<(), StoreError>;
    /// Disputes with `seq >= from_seq`, ascending, at most `limit`.
    fn disputes_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError>;
    /// The last dispute's `seq`.
    fn dispute_head(&self) -> Result<Option<u64>, StoreError>;
}

/// Visits a member's events with `seq >= from_seq` in order, reading `chunk` at a time, until
/// `f` returns false.
pub fn for_each_in_trail(
    store: &dyn Store,
    member_id: &str,
    from_seq: u64,
    chunk: usize,
    f: &mut dyn FnMut(TrailEvent) -> bool,
) -> Result<(), StoreError> {
    let mut from = from_seq.max(1);
    loop {
        let events = store.trail_from(member_id, from, chunk.max(1))?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(());
        };
        for e in events {
            if !f(e) {
                return Ok(());
            }
        }
        from = last + 1;
    }
}
