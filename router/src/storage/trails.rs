//! Members' trails (hash-chained events), their id keys and the ledger they index: one part of
//! the storage contract.

use super::{LedgerCursor, StorageError, TrailKey};
use crate::domain::trail::TrailEvent;

/// One event to append: the event, its canonical line (`event.to_line()`, which the caller has
/// already) and the idempotency key it is found by.
#[derive(Debug, Clone)]
pub struct Append<'k> {
    pub event: TrailEvent,
    pub line: String,
    pub key: Option<TrailKey<'k>>,
}

/// What [`Trails::append_events`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Written: the last event is the member's head.
    Stored,
    /// A key was taken already, by this stored event: nothing was written.
    Replayed(Box<TrailEvent>),
    /// The member's head moved since it was read: nothing was written.
    HeadMoved,
}

/// Why `events` (checked by [`super::check_chain`]) cannot be appended onto a member whose
/// head is `head` (0: no events), if they cannot: the rule every backend applies under its own
/// lock or transaction. `taken` finds the event stored under a key.
pub fn refusal(
    events: &[Append<'_>],
    head: u64,
    mut taken: impl FnMut(TrailKey<'_>) -> Result<Option<TrailEvent>, StorageError>,
) -> Result<Option<Appended>, StorageError> {
    let Some(first) = events.first() else {
        return Ok(None);
    };
    if first.event.seq != head + 1 {
        return Ok(Some(Appended::HeadMoved));
    }
    for a in events {
        if let Some(key) = a.key
            && let Some(e) = taken(key)?
        {
            return Ok(Some(Appended::Replayed(Box::new(e))));
        }
    }
    Ok(None)
}

/// Members' trails.
pub trait Trails: Send + Sync {
    /// `(seq, hash)` of a member's last trail event.
    fn trail_head(&self, member_id: &str) -> Result<Option<(u64, String)>, StorageError>;

    /// A member's events with `seq >= from_seq`, ascending, at most `limit`.
    fn trail_from(
        &self,
        member_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError>;

    /// A member's events with `seq < before_seq`, descending (newest first), at most `limit`.
    fn trail_before(
        &self,
        member_id: &str,
        before_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError>;

    /// The event recorded under an idempotency key.
    fn trail_event(&self, key: TrailKey<'_>) -> Result<Option<TrailEvent>, StorageError>;

    /// Appends one member's `events` (consecutive `seq`s, built by [`super::Chain`] on the head
    /// the caller read) and indexes each under its key, all or none:
    /// - [`Appended::HeadMoved`] when the member's head is no longer the one the first event
    ///   chains onto (another writer appended first): nothing is written; read again, rebuild;
    /// - [`Appended::Replayed`] when an event's key is already taken: nothing is written; the
    ///   stored event is returned.
    ///
    /// Binding and offer events have no key: they are found through the member's binding
    /// pointer, the decision, or a scan. Visible at once; durable after the next
    /// [`super::Storage::flush`], or within the flush interval.
    fn append_events(&self, events: &[Append<'_>]) -> Result<Appended, StorageError>;

    /// Order and refund events whose `occurred_at` lies in `[from_ms, to_ms)`, by `occurred_at`
    /// then kind (`o` before `r`) then id, starting after `after` when given, at most `limit`.
    fn ledger_events(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<&LedgerCursor>,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StorageError>;

    /// The refund and adjustment events of an order, by `seq` (indexed when appended).
    fn follow_ups_of(&self, order_id: &str) -> Result<Vec<TrailEvent>, StorageError>;

    /// The member's latest binding event (indexed when appended).
    fn latest_binding(&self, member_id: &str) -> Result<Option<TrailEvent>, StorageError>;

    /// Members who have been bound to `guide_id` at some time, by member id, after `after`,
    /// at most `limit`. A superset: the caller checks each member's latest binding.
    fn members_of(
        &self,
        guide_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError>;

    /// Every trail event, by member then `seq`, until `f` returns false.
    fn scan_trails(&self, f: &mut dyn FnMut(TrailEvent) -> bool) -> Result<(), StorageError>;

    /// As [`Storage::scan_trails`], passing each record that cannot be read to `damaged` and going
    /// on (an export of a damaged directory keeps what it can and says what it could not).
    fn scan_trails_lossy(
        &self,
        f: &mut dyn FnMut(TrailEvent) -> bool,
        damaged: &mut dyn FnMut(StorageError),
    ) -> Result<(), StorageError> {
        let _ = damaged;
        self.scan_trails(f)
    }
}
