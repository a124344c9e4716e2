use super::*;
use crate::storage::{DisputeIndex, DisputeOpened, LineOf};

impl SledStore {
    /// The dispute keys of every stored dispute (read at open).
    pub(super) fn index_disputes(&self) -> Result<DisputeIndex, StorageError> {
        let mut index = DisputeIndex::default();
        for kv in self.meta.scan_prefix(b"D") {
            let (k, v) = kv.map_err(backend)?;
            index.insert_record(audit_seq(&k)?, &utf8(&k, &v)?);
        }
        Ok(index)
    }

    /// Appends an audit entry; the caller holds `audit_lock`.
    pub(super) fn next_audit(&self, line: LineOf<'_>) -> Result<u64, StorageError> {
        let seq = self.audit_head()?.map_or(1, |s| s + 1);
        self.meta
            .insert(audit_key(seq), line(seq).as_bytes())
            .map_err(backend)?;
        self.mark_dirty();
        Ok(seq)
    }
}

impl Logs for SledStore {
    fn append_audit(&self, line: LineOf<'_>) -> Result<u64, StorageError> {
        self.check_failed()?;
        let _one = self.audit_lock.lock();
        self.next_audit(line)
    }

    /// The key first, then the entry (under the audit lock). The key holds the entry's number
    /// and a digest of its line: after a crash between the two, the number may hold nothing or,
    /// once reused, another entry, and either way the key does not count.
    fn append_audit_once(&self, key: &str, line: LineOf<'_>) -> Result<u64, StorageError> {
        use sha2::Digest;
        self.check_failed()?;
        let _one = self.audit_lock.lock();
        let k = audit_once_key(key);
        if let Some(v) = self.meta.get(&k).map_err(backend)? {
            let (seq, digest) = audit_once_of(&k, &v)?;
            if let Some(entry) = self.meta.get(audit_key(seq)).map_err(backend)?
                && sha2::Sha256::digest(&entry).as_slice() == digest
            {
                return Ok(seq);
            }
        }
        let seq = self.audit_head()?.map_or(1, |s| s + 1);
        let text = line(seq);
        let mut v = seq.to_be_bytes().to_vec();
        v.extend_from_slice(&sha2::Sha256::digest(text.as_bytes()));
        self.meta.insert(&k, v).map_err(backend)?;
        self.meta
            .insert(audit_key(seq), text.as_bytes())
            .map_err(backend)?;
        self.mark_dirty();
        Ok(seq)
    }

    fn audit_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StorageError> {
        let mut out = Vec::new();
        for kv in self
            .meta
            .range(audit_key(from_seq)..audit_key(u64::MAX))
            .take(limit)
        {
            let (k, v) = kv.map_err(backend)?;
            out.push((audit_seq(&k)?, utf8(&k, &v)?));
        }
        Ok(out)
    }

    fn audit_head(&self) -> Result<Option<u64>, StorageError> {
        match self.meta.scan_prefix(b"a").next_back() {
            None => Ok(None),
            Some(kv) => audit_seq(&kv.map_err(backend)?.0).map(Some),
        }
    }

    fn open_dispute(
        &self,
        order_id: &str,
        request_id: Option<&str>,
        line: LineOf<'_>,
    ) -> Result<DisputeOpened, StorageError> {
        self.check_failed()?;
        let mut index = self.disputes.lock();
        if let Some(refused) = index.refusal(order_id, request_id) {
            return Ok(refused);
        }
        let seq = self.dispute_head()?.map_or(1, |s| s + 1);
        self.meta
            .insert(seq_key(b'D', seq), line(seq).as_bytes())
            .map_err(backend)?;
        self.mark_dirty();
        index.opened(order_id, request_id, seq);
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
        self.check_failed()?;
        let mut index = self.disputes.lock();
        let key = seq_key(b'D', seq);
        if self.meta.get(key).map_err(backend)?.as_deref() != Some(previous.as_bytes()) {
            return Ok(false);
        }
        self.meta.insert(key, line.as_bytes()).map_err(backend)?;
        self.mark_dirty();
        index.replaced(order_id, seq, open);
        Ok(true)
    }

    fn disputes_from(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StorageError> {
        let mut out = Vec::new();
        for kv in self
            .meta
            .range(seq_key(b'D', from_seq)..=seq_key(b'D', u64::MAX))
            .take(limit)
        {
            let (k, v) = kv.map_err(backend)?;
            out.push((audit_seq(&k)?, utf8(&k, &v)?));
        }
        Ok(out)
    }

    fn dispute_head(&self) -> Result<Option<u64>, StorageError> {
        match self.meta.scan_prefix(b"D").next_back() {
            None => Ok(None),
            Some(kv) => audit_seq(&kv.map_err(backend)?.0).map(Some),
        }
    }
}
