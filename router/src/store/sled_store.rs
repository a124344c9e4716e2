use super::binding_cache::BindingCache;
use super::{LedgerCursor, Store, StoreError, TrailKey, codec};
use crate::catalog::NetworkSpec;
use crate::domain::trail::{EventBody, TrailEvent};
use crate::domain::{Day, Decision};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
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
    /// Concurrent flush requests share one disk flush. Default true; false gives every request
    /// its own flush, one after another, and tells callers ([`Store::shares_flushes`]) to run
    /// durable requests one at a time, so each flush carries its own request's writes — only to
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

/// One queued decision.
struct Put {
    lead_key: Vec<u8>,
    /// Encoded by the writer, off route()'s path.
    decision: Arc<Decision>,
    /// The decision took its guide's capacity: the writer lists it in a capacity record.
    takes: bool,
    /// `o/…` key of an open offer, when the decision is one.
    offer_key: Option<Vec<u8>>,
    /// Keys the decision replaces (the previous version's offer key), removed after it is
    /// written.
    stale: Vec<Vec<u8>>,
}

/// Told the outcome once everything queued before it is applied and flushed.
type Waiter = super::FlushDone;

#[derive(Default)]
struct Queue {
    puts: Vec<Put>,
    /// Replied to once everything queued before them is applied and flushed.
    waiters: Vec<Waiter>,
    closed: bool,
}

/// The queue between route() and the writer. Pushing takes an uncontended lock and no system
/// call; the writer sleeps on a timer and is woken early only for a full batch or a flush.
struct Shared {
    queue: Mutex<Queue>,
    /// Set by writes made outside the queue (trail events), so the writer flushes them on time.
    dirty: std::sync::atomic::AtomicBool,
    /// Disk flushes done so far.
    flushes: std::sync::atomic::AtomicU64,
    wake_writer: Condvar,
    space: Condvar,
    capacity: usize,
}

/// sled, the embedded default. One `Db` per process; the directory is locked while open.
///
/// Writes go through one writer thread (group commit): `put_decision` encodes the record and
/// queues it, and the decision is visible to [`Store::decision`] at once. The writer applies
/// queued records in order at least twice per `flush_every_ms` and flushes to disk at least every
/// `flush_every_ms`; [`Store::flush`] waits for everything queued before it, and concurrent
/// flushes share one disk sync. The queue holds at most `queue` records: past that,
/// `put_decision` waits for the writer (back-pressure) rather than grow without bound.
///
/// Keys in the `routes` tree: `d/<lead_id>` → decision record (protobuf);
/// `c/<day i32 BE><id u64 BE>` → a capacity record: the (guide, lead) pairs of one writer chunk
/// whose decisions took a guide's capacity on that day (ids length-prefixed);
/// `i/<day i32 BE><guide_id length u8><guide_id><lead_id>` → empty, the same one decision at a
/// time, as earlier versions wrote it (still read); `o/<expires_at u64 BE><lead_id>` → empty
/// while the decision's offer is open. Counts are derived, so there is no counter to drift: a
/// chunk's capacity record is written before its decisions, and [`Store::day_counts`] counts a
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
    group_commit: bool,
}

/// sled's errors as the contract's: damage found in the files is `Corrupt` (data loss, not a
/// reason to retry), the rest a backend failure.
fn backend(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            key: match at {
                Some(at) => format!("sled log at {at:?}"),
                None => "sled log".to_string(),
            },
            why: "sled found damaged data in its files".into(),
        },
        other => StoreError::Backend(other.to_string()),
    }
}

fn decision_key(lead_id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + lead_id.len());
    k.extend_from_slice(b"d/");
    k.extend_from_slice(lead_id);
    k
}

fn index_prefix(day: Day) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + 48);
    k.extend_from_slice(b"i/");
    k.extend_from_slice(&day.0.to_be_bytes());
    k
}

/// The per-decision index key that stores wrote before capacity records (read, never written).
#[cfg(test)]
fn index_key(day: Day, guide_id: &str, lead_id: &str) -> Vec<u8> {
    let mut k = index_prefix(day);
    push_id(&mut k, guide_id);
    k.extend_from_slice(lead_id.as_bytes());
    k
}

/// `c/<day i32 BE>`: where a day's capacity records start.
fn count_prefix(day: Day) -> Vec<u8> {
    let mut k = Vec::with_capacity(14);
    k.extend_from_slice(b"c/");
    k.extend_from_slice(&day.0.to_be_bytes());
    k
}

/// Appends `id` with its length byte in front, as every key and record here holds ids. Ids are at
/// most 128 bytes (checked on input), so the length fits a byte.
fn push_id(buf: &mut Vec<u8>, id: &str) {
    buf.push(id.len().min(255) as u8);
    buf.extend_from_slice(id.as_bytes());
}

/// One id with its length byte in front (as [`push_id`] wrote it); the rest after it.
fn take_id(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    (rest.len() >= usize::from(len)).then(|| rest.split_at(usize::from(len)))
}

/// The capacity records of one writer chunk, one per business day in it: `<guide length u8>
/// <guide><lead length u8><lead>` for each decision that took a guide's capacity.
fn capacity_records(chunk: &[Put]) -> Vec<(Day, Vec<u8>)> {
    let mut out: Vec<(Day, Vec<u8>)> = Vec::new();
    for p in chunk.iter().filter(|p| p.takes) {
        let Some(guide) = p.decision.guide_id() else {
            continue;
        };
        let day = p.decision.day;
        let i = match out.iter().position(|(d, _)| *d == day) {
            Some(i) => i,
            None => {
                out.push((day, Vec::with_capacity(64 * chunk.len())));
                out.len() - 1
            }
        };
        push_id(&mut out[i].1, guide);
        push_id(&mut out[i].1, &p.decision.lead.lead_id);
    }
    out
}

/// `o/<expires_at u64 BE><lead_id>` while a decision's offer is open.
fn offer_key(d: &Decision) -> Option<Vec<u8>> {
    let o = d.offer.as_ref()?;
    if o.status != crate::domain::offer::OfferStatus::Open {
        return None;
    }
    let mut k = Vec::with_capacity(10 + d.lead.lead_id.len());
    k.extend_from_slice(b"o/");
    k.extend_from_slice(&(o.expires_at_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(d.lead.lead_id.as_bytes());
    Some(k)
}

fn member_prefix(member_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + member_id.len() + 8);
    k.push(b'e');
    push_id(&mut k, member_id);
    k
}

fn event_key(member_id: &str, seq: u64) -> Vec<u8> {
    let mut k = member_prefix(member_id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn trail_key(key: TrailKey<'_>) -> Vec<u8> {
    let (tag, id) = key.tag();
    let mut k = Vec::with_capacity(2 + id.len());
    k.push(b'k');
    k.push(tag);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `b<member length u8><member>`: the member's latest binding event.
fn binding_key(member_id: &str) -> Vec<u8> {
    let mut k = member_prefix(member_id);
    k[0] = b'b';
    k
}

/// `g<guide length u8><guide><member>`: the member has been bound to the guide.
fn guide_member_key(guide_id: &str, member_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + guide_id.len() + member_id.len());
    k.push(b'g');
    push_id(&mut k, guide_id);
    k.extend_from_slice(member_id.as_bytes());
    k
}

/// `f<order_id length u8><order_id><refund_id>`: one per refund, pointing at its event.
fn refund_prefix(order_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + order_id.len() + 16);
    k.push(b'f');
    push_id(&mut k, order_id);
    k
}

/// `t<occurred_at, sign-flipped u64 BE><o|r><id>`: orders and refunds in time order.
fn ledger_key(c: &LedgerCursor) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + c.id.len());
    k.push(b't');
    k.extend_from_slice(&((c.occurred_at_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.push(c.tag);
    k.extend_from_slice(c.id.as_bytes());
    k
}

fn decode_event(key: &[u8], bytes: &[u8]) -> Result<TrailEvent, StoreError> {
    std::str::from_utf8(bytes)
        .map_err(|e| e.to_string())
        .and_then(TrailEvent::from_line)
        .map_err(|why| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            why,
        })
}

/// `(seq, hash)` of a stored event without decoding it: `seq` ends the key, and `hash` is the
/// last member of the canonical line (`…,"hash":"<64 hex>"}`). `None` when the line does not
/// end that way (then the caller decodes it).
fn head_of(key: &[u8], line: &[u8]) -> Option<(u64, String)> {
    let seq = u64::from_be_bytes(key.get(key.len().checked_sub(8)?..)?.try_into().ok()?);
    let tail = line.get(line.len().checked_sub(74)?..)?;
    let hash = tail.strip_prefix(b"\"hash\":\"")?.strip_suffix(b"\"}")?;
    if hash.len() != 64 || !hash.iter().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((seq, String::from_utf8_lossy(hash).into_owned()))
}

impl SledStore {
    /// The event an index key points at (`<member length><member><seq>`), when it is there.
    /// Callers still check that it is the event the key names.
    fn event_at(&self, at: &[u8]) -> Result<Option<TrailEvent>, StoreError> {
        let mut ek = Vec::with_capacity(1 + at.len());
        ek.push(b'e');
        ek.extend_from_slice(at);
        match self.trails.get(&ek).map_err(backend)? {
            None => Ok(None),
            Some(v) => decode_event(&ek, &v).map(Some),
        }
    }

    /// [`Store::latest_binding`] from disk.
    fn latest_binding_on_disk(&self, member_id: &str) -> Result<Option<TrailEvent>, StoreError> {
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

    pub fn open(dir: &Path, config: &SledConfig) -> Result<Self, StoreError> {
        // sled starts over on a directory whose configuration is there but whose log is not;
        // say so instead of serving an empty store (or reporting "corruption at None").
        if dir.join("conf").exists() && !dir.join("db").exists() {
            return Err(StoreError::Backend(format!(
                "the data directory {} has sled's conf but its database file db is missing: restore the directory from a backup",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!(
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
                        StoreError::Locked {
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
                Err(StoreError::Locked { .. }) if tries < 20 => {
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
                StoreError::Backend(format!(
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
                .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?
        };
        Ok(Self {
            routes,
            trails,
            meta,
            pending,
            shared,
            writer: Mutex::new(Some(writer)),
            failed,
            bindings: BindingCache::new(config.binding_cache),
            group_commit: config.group_commit,
        })
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

    fn put(
        &self,
        d: &Arc<Decision>,
        guide_count: Option<u32>,
        stale: Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        self.check_failed()?;
        let lead_key = decision_key(d.lead.lead_id.as_bytes());
        let previous = self.pending.lock().insert(lead_key.clone(), d.clone());
        self.enqueue(Put {
            lead_key: lead_key.clone(),
            decision: d.clone(),
            takes: guide_count.is_some() && d.guide_id().is_some(),
            offer_key: offer_key(d),
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

    fn check_failed(&self) -> Result<(), StoreError> {
        match &*self.failed.lock() {
            Some(e) => Err(StoreError::Backend(format!("the writer failed: {e}"))),
            None => Ok(()),
        }
    }

    fn enqueue(&self, put: Put) -> Result<(), StoreError> {
        let mut q = self.shared.queue.lock();
        while q.puts.len() >= self.shared.capacity && !q.closed {
            self.shared.wake_writer.notify_one();
            self.shared.space.wait(&mut q);
        }
        if q.closed {
            return Err(StoreError::Backend("the store is closed".into()));
        }
        q.puts.push(put);
        if q.puts.len() >= MAX_BATCH {
            self.shared.wake_writer.notify_one();
        }
        Ok(())
    }
}

/// What the writer flushes: sled, then its log file with fdatasync.
struct Disk<'a> {
    db: &'a sled::Db,
    log: &'a std::fs::File,
}

impl Disk<'_> {
    fn flush(&self) -> Result<(), String> {
        self.db.flush().map_err(|e| e.to_string())?;
        self.log
            .sync_data()
            .map_err(|e| format!("fdatasync of sled's log: {e}"))
    }
}

fn writer_loop(
    shared: &Shared,
    disk: &Disk<'_>,
    routes: &sled::Tree,
    pending: &Mutex<HashMap<Vec<u8>, Arc<Decision>>>,
    failed: &Mutex<Option<String>>,
    every: Duration,
    group_commit: bool,
) {
    let mut last_flush = Instant::now();
    let mut dirty = false;
    let batch_size = metrics::histogram!(FLUSH_BATCH);
    let flush_time = metrics::histogram!(FLUSH_DURATION);
    loop {
        let (puts, waiters, closed) = {
            let mut q = shared.queue.lock();
            if q.puts.len() < MAX_BATCH && q.waiters.is_empty() && !q.closed {
                // Apply at least twice per flush interval, so a decision is on disk within it.
                shared.wake_writer.wait_for(&mut q, every / 2);
            }
            // One chunk per cycle, so a producer blocked on a full queue waits for one chunk,
            // not for the whole queue; a flush takes everything queued before it.
            let waiters = std::mem::take(&mut q.waiters);
            let n = if waiters.is_empty() && !q.closed {
                q.puts.len().min(MAX_BATCH)
            } else {
                q.puts.len()
            };
            (q.puts.drain(..n).collect::<Vec<_>>(), waiters, q.closed)
        };
        shared.space.notify_all();
        for chunk in puts.chunks(MAX_BATCH) {
            // Capacity records first: a crash before the decisions land leaves entries whose
            // decision is missing, which day_counts() does not count.
            let written = capacity_records(chunk)
                .into_iter()
                .try_for_each(|(day, record)| {
                    let mut k = count_prefix(day);
                    k.extend_from_slice(&disk.db.generate_id()?.to_be_bytes());
                    routes.insert(k, record).map(|_| ())
                })
                .and_then(|()| {
                    chunk.iter().try_for_each(|p| {
                        if let Some(k) = &p.offer_key {
                            routes.insert(k.as_slice(), &[])?;
                        }
                        routes
                            .insert(p.lead_key.as_slice(), codec::encode_decision(&p.decision))?;
                        for k in &p.stale {
                            if Some(k) != p.offer_key.as_ref() {
                                routes.remove(k.as_slice())?;
                            }
                        }
                        Ok::<(), sled::Error>(())
                    })
                });
            if let Err(e) = written {
                tracing::error!(error = %e, "writing decisions failed");
                *failed.lock() = Some(e.to_string());
                break;
            }
            let mut p = pending.lock();
            for put in chunk {
                // Only if no newer version of the decision was queued since.
                if p.get(&put.lead_key)
                    .is_some_and(|d| Arc::ptr_eq(d, &put.decision))
                {
                    p.remove(&put.lead_key);
                }
            }
            dirty = true;
        }
        if shared
            .dirty
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            dirty = true;
        }
        if !waiters.is_empty() || closed || (dirty && last_flush.elapsed() >= every) {
            // Not `match &*failed.lock()`: the guard would live through the flush and stall
            // every put_decision and trail append (they check `failed`) for its duration.
            let flush = || {
                let failure = failed.lock().clone();
                let started = Instant::now();
                let result = match failure {
                    Some(e) => Err(e),
                    None => disk.flush(),
                };
                flush_time.record(started.elapsed().as_secs_f64());
                shared
                    .flushes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                result
            };
            if group_commit || waiters.is_empty() {
                let result = flush();
                if !waiters.is_empty() {
                    batch_size.record(waiters.len() as f64);
                }
                for w in waiters {
                    w(result.clone().map_err(StoreError::Backend));
                }
            } else {
                for w in waiters {
                    let result = flush();
                    batch_size.record(1.0);
                    w(result.map_err(StoreError::Backend));
                }
            }
            last_flush = Instant::now();
            dirty = false;
        }
        if closed && shared.queue.lock().puts.is_empty() {
            break;
        }
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

impl Store for SledStore {
    fn decision(&self, lead_id: &str) -> Result<Option<Arc<Decision>>, StoreError> {
        let key = decision_key(lead_id.as_bytes());
        if let Some(d) = self.pending.lock().get(&key) {
            return Ok(Some(d.clone()));
        }
        match self.routes.get(&key).map_err(backend)? {
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
        self.put(d, guide_count, Vec::new())
    }

    fn replace_decision(
        &self,
        previous: &Decision,
        d: &Arc<Decision>,
        guide_count: Option<u32>,
    ) -> Result<(), StoreError> {
        // The previous version's capacity entry stays: day_counts() counts a lead only for the
        // guide and day its decision names now.
        self.put(d, guide_count, offer_key(previous).into_iter().collect())
    }

    fn open_offers(&self) -> Result<Vec<Arc<Decision>>, StoreError> {
        let mut out = Vec::new();
        for kv in self.routes.scan_prefix(b"o/") {
            let (k, _) = kv.map_err(backend)?;
            let Some(lead) = k.get(10..) else { continue };
            let Some(d) = self.decision(&String::from_utf8_lossy(lead))? else {
                continue;
            };
            // Trusted only when the decision still holds that open offer.
            if offer_key(&d).as_deref() == Some(&k[..]) {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn day_counts(&self, day: Day) -> Result<Vec<(String, u32)>, StoreError> {
        self.flush()?;
        // Every (guide, lead) that took capacity on `day`: from capacity records, and from the
        // per-decision index keys that stores before capacity records wrote.
        let mut claims: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
        let prefix = count_prefix(day);
        for kv in self.routes.scan_prefix(&prefix) {
            let (k, v) = kv.map_err(backend)?;
            let corrupt = || StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                why: "capacity record is truncated".into(),
            };
            let mut rest = &v[..];
            while !rest.is_empty() {
                let (guide, r) = take_id(rest).ok_or_else(corrupt)?;
                let (lead, r) = take_id(r).ok_or_else(corrupt)?;
                claims
                    .entry(lead.to_vec())
                    .or_default()
                    .push(guide.to_vec());
                rest = r;
            }
        }
        let prefix = index_prefix(day);
        for kv in self.routes.scan_prefix(&prefix) {
            let (k, _) = kv.map_err(backend)?;
            let (guide, lead) = take_id(&k[prefix.len()..])
                .map(|(g, lead)| (g.to_vec(), lead.to_vec()))
                .ok_or_else(|| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    why: "index key is truncated".into(),
                })?;
            claims.entry(lead).or_default().push(guide);
        }
        // A lead counts once, for the guide its stored decision names on that day: an entry
        // whose decision was lost in a crash, or that a later version (an offer that moved on)
        // replaced, counts for nothing.
        let mut counts: HashMap<String, u32> = HashMap::new();
        for (lead, guides) in claims {
            let lead = String::from_utf8_lossy(&lead);
            let Some(d) = self.decision(&lead)? else {
                continue;
            };
            if d.day != day {
                continue;
            }
            if let Some(g) = d.guide_id()
                && guides.iter().any(|c| c.as_slice() == g.as_bytes())
            {
                *counts.entry(g.to_string()).or_default() += 1;
            }
        }
        let mut out: Vec<(String, u32)> = counts.into_iter().collect();
        out.sort();
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
        self.flush()?;
        Ok(())
    }

    fn flush(&self) -> Result<usize, StoreError> {
        let (reply, answer) = sync_channel(1);
        self.flush_then(Box::new(move |r| {
            let _ = reply.send(r);
        }));
        answer
            .recv()
            .map_err(|_| StoreError::Backend("the writer has stopped".into()))?
            .map(|()| 0)
    }

    fn shares_flushes(&self) -> bool {
        self.group_commit
    }

    fn flush_then(&self, done: super::FlushDone) {
        {
            let mut q = self.shared.queue.lock();
            if q.closed {
                drop(q);
                done(Err(StoreError::Backend("the store is closed".into())));
                return;
            }
            q.waiters.push(done);
        }
        self.shared.wake_writer.notify_one();
    }

    fn decision_count(&self) -> Result<u64, StoreError> {
        self.flush()?;
        Ok(self.routes.scan_prefix(b"d/").count() as u64)
    }

    fn scan_decisions(&self, f: &mut dyn FnMut(Arc<Decision>) -> bool) -> Result<(), StoreError> {
        self.flush()?;
        for kv in self.routes.scan_prefix(b"d/") {
            let (k, v) = kv.map_err(backend)?;
            let d = codec::decode_decision(&v).map_err(|why| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                why,
            })?;
            if !f(Arc::new(d)) {
                break;
            }
        }
        Ok(())
    }

    fn trail_head(&self, member_id: &str) -> Result<Option<(u64, String)>, StoreError> {
        match self
            .trails
            .scan_prefix(member_prefix(member_id))
            .next_back()
        {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv.map_err(backend)?;
                if let Some(head) = head_of(&k, &v) {
                    return Ok(Some(head));
                }
                let e = decode_event(&k, &v)?;
                Ok(Some((e.seq, e.hash)))
            }
        }
    }

    fn trail_from(
        &self,
        member_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StoreError> {
        let start = event_key(member_id, from_seq);
        let end = event_key(member_id, u64::MAX);
        self.trails
            .range(start..=end)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                decode_event(&k, &v)
            })
            .collect()
    }

    fn trail_before(
        &self,
        member_id: &str,
        before_seq: u64,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StoreError> {
        let start = event_key(member_id, 0);
        let end = event_key(member_id, before_seq);
        self.trails
            .range(start..end)
            .rev()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                decode_event(&k, &v)
            })
            .collect()
    }

    fn trail_event(&self, key: TrailKey<'_>) -> Result<Option<TrailEvent>, StoreError> {
        let Some(at) = self.trails.get(trail_key(key)).map_err(backend)? else {
            return Ok(None);
        };
        Ok(self.event_at(&at)?.filter(|e| key.matches(e)))
    }

    fn append_trail(
        &self,
        event: &TrailEvent,
        line: &str,
        key: Option<TrailKey<'_>>,
    ) -> Result<(), StoreError> {
        self.check_failed()?;
        let ek = event_key(&event.member_id, event.seq);
        // The keys first: see the type's docs.
        if let Some(key) = key {
            self.trails
                .insert(trail_key(key), &ek[1..])
                .map_err(backend)?;
        }
        if let Some(c) = LedgerCursor::of(event) {
            self.trails
                .insert(ledger_key(&c), &ek[1..])
                .map_err(backend)?;
        }
        if let Some(b) = event.binding() {
            self.trails
                .insert(binding_key(&event.member_id), &ek[1..])
                .map_err(backend)?;
            self.trails
                .insert(guide_member_key(&b.state.guide_id, &event.member_id), &[])
                .map_err(backend)?;
        }
        if let Some(r) = event.refund() {
            let mut fk = refund_prefix(&r.order_id);
            fk.extend_from_slice(r.refund_id.as_bytes());
            self.trails.insert(fk, &ek[1..]).map_err(backend)?;
        }
        if let Some(a) = event.adjustment() {
            // 0x01 keeps adjustment ids apart from refund ids (ids are printable ASCII).
            let mut fk = refund_prefix(&a.order_id);
            fk.push(1);
            fk.extend_from_slice(a.adjustment_id.as_bytes());
            self.trails.insert(fk, &ek[1..]).map_err(backend)?;
        }
        self.trails.insert(ek, line.as_bytes()).map_err(backend)?;
        if event.binding().is_some() {
            self.bindings.appended(event);
        }
        self.mark_dirty();
        Ok(())
    }

    fn ledger_events(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<&LedgerCursor>,
        limit: usize,
    ) -> Result<Vec<TrailEvent>, StoreError> {
        let start = ledger_key(&LedgerCursor::first_at(from_ms));
        let end = ledger_key(&LedgerCursor::first_at(to_ms));
        let start = match after {
            Some(a) => {
                let mut k = ledger_key(a);
                // Strictly after the cursor's own key.
                k.push(0);
                k.max(start)
            }
            None => start,
        };
        let mut out = Vec::new();
        if start >= end {
            return Ok(out);
        }
        for kv in self.trails.range(start..end) {
            if out.len() >= limit {
                break;
            }
            let (k, at) = kv.map_err(backend)?;
            // Trusted only when the event is the one the key names (a crash may have lost it).
            if let Some(e) = self.event_at(&at)?
                && LedgerCursor::of(&e).is_some_and(|c| ledger_key(&c) == k.as_ref())
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn follow_ups_of(&self, order_id: &str) -> Result<Vec<TrailEvent>, StoreError> {
        let prefix = refund_prefix(order_id);
        let mut out = Vec::new();
        for kv in self.trails.scan_prefix(&prefix) {
            let (k, at) = kv.map_err(backend)?;
            let id = &k[prefix.len()..];
            // Trusted only when the event is there and is this refund or adjustment of this
            // order.
            let Some(e) = self.event_at(&at)? else {
                continue;
            };
            let ours = match (&e.body, id.split_first()) {
                (EventBody::Refund(r), _) => r.order_id == order_id && r.refund_id.as_bytes() == id,
                (EventBody::Adjustment(a), Some((1, rest))) => {
                    a.order_id == order_id && a.adjustment_id.as_bytes() == rest
                }
                _ => false,
            };
            if ours {
                out.push(e);
            }
        }
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }

    fn scan_trails(&self, f: &mut dyn FnMut(TrailEvent) -> bool) -> Result<(), StoreError> {
        for kv in self.trails.scan_prefix(b"e") {
            let (k, v) = kv.map_err(backend)?;
            if !f(decode_event(&k, &v)?) {
                break;
            }
        }
        Ok(())
    }

    fn scan_trails_lossy(
        &self,
        f: &mut dyn FnMut(TrailEvent) -> bool,
        damaged: &mut dyn FnMut(StoreError),
    ) -> Result<(), StoreError> {
        for kv in self.trails.scan_prefix(b"e") {
            let (k, v) = kv.map_err(backend)?;
            match decode_event(&k, &v) {
                Ok(e) => {
                    if !f(e) {
                        break;
                    }
                }
                Err(e) => damaged(e),
            }
        }
        Ok(())
    }

    fn latest_binding(&self, member_id: &str) -> Result<Option<TrailEvent>, StoreError> {
        let miss = match self.bindings.get(member_id) {
            Ok(e) => return Ok(Some(TrailEvent::clone(&e))),
            Err(miss) => miss,
        };
        let found = self.latest_binding_on_disk(member_id)?;
        if let Some(e) = &found {
            self.bindings.fill(miss, e);
        }
        Ok(found)
    }

    fn members_of(
        &self,
        guide_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = guide_member_key(guide_id, "");
        let start = match after {
            Some(a) => {
                let mut k = guide_member_key(guide_id, a);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for kv in self.trails.range(start..) {
            let (k, _) = kv.map_err(backend)?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    fn append_audit(&self, seq: u64, line: &str) -> Result<(), StoreError> {
        self.check_failed()?;
        self.meta
            .insert(audit_key(seq), line.as_bytes())
            .map_err(backend)?;
        self.mark_dirty();
        Ok(())
    }

    fn audit_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let mut out = Vec::new();
        for kv in self
            .meta
            .range(audit_key(from_seq)..audit_key(u64::MAX))
            .take(limit)
        {
            let (k, v) = kv.map_err(backend)?;
            out.push((audit_seq(&k)?, utf8(&k, &v)?));
        }
        Ok(out)
    }

    fn audit_head(&self) -> Result<Option<u64>, StoreError> {
        match self.meta.scan_prefix(b"a").next_back() {
            None => Ok(None),
            Some(kv) => audit_seq(&kv.map_err(backend)?.0).map(Some),
        }
    }

    fn put_dispute(&self, seq: u64, line: &str) -> Result<(), StoreError> {
        self.check_failed()?;
        self.meta
            .insert(seq_key(b'D', seq), line.as_bytes())
            .map_err(backend)?;
        self.mark_dirty();
        Ok(())
    }

    fn disputes_from(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let mut out = Vec::new();
        for kv in self
            .meta
            .range(seq_key(b'D', from_seq)..=seq_key(b'D', u64::MAX))
            .take(limit)
        {
            let (k, v) = kv.map_err(backend)?;
            out.push((audit_seq(&k)?, utf8(&k, &v)?));
        }
        Ok(out)
    }

    fn dispute_head(&self) -> Result<Option<u64>, StoreError> {
        match self.meta.scan_prefix(b"D").next_back() {
            None => Ok(None),
            Some(kv) => audit_seq(&kv.map_err(backend)?.0).map(Some),
        }
    }
}

/// `a<seq u64 BE>` in the `meta` tree: one audit entry.
fn audit_key(seq: u64) -> [u8; 9] {
    seq_key(b'a', seq)
}

/// `<tag><seq u64 BE>` in the `meta` tree: `a` audit entries, `D` disputes.
fn seq_key(tag: u8, seq: u64) -> [u8; 9] {
    let mut k = [tag; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn audit_seq(key: &[u8]) -> Result<u64, StoreError> {
    key.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            why: "an audit key is `a` and 8 bytes of seq".into(),
        })
}

fn utf8(key: &[u8], value: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(value.to_vec()).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        why: e.to_string(),
    })
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
        assert_eq!(s.day_counts(d.day).unwrap(), vec![("G1".to_string(), 1)]);
        assert!(s.day_counts(Day(d.day.0 + 1)).unwrap().is_empty());
        assert_eq!(s.decision_count().unwrap(), 1);
    }

    #[test]
    fn counts_follow_stored_decisions_and_entries_without_one_count_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        let mut d = sample_decision();
        for n in 1..=2500u32 {
            d.lead.lead_id = format!("L{n}");
            s.put_decision(&Arc::new(d.clone()), Some(n)).unwrap();
        }
        // Unrouted decisions take nothing.
        let mut u = sample_decision();
        u.lead.lead_id = "U1".into();
        u.assigned = None;
        s.put_decision(&Arc::new(u), None).unwrap();
        assert_eq!(s.day_counts(d.day).unwrap(), vec![("G1".to_string(), 2500)]);
        assert_eq!(s.decision_count().unwrap(), 2501);
        // 2500 decisions took capacity in a capacity record per writer chunk, not an index key
        // each (the writer wakes at least every 50 ms, so a slow machine makes more chunks).
        let records = s.routes.scan_prefix(count_prefix(d.day)).count();
        assert!((1..=250).contains(&records), "{records} capacity records");
        assert_eq!(s.routes.scan_prefix(index_prefix(d.day)).count(), 0);
        // A crash between a capacity record and its decisions leaves entries whose decision is
        // missing; legacy index keys likewise. Neither is counted; a legacy key whose decision
        // is there is.
        let mut record = Vec::new();
        for id in ["G1", "lost", "G2", "lost-too"] {
            record.push(id.len() as u8);
            record.extend_from_slice(id.as_bytes());
        }
        let mut k = count_prefix(d.day);
        k.extend_from_slice(&u64::MAX.to_be_bytes());
        s.routes.insert(k, record).unwrap();
        s.routes
            .insert(index_key(d.day, "G1", "lost-three"), &[])
            .unwrap();
        d.lead.lead_id = "legacy".into();
        d.assigned = Some(("S3".into(), "G3".into()));
        s.routes
            .insert(decision_key(b"legacy"), codec::encode_decision(&d))
            .unwrap();
        s.routes
            .insert(index_key(d.day, "G3", "legacy"), &[])
            .unwrap();
        assert_eq!(
            s.day_counts(d.day).unwrap(),
            vec![("G1".to_string(), 2500), ("G3".to_string(), 1)]
        );
        // A truncated record is reported, naming its key.
        let mut k = count_prefix(d.day);
        k.extend_from_slice(&(u64::MAX - 1).to_be_bytes());
        s.routes.insert(k, vec![9, b'G']).unwrap();
        let e = s.day_counts(d.day).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn a_replaced_decision_counts_once_for_the_guide_and_day_it_names_now() {
        let dir = tempfile::tempdir().unwrap();
        let first = Arc::new(sample_decision());
        let day = first.day;
        {
            let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
            s.put_decision(&first, Some(1)).unwrap();
            s.flush().unwrap();
            // The offer moves on to G2, then back to G1, then to G2 on the next day.
            let mut to_g2 = Decision::clone(&first);
            to_g2.assigned = Some(("S2".into(), "G2".into()));
            let to_g2 = Arc::new(to_g2);
            s.replace_decision(&first, &to_g2, Some(1)).unwrap();
            assert_eq!(s.day_counts(day).unwrap(), vec![("G2".to_string(), 1)]);
            let back = Arc::new(Decision::clone(&first));
            s.replace_decision(&to_g2, &back, Some(1)).unwrap();
            assert_eq!(s.day_counts(day).unwrap(), vec![("G1".to_string(), 1)]);
            let mut next_day = Decision::clone(&to_g2);
            next_day.day = Day(day.0 + 1);
            s.replace_decision(&back, &Arc::new(next_day), Some(1))
                .unwrap();
        }
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        assert!(s.day_counts(day).unwrap().is_empty());
        assert_eq!(
            s.day_counts(Day(day.0 + 1)).unwrap(),
            vec![("G2".to_string(), 1)]
        );
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
    fn the_head_is_read_from_the_key_and_the_line_tail() {
        use crate::domain::Channel;
        use crate::domain::trail::{EventBody, Touch, TouchKind};
        let (e, line) = TrailEvent::next_with_line(
            "M1",
            Some((41, crate::domain::trail::GENESIS)),
            1,
            2,
            EventBody::Touch(Touch {
                touch_id: "T".into(),
                kind: TouchKind::EcommerceVisit,
                channel: Channel::Ecommerce,
                guide_id: None,
                store_id: None,
                lead_id: None,
                recorded_by: None,
            }),
        );
        let k = event_key("M1", e.seq);
        assert_eq!(head_of(&k, line.as_bytes()), Some((42, e.hash.clone())));
        // Anything else falls back to decoding.
        assert_eq!(head_of(&k, b"{}"), None);
        assert_eq!(head_of(&k, &line.as_bytes()[..line.len() - 1]), None);
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        s.append_trail(&e, &line, Some(TrailKey::Touch("T")))
            .unwrap();
        assert_eq!(s.trail_head("M1").unwrap(), Some((42, e.hash.clone())));
        assert_eq!(s.trail_event(TrailKey::Touch("T")).unwrap(), Some(e));
        assert_eq!(s.trail_event(TrailKey::Order("T")).unwrap(), None);
    }

    #[test]
    fn concurrent_flushes_share_disk_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        let before = s.flushes();
        std::thread::scope(|scope| {
            for t in 0..16 {
                let s = &s;
                scope.spawn(move || {
                    let mut d = sample_decision();
                    for i in 0..20 {
                        d.lead.lead_id = format!("L{t}-{i}");
                        s.put_decision(&Arc::new(d.clone()), None).unwrap();
                        s.flush().unwrap();
                    }
                });
            }
        });
        let flushes = s.flushes() - before;
        // 320 flush calls; each returned only after a disk flush covering its decision.
        assert!(flushes < 320, "{flushes} flushes for 320 calls");
        assert_eq!(s.decision_count().unwrap(), 320);

        // Without group commit every call has its own flush.
        let dir = tempfile::tempdir().unwrap();
        let config = SledConfig {
            group_commit: false,
            ..SledConfig::default()
        };
        let s = SledStore::open(dir.path(), &config).unwrap();
        let before = s.flushes();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let s = &s;
                scope.spawn(move || {
                    for _ in 0..10 {
                        s.flush().unwrap();
                    }
                });
            }
        });
        assert!(s.flushes() - before >= 40);
    }

    #[test]
    fn refund_keys_are_trusted_only_when_their_event_is_there() {
        use crate::domain::trail::{EventBody, RefundRecord};
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        let refund = |id: &str| {
            EventBody::Refund(RefundRecord {
                refund_id: id.into(),
                order_id: "O1".into(),
                amount_cents: 5,
                order_seq: 1,
                entries: vec![],
                recorded_by: None,
            })
        };
        let (e, line) = TrailEvent::next_with_line("M1", None, 1, 1, refund("R1"));
        s.append_trail(&e, &line, Some(TrailKey::Refund("R1")))
            .unwrap();
        // A crash after a refund's keys but before its event: keys naming seq 2, no event.
        let mut fk = refund_prefix("O1");
        fk.extend_from_slice(b"R2");
        let at = &event_key("M1", 2)[1..];
        s.trails.insert(fk, at).unwrap();
        s.trails
            .insert(trail_key(TrailKey::Refund("R2")), at)
            .unwrap();
        let got = s.follow_ups_of("O1").unwrap();
        assert_eq!(got, vec![e.clone()]);
        assert_eq!(s.trail_event(TrailKey::Refund("R2")).unwrap(), None);
        // The next append at seq 2 is another refund: R2's keys still do not match it.
        let (e3, line3) = TrailEvent::next_with_line("M1", Some((1, &e.hash)), 2, 2, refund("R3"));
        s.append_trail(&e3, &line3, Some(TrailKey::Refund("R3")))
            .unwrap();
        assert_eq!(s.follow_ups_of("O1").unwrap(), vec![e, e3]);
        assert_eq!(s.trail_event(TrailKey::Refund("R2")).unwrap(), None);
        assert!(s.follow_ups_of("O2").unwrap().is_empty());
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _s = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
        let e = SledStore::open(dir.path(), &SledConfig::default()).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    }
}
