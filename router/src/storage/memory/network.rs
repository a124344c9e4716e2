use super::*;
use crate::storage::{NetworkSave, NetworkSaved, ReplicaState};

impl Networks for MemoryStore {
    fn network(&self) -> Result<Option<NetworkSpec>, StorageError> {
        Ok(self.inner.lock().network.as_ref().map(|(_, s)| s.clone()))
    }

    fn network_version(&self) -> Result<Option<String>, StorageError> {
        Ok(self.inner.lock().network.as_ref().map(|(v, _)| v.clone()))
    }

    fn save_network(&self, save: &NetworkSave<'_>) -> Result<NetworkSaved, StorageError> {
        let mut inner = self.inner.lock();
        let stored = inner.network.as_ref().map(|(v, _)| v.clone());
        if let Some(expected) = save.expected
            && stored.as_deref() != Some(expected)
        {
            return Ok(NetworkSaved::Moved(stored));
        }
        inner.network = Some((save.version.to_string(), save.spec.clone()));
        let audit_seq = save.audit.map(|line| inner.next_audit(line));
        Ok(NetworkSaved::Saved { audit_seq })
    }

    fn announce(&self, replica: &ReplicaState) -> Result<(), StorageError> {
        self.inner
            .lock()
            .replicas
            .insert(replica.id.clone(), replica.clone());
        Ok(())
    }

    fn replicas(&self, since_ms: i64) -> Result<Vec<ReplicaState>, StorageError> {
        Ok(crate::storage::replicas_since(
            self.inner.lock().replicas.values(),
            since_ms,
        ))
    }
}
