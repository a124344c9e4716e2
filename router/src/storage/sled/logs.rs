use super::*;

impl Logs for SledStore {
    fn append_audit(&self, seq: u64, line: &str) -> Result<(), StorageError> {
        self.check_failed()?;
        self.meta
            .insert(audit_key(seq), line.as_bytes())
            .map_err(backend)?;
        self.mark_dirty();
        Ok(())
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

    fn put_dispute(&self, seq: u64, line: &str) -> Result<(), StorageError> {
        self.check_failed()?;
        self.meta
            .insert(seq_key(b'D', seq), line.as_bytes())
            .map_err(backend)?;
        self.mark_dirty();
        Ok(())
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
