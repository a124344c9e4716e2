//! What the binary's commands do, callable from tests: `serve`, `network generate`,
//! `network check`, `trail export | verify | models`, `ledger`, `disputes`.

pub mod client;
pub mod db;
pub mod disputes;
pub mod keys;
pub mod learn;
pub mod ledger;
pub mod models;
pub mod published;
pub mod trail;

use crate::catalog::{GenerateSpec, Network, NetworkFiles, RegionTree, demo_files, generate};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::engine::Engine;
use crate::storage::{PostgresStore, SledStore, Storage};
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;

/// Which network to serve: `--network` wins (and is saved); else the one saved in the store;
/// else the demo shipped in the binary (and saved).
pub fn choose_network(
    config: &Config,
    store: &dyn Storage,
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
        save_network(store, &net)?;
        return Ok((net, format!("{}", path.display())));
    }
    if let Some(spec) = store.network()? {
        let net = Network::build(regions, spec)
            .context("the network saved in the data directory is not valid; pass --network")?;
        if store.network_version()?.as_deref() != Some(net.version()) {
            // Saved before versions were stored.
            save_network(store, &net)?;
        }
        return Ok((net, "saved in the data directory".into()));
    }
    let net = demo_files().load(regions)?;
    save_network(store, &net)?;
    Ok((net, "demo (shipped in the binary)".into()))
}

/// Saves `net` whatever is stored (at start).
pub fn save_network(store: &dyn Storage, net: &Network) -> anyhow::Result<()> {
    store.save_network(&crate::storage::NetworkSave {
        spec: net.spec(),
        version: net.version(),
        expected: None,
        audit: None,
    })?;
    Ok(())
}

/// Opens the configured backend: sled's data directory, or the PostgreSQL database (connected
/// and migrated, off the async workers).
pub async fn open_storage(
    config: &Config,
    backend: &crate::config::Backend,
) -> anyhow::Result<Arc<dyn Storage>> {
    use crate::config::Backend;
    Ok(match backend {
        Backend::Sled(sled) => Arc::new(
            SledStore::open(&config.data_dir, sled)
                .with_context(|| format!("opening data directory {}", config.data_dir.display()))?,
        ),
        Backend::Postgres(pg) => {
            let pg = pg.clone();
            let where_ = crate::storage::redacted(&pg.url);
            let store = tokio::task::spawn_blocking(move || PostgresStore::open(&pg))
                .await?
                .with_context(|| format!("opening the database {where_}"))?;
            tracing::info!(database = %where_, "storage: PostgreSQL");
            Arc::new(store)
        }
    })
}

/// Opens the store, picks the network, binds and serves until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // The recorder first: handles built before it (the store's writer builds its own) record
    // nothing.
    let _ = crate::server::metrics::handle();
    let engine_cfg = config.engine()?;
    config.attribution.check().map_err(anyhow::Error::msg)?;
    let backend = config.backend()?;
    config.limits.check()?;
    config.auth.check()?;
    // Bind first: a bad address is reported before anything is created on disk.
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let options = serve_options(&config, listener.local_addr()?).await?;
    let store = open_storage(&config, &backend).await?;
    // The network, the engine and the models read storage and files: off the async workers.
    // Who publishes the models this replica loads, and which publication it serves.
    let by = listener.local_addr()?.to_string();
    let following = Arc::new(published::Following::default());
    let started = {
        let config = config.clone();
        let (by, following) = (by.clone(), following.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<Engine>> {
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
            if let Some(versions) = published::at_start(&engine, &config.models, &by, &following)
                .context("[models]: an artifact cannot be used")?
            {
                tracing::info!(
                    ?versions,
                    published = following.seq(),
                    "learned models in service"
                );
            }
            Ok(engine)
        })
    };
    let engine = started.await??;
    let addr = listener.local_addr()?;
    // One line on stdout that scripts and tests wait for.
    println!("leadrouter listening on {addr}");
    let storage = match &backend {
        crate::config::Backend::Sled(_) => format!("sled at {}", config.data_dir.display()),
        crate::config::Backend::Postgres(pg) => {
            format!("postgres at {}", crate::storage::redacted(&pg.url))
        }
    };
    tracing::info!(%addr, %storage, policy = engine.snapshot().policy.name(), "serving gRPC and HTTP");
    let store = engine.store().clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = crate::server::check_at_start(store.as_ref()) {
            tracing::error!(error = %e, "the check at start could not read the trails");
        }
    });
    let services = crate::server::Services::new(engine, config.attribution.clone())
        .map_err(anyhow::Error::msg)?;
    let attribution = services.attribution.clone();
    // The rule sets: published where the configuration names them, else those in service.
    let rules = Arc::new(published::Following::default());
    {
        let (engine, attribution, config, by, rules) = (
            services.engine.clone(),
            attribution.clone(),
            config.clone(),
            by.clone(),
            rules.clone(),
        );
        tokio::task::spawn_blocking(move || {
            published::rules_at_start(&engine, &attribution, &config, &by, &rules)
        })
        .await?
        .context("the rule sets cannot be published")?;
    }
    let completed = tokio::task::spawn_blocking(move || attribution.recover_disputes()).await??;
    if completed > 0 {
        tracing::warn!(
            completed,
            "dispute resolutions interrupted by a stop were completed"
        );
    }
    let publishing = Publishing {
        by,
        models: following,
        rules,
        config_file: config.source.clone(),
    };
    spawn_reloader(
        &services,
        config.models.clone(),
        options.gate.clone(),
        config.auth.keys_file.clone(),
        publishing.clone(),
    );
    let mut options = options;
    let attribution = services.attribution.clone();
    options.keep_up = Some(crate::server::KeepUp(Arc::new(move |engine: &Engine| {
        published::follow(engine, &publishing.models)?;
        published::follow_rules(engine, &attribution, &publishing.rules)?;
        Ok(())
    })));
    crate::server::run_with(
        listener,
        services,
        options,
        crate::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// Who may call, TLS and limits, from the configuration. Off loopback the service refuses to
/// start without keys unless `[auth] mode = "open"` says so plainly.
pub async fn serve_options(
    config: &Config,
    addr: std::net::SocketAddr,
) -> anyhow::Result<crate::server::Options> {
    use crate::config::AuthMode;
    use crate::server::Gate;
    let timeout = std::time::Duration::from_millis(config.limits.request_timeout_ms);
    let gate = match (config.auth.mode, &config.auth.keys_file) {
        (AuthMode::Open, _) => {
            tracing::warn!(
                %addr,
                "[auth] mode = \"open\": every caller that reaches this port may route, record \
                 orders, change the catalog and resolve disputes"
            );
            Gate::open(timeout)
        }
        (_, Some(path)) => {
            let file = crate::auth::KeysFile::read(path, false)
                .with_context(|| format!("[auth] keys_file {}", path.display()))?;
            let ring = crate::auth::Keyring::from_file(&file);
            if ring.is_empty() {
                tracing::warn!(keys_file = %path.display(), "the keys file holds no usable key: every call but health is refused");
            }
            tracing::info!(keys = ring.len(), "keys loaded");
            Gate::with_keys(ring, config.auth.rate_per_sec, config.auth.burst, timeout)
        }
        (AuthMode::Auto, None) if addr.ip().is_loopback() => {
            tracing::info!(%addr, "no [auth] keys_file: serving without keys on loopback only");
            Gate::open(timeout)
        }
        (_, None) => anyhow::bail!(
            "refusing to serve {addr} without keys: anyone who reaches it could record orders and \
             resolve disputes. Make a key with `leadrouter keys add --name ops --role admin \
             --keys-file /etc/leadrouter/keys.toml` and set [auth] keys_file to that file, or \
             write [auth] mode = \"open\" to serve without keys"
        ),
    };
    let tls = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Some(
            crate::server::tls::server_config(cert, key, config.tls.client_ca.as_deref())
                .map_err(anyhow::Error::msg)?,
        ),
        (None, None) if config.tls.client_ca.is_some() => {
            anyhow::bail!("tls.client_ca: needs tls.cert and tls.key")
        }
        (None, None) => None,
        _ => anyhow::bail!("tls: give both cert and key, or neither"),
    };
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving without TLS off loopback: keys cross the network in clear text");
    }
    let metrics_listener = match &config.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding metrics_listen {a}"))?,
        ),
        None => None,
    };
    Ok(crate::server::Options {
        gate: std::sync::Arc::new(
            gate.with_in_flight(config.limits.max_requests_in_flight)
                .with_json_limit(config.limits.max_message_bytes),
        ),
        transport: crate::server::Transport {
            tls,
            limits: config.limits.clone(),
        },
        metrics_listener,
        durable_one_at_a_time: false,
        keep_up: None,
        max_watchers: config.limits.max_watchers,
    })
}

/// On SIGHUP, reads the keys file again and swaps it in; a file that cannot be used is logged and
/// counted (`leadrouter_keys_reloads_total{result="failed"}`), and the keys in service stay.
fn reload_keys(gate: &crate::server::Gate, path: &Path) {
    match crate::auth::KeysFile::read(path, false) {
        Ok(file) => {
            let ring = crate::auth::Keyring::from_file(&file);
            let n = ring.len();
            gate.replace_keys(ring);
            metrics::counter!("leadrouter_keys_reloads_total", "result" => "ok").increment(1);
            tracing::info!(keys = n, "keys reloaded");
        }
        Err(e) => {
            metrics::counter!("leadrouter_keys_reloads_total", "result" => "failed").increment(1);
            tracing::error!(keys_file = %path.display(), error = %e, "keys not reloaded; the ones in service stay");
        }
    }
}

/// Who publishes what this replica loads, and which publications it serves.
#[derive(Clone)]
struct Publishing {
    by: String,
    models: Arc<published::Following>,
    rules: Arc<published::Following>,
    /// The configuration file, re-read on SIGHUP for its rule sets.
    config_file: Option<std::path::PathBuf>,
}

/// On SIGHUP: the keys file (when the service runs with keys), then the model artifacts and
/// the configuration file's rule sets.
fn spawn_reloader(
    services: &crate::server::Services,
    cfg: crate::config::ModelsConfig,
    gate: Arc<crate::server::Gate>,
    keys_file: Option<std::path::PathBuf>,
    publishing: Publishing,
) {
    #[cfg(unix)]
    if let Some(path) = keys_file.filter(|_| !gate.is_open()) {
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                reload_keys(&gate, &path);
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (gate, keys_file);
    spawn_model_reloader(services, cfg, publishing);
}

/// On SIGHUP, reads the model artifacts named in `[models]` again, swaps them in and publishes
/// them for every replica ([`published`]); then the rule sets the configuration file names. A
/// file that cannot be used is logged and counted (`leadrouter_model_reloads_total` or
/// `leadrouter_rule_reloads_total` with `result="failed"`), and what is in service stays.
fn spawn_model_reloader(
    services: &crate::server::Services,
    cfg: crate::config::ModelsConfig,
    publishing: Publishing,
) {
    #[cfg(unix)]
    {
        let (engine, attribution) = (services.engine.clone(), services.attribution.clone());
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP: models and rules reload only on restart");
                return;
            };
            while hup.recv().await.is_some() {
                let (engine, attribution, cfg, p) = (
                    engine.clone(),
                    attribution.clone(),
                    cfg.clone(),
                    publishing.clone(),
                );
                let reloaded = tokio::task::spawn_blocking(move || {
                    let models = (cfg != crate::config::ModelsConfig::default())
                        .then(|| published::load_and_publish(&engine, &cfg, &p.by, &p.models));
                    let rules = p.config_file.as_deref().map(|file| {
                        published::reload_rules(&engine, &attribution, file, &p.by, &p.rules)
                    });
                    let policies = p.config_file.as_deref().map(|file| {
                        crate::config::Config::from_file(file)
                            .map_err(anyhow::Error::from)
                            .and_then(|c| {
                                engine
                                    .set_policies(&c.policy, &c.experiments)
                                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
                            })
                    });
                    (models, rules, policies)
                })
                .await;
                let Ok((models, rules, policies)) = reloaded else {
                    tracing::error!("the reloader panicked");
                    continue;
                };
                match models {
                    None => tracing::info!("SIGHUP: no [models] artifact configured"),
                    Some(Ok(versions)) => {
                        metrics::counter!("leadrouter_model_reloads_total", "result" => "ok")
                            .increment(1);
                        tracing::info!(?versions, "learned models reloaded and published");
                    }
                    Some(Err(e)) => {
                        metrics::counter!("leadrouter_model_reloads_total", "result" => "failed")
                            .increment(1);
                        tracing::error!(error = %format!("{e:#}"), "learned models not reloaded; the ones in service stay");
                    }
                }
                match rules {
                    None | Some(Ok(None)) => {}
                    Some(Ok(Some(versions))) => {
                        metrics::counter!("leadrouter_rule_reloads_total", "result" => "ok")
                            .increment(1);
                        tracing::info!(rules = %versions, "rule sets reloaded and published");
                    }
                    Some(Err(e)) => {
                        metrics::counter!("leadrouter_rule_reloads_total", "result" => "failed")
                            .increment(1);
                        tracing::error!(error = %format!("{e:#}"), "rule sets not reloaded; the ones in service stay");
                    }
                }
                match policies {
                    None => {}
                    Some(Ok(summary)) => {
                        metrics::counter!("leadrouter_policy_reloads_total", "result" => "ok")
                            .increment(1);
                        tracing::info!(%summary, "[policy] and [[experiments]] reloaded");
                    }
                    Some(Err(e)) => {
                        metrics::counter!("leadrouter_policy_reloads_total", "result" => "failed")
                            .increment(1);
                        tracing::error!(error = %format!("{e:#}"), "[policy] and [[experiments]] not reloaded; the ones in service stay");
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (services, cfg, publishing);
}

/// Writes a generated network's files.
pub fn generate_network(spec: &GenerateSpec, out: &Path) -> anyhow::Result<Network> {
    let regions = Arc::new(RegionTree::embedded());
    spec.check(&regions).map_err(anyhow::Error::msg)?;
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
