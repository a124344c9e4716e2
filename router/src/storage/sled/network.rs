use super::*;
use crate::storage::{NetworkSave, NetworkSaved, ReplicaState};

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
