use super::*;

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

    fn put_network(&self, spec: &NetworkSpec) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(spec).map_err(|e| StorageError::Backend(e.to_string()))?;
        self.meta.insert(b"network", bytes).map_err(backend)?;
        self.flush()?;
        Ok(())
    }
}
