use super::{Store, StoreError, codec};
use crate::catalog::NetworkSpec;
use crate::domain::{Day, Decision};
use std::path::Path;

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SledConfig {
    /// Page cache cap in bytes (sled's `cache_capacity`). Default 256 MiB.
    pub cache_capacity: u64,
    /// Background flush interval in milliseconds: routing decisions are durable within it.
    /// Default 100.
    pub flush_every_ms: u64,
}

impl Default for SledConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 256 * 1024 * 1024,
            flush_every_ms: 100,
        }
    }
}

/// sled, the embedded default. One `Db` per process; the directory is locked while open.
///
/// Keys in the `routes` tree: `d/<lead_id>` → decision record (protobuf);
/// `c/<day i32 BE><guide_id>` → the guide's count that day (u32 BE). The `meta` tree holds the
/// network (`network`, JSON).
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    routes: sled::Tree,
    meta: sled::Tree,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn decision_key(lead_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + lead_id.len());
    k.extend_from_slice(b"d/");
    k.extend_from_slice(lead_id.as_bytes());
    k
}

fn count_prefix(day: Day) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + 16);
    k.extend_from_slice(b"c/");
    k.extend_from_slice(&day.0.to_be_bytes());
    k
}

impl SledStore {
    pub fn open(dir: &Path, config: &SledConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(Some(config.flush_every_ms.max(1)))
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    StoreError::Locked {
                        path: dir.display().to_string(),
                    }
                }
                other => backend(other),
            })?;
        let routes = db.open_tree("routes").map_err(backend)?;
        let meta = db.open_tree("meta").map_err(backend)?;
        Ok(Self { db, routes, meta })
    }
}

impl Store for SledStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Decision>, StoreError> {
        let key = decision_key(lead_id);
        match self.routes.get(&key).map_err(backend)? {
            None => Ok(None),
            Some(bytes) => {
                codec::decode_decision(&bytes)
                    .map(Some)
                    .map_err(|why| StoreError::Corrupt {
                        key: String::from_utf8_lossy(&key).into_owned(),
                        why,
                    })
            }
        }
    }

    fn put_decision(&self, d: &Decision, guide_count: Option<u32>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(decision_key(&d.lead.lead_id), codec::encode_decision(d));
        if let (Some(n), Some(g)) = (guide_count, d.guide_id()) {
            let mut k = count_prefix(d.day);
            k.extend_from_slice(g.as_bytes());
            batch.insert(k, &n.to_be_bytes());
        }
        self.routes.apply_batch(batch).map_err(backend)
    }

    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StoreError> {
        let prefix = count_prefix(day);
        let mut out = Vec::new();
        for kv in self.routes.scan_prefix(&prefix) {
            let (k, v) = kv.map_err(backend)?;
            let guide = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let n: [u8; 4] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                key: format!("c/{day}/{guide}"),
                why: format!("count has {} bytes, expected 4", v.len()),
            })?;
            out.push((guide, u32::from_be_bytes(n)));
        }
        Ok(out)
    }

    fn network(&self) -> Result<Option<NetworkSpec>, StoreError> {
        match self.meta.get(b"network").map_err(backend)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        key: "network".into(),
                        why: e.to_string(),
                    })
            }
        }
    }

    fn put_network(&self, spec: &NetworkSpec) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(spec).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.meta.insert(b"network", bytes).map_err(backend)?;
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn flush(&self) -> Result<usize, StoreError> {
        self.db.flush().map_err(backend)
    }

    fn decision_count(&self) -> Result<u64, StoreError> {
        Ok(self.routes.scan_prefix(b"d/").count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::tests::sample_decision;

    #[test]
    fn decisions_counts_and_network_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let d = sample_decision();
        {
            let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
            assert!(s.decision("L1").unwrap().is_none());
            s.put_decision(&d, Some(3)).unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        assert_eq!(s.decision("L1").unwrap().unwrap(), d);
        assert_eq!(s.day_counts(d.day).unwrap(), vec![("G1".to_string(), 3)]);
        assert!(s.day_counts(Day(d.day.0 + 1)).unwrap().is_empty());
        assert_eq!(s.decision_count().unwrap(), 1);
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        let e = SledStore::open(dir.path(), &SledConfig::default()).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    }
}
