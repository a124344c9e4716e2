//! Following offer notices on one replica, for every stream it serves (gRPC `WatchOffers` and
//! Server-Sent Events alike).
//!
//! One [`NoticeHub`] per replica reads every new notice from storage (every [`POLL_EVERY`], and
//! at once when this replica's engine committed one) and hands each read to its watchers as a
//! [`Batch`] covering one interval of the order. Storage is the only source of truth: a watcher
//! first reads its backlog there, and reads there again whenever a batch does not follow on from
//! what it has seen (it joined late, fell behind, or the hub skipped ahead while nobody watched),
//! so a watcher on any replica sees every notice for it once, in the one order, whatever the
//! timing. Nothing here is shared between replicas; nothing is decided here.

use crate::domain::Decision;
use crate::storage::{NoticeId, NoticesOf, OfferNotice, Storage, StorageError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast, mpsc, watch};

/// How often the hub reads new notices when nothing woke it.
pub const POLL_EVERY: Duration = Duration::from_millis(200);

/// Notices read from storage at a time.
const PAGE: usize = 500;

/// Batches a watcher may fall behind by before it reads from storage instead.
const BACKLOG: usize = 256;

/// Streams one replica serves at once unless configured otherwise.
pub const DEFAULT_MAX_WATCHERS: usize = 10_000;

/// Every notice in `(after, upto]`, in order.
#[derive(Debug)]
pub struct Batch {
    after: NoticeId,
    upto: NoticeId,
    notices: Vec<OfferNotice>,
}

/// Whose notices a stream follows (owned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Guide(String),
    Store(String),
}

impl Target {
    fn of(&self) -> NoticesOf<'_> {
        match self {
            Target::Guide(g) => NoticesOf::Guide(g),
            Target::Store(s) => NoticesOf::Store(s),
        }
    }
}

/// One notice sent to a watcher, with the lead's decision as stored when it was sent (`None`
/// if it could not be read).
#[derive(Debug, Clone)]
pub struct Watched {
    pub notice: OfferNotice,
    pub decision: Option<Arc<Decision>>,
}

/// Why a stream could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "this replica serves limits.max_watchers = {0} streams already; reconnect to another or later"
    )]
    Full(usize),
    #[error("the server is stopping")]
    Stopping,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// See the module documentation.
pub struct NoticeHub {
    store: Arc<dyn Storage>,
    tx: broadcast::Sender<Arc<Batch>>,
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    max_watchers: usize,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for NoticeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoticeHub")
            .field("watchers", &self.watchers())
            .finish_non_exhaustive()
    }
}

/// Runs a storage call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Backend(format!("a storage task failed: {e}")))?
}

impl NoticeHub {
    /// A hub over `store`, woken by `wake` (the engine's [`crate::engine::Engine::noticed`]).
    /// Start it with [`NoticeHub::run`].
    pub fn new(store: Arc<dyn Storage>, wake: Arc<Notify>, max_watchers: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(BACKLOG);
        let (stop, _) = watch::channel(false);
        Arc::new(Self {
            store,
            tx,
            wake,
            slots: Arc::new(Semaphore::new(max_watchers)),
            max_watchers,
            stop,
        })
    }

    /// Streams being served now.
    pub fn watchers(&self) -> usize {
        self.max_watchers - self.slots.available_permits()
    }

    /// Ends every stream (at shutdown, so that draining does not wait for them) and the hub.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Reads new notices and hands them to watchers until [`NoticeHub::stop`]. While nobody
    /// watches it reads nothing, and takes up from the newest notice when someone does.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = self.stop.subscribe();
        let mut cursor: Option<NoticeId> = None;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            if self.tx.receiver_count() == 0 {
                cursor = None;
                continue;
            }
            match self.read(cursor).await {
                Ok(c) => {
                    cursor = Some(c);
                    if failing {
                        tracing::info!("offer notices can be read again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, "reading offer notices failed; streams wait");
                        failing = true;
                    }
                }
            }
        }
    }

    /// One read from `cursor` (from the newest notice when `None`), handed out; the new cursor.
    async fn read(&self, cursor: Option<NoticeId>) -> Result<NoticeId, StorageError> {
        let Some(mut after) = cursor else {
            let store = self.store.clone();
            let newest = blocking(move || store.last_notice()).await?;
            // Watchers that joined before this learn from the batch's start that they may
            // have missed something, and read it from storage.
            let _ = self.tx.send(Arc::new(Batch {
                after: newest,
                upto: newest,
                notices: Vec::new(),
            }));
            return Ok(newest);
        };
        loop {
            let store = self.store.clone();
            let notices = blocking(move || store.notices(NoticesOf::All, after, PAGE)).await?;
            let Some(last) = notices.last().map(|n| n.id) else {
                return Ok(after);
            };
            let full = notices.len() == PAGE;
            let _ = self.tx.send(Arc::new(Batch {
                after,
                upto: last,
                notices,
            }));
            after = last;
            if !full {
                return Ok(after);
            }
        }
    }

    /// A stream of `target`'s notices after `after` (from now when `None`). It ends when the
    /// receiver is dropped, at [`NoticeHub::stop`], or after sending one storage error.
    pub async fn watch(
        self: &Arc<Self>,
        target: Target,
        after: Option<NoticeId>,
    ) -> Result<mpsc::Receiver<Result<Watched, StorageError>>, WatchError> {
        if *self.stop.borrow() {
            return Err(WatchError::Stopping);
        }
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| WatchError::Full(self.max_watchers))?;
        // Subscribe before the first read, so that nothing committed after it is missed.
        let rx = self.tx.subscribe();
        let seen = match after {
            Some(a) => a,
            None => {
                let store = self.store.clone();
                blocking(move || store.last_notice()).await?
            }
        };
        self.wake.notify_one();
        let (out, events) = mpsc::channel(64);
        let hub = self.clone();
        metrics::gauge!(STREAMS).increment(1.0);
        tokio::spawn(async move {
            let mut follower = Follower {
                hub,
                target,
                seen,
                out,
                _permit: permit,
            };
            if let Err(e) = follower.follow(rx).await {
                let _ = follower.out.send(Err(e)).await;
            }
        });
        Ok(events)
    }
}

/// The gauge of offer streams open on this replica.
pub const STREAMS: &str = "leadrouter_offer_streams";

/// One stream's state: everything for its target up to `seen` has been sent.
struct Follower {
    hub: Arc<NoticeHub>,
    target: Target,
    seen: NoticeId,
    out: mpsc::Sender<Result<Watched, StorageError>>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Follower {
    fn drop(&mut self) {
        metrics::gauge!(STREAMS).decrement(1.0);
    }
}

/// The receiver went away or the server is stopping: end quietly.
struct Gone;

impl Follower {
    async fn follow(
        &mut self,
        mut rx: broadcast::Receiver<Arc<Batch>>,
    ) -> Result<(), StorageError> {
        let mut stop = self.hub.stop.subscribe();
        if self.catch_up().await?.is_err() {
            return Ok(());
        }
        loop {
            let batch = tokio::select! {
                _ = self.out.closed() => return Ok(()),
                _ = stop.changed() => return Ok(()),
                b = rx.recv() => b,
            };
            let sent = match batch {
                Ok(b) if b.after <= self.seen => {
                    let mut sent = Ok(());
                    for n in &b.notices {
                        if n.id > self.seen && n.is_for(self.target.of()) {
                            sent = self.send(n.clone()).await;
                            if sent.is_err() {
                                break;
                            }
                            self.seen = n.id;
                        }
                    }
                    self.seen = self.seen.max(b.upto);
                    sent
                }
                // The batch starts past what this stream has seen: read what lies between from
                // storage. The read comes after the hub's, so it covers the batch too.
                Ok(b) => {
                    let sent = self.catch_up().await?;
                    self.seen = self.seen.max(b.upto);
                    sent
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await?,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            };
            if sent.is_err() {
                return Ok(());
            }
        }
    }

    /// Sends every stored notice for the target after `seen`.
    async fn catch_up(&mut self) -> Result<Result<(), Gone>, StorageError> {
        loop {
            let (store, target, after) = (self.hub.store.clone(), self.target.clone(), self.seen);
            let page = blocking(move || store.notices(target.of(), after, PAGE)).await?;
            let full = page.len() == PAGE;
            for n in page {
                let id = n.id;
                if self.send(n).await.is_err() {
                    return Ok(Err(Gone));
                }
                self.seen = id;
            }
            if !full {
                return Ok(Ok(()));
            }
        }
    }

    async fn send(&self, notice: OfferNotice) -> Result<(), Gone> {
        let store = self.hub.store.clone();
        let lead = notice.lead_id.clone();
        let decision = blocking(move || store.decision(&lead)).await.ok().flatten();
        let mut stop = self.hub.stop.subscribe();
        tokio::select! {
            sent = self.out.send(Ok(Watched { notice, decision })) => sent.map_err(|_| Gone),
            _ = stop.changed() => Err(Gone),
        }
    }
}
