//! Storage behind the [`Storage`] contract (in this domain a "store" is a 门店, so the contract is
//! not called one), in parts: [`Decisions`], [`Desks`], [`Trails`], [`Logs`], [`Networks`]. Each backend has
//! its own folder with a file per part: [`SledStore`] is the embedded default (one process),
//! [`PostgresStore`] serves several replicas on one database, [`MemoryStore`] serves tests and
//! the simulator.
//!
//! Every guarantee is one conditional operation of the contract (DESIGN §6): it happens whole
//! or returns a typed refusal, never an overwrite; engines sharing a storage are as safe as one.
//! Writes are visible at once. Decisions and touches are durable within the backend's interval
//! (sled's `flush_every_ms`, PostgreSQL's `wal_writer_delay` with `synchronous_commit` off) or
//! after [`Storage::flush`]; orders, refunds and adjustments before the call that made them
//! returns on PostgreSQL, and after [`Storage::flush_then`] on sled (group commit). After any
//! crash, [`Decisions::day_counts`] agrees with the decisions that survived.
//!
//! The contract is synchronous, with asynchronous forms of a route's calls
//! ([`Storage::route_state_async`], [`Decisions::commit_route_async`], [`Storage::flush_async`])
//! that a server awaits on its workers. A backend across the network
//! ([`Storage::waits_on_network`]) does its I/O asynchronously on a runtime of its own; its
//! synchronous calls wait for it, so callers on an async runtime run those on its blocking
//! pool, never on a worker. No lock is held across a wait.

mod chain;
pub(crate) mod codec;
mod decisions;
mod desks;
mod logs;
mod memory;
mod network;
mod postgres;
mod sled;
mod trails;

pub use chain::{Chain, MAX_ATTEMPTS, Written, append_retrying, backoff};
pub use decisions::{Committed, Decisions, HeadAt, RouteCommit, Take, lease_due, open_offer};
pub use desks::{
    Desks, NOTICE_RETENTION_MS, NoticeId, NoticeKind, NoticesOf, OfferNotice, by_time, desk_of,
    in_store_queue, on_guide_desk,
};
pub use logs::{DisputeIndex, DisputeOpened, LineOf, Logs, dispute_keys};
pub use memory::MemoryStore;
pub use network::{NetworkSave, NetworkSaved, Networks, Publication, ReplicaState, replicas_since};
pub use postgres::{
    DATABASE_CA_ENV, DATABASE_URL_ENV, MIGRATIONS, Migration, PostgresConfig, PostgresStore,
    redacted,
};
pub use sled::{SledConfig, SledStore};
pub use trails::{Append, Appended, Trails, refusal};

use crate::domain::trail::{EventBody, TrailEvent};

/// The idempotency key under which a trail event is found again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailKey<'a> {
    Touch(&'a str),
    Order(&'a str),
    Refund(&'a str),
    Adjustment(&'a str),
}

impl<'a> TrailKey<'a> {
    /// The key `e` is found by (touches, orders, refunds, adjustments; bindings and offers
    /// have none).
    pub fn of(e: &'a TrailEvent) -> Option<Self> {
        match &e.body {
            EventBody::Touch(t) => Some(TrailKey::Touch(&t.touch_id)),
            EventBody::Order(o) => Some(TrailKey::Order(&o.facts.order_id)),
            EventBody::Refund(r) => Some(TrailKey::Refund(&r.refund_id)),
            EventBody::Adjustment(a) => Some(TrailKey::Adjustment(&a.adjustment_id)),
            _ => None,
        }
    }

    /// Whether `e` is the event this key names (a pointer left by a crash may name another).
    pub fn matches(&self, e: &TrailEvent) -> bool {
        match self {
            TrailKey::Touch(id) => e.touch().is_some_and(|t| t.touch_id == *id),
            TrailKey::Order(id) => e.order().is_some_and(|o| o.facts.order_id == *id),
            TrailKey::Refund(id) => e.refund().is_some_and(|r| r.refund_id == *id),
            TrailKey::Adjustment(id) => e.adjustment().is_some_and(|a| a.adjustment_id == *id),
        }
    }

    pub(crate) fn tag(&self) -> (u8, &str) {
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
pub enum StorageError {
    #[error("storage: {0}")]
    Backend(String),
    #[error("stored record {key:?} is corrupt: {why}")]
    Corrupt { key: String, why: String },
    #[error("the data directory {path} is in use by another process (sled holds a lock on it)")]
    Locked { path: String },
    /// Other writers kept winning a conditional write; the caller may retry.
    #[error("contended: {0}")]
    Contended(String),
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

/// What a route reads before it decides ([`Storage::route_state`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteState {
    /// The lead's stored decision.
    pub decision: Option<std::sync::Arc<crate::domain::Decision>>,
    /// The member's head `(seq, hash)` (read only for a member, and only without a decision).
    pub head: Option<(u64, String)>,
    /// The member's latest binding event, read after the head.
    pub binding: Option<TrailEvent>,
}

/// A storage call that may wait on a database across the network, for callers on an async
/// runtime ([`Storage::route_state_async`], [`Decisions::commit_route_async`]); the embedded
/// backends answer at once.
pub type Pending<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Waits for `f` on this thread (parking it between polls): for the synchronous calls of the
/// contract over asynchronous ones. Never on an async runtime's worker for a future that waits.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut f = std::pin::pin!(f);
    let waker = std::sync::Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Called once with the outcome of a flush.
pub type FlushDone = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// Everything the engine, attribution and disputes need from storage (DESIGN §6), in parts a
/// reader looks for: [`Decisions`], [`Trails`], [`Logs`], [`Networks`]; and when writes are
/// durable.
pub trait Storage:
    Decisions + Desks + Trails + Logs + Networks + std::fmt::Debug + 'static
{
    /// Makes every write so far durable; returns the bytes flushed where known.
    fn flush(&self) -> Result<usize, StorageError>;

    /// Calls `done` once every write made before this call is durable, or the flush failed.
    /// Does not block: concurrent callers share one disk sync (group commit).
    fn flush_then(&self, done: FlushDone);

    /// The lead's stored decision and, if it has none and `member_id` is given, the member's
    /// head and then latest binding: a binding appended in between moves the head past the one
    /// read, so the route's commit is refused and it reads again. A backend across the network
    /// reads them in one round trip.
    fn route_state(
        &self,
        lead_id: &str,
        member_id: Option<&str>,
    ) -> Result<RouteState, StorageError> {
        let decision = self.decision(lead_id)?;
        let Some(m) = member_id.filter(|_| decision.is_none()) else {
            return Ok(RouteState {
                decision,
                ..Default::default()
            });
        };
        let head = self.trail_head(m)?;
        let binding = self.latest_binding(m)?;
        Ok(RouteState {
            decision,
            head,
            binding,
        })
    }

    /// What a route may assume instead of reading [`Storage::route_state`], where a read costs
    /// a round trip (PostgreSQL): the lead as new, and the member's head and binding as this
    /// process last saw them (none for a member it has not seen). Safe because the route's
    /// commit is conditional on both: a lead routed meanwhile is replayed, and a head that
    /// moved is refused with the state as it is ([`Committed::HeadMoved`]). `None`: read.
    fn route_guess(&self, _lead_id: &str, _member_id: Option<&str>) -> Option<RouteState> {
        None
    }

    /// [`Storage::route_state`] for a caller on an async runtime: waits without blocking the
    /// thread where the backend waits on the network.
    fn route_state_async<'a>(
        &'a self,
        lead_id: &'a str,
        member_id: Option<&'a str>,
    ) -> Pending<'a, RouteState> {
        Box::pin(std::future::ready(self.route_state(lead_id, member_id)))
    }

    /// [`Storage::flush`] for a caller on an async runtime.
    fn flush_async(&self) -> Pending<'_, usize> {
        Box::pin(std::future::ready(self.flush()))
    }

    /// Whether calls wait on a database across the network (PostgreSQL): then callers on an
    /// async runtime run every call on its blocking pool, never on a worker.
    fn waits_on_network(&self) -> bool {
        false
    }

    /// Woken when another writer may have changed what replicas take up (the network), where
    /// the backend can tell (PostgreSQL's LISTEN/NOTIFY); replicas poll as well, every second.
    fn changes(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}

/// Striped locks by key: inside a backend that one process opens (sled), the lock that makes a
/// check and its write one step.
#[derive(Debug)]
pub(crate) struct Stripes {
    locks: Box<[parking_lot::Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Stripes {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            locks: (0..n.max(1)).map(|_| parking_lot::Mutex::new(())).collect(),
            hasher: Default::default(),
        }
    }

    pub(crate) fn lock(&self, key: &str) -> parking_lot::MutexGuard<'_, ()> {
        use std::hash::BuildHasher;
        let i = (self.hasher.hash_one(key) as usize) % self.locks.len();
        self.locks[i].lock()
    }
}

/// Checks that `events` are one member's, with consecutive `seq`s: what [`Chain`] builds. A
/// backend refuses anything else before writing.
pub fn check_chain(events: &[Append<'_>]) -> Result<(), StorageError> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    for (i, a) in events.iter().enumerate() {
        if a.event.member_id != first.event.member_id || a.event.seq != first.event.seq + i as u64 {
            return Err(StorageError::Backend(format!(
                "an append holds events of one member with consecutive seqs; event {i} is ({:?}, {})",
                a.event.member_id, a.event.seq
            )));
        }
    }
    Ok(())
}

/// Visits a member's events with `seq >= from_seq` in order, reading `chunk` at a time, until
/// `f` returns false.
pub fn for_each_in_trail(
    store: &dyn Storage,
    member_id: &str,
    from_seq: u64,
    chunk: usize,
    f: &mut dyn FnMut(TrailEvent) -> bool,
) -> Result<(), StorageError> {
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
