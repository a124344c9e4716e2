mod binding_cache;
mod counts;
mod decisions;
mod desks;
mod keys;
mod logs;
mod network;
mod trails;
mod writer;

use super::{
    Append, Appended, Decisions, LedgerCursor, Logs, Networks, Storage, StorageError, Stripes,
    TrailKey, Trails, check_chain, codec,
};
use crate::catalog::NetworkSpec;
use crate::domain::trail::{EventBody, TrailEvent};
use crate::domain::{Day, Decision};
use binding_cache::BindingCache;
use keys::*;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use writer::*;

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct SledConfig {
    /// Page cache cap in bytes (sled's `cache_capacity`). Default 256 MiB.
    pub cache_capacity: u64,
    /// Routing decisions are durable within this many milliseconds. Default 100.
    pub flush_every_ms: u64,
    /// Decisions queued for the writer before `put_decision` waits (back-pressure). Default 65536.
    pub queue: usize,
    /// Concurrent flush requests share one disk flush. Default true; false gives every request
    /// its own flush, one after another; with the server's `Options::durable_one_at_a_time`
    /// (durable requests one at a time) each flush carries its own request's writes — only to
    /// measure what group commit buys.
    pub group_commit: bool,
    /// Members whose latest binding event is kept in memory, so a returning member's route
    /// skips two reads and a decode. Default 100,000 (about 60 MB at most); 0 turns it off.
    pub binding_cache: usize,
}

impl Default for SledConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 256 * 1024 * 1024,
            flush_every_ms: 100,
            queue: 65_536,
            group_commit: true,
            binding_cache: 100_000,
        }
    }
}

/// Histogram: callers served by one disk flush (group commit).
pub const FLUSH_BATCH: &str = "leadrouter_store_flush_batch";
/// Histogram: seconds one disk flush takes.
pub const FLUSH_DURATION: &str = "leadrouter_store_flush_duration_seconds";

/// Most records the writer puts in one atomic batch.
const MAX_BATCH: usize = 1024;

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.queue.lock();
        f.debug_struct("Shared")
            .field("queued", &q.puts.len())
            .field("waiters", &q.waiters.len())
            .field("closed", &q.closed)
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// sled, the embedded default. One `Db` per process; the directory is locked while open.
///
/// Writes go through one writer thread (group commit): `put_decision` encodes the record and
/// queues it, and the decision is visible to [`Storage::decision`] at once. The writer applies
/// queued records in order at least twice per `flush_every_ms` and flushes to disk at least every
/// `flush_every_ms`; [`Storage::flush`] waits for everything queued before it, and concurrent
/// flushes share one disk sync. The queue holds at most `queue` records: past that,
/// `put_decision` waits for the writer (back-pressure) rather than grow without bound.
///
/// Keys in the `routes` tree: `d/<lead_id>` → decision record (protobuf);
/// `c/<day i32 BE><id u64 BE>` → a capacity record: the (guide, lead) pairs of one writer chunk
/// whose decisions took a guide's capacity on that day (ids length-prefixed);
/// `i/<day i32 BE><guide_id length u8><guide_id><lead_id>` → empty, the same one decision at a
/// time, as earlier versions wrote it (still read); `o/<expires_at u64 BE><lead_id>` → empty
/// while the decision's offer is open; `q/<store length u8><store><decided_at u64 BE><lead_id>`
/// → empty while the decision waits in that store's queue; `n/<seq u64 BE>` → an offer notice
/// (JSON), written under the notice lock in the order of its number. Counts are derived, so there is no counter to drift: a
/// chunk's capacity record is written before its decisions, and [`Storage::day_counts`] counts a
/// lead once, for the guide and day its stored decision names. An entry whose decision never
/// reached the disk, or that a later version replaced (an offer that moved on), counts for
/// nothing, so counts after any crash equal the stored decisions. One record per chunk instead
/// of an index key per decision halves the writer's inserts.
/// A replaced decision removes its previous offer key after it is written.
/// No sled batch or transaction is used on purpose: the first one switches every later sled read
/// to a global lock that each batch holds exclusively, which stalls route()'s idempotency reads.
/// The `meta` tree holds the network (`network`, JSON), the audit log (`a<seq>`) and disputes
/// (`D<seq>`), as JSON lines.
///
/// Trail events are written by the caller (appends are serialised per member by the caller, and
/// orders wait for a flush anyway), in the `trails` tree: `e<member length u8><member><seq u64
/// BE>` → the event's canonical JSON line; `k<t|o|r><touch, order or refund id>` → `<member
/// length u8><member><seq u64 BE>`; for a refund also `f<order id length u8><order id><refund
/// id>` → the same; for a binding event `b<member length u8><member>` → the same (the latest)
/// and `g<guide length u8><guide><member>` → empty (members a guide has held);
/// for orders and refunds `t<occurred_at><o|r><id>` → the same (the ledger in
/// time order). Keys are written before their event, and a key is trusted only when the
/// event it names is there and carries that id, so a crash between the writes leaves nothing
/// visible; the next append at that `seq` overwrites it.
#[derive(Debug)]
pub struct SledStore {
    routes: sled::Tree,
    trails: sled::Tree,
    meta: sled::Tree,
    /// Decisions queued or being written, by key: visible to reads at once.
    pending: Arc<Mutex<HashMap<Vec<u8>, Arc<Decision>>>>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    failed: Arc<Mutex<Option<String>>>,
    /// Members' latest binding events (filled on reads, replaced on appends).
    bindings: BindingCache,
    /// Members' locks: a conditional append checks the head and writes under one.
    members: Stripes,
    /// Leads' locks: a route commit checks for a stored decision and writes under one.
    leads: Stripes,
    /// Guides' counts per day.
    counts: counts::Counts,
    /// Open offers, `(expires_at_ms, lead_id)`: read from disk at open, kept by commits.
    offers: Mutex<std::collections::BTreeSet<(i64, String)>>,
    /// Claimed offers: lead id → lease end (ms).
    leases: Mutex<HashMap<String, i64>>,
    /// Taken to number an audit entry (and to save the network with its entry).
    audit_lock: Mutex<()>,
    /// Taken to save the network.
    network_lock: Mutex<()>,
    /// What replicas serve: in memory (one process opens the directory).
    replicas: Mutex<HashMap<String, super::ReplicaState>>,
    /// Disputes' keys; its lock numbers and replaces disputes.
    disputes: Mutex<super::DisputeIndex>,
    /// The last notice's number: taken to number and write a notice, so that notices land in
    /// their numbers' order (a reader never sees one before a lower one).
    notices: Mutex<u64>,
}

/// sled's errors as the contract's: damage found in the files is `Corrupt` (data loss, not a
/// reason to retry), the rest a backend failure.
fn backend(e: sled::Error) -> StorageError {
    match e {
        sled::Error::Corruption { at, .. } => StorageError::Corrupt {
            key: match at {
                Some(at) => format!("sled log at {at:?}"),
                None => "sled log".to_string(),
            },
            why: "sled found damaged data in its files".into(),
        },
        other => StorageError::Backend(other.to_string()),
    }
}

impl SledStore {
    /// The event an index key points at (`<member length><member><seq>`), when it is there.
    /// Callers still check that it is the event the key names.
    fn event_at(&self, at: &[u8]) -> Result<Option<TrailEvent>, StorageError> {
        let mut ek = Vec::with_capacity(1 + at.len());
        ek.push(b'e');
        ek.extend_from_slice(at);
        match self.trails.get(&ek).map_err(backend)? {
            None => Ok(None),
            Some(v) => decode_event(&ek, &v).map(Some),
        }
    }

    /// [`Storage::latest_binding`] from disk.
    fn latest_binding_on_disk(&self, member_id: &str) -> Result<Option<TrailEvent>, StorageError> {
        // The pointer is written before its event, so no pointer means no binding event.
        let Some(at) = self.trails.get(binding_key(member_id)).map_err(backend)? else {
            return Ok(None);
        };
        if let Some(e) = self.event_at(&at)?
            && e.member_id == member_id
            && e.binding().is_some()
        {
            return Ok(Some(e));
        }
        // A pointer written just before a crash whose event never landed: the latest binding
        // event is found by reading the trail back.
        let mut before = u64::MAX;
        loop {
            let chunk = self.trail_before(member_id, before, 256)?;
            let Some(last) = chunk.last().map(|e| e.seq) else {
                return Ok(None);
            };
            if let Some(e) = chunk.into_iter().find(|e| e.binding().is_some()) {
                return Ok(Some(e));
            }
            before = last;
        }
    }

    pub fn open(dir: &Path, config: &SledConfig) -> Result<Self, StorageError> {
        // sled starts over on a directory whose configuration is there but whose log is not;
        // say so instead of serving an empty store (or reporting "corruption at None").
        if dir.join("conf").exists() && !dir.join("db").exists() {
            return Err(StorageError::Backend(format!(
                "the data directory {} has sled's conf but its database file db is missing: restore the directory from a backup",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            StorageError::Backend(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let open = || {
            sled::Config::new()
                .path(dir)
                .cache_capacity(config.cache_capacity)
                // 25% less CPU per decision than the default LowSpace here, for more disk.
                .mode(sled::Mode::HighThroughput)
                // The writer below flushes on this store's interval; sled's own flusher would
                // only flush the same data a second time.
                .flush_every_ms(None)
                .open()
                .map_err(|e| match e {
                    sled::Error::Io(ref io)
                        if io.kind() == std::io::ErrorKind::WouldBlock
                            || io.to_string().contains("lock") =>
                    {
                        StorageError::Locked {
                            path: dir.display().to_string(),
                        }
                    }
                    other => backend(other),
                })
        };
        // sled releases its lock on the directory from its I/O threads shortly after the last
        // handle is dropped, so a store reopened in the same process may find it still held
        // for a moment. Another process's lock is reported after a second of retries.
        let mut tries = 0;
        let db = loop {
            match open() {
                Err(StorageError::Locked { .. }) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => break other?,
            }
        };
        // sled's flush ends in sync_file_range on Linux, which neither empties the disk's write
        // cache nor records the file's growth: not durable through a power loss. The writer
        // follows each flush with fdatasync on sled's log file, through this handle.
        let log = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("db"))
            .map_err(|e| {
                StorageError::Backend(format!(
                    "cannot open sled's log file {} to sync it: {e}",
                    dir.join("db").display()
                ))
            })?;
        let routes = db.open_tree("routes").map_err(backend)?;
        let meta = db.open_tree("meta").map_err(backend)?;
        let trails = db.open_tree("trails").map_err(backend)?;
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let failed = Arc::new(Mutex::new(None));
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            dirty: std::sync::atomic::AtomicBool::new(false),
            flushes: std::sync::atomic::AtomicU64::new(0),
            wake_writer: Condvar::new(),
            space: Condvar::new(),
            capacity: config.queue.max(1),
        });
        let writer = {
            let (db, routes, pending, failed, shared) = (
                db.clone(),
                routes.clone(),
                pending.clone(),
                failed.clone(),
                shared.clone(),
            );
            let every = Duration::from_millis(config.flush_every_ms.max(1));
            let group = config.group_commit;
            std::thread::Builder::new()
                .name("leadrouter-sled-writer".into())
                .spawn(move || {
                    let disk = Disk { db: &db, log: &log };
                    writer_loop(&shared, &disk, &routes, &pending, &failed, every, group)
                })
                .map_err(|e| StorageError::Backend(format!("cannot start the writer: {e}")))?
        };
        let store = Self {
            routes,
            trails,
            meta,
            pending,
            shared,
            writer: Mutex::new(Some(writer)),
            failed,
            bindings: BindingCache::new(config.binding_cache),
            members: Stripes::new(1024),
            leads: Stripes::new(1024),
            counts: counts::Counts::new(),
            offers: Mutex::new(Default::default()),
            leases: Mutex::new(HashMap::new()),
            audit_lock: Mutex::new(()),
            network_lock: Mutex::new(()),
            replicas: Mutex::new(HashMap::new()),
            disputes: Mutex::new(Default::default()),
            notices: Mutex::new(0),
        };
        *store.disputes.lock() = store.index_disputes()?;
        *store.notices.lock() = store.last_notice_on_disk()?;
        let open = store.open_offers_on_disk()?;
        store
            .offers
            .lock()
            .extend(open.iter().filter_map(|d| super::open_offer(d)));
        Ok(store)
    }

    /// Tells the writer that something written outside its queue needs flushing on time.
    fn mark_dirty(&self) {
        self.shared
            .dirty
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Disk flushes done since the store was opened.
    pub fn flushes(&self) -> u64 {
        self.shared
            .flushes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn put(&self, d: &Arc<Decision>, takes: bool, stale: Vec<Vec<u8>>) -> Result<(), StorageError> {
        self.check_failed()?;
        let lead_key = decision_key(d.lead.lead_id.as_bytes());
        let previous = self.pending.lock().insert(lead_key.clone(), d.clone());
        self.enqueue(Put {
            lead_key: lead_key.clone(),
            decision: d.clone(),
            takes: takes && d.guide_id().is_some(),
            offer_key: offer_key(d),
            queue_key: queue_key(d),
            stale,
        })
        .inspect_err(|_| {
            let mut p = self.pending.lock();
            match previous {
                Some(prev) => p.insert(lead_key.clone(), prev),
                None => p.remove(&lead_key),
            };
        })
    }

    fn check_failed(&self) -> Result<(), StorageError> {
        match &*self.failed.lock() {
            Some(e) => Err(StorageError::Backend(format!("the writer failed: {e}"))),
            None => Ok(()),
        }
    }

    fn enqueue(&self, put: Put) -> Result<(), StorageError> {
        let mut q = self.shared.queue.lock();
        while q.puts.len() >= self.shared.capacity && !q.closed {
            self.shared.wake_writer.notify_one();
            self.shared.space.wait(&mut q);
        }
        if q.closed {
            return Err(StorageError::Backend("the store is closed".into()));
        }
        q.puts.push(put);
        if q.puts.len() >= MAX_BATCH {
            self.shared.wake_writer.notify_one();
        }
        Ok(())
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.shared.queue.lock().closed = true;
        self.shared.wake_writer.notify_one();
        self.shared.space.notify_all();
        if let Some(w) = self.writer.lock().take() {
            let _ = w.join();
        }
    }
}

impl Storage for SledStore {
    fn flush(&self) -> Result<usize, StorageError> {
        let (reply, answer) = sync_channel(1);
        self.flush_then(Box::new(move |r| {
            let _ = reply.send(r);
        }));
        answer
            .recv()
            .map_err(|_| StorageError::Backend("the writer has stopped".into()))?
            .map(|()| 0)
    }

    fn flush_then(&self, done: super::FlushDone) {
        {
            let mut q = self.shared.queue.lock();
            if q.closed {
                drop(q);
                done(Err(StorageError::Backend("the store is closed".into())));
                return;
            }
            q.waiters.push(done);
        }
        self.shared.wake_writer.notify_one();
    }
}

#[cfg(test)]
mod tests;
