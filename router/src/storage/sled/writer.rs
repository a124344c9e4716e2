//! The writer thread: decisions queued by route() are applied in chunks and flushed on the
//! interval, and concurrent flush requests share one disk sync (group commit).

use super::*;

/// One queued decision.
pub(super) struct Put {
    pub(super) lead_key: Vec<u8>,
    /// Encoded by the writer, off route()'s path.
    pub(super) decision: Arc<Decision>,
    /// The decision took its guide's capacity: the writer lists it in a capacity record.
    pub(super) takes: bool,
    /// `o/…` key of an open offer, when the decision is one.
    pub(super) offer_key: Option<Vec<u8>>,
    /// `q/…` key while the decision waits in a store's queue.
    pub(super) queue_key: Option<Vec<u8>>,
    /// Keys the decision replaces (the previous version's offer and queue keys), removed after
    /// it is written.
    pub(super) stale: Vec<Vec<u8>>,
}

/// Told the outcome once everything queued before it is applied and flushed.
pub(super) type Waiter = crate::storage::FlushDone;

#[derive(Default)]
pub(super) struct Queue {
    pub(super) puts: Vec<Put>,
    /// Replied to once everything queued before them is applied and flushed.
    pub(super) waiters: Vec<Waiter>,
    pub(super) closed: bool,
}

/// The queue between route() and the writer. Pushing takes an uncontended lock and no system
/// call; the writer sleeps on a timer and is woken early only for a full batch or a flush.
pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    /// Set by writes made outside the queue (trail events), so the writer flushes them on time.
    pub(super) dirty: std::sync::atomic::AtomicBool,
    /// Disk flushes done so far.
    pub(super) flushes: std::sync::atomic::AtomicU64,
    pub(super) wake_writer: Condvar,
    pub(super) space: Condvar,
    pub(super) capacity: usize,
}

/// The capacity records of one writer chunk, one per business day in it: `<guide length u8>
/// <guide><lead length u8><lead>` for each decision that took a guide's capacity.
pub(super) fn capacity_records(chunk: &[Put]) -> Vec<(Day, Vec<u8>)> {
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

/// What the writer flushes: sled, then its log file with fdatasync.
pub(super) struct Disk<'a> {
    pub(super) db: &'a sled::Db,
    pub(super) log: &'a std::fs::File,
}

impl Disk<'_> {
    fn flush(&self) -> Result<(), String> {
        self.db.flush().map_err(|e| e.to_string())?;
        self.log
            .sync_data()
            .map_err(|e| format!("fdatasync of sled's log: {e}"))
    }
}

pub(super) fn writer_loop(
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
                        for k in p.offer_key.iter().chain(&p.queue_key) {
                            routes.insert(k.as_slice(), &[])?;
                        }
                        routes
                            .insert(p.lead_key.as_slice(), codec::encode_decision(&p.decision))?;
                        for k in &p.stale {
                            if Some(k) != p.offer_key.as_ref() && Some(k) != p.queue_key.as_ref() {
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
                    w(result.clone().map_err(StorageError::Backend));
                }
            } else {
                for w in waiters {
                    let result = flush();
                    batch_size.record(1.0);
                    w(result.map_err(StorageError::Backend));
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
