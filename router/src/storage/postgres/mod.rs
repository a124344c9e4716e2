//! PostgreSQL: several replicas on one database. Every guarantee of the contract is a key or a
//! constraint of the schema (`migrations/`), and every conditional write is one transaction of
//! row-level conditions (`INSERT … ON CONFLICT DO NOTHING`, `UPDATE … WHERE version = $v`), at
//! READ COMMITTED; audit and dispute numbers are taken under a transaction-scoped advisory lock
//! (the pool does not reset session state, so no session lock is ever taken). A transaction that
//! fails on a serialization failure or a deadlock is run again; nothing else is retried here.
//!
//! The contract is synchronous; its callers run it off the async workers (the server's calls go
//! through `spawn_blocking`, see [`Storage::waits_on_network`]). The database I/O itself is
//! async: the pool's connections live on a small runtime of the backend's own, and a call waits
//! for its statements, sent pipelined where one does not depend on another, without holding any
//! lock.
//!
//! Durability: orders, refunds, adjustments, audit entries, disputes and the network are
//! acknowledged after COMMIT (`synchronous_commit` on). Decisions and touches follow
//! [`PostgresConfig::synchronous_commit`]: off (the default) commits them without waiting for
//! the WAL flush, which the server does within `wal_writer_delay` (200 ms by default), as sled
//! makes decisions durable within its flush interval; [`Storage::flush`] makes everything
//! before it durable.

mod decisions;
mod desks;
mod import;
mod logs;
mod migrate;
mod network;
mod seen;
mod tls;
mod trails;

pub use migrate::{MIGRATIONS, Migration};

use super::{Storage, StorageError};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// The environment variable that gives the database URL (over `[storage] url`).
pub const DATABASE_URL_ENV: &str = "LEADROUTER_DATABASE_URL";
/// The environment variable that gives the database's CA file (over `[storage] ca_file`).
pub const DATABASE_CA_ENV: &str = "LEADROUTER_DATABASE_CA";

/// Settings of the PostgreSQL backend.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/db` or a key=value connection string.
    pub url: String,
    /// Connections in the pool. Default 16.
    pub pool_size: usize,
    /// Whether decisions and touches wait for the WAL flush before they are acknowledged.
    /// Default false (they are durable within `wal_writer_delay`); orders, refunds, adjustments,
    /// audit entries, disputes and the network always wait.
    pub synchronous_commit: bool,
    /// How long a call waits for a connection (from the pool or a new one). Default 5 s.
    pub connect_timeout: Duration,
    /// PEM certificates of the CA that signed the database server's certificate: connections
    /// are then TLS (required), verified against it and the host the URL names. None: plain.
    pub ca_file: Option<std::path::PathBuf>,
    /// Members whose head and latest binding this replica keeps, for routes to start from
    /// (about 800 bytes each; 0: none, every returning member's route then costs two round
    /// trips). Default 100,000 (`[storage] binding_cache`).
    pub seen_members: usize,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redacted(&self.url))
            .field("pool_size", &self.pool_size)
            .field("synchronous_commit", &self.synchronous_commit)
            .field("connect_timeout", &self.connect_timeout)
            .field("ca_file", &self.ca_file)
            .field("seen_members", &self.seen_members)
            .finish()
    }
}

impl PostgresConfig {
    /// For the command-line tools: `url`, with the CA file `LEADROUTER_DATABASE_CA` names.
    pub fn from_env(url: impl Into<String>) -> Self {
        Self {
            ca_file: std::env::var_os(DATABASE_CA_ENV).map(Into::into),
            ..Self::new(url)
        }
    }

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            synchronous_commit: false,
            connect_timeout: Duration::from_secs(5),
            ca_file: None,
            seen_members: 100_000,
        }
    }
}

/// `url` without its password, for logs.
pub fn redacted(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(c) => {
            let hosts: Vec<String> = c
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(s) => s.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            format!(
                "postgres://{}@{}:{}/{}",
                c.get_user().unwrap_or(""),
                hosts.join(","),
                c.get_ports()
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                c.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "(an unreadable database URL)".into(),
    }
}

/// The PostgreSQL backend.
pub struct PostgresStore {
    pool: Pool,
    /// The connection settings and TLS, for the listener.
    pg: tokio_postgres::Config,
    tls: Option<tls::Rustls>,
    /// Woken when another writer saved the network (`LISTEN leadrouter_network`), once asked
    /// for ([`Storage::changes`]).
    changes: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
    /// The runtime the pool's connections live on; shut down without blocking when dropped.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    synchronous_commit: bool,
    /// Members' heads and bindings as this replica last saw them: where a route starts.
    seen: seen::Seen,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("pool_size", &s.max_size)
            .field("connections", &s.size)
            .field("synchronous_commit", &self.synchronous_commit)
            .finish()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A pooled connection: its prepared statements are cached (`prepare_cached`), so that a
/// statement sent again costs no extra round trip.
pub(super) type Conn = deadpool_postgres::ClientWrapper;

/// Most times a transaction runs again after a serialization failure or a deadlock.
const MAX_RETRIES: u32 = 16;

/// What a transaction's body decided.
pub(super) enum Step<T> {
    Commit(T),
    Rollback(T),
}

impl PostgresStore {
    /// Connects (checking that the database answers) and applies the migrations this binary
    /// has that the database lacks, under a lock, so that replicas starting together apply
    /// each once.
    pub fn open(config: &PostgresConfig) -> Result<Self, StorageError> {
        let store = Self::connect(config)?;
        let applied = store.migrate()?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database schema migrated");
        }
        Ok(store)
    }

    /// Connects without migrating (`leadrouter db migrate` migrates explicitly).
    pub fn connect(config: &PostgresConfig) -> Result<Self, StorageError> {
        if !(1..=1024).contains(&config.pool_size) {
            return Err(StorageError::Backend(format!(
                "storage.pool_size: must be in 1..=1024, got {}",
                config.pool_size
            )));
        }
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(|e| {
            StorageError::Backend(format!(
                "storage.url: not a PostgreSQL connection string ({e})"
            ))
        })?;
        pg.connect_timeout(config.connect_timeout);
        pg.application_name("leadrouter");
        let tls = match &config.ca_file {
            Some(ca) => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                Some(tls::Rustls::new(ca).map_err(StorageError::Backend)?)
            }
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("leadrouter-pg")
            .enable_all()
            .build()
            .map_err(|e| StorageError::Backend(format!("postgres runtime: {e}")))?;
        let manager_config = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(t) => Manager::from_config(pg.clone(), t.clone(), manager_config()),
            None => Manager::from_config(pg.clone(), NoTls, manager_config()),
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StorageError::Backend(format!("postgres pool: {e}")))?;
        let store = Self {
            pool,
            pg,
            tls,
            changes: std::sync::OnceLock::new(),
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            synchronous_commit: config.synchronous_commit,
            seen: seen::Seen::new(config.seen_members),
        };
        store.run(async {
            let c = store.client().await?;
            c.simple_query("SELECT 1").await.map_err(pg_error)?;
            Ok::<_, StorageError>(())
        })?;
        Ok(store)
    }

    /// Whether the database answers now (health checks).
    pub fn ping(&self) -> Result<(), StorageError> {
        self.run(async {
            let c = self.client().await?;
            c.simple_query("SELECT 1").await.map_err(pg_error)?;
            Ok(())
        })
    }

    /// Runs `f` to completion on this thread, with the backend's runtime entered (its I/O and
    /// timers are driven by that runtime's threads). Called off the async workers.
    pub(super) fn run<F: Future>(&self, f: F) -> F::Output {
        let _entered = self.handle.enter();
        crate::storage::block_on(f)
    }

    /// Makes every commit so far durable: a transaction with an id, committed synchronously,
    /// waits for the WAL up to its commit record, which follows every earlier commit's.
    async fn flush_io(&self) -> Result<usize, StorageError> {
        let mut attempt = 0;
        loop {
            let client = self.client().await?;
            match client
                .batch_execute("BEGIN; SELECT pg_current_xact_id(); COMMIT")
                .await
            {
                Ok(()) => return Ok(0),
                Err(e) => tokio::time::sleep(failed(client, e, &mut attempt)?).await,
            }
        }
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Client, StorageError> {
        self.pool.get().await.map_err(|e| {
            StorageError::Backend(format!(
                "postgres: no connection to the database ({})",
                causes(&e)
            ))
        })
    }

    /// Runs `body` in one transaction (BEGIN is pipelined with the body's first statements),
    /// committing or rolling back as it says; runs it again on a serialization failure or a
    /// deadlock. `durable`: the commit waits for the WAL flush whatever the configured mode.
    pub(super) async fn transact<T>(
        &self,
        durable: bool,
        body: impl AsyncFn(&Conn) -> Result<Step<T>, tokio_postgres::Error>,
    ) -> Result<T, StorageError> {
        let begin = if durable || self.synchronous_commit {
            "BEGIN"
        } else {
            "BEGIN; SET LOCAL synchronous_commit TO off"
        };
        self.retrying(async |client| {
            let (began, result) = tokio::join!(client.batch_execute(begin), body(client));
            match began.and(result) {
                Ok(Step::Commit(v)) => client.batch_execute("COMMIT").await.map(|()| v),
                Ok(Step::Rollback(v)) => client.batch_execute("ROLLBACK").await.map(|()| v),
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    Err(e)
                }
            }
        })
        .await
    }

    /// Runs `body`, one statement in its own (implicit) transaction, again on a serialization
    /// failure or a deadlock. A refusal the statement raised (SQLSTATE `LR…`, see migration 2)
    /// is `Ok(Err(code))`: the statement wrote nothing.
    pub(super) async fn statement<T>(
        &self,
        body: impl AsyncFn(&Conn) -> Result<T, tokio_postgres::Error>,
    ) -> Result<Result<T, String>, StorageError> {
        self.retrying(async |client| match body(client).await {
            Ok(v) => Ok(Ok(v)),
            Err(e) => match e.code().map(|c| c.code()) {
                Some(code) if code.starts_with("LR") => Ok(Err(code.to_string())),
                _ => Err(e),
            },
        })
        .await
    }

    /// Runs `once` on a pooled connection, again on a serialization failure or a deadlock (at
    /// most [`MAX_RETRIES`] times, backing off); a connection found closed leaves the pool.
    async fn retrying<T>(
        &self,
        once: impl AsyncFn(&Conn) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StorageError> {
        let mut attempt = 0;
        loop {
            let client = self.client().await?;
            match once(&client).await {
                Ok(v) => return Ok(v),
                Err(e) => tokio::time::sleep(failed(client, e, &mut attempt)?).await,
            }
        }
    }

    /// [`PostgresStore::statement`] for one prepared statement returning one row, as a future
    /// that is `Send` (a route's calls, awaited on a server's workers).
    pub(super) async fn statement_send(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Result<tokio_postgres::Row, String>, StorageError> {
        let mut attempt = 0;
        loop {
            let client = self.client().await?;
            let once = async {
                let s = client.prepare_cached(sql).await?;
                client.query_one(&s, params).await
            };
            match once.await {
                Ok(row) => return Ok(Ok(row)),
                Err(e) => match e.code().map(|c| c.code()) {
                    Some(code) if code.starts_with("LR") => return Ok(Err(code.to_string())),
                    _ => tokio::time::sleep(failed(client, e, &mut attempt)?).await,
                },
            }
        }
    }

    /// Runs one read statement on a pooled connection.
    pub(super) async fn read<T>(
        &self,
        body: impl AsyncFn(&Conn) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StorageError> {
        let client = self.client().await?;
        body(&client).await.map_err(pg_error)
    }
}

/// After a failed attempt on `client`: how long to pause before the next (a serialization
/// failure or a deadlock, at most [`MAX_RETRIES`] times), else the error (a connection found
/// closed leaves the pool).
fn failed(
    client: deadpool_postgres::Client,
    e: tokio_postgres::Error,
    attempt: &mut u32,
) -> Result<Duration, StorageError> {
    if retryable(&e) && *attempt < MAX_RETRIES {
        *attempt += 1;
        metrics::counter!("leadrouter_storage_retries_total").increment(1);
        return Ok(Duration::from_millis(1 << (*attempt).min(6)));
    }
    if client.is_closed() {
        let _ = deadpool_postgres::Object::take(client);
    }
    Err(pg_error(e))
}

/// The channel a network save notifies.
pub(super) const NETWORK_CHANNEL: &str = "leadrouter_network";

/// Listens on [`NETWORK_CHANNEL`] and wakes `changed` on each notification, and once after
/// each (re)connection for what was missed meanwhile; reconnects after a failure, waiting up
/// to 5 s between attempts. Runs until the backend's runtime stops.
async fn listen(
    pg: tokio_postgres::Config,
    tls: Option<tls::Rustls>,
    changed: Arc<tokio::sync::Notify>,
) {
    let mut wait = Duration::from_millis(100);
    loop {
        match &tls {
            Some(t) => {
                if let Ok((client, connection)) = pg.connect(t.clone()).await {
                    wait = Duration::from_millis(100);
                    listen_on(&client, connection, &changed).await;
                }
            }
            None => {
                if let Ok((client, connection)) = pg.connect(NoTls).await {
                    wait = Duration::from_millis(100);
                    listen_on(&client, connection, &changed).await;
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// LISTENs on one connection until it fails.
async fn listen_on<S, T>(
    client: &tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<S, T>,
    changed: &tokio::sync::Notify,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let sql = format!("LISTEN {NETWORK_CHANNEL}");
    let listen = client.batch_execute(&sql);
    let mut listen = std::pin::pin!(listen);
    let mut listening = false;
    std::future::poll_fn(|cx| {
        if !listening {
            match listen.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => {
                    listening = true;
                    changed.notify_one();
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => {}
            }
        }
        loop {
            match connection.poll_message(cx) {
                Poll::Ready(Some(Ok(tokio_postgres::AsyncMessage::Notification(_)))) => {
                    changed.notify_one();
                }
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(None | Some(Err(_))) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
}

/// An error and its sources, as one line ("db error: FATAL: …").
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let said = s.to_string();
        if !out.contains(&said) {
            out.push_str(": ");
            out.push_str(&said);
        }
        source = s.source();
    }
    out
}

/// Serialization failures and deadlocks: the only errors a transaction is run again on.
fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

pub(super) fn pg_error(e: tokio_postgres::Error) -> StorageError {
    match e.as_db_error() {
        Some(db) => StorageError::Backend(format!(
            "postgres: {} ({}){}",
            db.message(),
            db.code().code(),
            db.constraint()
                .map(|c| format!(", constraint {c}"))
                .unwrap_or_default()
        )),
        None => StorageError::Backend(format!("postgres: {}", causes(&e))),
    }
}

pub(super) fn corrupt(key: impl Into<String>, why: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        key: key.into(),
        why: why.to_string(),
    }
}

/// Waits for `f` on this thread, parking between polls.
/// A future polled inside the backend's runtime, whatever polls it (a server's worker, or
/// [`crate::storage::block_on`] on a thread of no runtime): the pool's timers and connections
/// are that runtime's.
struct InRuntime<F> {
    handle: tokio::runtime::Handle,
    f: std::pin::Pin<Box<F>>,
}

impl<F: Future> Future for InRuntime<F> {
    type Output = F::Output;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = self.handle.enter();
        self.f.as_mut().poll(cx)
    }
}

impl PostgresStore {
    /// `f` as a [`crate::storage::Pending`] call, polled inside this backend's runtime.
    fn pending<'a, T>(
        &'a self,
        f: impl Future<Output = Result<T, StorageError>> + Send + 'a,
    ) -> crate::storage::Pending<'a, T> {
        Box::pin(InRuntime {
            handle: self.handle.clone(),
            f: Box::pin(f),
        })
    }
}

impl Storage for PostgresStore {
    /// Makes every commit so far durable: a transaction with an id, committed synchronously,
    /// waits for the WAL up to its commit record, which follows every earlier commit's.
    fn flush(&self) -> Result<usize, StorageError> {
        self.run(self.flush_io())
    }

    fn flush_async(&self) -> crate::storage::Pending<'_, usize> {
        self.pending(self.flush_io())
    }

    /// At once: what a durable request writes (orders, refunds, adjustments) is committed
    /// synchronously before the call that wrote it returns.
    fn flush_then(&self, done: super::FlushDone) {
        done(Ok(()));
    }

    fn waits_on_network(&self) -> bool {
        true
    }

    fn route_state(
        &self,
        lead_id: &str,
        member_id: Option<&str>,
    ) -> Result<super::RouteState, StorageError> {
        self.run(self.route_state_io(lead_id, member_id))
    }

    fn route_state_async<'a>(
        &'a self,
        lead_id: &'a str,
        member_id: Option<&'a str>,
    ) -> crate::storage::Pending<'a, super::RouteState> {
        self.pending(self.route_state_io(lead_id, member_id))
    }

    /// A read costs a round trip: a route starts from what this replica last saw, and its
    /// commit (`leadrouter_route`, migration 5) checks that and returns what moved.
    fn route_guess(&self, _lead_id: &str, member_id: Option<&str>) -> Option<super::RouteState> {
        Some(member_id.map_or_else(Default::default, |m| self.seen.guess(m)))
    }

    /// Starts listening for other replicas' network saves on the first call.
    fn changes(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(
            self.changes
                .get_or_init(|| {
                    let changed = Arc::new(tokio::sync::Notify::new());
                    self.handle
                        .spawn(listen(self.pg.clone(), self.tls.clone(), changed.clone()));
                    changed
                })
                .clone(),
        )
    }
}

type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

/// `sql` prepared once per connection, then run.
pub(super) async fn query(
    c: &Conn,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let s = c.prepare_cached(sql).await?;
    c.query(&s, params).await
}

/// As [`query`], for at most one row.
pub(super) async fn query_opt(
    c: &Conn,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
    let s = c.prepare_cached(sql).await?;
    c.query_opt(&s, params).await
}

/// As [`query`], for exactly one row.
pub(super) async fn query_one(
    c: &Conn,
    sql: &str,
    params: Params<'_>,
) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
    let s = c.prepare_cached(sql).await?;
    c.query_one(&s, params).await
}

/// As [`query`], for the number of rows changed.
pub(super) async fn execute(
    c: &Conn,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let s = c.prepare_cached(sql).await?;
    c.execute(&s, params).await
}
