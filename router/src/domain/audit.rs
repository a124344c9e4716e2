//! The audit log: one entry per operator change (catalog changes now; transfers and dispute
//! resolutions later), in the order applied. Entries are JSON lines, never edited.

use serde::{Deserialize, Serialize};

/// Longest free-text reason an operator may give, in bytes.
pub const MAX_REASON_LEN: usize = 1000;

/// One operator change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1, 2, … in the order applied.
    pub seq: u64,
    /// When it was applied (Unix ms, server clock).
    pub at_ms: i64,
    /// Who asked for it (an operator id).
    pub actor: String,
    /// E.g. `upsert_store`, `upsert_guide`, `set_guide_status`.
    pub action: String,
    /// What it changed: `store:<id>`, `guide:<id>`.
    pub target: String,
    /// The operator's reason; may be empty.
    pub reason: String,
    /// The record before (absent when added) and after, as JSON.
    pub before: Option<serde_json::Value>,
    pub after: serde_json::Value,
    /// The network version the change produced.
    pub network_version: String,
}

impl AuditEntry {
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_line(line: &str) -> Result<Self, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }
}
