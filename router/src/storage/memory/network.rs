use super::*;
use crate::storage::{NetworkSave, NetworkSaved};

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
}
