use super::*;
use crate::storage::{NetworkSave, NetworkSaved, Publication, ReplicaState};

fn publication_key(name: &str) -> Vec<u8> {
    [b"publication/".as_slice(), name.as_bytes()].concat()
}

/// `seq` (8 bytes), `published_at_ms` (8), the length of `by` (4), `by`, the body.
fn encode_publication(p: &Publication) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + p.by.len() + p.body.len());
    out.extend_from_slice(&p.seq.to_be_bytes());
    out.extend_from_slice(&p.published_at_ms.to_be_bytes());
    out.extend_from_slice(&u32::try_from(p.by.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(p.by.as_bytes());
    out.extend_from_slice(&p.body);
    out
}

fn decode_publication(name: &str, b: &[u8]) -> Result<Publication, StorageError> {
    let corrupt = || StorageError::Corrupt {
        key: format!("publication/{name}"),
        why: "truncated".into(),
    };
    let word = |at: usize| -> Result<[u8; 8], StorageError> {
        b.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(corrupt)
    };
    let len: [u8; 4] = b
        .get(16..20)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(corrupt)?;
    let end = 20 + u32::from_be_bytes(len) as usize;
    let by = b.get(20..end).ok_or_else(corrupt)?;
    Ok(Publication {
        seq: u64::from_be_bytes(word(0)?),
        published_at_ms: i64::from_be_bytes(word(8)?),
        by: String::from_utf8_lossy(by).into_owned(),
        body: b[end..].to_vec(),
    })
}

impl Networks for SledStore {
    fn network(&self) -> Result<Option<NetworkSpec>, StorageError> {
        match self.meta.get(b"network").map_err(backend)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StorageError::Corrupt {
                        key: "network".into(),
                        why: e.to_string(),
                    })
            }
        }
    }

    fn network_version(&self) -> Result<Option<String>, StorageError> {
        match self.meta.get(b"network_version").map_err(backend)? {
            None => Ok(None),
            Some(v) => utf8(b"network_version", &v).map(Some),
        }
    }

    /// The audit entry first, then the network: after a crash between the two the log may
    /// name a version that never served, but no served change lacks its entry.
    fn save_network(&self, save: &NetworkSave<'_>) -> Result<NetworkSaved, StorageError> {
        self.check_failed()?;
        let _audit = self.audit_lock.lock();
        let _one = self.network_lock.lock();
        let stored = self.network_version()?;
        if let Some(expected) = save.expected
            && stored.as_deref() != Some(expected)
        {
            return Ok(NetworkSaved::Moved(stored));
        }
        let bytes =
            serde_json::to_vec(save.spec).map_err(|e| StorageError::Backend(e.to_string()))?;
        let audit_seq = match save.audit {
            Some(line) => Some(self.next_audit(line)?),
            None => None,
        };
        self.meta.insert(b"network", bytes).map_err(backend)?;
        self.meta
            .insert(b"network_version", save.version.as_bytes())
            .map_err(backend)?;
        self.flush()?;
        Ok(NetworkSaved::Saved { audit_seq })
    }

    /// Under the network's lock: one process opens sled, so the number read and the write are
    /// one step.
    fn publish(
        &self,
        name: &str,
        by: &str,
        published_at_ms: i64,
        body: &[u8],
    ) -> Result<u64, StorageError> {
        self.check_failed()?;
        let _one = self.network_lock.lock();
        let seq = self.publication_seq(name)? + 1;
        let p = Publication {
            seq,
            published_at_ms,
            by: by.to_string(),
            body: body.to_vec(),
        };
        self.meta
            .insert(publication_key(name), encode_publication(&p))
            .map_err(backend)?;
        self.flush()?;
        Ok(seq)
    }

    fn publication_seq(&self, name: &str) -> Result<u64, StorageError> {
        Ok(self.publication(name)?.map_or(0, |p| p.seq))
    }

    fn publication(&self, name: &str) -> Result<Option<Publication>, StorageError> {
        self.meta
            .get(publication_key(name))
            .map_err(backend)?
            .map(|b| decode_publication(name, &b))
            .transpose()
    }

    fn announce(&self, replica: &ReplicaState) -> Result<(), StorageError> {
        self.replicas
            .lock()
            .insert(replica.id.clone(), replica.clone());
        Ok(())
    }

    fn replicas(&self, since_ms: i64) -> Result<Vec<ReplicaState>, StorageError> {
        Ok(crate::storage::replicas_since(
            self.replicas.lock().values(),
            since_ms,
        ))
    }
}
