//! The audit log and the disputes: one part of the storage contract. The store assigns the
//! numbers (one more than the last), and keeps an order's open dispute and a dispute request's
//! id unique, so that replicas never hand out one number twice or open two disputes for one
//! order.

use super::StorageError;

/// What [`Logs::open_dispute`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeOpened {
    /// Stored under this number.
    Opened(u64),
    /// The request id opened dispute `.0` before: nothing was written.
    SameRequest(u64),
    /// The order has dispute `.0` open: nothing was written.
    OrderHasOpen(u64),
}

/// Makes a record's JSON line once its number is known.
pub type LineOf<'a> = &'a dyn Fn(u64) -> String;

/// Numbered JSON lines: audit entries and disputes.
pub trait Logs: Send + Sync {
    /// Appends an audit entry under the next number, which it returns; `line(seq)` is the
    /// entry. Durable after the next [`super::Storage::flush`].
    fn append_audit(&self, line: LineOf<'_>) -> Result<u64, StorageError>;

    /// Appends an audit entry under the next number unless one was appended under `key`
    /// before; returns the number of the entry under `key` (so that an action that several
    /// writers may complete, a dispute's resolution, is audited once).
    fn append_audit_once(&self, key: &str, line: LineOf<'_>) -> Result<u64, StorageError>;

    /// Audit entries with `seq >= from_seq`, ascending, at most `limit`.
    fn audit_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StorageError>;

    /// The last audit entry's `seq`.
    fn audit_head(&self) -> Result<Option<u64>, StorageError>;

    /// Stores a new dispute about `order_id` under the next number (`line(seq)` is its record),
    /// unless the order has a dispute open or `request_id` opened one (see [`DisputeOpened`]).
    /// Durable after the next flush.
    fn open_dispute(
        &self,
        order_id: &str,
        request_id: Option<&str>,
        line: LineOf<'_>,
    ) -> Result<DisputeOpened, StorageError>;

    /// Replaces dispute `seq` (about `order_id`) by `line` only while its record is still
    /// `previous`, as read; `open` tells whether it stays the order's open dispute. Returns
    /// whether it was replaced: of two concurrent changes one wins.
    fn replace_dispute(
        &self,
        seq: u64,
        order_id: &str,
        previous: &str,
        line: &str,
        open: bool,
    ) -> Result<bool, StorageError>;

    /// Disputes with `seq >= from_seq`, ascending, at most `limit`.
    fn disputes_from(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StorageError>;

    /// The last dispute's `seq`.
    fn dispute_head(&self) -> Result<Option<u64>, StorageError>;
}

/// What a dispute's record says of its keys: `(order_id, request_id, open)`. Backends index
/// disputes written before they kept these keys from their records.
pub fn dispute_keys(line: &str) -> Option<(String, Option<String>, bool)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let order = v.get("order_id")?.as_str()?.to_string();
    let request = v
        .get("request_id")
        .and_then(|r| r.as_str())
        .map(str::to_string);
    let open = v.get("status").and_then(|s| s.as_str()) == Some("open");
    Some((order, request, open))
}

/// The keys a backend keeps unique among disputes: each order's open dispute and each request
/// id's dispute. The memory and sled backends keep it in memory under their lock (sled builds
/// it at open from the records).
#[derive(Debug, Default)]
pub struct DisputeIndex {
    /// Order id → its open dispute.
    open: std::collections::HashMap<String, u64>,
    /// Request id → the dispute it opened.
    requests: std::collections::HashMap<String, u64>,
}

impl DisputeIndex {
    /// Indexes stored dispute `seq` from its record.
    pub fn insert_record(&mut self, seq: u64, line: &str) {
        if let Some((order, request, open)) = dispute_keys(line) {
            if open {
                self.open.insert(order, seq);
            }
            if let Some(r) = request {
                self.requests.insert(r, seq);
            }
        }
    }

    /// Why a dispute about `order_id` with `request_id` cannot be opened, if it cannot.
    pub fn refusal(&self, order_id: &str, request_id: Option<&str>) -> Option<DisputeOpened> {
        if let Some(&seq) = request_id.and_then(|r| self.requests.get(r)) {
            return Some(DisputeOpened::SameRequest(seq));
        }
        self.open
            .get(order_id)
            .map(|&seq| DisputeOpened::OrderHasOpen(seq))
    }

    /// Dispute `seq` was opened.
    pub fn opened(&mut self, order_id: &str, request_id: Option<&str>, seq: u64) {
        self.open.insert(order_id.to_string(), seq);
        if let Some(r) = request_id {
            self.requests.insert(r.to_string(), seq);
        }
    }

    /// Dispute `seq` was replaced; `open` tells whether it stays the order's open one.
    pub fn replaced(&mut self, order_id: &str, seq: u64, open: bool) {
        if open {
            self.open.insert(order_id.to_string(), seq);
        } else if self.open.get(order_id) == Some(&seq) {
            self.open.remove(order_id);
        }
    }
}
