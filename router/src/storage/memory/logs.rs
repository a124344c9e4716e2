use super::*;
use crate::storage::{DisputeOpened, LineOf};

impl Logs for MemoryStore {
    fn append_audit(&self, line: LineOf<'_>) -> Result<u64, StorageError> {
        let mut inner = self.inner.lock();
        Ok(inner.next_audit(line))
    }

    fn append_audit_once(&self, key: &str, line: LineOf<'_>) -> Result<u64, StorageError> {
        let mut inner = self.inner.lock();
        if let Some(&seq) = inner.audit_keys.get(key) {
            return Ok(seq);
        }
        let seq = inner.next_audit(line);
        inner.audit_keys.insert(key.to_string(), seq);
        Ok(seq)
    }

    fn audit_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StorageError> {
        Ok(self
            .inner
            .lock()
            .audit
            .range(from_seq..)
            .take(limit)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    fn audit_head(&self) -> Result<Option<u64>, StorageError> {
        Ok(self.inner.lock().audit.keys().next_back().copied())
    }

    fn open_dispute(
        &self,
        order_id: &str,
        request_id: Option<&str>,
        line: LineOf<'_>,
    ) -> Result<DisputeOpened, StorageError> {
        let mut inner = self.inner.lock();
        if let Some(refused) = inner.dispute_keys.refusal(order_id, request_id) {
            return Ok(refused);
        }
        let seq = inner.disputes.keys().next_back().map_or(1, |s| s + 1);
        inner.disputes.insert(seq, line(seq));
        inner.dispute_keys.opened(order_id, request_id, seq);
        Ok(DisputeOpened::Opened(seq))
    }

    fn replace_dispute(
        &self,
        seq: u64,
        order_id: &str,
        previous: &str,
        line: &str,
        open: bool,
    ) -> Result<bool, StorageError> {
        let mut inner = self.inner.lock();
        if inner.disputes.get(&seq).map(String::as_str) != Some(previous) {
            return Ok(false);
        }
        inner.disputes.insert(seq, line.to_string());
        inner.dispute_keys.replaced(order_id, seq, open);
        Ok(true)
    }

    fn disputes_from(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StorageError> {
        Ok(self
            .inner
            .lock()
            .disputes
            .range(from_seq..)
            .take(limit)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }

    fn dispute_head(&self) -> Result<Option<u64>, StorageError> {
        Ok(self.inner.lock().disputes.keys().next_back().copied())
    }
}
