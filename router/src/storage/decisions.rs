//! Routing decisions and the capacity they hold: one part of the storage contract.

use super::StorageError;
use crate::domain::{Day, Decision};
use std::sync::Arc;

/// Decisions by lead id, with the counts they derive.
pub trait Decisions: Send + Sync {
    /// The decision stored for `lead_id`, if any.
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StorageError>;

    /// Stores a decision. `guide_count` is set when the decision took a guide's capacity: that
    /// guide's count for the decision's day including this decision (a store may keep it, or
    /// derive counts from its decisions as sled does).
    fn put_decision(
        &self,
        decision: &Arc<Decision>,
        guide_count: Option<u32>,
    ) -> Result<(), StorageError>;

    /// Replaces a stored decision (an offer that moved on, was accepted or exhausted).
    /// `guide_count` as for [`Storage::put_decision`], for the decision's new guide; the old
    /// guide's count no longer includes it.
    fn replace_decision(
        &self,
        previous: &Decision,
        decision: &Arc<Decision>,
        guide_count: Option<u32>,
    ) -> Result<(), StorageError>;

    /// Decisions whose offer is open (read at start, to expire them on time).
    fn open_offers(&self) -> Result<Vec<Arc<Decision>>, StorageError>;

    /// Every guide's count for one business day.
    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StorageError>;

    /// Number of stored decisions.
    fn decision_count(&self) -> Result<u64, StorageError>;

    /// Every stored decision (after a flush), in lead-id order, until `f` returns false.
    fn scan_decisions(&self, f: &mut dyn FnMut(Arc<Decision>) -> bool) -> Result<(), StorageError>;
}
