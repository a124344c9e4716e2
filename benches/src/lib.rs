//! Shared fixtures of the benches: the reference network, lead streams, latency percentiles, a
//! served rig (server and client on separate runtimes).
#![forbid(unsafe_code)]

use leadrouter::catalog::{GenerateSpec, Network, RegionTree, generate};
use leadrouter::domain::{Channel, Interest, Lead, Location, SplitMix64};
use std::sync::Arc;
use std::time::Duration;

/// 2026-11-23 10:00 Asia/Shanghai, in Unix ms.
pub const T0: i64 = 1_795_399_200_000 + 2 * 3_600_000;

/// The reference network: 10,000 stores, 60,000 guides, every province (`GenerateSpec::reference`).
pub fn reference_network() -> Network {
    let regions = Arc::new(RegionTree::embedded());
    let spec = generate(&regions, &GenerateSpec::reference());
    Network::build(regions, spec).expect("the reference network is valid")
}

/// Lead templates spread like the stores: a store's district, half with coordinates near it,
/// one to three interests.
pub fn lead_templates(net: &Network, n: usize, seed: u64) -> Vec<Lead> {
    let mut rng = SplitMix64::new(seed);
    let cats = net.categories();
    (0..n)
        .map(|i| {
            let s = rng.below(net.stores().len() as u64) as u32;
            let store = net.store(s);
            let location = (rng.next_f64() < 0.5).then(|| Location {
                lat: store.location.lat + (rng.next_f64() - 0.5) * 0.1,
                lon: store.location.lon + (rng.next_f64() - 0.5) * 0.1,
            });
            let k = 1 + rng.below(3) as usize;
            let mut interests: Vec<Interest> = Vec::with_capacity(k);
            for _ in 0..k {
                let c = &cats[rng.below(cats.len() as u64) as usize];
                if !interests.iter().any(|x| &x.category == c) {
                    interests.push(Interest {
                        category: c.clone(),
                        weight: 0.2 + rng.next_f64(),
                    });
                }
            }
            Lead {
                lead_id: format!("t{i}"),
                member_id: Some(format!("m{i}")),
                channel: Channel::ALL[rng.below(Channel::ALL.len() as u64) as usize],
                region_code: net.store_region_code(s),
                location,
                interests,
                referrer_guide_id: None,
                occurred_at_ms: T0,
            }
        })
        .collect()
}

/// p-th percentile (0..=100) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A server on its own runtime and a client runtime with a channel connected to it, so that the
/// client's work is not counted as the server's (both still share the machine).
pub struct Served {
    pub client_rt: tokio::runtime::Runtime,
    pub server_rt: tokio::runtime::Runtime,
    pub channel: tonic::transport::Channel,
}

/// Serves `services` on 127.0.0.1:0 (2 worker threads) and connects a client (2 worker threads).
pub fn serve(services: leadrouter::server::Services) -> Served {
    serve_with(services, leadrouter::server::Options::default())
}

/// A server that admits only `key` (role admin), as production runs off loopback; the key to
/// send as `authorization: Bearer <key>`.
pub fn keyed_options() -> (leadrouter::server::Options, String) {
    let mut file = leadrouter::auth::KeysFile::default();
    let key = file
        .add(
            "bench",
            leadrouter::auth::Role::Admin,
            vec![],
            "2026-01-01T00:00:00Z".into(),
        )
        .expect("a key");
    let options = leadrouter::server::Options {
        gate: std::sync::Arc::new(leadrouter::server::Gate::with_keys(
            leadrouter::auth::Keyring::from_file(&file),
            1e9,
            1e9,
            Duration::from_secs(30),
        )),
        ..leadrouter::server::Options::default()
    };
    (options, key)
}

/// As [`serve`], with keys, TLS or limits.
pub fn serve_with(
    services: leadrouter::server::Services,
    options: leadrouter::server::Options,
) -> Served {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    };
    let server_rt = runtime();
    let addr = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("the bound address");
        tokio::spawn(leadrouter::server::run_with(
            listener,
            services,
            options,
            std::future::pending::<()>(),
        ));
        addr
    });
    let client_rt = runtime();
    let channel = client_rt.block_on(async {
        tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("a valid URI")
            .connect()
            .await
            .expect("the server accepts connections")
    });
    Served {
        client_rt,
        server_rt,
        channel,
    }
}

/// Runs `calls` calls over `clients` concurrent tasks on `rt`: `task(n)` makes one client's
/// future, which makes `n` calls. Returns the elapsed time.
pub fn concurrently<Fut>(
    rt: &tokio::runtime::Runtime,
    clients: usize,
    calls: u64,
    task: impl Fn(u64) -> Fut,
) -> Duration
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let per_client = calls.div_ceil(clients.max(1) as u64);
    rt.block_on(async {
        let start = std::time::Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| tokio::spawn(task(per_client)))
            .collect();
        for t in tasks {
            t.await.expect("a client task");
        }
        start.elapsed()
    })
}

/// The median of a few throughput rounds.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The allocator the `leadrouter` binary serves with, so benches measure what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
