use super::*;
use crate::storage::{NetworkSave, NetworkSaved, Publication, ReplicaState};

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

    fn publish(
        &self,
        name: &str,
        by: &str,
        published_at_ms: i64,
        body: &[u8],
    ) -> Result<u64, StorageError> {
        let mut inner = self.inner.lock();
        let seq = inner.publications.get(name).map_or(0, |p| p.seq) + 1;
        inner.publications.insert(
            name.to_string(),
            Publication {
                seq,
                published_at_ms,
                by: by.to_string(),
                body: body.to_vec(),
            },
        );
        Ok(seq)
    }

    fn publication_seq(&self, name: &str) -> Result<u64, StorageError> {
        Ok(self
            .inner
            .lock()
            .publications
            .get(name)
            .map_or(0, |p| p.seq))
    }

    fn publication(&self, name: &str) -> Result<Option<Publication>, StorageError> {
        Ok(self.inner.lock().publications.get(name).cloned())
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
