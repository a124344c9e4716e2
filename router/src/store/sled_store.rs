use super::{Store, StoreError, codec};
use crate::catalog::NetworkSpec;
use crate::domain::{Day, Decision};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SledConfig {
    /// Page cache cap in bytes (sled's `cache_capacity`). Default 256 MiB.
    pub cache_capacity: u64,
    /// Routing decisions are durable within this many milliseconds. Default 100.
    pub flush_every_ms: u64,
    /// Decisions queued for the writer before `put_decision` waits (back-pressure). Default 65536.
    pub queue: usize,
}

impl Default for SledConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 256 * 1024 * 1024,
            flush_every_ms: 100,
            queue: 65_536,
        }
    }
}

/// Most records the writer puts in one atomic batch.
const MAX_BATCH: usize = 1024;

enum Msg {
    Put {
        lead_key: Vec<u8>,
        value: sled::IVec,
        count: Option<(Vec<u8>, u32)>,
    },
    /// Reply once everything queued before is applied and flushed.
    Flush(SyncSender<Result<usize, String>>),
}

/// sled, the embedded default. One `Db` per process; the directory is locked while open.
///
/// Writes go through one writer thread (group commit): `put_decision` encodes the record and
/// queues it, and the decision is visible to [`Store::decision`] at once. The writer applies
/// queued records in order, many per atomic batch (a decision and its guide's count always in
/// the same batch), and flushes to disk at least every `flush_every_ms`; [`Store::flush`] waits
/// for everything queued before it, and concurrent flushes share one disk sync.
///
/// Keys in the `routes` tree: `d/<lead_id>` → decision record (protobuf);
/// `c/<day i32 BE><guide_id>` → the guide's count that day (u32 BE). The `meta` tree holds the
/// network (`network`, JSON).
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    routes: sled::Tree,
    meta: sled::Tree,
    /// Decisions queued but not yet applied, by key.
    pending: Arc<Mutex<HashMap<Vec<u8>, sled::IVec>>>,
    tx: Mutex<Option<SyncSender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    failed: Arc<Mutex<Option<String>>>,
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
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let failed = Arc::new(Mutex::new(None));
        let (tx, rx) = sync_channel(config.queue.max(1));
        let writer = {
            let (db, routes, pending, failed) =
                (db.clone(), routes.clone(), pending.clone(), failed.clone());
            let every = Duration::from_millis(config.flush_every_ms.max(1));
            std::thread::Builder::new()
                .name("leadrouter-sled-writer".into())
                .spawn(move || writer_loop(rx, db, routes, pending, failed, every))
                .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?
        };
        Ok(Self {
            db,
            routes,
            meta,
            pending,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            failed,
        })
    }

    fn check_failed(&self) -> Result<(), StoreError> {
        match &*self.failed.lock() {
            Some(e) => Err(StoreError::Backend(format!("the writer failed: {e}"))),
            None => Ok(()),
        }
    }

    fn send(&self, msg: Msg) -> Result<(), StoreError> {
        let tx = self.tx.lock().clone();
        match tx {
            Some(tx) => tx
                .send(msg)
                .map_err(|_| StoreError::Backend("the writer has stopped".into())),
            None => Err(StoreError::Backend("the store is closed".into())),
        }
    }
}

fn writer_loop(
    rx: Receiver<Msg>,
    db: sled::Db,
    routes: sled::Tree,
    pending: Arc<Mutex<HashMap<Vec<u8>, sled::IVec>>>,
    failed: Arc<Mutex<Option<String>>>,
    every: Duration,
) {
    let mut last_flush = Instant::now();
    let mut dirty = false;
    loop {
        let first = match rx.recv_timeout(every) {
            Ok(m) => Some(m),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = sled::Batch::default();
        let mut keys = Vec::new();
        let mut waiters = Vec::new();
        let mut next = first;
        while let Some(msg) = next {
            match msg {
                Msg::Put {
                    lead_key,
                    value,
                    count,
                } => {
                    batch.insert(lead_key.clone(), value);
                    if let Some((k, n)) = count {
                        batch.insert(k, &n.to_be_bytes());
                    }
                    keys.push(lead_key);
                }
                Msg::Flush(reply) => waiters.push(reply),
            }
            if keys.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !keys.is_empty() {
            if let Err(e) = routes.apply_batch(batch) {
                tracing::error!(error = %e, "writing decisions failed");
                *failed.lock() = Some(e.to_string());
            } else {
                let mut p = pending.lock();
                for k in &keys {
                    p.remove(k);
                }
                dirty = true;
            }
        }
        if !waiters.is_empty() || (dirty && last_flush.elapsed() >= every) {
            let result = match &*failed.lock() {
                Some(e) => Err(e.clone()),
                None => db.flush().map_err(|e| e.to_string()),
            };
            last_flush = Instant::now();
            dirty = false;
            for w in waiters {
                let _ = w.send(result.clone());
            }
        }
    }
    // Closing: everything queued has been applied above; make it durable.
    if let Err(e) = db.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.tx.lock().take();
        if let Some(w) = self.writer.lock().take() {
            let _ = w.join();
        }
    }
}

impl Store for SledStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StoreError> {
        let key = decision_key(lead_id);
        let queued = self.pending.lock().get(&key).cloned();
        let bytes = match queued {
            Some(v) => Some(v),
            None => self.routes.get(&key).map_err(backend)?,
        };
        match bytes {
            None => Ok(None),
            Some(bytes) => codec::decode_decision(&bytes)
                .map(|d| Some(Arc::new(d)))
                .map_err(|why| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    why,
                }),
        }
    }

    fn put_decision(&self, d: &Arc<Decision>, guide_count: Option<u32>) -> Result<(), StoreError> {
        self.check_failed()?;
        let lead_key = decision_key(&d.lead.lead_id);
        let value = sled::IVec::from(codec::encode_decision(d));
        let count = match (guide_count, d.guide_id()) {
            (Some(n), Some(g)) => {
                let mut k = count_prefix(d.day);
                k.extend_from_slice(g.as_bytes());
                Some((k, n))
            }
            _ => None,
        };
        self.pending.lock().insert(lead_key.clone(), value.clone());
        self.send(Msg::Put {
            lead_key: lead_key.clone(),
            value,
            count,
        })
        .inspect_err(|_| {
            self.pending.lock().remove(&lead_key);
        })
    }

    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StoreError> {
        self.flush()?;
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
        let (reply, answer) = sync_channel(1);
        self.send(Msg::Flush(reply))?;
        let result = answer
            .recv()
            .map_err(|_| StoreError::Backend("the writer has stopped".into()))?;
        result.map(|_| 0).map_err(StoreError::Backend)
    }

    fn decision_count(&self) -> Result<u64, StoreError> {
        self.flush()?;
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
        let d = Arc::new(sample_decision());
        {
            let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
            assert!(s.decision("L1").unwrap().is_none());
            s.put_decision(&d, Some(3)).unwrap();
            // Visible at once, before the writer has run.
            assert_eq!(s.decision("L1").unwrap().unwrap(), d);
            s.flush().unwrap();
        }
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        assert_eq!(s.decision("L1").unwrap().unwrap(), d);
        assert_eq!(s.day_counts(d.day).unwrap(), vec![("G1".to_string(), 3)]);
        assert!(s.day_counts(Day(d.day.0 + 1)).unwrap().is_empty());
        assert_eq!(s.decision_count().unwrap(), 1);
    }

    #[test]
    fn the_last_count_of_a_guide_wins_within_and_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        let mut d = sample_decision();
        for n in 1..=2500u32 {
            d.lead.lead_id = format!("L{n}");
            s.put_decision(&Arc::new(d.clone()), Some(n)).unwrap();
        }
        assert_eq!(s.day_counts(d.day).unwrap(), vec![("G1".to_string(), 2500)]);
        assert_eq!(s.decision_count().unwrap(), 2500);
    }

    #[test]
    fn dropping_the_store_makes_queued_writes_durable() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(sample_decision());
        {
            let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
            s.put_decision(&d, Some(1)).unwrap();
        }
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        assert!(s.decision("L1").unwrap().is_some());
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        let e = SledStore::open(dir.path(), &SledConfig::default()).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    }
}
