//! Writes that keep a source's own numbers: for `leadrouter db import`, into an empty database.

use super::{PostgresStore, Step, execute};
use crate::domain::{Day, Decision};
use crate::storage::{StorageError, codec, dispute_keys, open_offer};
use std::sync::Arc;

impl PostgresStore {
    /// Whether the database holds nothing the contract stores.
    pub fn is_empty(&self) -> Result<bool, StorageError> {
        let row = self.run(self.read(async |c| {
            super::query_one(
                c,
                "SELECT NOT (EXISTS (SELECT 1 FROM decisions) OR EXISTS (SELECT 1 FROM trail_events) \
                 OR EXISTS (SELECT 1 FROM audit) OR EXISTS (SELECT 1 FROM disputes) \
                 OR EXISTS (SELECT 1 FROM network) OR EXISTS (SELECT 1 FROM guide_counts))",
                &[],
            )
            .await
        }))?;
        Ok(row.get(0))
    }

    /// Inserts decisions as they are (versions, open offers), in one transaction.
    pub fn import_decisions(&self, decisions: &[Arc<Decision>]) -> Result<(), StorageError> {
        let leads: Vec<&str> = decisions.iter().map(|d| d.lead.lead_id.as_str()).collect();
        let versions: Vec<i32> = decisions
            .iter()
            .map(|d| i32::try_from(d.version).unwrap_or(i32::MAX))
            .collect();
        let days: Vec<i32> = decisions.iter().map(|d| d.day.0).collect();
        let expires: Vec<Option<i64>> = decisions
            .iter()
            .map(|d| open_offer(d).map(|(at, _)| at))
            .collect();
        let records: Vec<Vec<u8>> = decisions
            .iter()
            .map(|d| codec::encode_decision(d))
            .collect();
        let desks: Vec<_> = decisions
            .iter()
            .map(|d| crate::storage::desk_of(d))
            .collect();
        let guides: Vec<Option<&str>> = desks.iter().map(|(g, _)| g.map(|g| g.0)).collect();
        let queues: Vec<Option<&str>> = desks.iter().map(|(_, q)| *q).collect();
        let decided: Vec<i64> = decisions.iter().map(|d| d.decided_at_ms).collect();
        self.run(self.transact(true, async |c| {
            execute(
                c,
                "INSERT INTO decisions (lead_id, version, day, offer_expires_at, record, \
                 guide_id, queue_store, decided_at) \
                 SELECT * FROM unnest($1::text[], $2::integer[], $3::integer[], $4::bigint[], \
                 $5::bytea[], $6::text[], $7::text[], $8::bigint[])",
                &[
                    &leads, &versions, &days, &expires, &records, &guides, &queues, &decided,
                ],
            )
            .await?;
            Ok(Step::Commit(()))
        }))
    }

    /// Sets guides' counts (`(day, guide, used)`); the capacity recorded is the count, raised
    /// by the next take to the guide's capacity then.
    pub fn import_counts(&self, counts: &[(Day, String, u32)]) -> Result<(), StorageError> {
        let days: Vec<i32> = counts.iter().map(|c| c.0.0).collect();
        let guides: Vec<&str> = counts.iter().map(|c| c.1.as_str()).collect();
        let used: Vec<i32> = counts
            .iter()
            .map(|c| i32::try_from(c.2).unwrap_or(i32::MAX))
            .collect();
        self.run(self.transact(true, async |c| {
            execute(
                c,
                "INSERT INTO guide_counts (day, guide_id, used, capacity) \
                 SELECT d, g, u, u FROM unnest($1::integer[], $2::text[], $3::integer[]) AS t(d, g, u)",
                &[&days, &guides, &used],
            )
            .await?;
            Ok(Step::Commit(()))
        }))
    }

    /// Inserts audit entries under their own numbers.
    pub fn import_audit(&self, entries: &[(u64, String)]) -> Result<(), StorageError> {
        let seqs: Vec<i64> = entries
            .iter()
            .map(|e| i64::try_from(e.0).unwrap_or(i64::MAX))
            .collect();
        let lines: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
        self.run(self.transact(true, async |c| {
            execute(
                c,
                "INSERT INTO audit (seq, line) SELECT * FROM unnest($1::bigint[], $2::text[])",
                &[&seqs, &lines],
            )
            .await?;
            Ok(Step::Commit(()))
        }))
    }

    /// Inserts disputes under their own numbers, with the keys their records name.
    pub fn import_disputes(&self, disputes: &[(u64, String)]) -> Result<(), StorageError> {
        let mut seqs = Vec::new();
        let mut orders = Vec::new();
        let mut requests = Vec::new();
        let mut open = Vec::new();
        let mut lines = Vec::new();
        for (seq, line) in disputes {
            let (order, request, is_open) =
                dispute_keys(line).ok_or_else(|| StorageError::Corrupt {
                    key: format!("dispute {seq}"),
                    why: "the record names no order_id".into(),
                })?;
            seqs.push(i64::try_from(*seq).unwrap_or(i64::MAX));
            orders.push(order);
            requests.push(request);
            open.push(is_open);
            lines.push(line.as_str());
        }
        self.run(self.transact(true, async |c| {
            execute(
                c,
                "INSERT INTO disputes (seq, order_id, request_id, open, line) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bool[], $5::text[])",
                &[&seqs, &orders, &requests, &open, &lines],
            )
            .await?;
            Ok(Step::Commit(()))
        }))
    }
}
