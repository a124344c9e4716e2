use super::*;

impl Logs for MemoryStore {
    fn append_audit(&self, seq: u64, line: &str) -> Result<(), StorageError> {
        self.inner.lock().audit.insert(seq, line.to_string());
        Ok(())
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

    fn put_dispute(&self, seq: u64, line: &str) -> Result<(), StorageError> {
        self.inner.lock().disputes.insert(seq, line.to_string());
        Ok(())
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
