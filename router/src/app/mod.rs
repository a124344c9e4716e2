//! What the binary's commands do, callable from tests: `serve`, `network generate`,
//! `network check`, `trail export | verify | models`, `ledger`, `disputes`.

pub mod disputes;
pub mod ledger;
pub mod models;
pub mod trail;

use crate::catalog::{GenerateSpec, Network, NetworkFiles, RegionTree, demo_files, generate};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::engine::Engine;
use crate::store::{SledStore, Store};
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;

/// Which network to serve: `--network` wins (and is saved); else the one saved in the store;
/// else the demo shipped in the binary (and saved).
pub fn choose_network(
    config: &Config,
    store: &dyn Store,
    regions: Arc<RegionTree>,
) -> anyhow::Result<(Network, String)> {
    if let Some(path) = &config.network {
        let net = NetworkFiles::read_dir(path)?.load(regions)?;
        if store.network()?.is_some_and(|saved| &saved != net.spec()) {
            tracing::warn!(
                network = %path.display(),
                "--network replaces the network saved in the data directory, including any \
                 change made through the Catalog service since it was loaded"
            );
        }
        store.put_network(net.spec())?;
        return Ok((net, format!("{}", path.display())));
    }
    if let Some(spec) = store.network()? {
        let net = Network::build(regions, spec)
            .context("the network saved in the data directory is not valid; pass --network")?;
        return Ok((net, "saved in the data directory".into()));
    }
    let net = demo_files().load(regions)?;
    store.put_network(net.spec())?;
    Ok((net, "demo (shipped in the binary)".into()))
}

/// Opens the store, picks the network, binds and serves until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // The recorder first: handles built before it (the store's writer builds its own) record
    // nothing.
    let _ = crate::server::metrics::handle();
    let engine_cfg = config.engine()?;
    config.attribution.check().map_err(anyhow::Error::msg)?;
    let sled_cfg = config.sled()?;
    // Bind first: a bad address is reported before anything is created on disk.
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let store = Arc::new(
        SledStore::open(&config.data_dir, &sled_cfg)
            .with_context(|| format!("opening data directory {}", config.data_dir.display()))?,
    );
    let regions = Arc::new(RegionTree::embedded());
    let (network, origin) = choose_network(&config, store.as_ref(), regions)?;
    tracing::info!(
        network = %origin,
        version = network.version(),
        stores = network.stores().len(),
        guides = network.guides().len(),
        "network loaded"
    );
    let engine = Arc::new(Engine::new(
        network,
        store,
        Arc::new(SystemClock),
        engine_cfg,
    )?);
    if config.models != crate::config::ModelsConfig::default() {
        let versions = models::install(&engine, &config.models)
            .context("[models]: an artifact cannot be used")?;
        tracing::info!(?versions, "learned models loaded");
    }
    spawn_model_reloader(engine.clone(), config.models.clone());
    let addr = listener.local_addr()?;
    // One line on stdout that scripts and tests wait for.
    println!("leadrouter listening on {addr}");
    tracing::info!(%addr, data_dir = %config.data_dir.display(), policy = engine.snapshot().policy.name(), "serving gRPC and HTTP");
    let services = crate::server::Services::new(engine, config.attribution.clone())
        .map_err(anyhow::Error::msg)?;
    crate::server::run(listener, services, crate::server::shutdown_signal()).await?;
    Ok(())
}

/// On SIGHUP, reads the model artifacts named in `[models]` again and swaps them in; a file that
/// cannot be used is logged and counted (`leadrouter_model_reloads_total{result="failed"}`),
/// and the model in service stays.
fn spawn_model_reloader(engine: Arc<Engine>, cfg: crate::config::ModelsConfig) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: models reload only on restart");
            return;
        };
        while hup.recv().await.is_some() {
            if cfg == crate::config::ModelsConfig::default() {
                tracing::info!("SIGHUP: no [models] artifact configured");
                continue;
            }
            let (engine, cfg) = (engine.clone(), cfg.clone());
            let r = tokio::task::spawn_blocking(move || models::install(&engine, &cfg))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r);
            match r {
                Ok(versions) => {
                    metrics::counter!("leadrouter_model_reloads_total", "result" => "ok")
                        .increment(1);
                    tracing::info!(?versions, "learned models reloaded");
                }
                Err(e) => {
                    metrics::counter!("leadrouter_model_reloads_total", "result" => "failed")
                        .increment(1);
                    tracing::error!(error = %format!("{e:#}"), "learned models not reloaded; the ones in service stay");
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (engine, cfg);
}

/// Writes a generated network's files.
pub fn generate_network(spec: &GenerateSpec, out: &Path) -> anyhow::Result<Network> {
    let regions = Arc::new(RegionTree::embedded());
    let net_spec = generate(&regions, spec);
    let files = NetworkFiles::from_spec(&net_spec);
    files.write_dir(out)?;
    let net = Network::build(regions, net_spec)?;
    Ok(net)
}

/// Loads a network directory and describes it, or says what is wrong.
pub fn check_network(dir: &Path) -> anyhow::Result<String> {
    let net = NetworkFiles::read_dir(dir)?.load(Arc::new(RegionTree::embedded()))?;
    Ok(format!(
        "{}: ok — {} stores ({} open), {} guides, {} categories, {} preference rows, version {}",
        dir.display(),
        net.stores().len(),
        net.stores().iter().filter(|s| s.open).count(),
        net.guides().len(),
        net.categories().len(),
        net.preference().regions(),
        net.version()
    ))
}
