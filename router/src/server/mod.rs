//! The service on one port: gRPC (`LeadRouter`, `Attribution`, `Catalog`, `grpc.health.v1`,
//! reflection v1 and v1alpha) and HTTP (`GET /metrics`, `GET /healthz`), plain or TLS. Every
//! request passes the [`gate`] (keys, roles, rates, timeout) first. The only module that speaks
//! gRPC.

mod attribution_svc;
mod catalog_svc;
pub mod connect;
mod disputes_svc;
pub mod gate;
mod guides_svc;
mod http;
pub mod listen;
pub mod metrics;
mod review;
mod router_svc;
mod status;
pub mod watch;
pub use status::check_at_start;
pub mod tls;

pub use gate::Gate;
pub use listen::Transport;

use crate::attribution::{Attribution, AttributionConfig};
use crate::engine::Engine;
use leadrouter_proto::v1::attribution_server::AttributionServer;
use leadrouter_proto::v1::catalog_server::CatalogServer;
use leadrouter_proto::v1::disputes_server::DisputesServer;
use leadrouter_proto::v1::guides_server::GuidesServer;
use leadrouter_proto::v1::lead_router_server::LeadRouterServer;
use std::future::Future;
use std::sync::Arc;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("flushing the store on shutdown: {0}")]
    Flush(#[from] crate::storage::StorageError),
}

/// What the server serves: the routing engine and attribution over the same store.
#[derive(Debug, Clone)]
pub struct Services {
    pub engine: Arc<Engine>,
    pub attribution: Arc<Attribution>,
}

impl Services {
    /// Attribution over the engine's store and network; the error names the configuration key.
    pub fn new(engine: Arc<Engine>, attribution: AttributionConfig) -> Result<Self, String> {
        let attribution = Arc::new(Attribution::new(engine.clone(), attribution)?);
        Ok(Self {
            engine,
            attribution,
        })
    }
}

/// How callers reach the service: who is admitted, TLS and limits, and an optional second
/// listener serving `/metrics` without a key.
#[derive(Debug)]
pub struct Options {
    pub gate: Arc<Gate>,
    pub transport: Transport,
    pub metrics_listener: Option<tokio::net::TcpListener>,
    /// Durable requests (orders, refunds) one at a time, each with its writes and a flush of
    /// its own: only to measure what group commit buys (with sled's `group_commit = false`).
    pub durable_one_at_a_time: bool,
    /// Run with every refresh, after the network is taken up and before the replica says what
    /// it serves (the learned models published by other replicas); an error means storage
    /// cannot be read.
    pub keep_up: Option<KeepUp>,
    /// Offer streams (gRPC `WatchOffers` and Server-Sent Events) served at once
    /// (`limits.max_watchers`).
    pub max_watchers: usize,
}

/// What [`KeepUp`] runs.
pub type KeepUpFn = dyn Fn(&Engine) -> Result<(), crate::storage::StorageError> + Send + Sync;

/// See [`Options::keep_up`].
#[derive(Clone)]
pub struct KeepUp(pub Arc<KeepUpFn>);

impl std::fmt::Debug for KeepUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeepUp(..)")
    }
}

impl Default for Options {
    /// No keys (as on loopback without a keys file), no TLS, default limits.
    fn default() -> Self {
        let transport = Transport::default();
        Self {
            gate: Arc::new(Gate::open(std::time::Duration::from_millis(
                transport.limits.request_timeout_ms,
            ))),
            transport,
            metrics_listener: None,
            durable_one_at_a_time: false,
            keep_up: None,
            max_watchers: watch::DEFAULT_MAX_WATCHERS,
        }
    }
}

/// Serves until `shutdown` completes, then drains in-flight calls and flushes the store.
/// Tests call this with a listener on port 0.
pub async fn run(
    listener: tokio::net::TcpListener,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_with(listener, services, Options::default(), shutdown).await
}

/// As [`run`], with keys, TLS and limits.
pub async fn run_with(
    listener: tokio::net::TcpListener,
    services: Services,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let Services {
        engine,
        attribution,
    } = services;
    let max_message = options.transport.limits.max_message_bytes;
    let prometheus = metrics::handle();
    let (health, health_svc) = tonic_health::server::health_reporter();
    let storage_down = StorageDown::default();
    let replica = Replica::new(
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        &engine,
        &attribution,
    );
    set_health(&health, tonic_health::ServingStatus::Serving).await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(leadrouter_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(leadrouter_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;

    let hub = watch::NoticeHub::new(
        engine.store().clone(),
        engine.noticed().clone(),
        options.max_watchers,
    );
    let attribution_for_pages = attribution.clone();
    let grpc = tonic::service::Routes::new(
        LeadRouterServer::new(router_svc::RouterSvc::new(engine.clone()))
            .max_decoding_message_size(max_message),
    )
    .add_service(
        CatalogServer::new(catalog_svc::CatalogSvc::new(engine.clone()))
            .max_decoding_message_size(max_message),
    )
    .add_service(
        DisputesServer::new(disputes_svc::DisputesSvc::new(attribution.clone()))
            .max_decoding_message_size(max_message),
    )
    .add_service(
        GuidesServer::new(guides_svc::GuidesSvc::new(engine.clone(), hub.clone()))
            .max_decoding_message_size(max_message),
    )
    .add_service(
        AttributionServer::new(attribution_svc::AttributionSvc::new(
            attribution,
            options.durable_one_at_a_time,
        ))
        .max_decoding_message_size(max_message),
    )
    .add_service(health_svc)
    .add_service(reflection_v1)
    .add_service(reflection_v1alpha)
    .prepare()
    .into_axum_router();
    let app = grpc
        .merge(http::router(
            engine.clone(),
            prometheus.clone(),
            storage_down.clone(),
            replica.clone(),
        ))
        .merge(guides_svc::sse_router(engine.clone(), hub.clone()))
        .merge(review::router(
            options.gate.clone(),
            attribution_for_pages,
            engine.clone(),
            options.transport.tls.is_some(),
        ))
        .layer(axum::middleware::from_fn_with_state(
            options.gate.clone(),
            gate::admit,
        ));
    if let Some(l) = options.metrics_listener {
        let metrics_app = http::metrics_only(engine.clone(), prometheus);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, metrics_app).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }

    let health_on_stop = health.clone();
    let hub_on_stop = hub.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: draining calls");
        // Streams end now rather than hold the drain until its deadline.
        hub_on_stop.stop();
        health_on_stop
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };
    let sweeper = tokio::spawn(sweep_offers(engine.clone()));
    let follower = tokio::spawn(hub.clone().run());
    let pruner = tokio::spawn(prune_notices(engine.clone()));
    let keeper = tokio::spawn(keep_up(
        engine.clone(),
        health.clone(),
        storage_down,
        replica,
        options.keep_up.clone(),
    ));
    let served = listen::serve(listener, app, options.transport, shutdown).await;
    sweeper.abort();
    keeper.abort();
    follower.abort();
    pruner.abort();
    served?;
    let flushed = tokio::task::spawn_blocking(move || engine.flush())
        .await
        .map_err(|e| ServerError::Io(std::io::Error::other(e)))??;
    tracing::info!(flushed_bytes = flushed, "store flushed; stopped");
    Ok(())
}

/// Moves on expired offers every `offers.sweep_every_ms`, off the async workers, until aborted.
async fn sweep_offers(engine: Arc<Engine>) {
    if engine.config().offers.channels.is_empty() {
        let e = engine.clone();
        let open = tokio::task::spawn_blocking(move || e.open_offer_count())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(1);
        if open == 0 {
            return;
        }
    }
    let every = std::time::Duration::from_millis(engine.config().offers.sweep_every_ms);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let e = engine.clone();
        match tokio::task::spawn_blocking(move || e.expire_due()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(expired = n, "offers moved on"),
            Ok(Err(e)) => tracing::error!(error = %e, "expiring offers failed"),
            Err(e) => tracing::error!(error = %e, "the offer sweeper panicked"),
        }
    }
}

/// How often old offer notices are forgotten (those older than
/// [`crate::storage::NOTICE_RETENTION_MS`]); every replica does it, which is harmless.
pub const PRUNE_NOTICES_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Forgets offer notices older than the retention every [`PRUNE_NOTICES_EVERY`], until aborted.
async fn prune_notices(engine: Arc<Engine>) {
    let mut tick = tokio::time::interval(PRUNE_NOTICES_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let e = engine.clone();
        let before = e.clock().now_ms() - crate::storage::NOTICE_RETENTION_MS;
        match tokio::task::spawn_blocking(move || e.store().prune_notices(before)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(pruned = n, "old offer notices forgotten"),
            Ok(Err(e)) => tracing::warn!(error = %e, "forgetting old offer notices failed"),
            Err(e) => tracing::error!(error = %e, "the notice pruner panicked"),
        }
    }
}

/// How often a replica takes up what others changed in storage (network, counts).
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Why storage cannot be reached, while it cannot (read by `/healthz`).
#[derive(Clone, Default)]
pub struct StorageDown(Arc<parking_lot::Mutex<Option<String>>>);

impl StorageDown {
    pub fn get(&self) -> Option<String> {
        self.0.lock().clone()
    }
}

/// How long a replica's last word counts: it says what it serves every [`REFRESH_EVERY`].
pub const REPLICA_SEEN_WITHIN_MS: i64 = 5_000;

/// Another replica seen lately, and what it serves that this one does not (`"network"`,
/// `"models"`, `"rules"`; empty: the same).
type Other = (crate::storage::ReplicaState, Vec<&'static str>);

/// This replica, and what the others serve that it does not (read by `/healthz`).
#[derive(Clone)]
pub struct Replica {
    id: String,
    address: String,
    started_at_ms: i64,
    attribution: Arc<Attribution>,
    /// The digest of the rules this replica last said it serves.
    said: Arc<parking_lot::Mutex<String>>,
    /// The other replicas seen lately, and how each differs (empty: the same).
    others: Arc<parking_lot::Mutex<Vec<Other>>>,
}

impl Replica {
    fn new(address: String, engine: &Engine, attribution: &Arc<Attribution>) -> Self {
        let r = Self {
            id: format!("{:016x}", crate::domain::os_random_u64()),
            address,
            started_at_ms: engine.clock().now_ms(),
            attribution: attribution.clone(),
            said: Default::default(),
            others: Default::default(),
        };
        *r.said.lock() = r.rules(engine);
        r
    }

    /// A digest of the policy and the rule sets in service now.
    fn rules(&self, engine: &Engine) -> String {
        use sha2::Digest;
        let c = engine.config();
        let a = self.attribution.config();
        let book = self.attribution.rules();
        let said = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            c.policy,
            engine.bindings(),
            c.offers,
            c.transfers,
            c.candidates,
            c.time_zone,
            a.max_order_amount_cents,
            a.max_future_secs,
            a.history_limit,
            book.ownership,
            book.splits,
        );
        hex::encode(&sha2::Sha256::digest(said.as_bytes())[..8])
    }

    fn state(&self, engine: &Engine) -> crate::storage::ReplicaState {
        let snap = engine.snapshot();
        crate::storage::ReplicaState {
            id: self.id.clone(),
            address: self.address.clone(),
            started_at_ms: self.started_at_ms,
            seen_at_ms: engine.clock().now_ms(),
            network_version: snap.network.version().to_string(),
            models: snap.network.learned_models().versions().join(","),
            rules: self.rules(engine),
        }
    }

    /// Says what this replica serves, and reads what the others do.
    fn announce(&self, engine: &Engine) -> Result<(), crate::storage::StorageError> {
        let me = self.state(engine);
        self.said.lock().clone_from(&me.rules);
        let store = engine.store();
        store.announce(&me)?;
        let others: Vec<_> = store
            .replicas(me.seen_at_ms - REPLICA_SEEN_WITHIN_MS)?
            .into_iter()
            .filter(|r| r.id != me.id)
            .map(|r| {
                let mut differs = Vec::new();
                if r.network_version != me.network_version {
                    differs.push("network");
                }
                if r.models != me.models {
                    differs.push("models");
                }
                if r.rules != me.rules {
                    differs.push("rules");
                }
                (r, differs)
            })
            .collect();
        let differing = others.iter().filter(|(_, d)| !d.is_empty()).count();
        ::metrics::gauge!("leadrouter_replicas", "state" => "same")
            .set((others.len() - differing + 1) as f64);
        ::metrics::gauge!("leadrouter_replicas", "state" => "differing").set(differing as f64);
        for (r, d) in others.iter().filter(|(_, d)| !d.is_empty()) {
            tracing::debug!(replica = %r.id, address = %r.address, differs = ?d, "a replica serves something else");
        }
        *self.others.lock() = others;
        Ok(())
    }

    /// For `/healthz`: this replica's id and the others, with what differs.
    pub fn describe(&self) -> serde_json::Value {
        let others = self.others.lock();
        serde_json::json!({
            "id": self.id,
            "rules": self.said.lock().clone(),
            "coherent": others.iter().all(|(_, d)| d.is_empty()),
            "others": others.iter().map(|(r, d)| serde_json::json!({
                "id": r.id,
                "address": r.address,
                "differs": d,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Sets every service's health (and the server's, `""`).
async fn set_health(
    health: &tonic_health::server::HealthReporter,
    status: tonic_health::ServingStatus,
) {
    for name in [
        "",
        <LeadRouterServer<router_svc::RouterSvc> as tonic::server::NamedService>::NAME,
        <CatalogServer<catalog_svc::CatalogSvc> as tonic::server::NamedService>::NAME,
        <AttributionServer<attribution_svc::AttributionSvc> as tonic::server::NamedService>::NAME,
        <DisputesServer<disputes_svc::DisputesSvc> as tonic::server::NamedService>::NAME,
        <GuidesServer<guides_svc::GuidesSvc> as tonic::server::NamedService>::NAME,
    ] {
        health.set_service_status(name, status).await;
    }
}

/// Takes up other replicas' changes every [`REFRESH_EVERY`] and as soon as storage says
/// something changed ([`Storage::changes`]), off the async workers, until aborted. A refresh that cannot read storage marks every service NOT_SERVING (gRPC health
/// and `/healthz`) until one can again: a load balancer then sends calls to the replicas that
/// can serve them, and this one comes back by itself.
async fn keep_up(
    engine: Arc<Engine>,
    health: tonic_health::server::HealthReporter,
    down: StorageDown,
    replica: Replica,
    also: Option<KeepUp>,
) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let up = ::metrics::gauge!("leadrouter_storage_up");
    up.set(1.0);
    let changes = engine.store().changes();
    loop {
        match &changes {
            Some(changed) => tokio::select! {
                _ = tick.tick() => {}
                _ = changed.notified() => {}
            },
            None => {
                tick.tick().await;
            }
        }
        let (e, r, also) = (engine.clone(), replica.clone(), also.clone());
        let refreshed = tokio::task::spawn_blocking(move || {
            e.refresh_from_storage()?;
            if let Some(also) = &also {
                (also.0)(&e).map_err(crate::engine::CatalogError::Storage)?;
            }
            r.announce(&e).map_err(crate::engine::CatalogError::Storage)
        });
        match refreshed.await {
            Ok(Ok(_)) => {
                if down.0.lock().take().is_some() {
                    tracing::info!("storage can be read again: serving");
                    up.set(1.0);
                    set_health(&health, tonic_health::ServingStatus::Serving).await;
                }
            }
            Ok(Err(e)) => {
                let was_up = down.0.lock().replace(e.to_string()).is_none();
                if was_up {
                    tracing::error!(error = %e, "storage cannot be read: not serving until it can");
                    up.set(0.0);
                    set_health(&health, tonic_health::ServingStatus::NotServing).await;
                } else {
                    tracing::debug!(error = %e, "storage still cannot be read");
                }
            }
            Err(e) => tracing::error!(error = %e, "the refresher panicked"),
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
