use super::*;

impl Networks for MemoryStore {
    fn network(&self) -> Result<Option<NetworkSpec>, StorageError> {
        Ok(self.inner.lock().network.clone())
    }

    fn put_network(&self, spec: &NetworkSpec) -> Result<(), StorageError> {
        self.inner.lock().network = Some(spec.clone());
        Ok(())
    }
}
