//! The catalog's audit log and the disputes: one part of the storage contract.

use super::StorageError;

/// Numbered JSON lines: audit entries and disputes.
pub trait Logs: Send + Sync {
    /// Appends the audit entry `seq` (one JSON line; the caller serialises appends). Durable
    /// after the next [`Storage::flush`].
    fn append_audit(&self, seq: u64, line: &str) -> Result<(), StorageError>;

    /// Audit entries with `seq >= from_seq`, ascending, at most `limit`.
    fn audit_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StorageError>;

    /// The last audit entry's `seq`.
    fn audit_head(&self) -> Result<Option<u64>, StorageError>;

    /// Saves dispute `seq` (one JSON line), replacing an earlier version. The caller serialises
    /// writes per dispute. Durable after the next [`Storage::flush`].
    fn put_dispute(&self, seq: u64, line: &str) -> Result<(), StorageError>;

    /// Disputes with `seq >= from_seq`, ascending, at most `limit`.
    fn disputes_from(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StorageError>;

    /// The last dispute's `seq`.
    fn dispute_head(&self) -> Result<Option<u64>, StorageError>;
}
