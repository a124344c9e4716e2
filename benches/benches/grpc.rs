//! `Route` over gRPC against an empty unary RPC (`Ping`) on the same server, with the same client
//! and concurrency, printed as a throughput ratio; then criterion's per-call time for both.
//! The server runs the production setup: sled store, reference network (10,000 stores, 60,000
//! guides), the default `scored` policy, on its own runtime; the client shares the machine.
//!
//! `cargo bench -p leadrouter-benches --bench grpc`
//! (`LEADROUTER_BENCH_CONCURRENCY` sets the in-flight calls, default 32;
//! `LEADROUTER_BENCH_STORES=sled,memory` also runs the ratio over the in-memory store, which
//! separates the storage's share of Route's cost from the rest;
//! `LEADROUTER_BENCH_ALTERNATIVES=N` sends `max_alternatives = N`, default: all alternatives;
//! `LEADROUTER_BENCH_AUTH=open` serves without keys; default `keys`: every call carries a key
//! the server checks, as production runs off loopback.)

use criterion::{Criterion, criterion_group, criterion_main};
use leadrouter::clock::SystemClock;
use leadrouter::engine::{Engine, EngineConfig};
use leadrouter::storage::{MemoryStore, SledConfig, SledStore, Storage};
use leadrouter::wire;
use leadrouter_benches::{
    Served, concurrently, keyed_options, lead_templates, median, reference_network, serve,
    serve_with,
};
use leadrouter_proto::v1 as pb;
use leadrouter_proto::v1::lead_router_client::LeadRouterClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tonic::transport::Channel;

struct Rig {
    client_rt: tokio::runtime::Runtime,
    _server_rt: tokio::runtime::Runtime,
    channel: Channel,
    templates: Arc<Vec<pb::RouteRequest>>,
    next: Arc<AtomicU64>,
    concurrency: usize,
    max_alternatives: Option<u32>,
    /// `authorization` metadata, when the server checks keys.
    auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    _dir: tempfile::TempDir,
}

/// `msg` with the key, when there is one.
fn keyed<T>(
    msg: T,
    auth: &Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(v) = auth {
        r.metadata_mut().insert("authorization", v.clone());
    }
    r
}

/// `keys` (default) or `open`.
fn auth_mode() -> String {
    std::env::var("LEADROUTER_BENCH_AUTH").unwrap_or_else(|_| "keys".into())
}

fn now_ts() -> prost_types::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: 0,
    }
}

impl Rig {
    fn new(kind: &str) -> Self {
        let net = reference_network();
        let templates: Vec<pb::RouteRequest> = lead_templates(&net, 20_000, 11)
            .iter()
            .map(wire::lead_to_pb)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Storage> = match kind {
            "memory" => Arc::new(MemoryStore::new()),
            _ => Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap()),
        };
        let engine = Arc::new(
            Engine::new(net, store, Arc::new(SystemClock), EngineConfig::default()).unwrap(),
        );
        let services = leadrouter::server::Services::new(engine, Default::default()).unwrap();
        let (served, auth) = if auth_mode() == "open" {
            (serve(services), None)
        } else {
            let (options, key) = keyed_options();
            let value = format!("Bearer {key}").parse().expect("a header value");
            (serve_with(services, options), Some(value))
        };
        let Served {
            client_rt,
            server_rt,
            channel,
        } = served;
        let concurrency = std::env::var("LEADROUTER_BENCH_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(32);
        Self {
            client_rt,
            _server_rt: server_rt,
            channel,
            templates: Arc::new(templates),
            next: Arc::new(AtomicU64::new(0)),
            concurrency,
            max_alternatives: std::env::var("LEADROUTER_BENCH_ALTERNATIVES")
                .ok()
                .and_then(|v| v.parse().ok()),
            auth,
            _dir: dir,
        }
    }

    /// Runs `calls` calls of one kind with `concurrency` in flight; returns the elapsed time.
    fn run(&self, route: bool, calls: u64) -> Duration {
        concurrently(&self.client_rt, self.concurrency, calls, |count| {
            let mut client = LeadRouterClient::new(self.channel.clone());
            let (templates, next) = (self.templates.clone(), self.next.clone());
            let max_alternatives = self.max_alternatives;
            let auth = self.auth.clone();
            async move {
                for _ in 0..count {
                    if route {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let mut req = templates[(n % templates.len() as u64) as usize].clone();
                        req.lead_id = format!("g{n}");
                        req.occurred_at = Some(now_ts());
                        req.max_alternatives = max_alternatives;
                        client.route(keyed(req, &auth)).await.expect("route");
                    } else {
                        client
                            .ping(keyed(pb::PingRequest {}, &auth))
                            .await
                            .expect("ping");
                    }
                }
            }
        })
    }
}

fn ratio(kind: &str) {
    let rig = Rig::new(kind);
    // Warm up both paths.
    rig.run(false, 5_000);
    rig.run(true, 5_000);
    // Alternate rounds so both see the same machine state; compare medians.
    let calls = 20_000;
    let (mut ping, mut route) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        ping.push(calls as f64 / rig.run(false, calls).as_secs_f64());
        route.push(calls as f64 / rig.run(true, calls).as_secs_f64());
    }
    let (p, r) = (median(ping), median(route));
    println!(
        "grpc/throughput/{kind} (concurrency {}, alternatives {}, auth {}): Ping {:.0} calls/s, Route {:.0} calls/s, Route/Ping = {:.2}",
        rig.concurrency,
        rig.max_alternatives
            .map_or("all".to_string(), |n| n.to_string()),
        auth_mode(),
        p,
        r,
        r / p
    );
}

fn bench_grpc(c: &mut Criterion) {
    let kinds = std::env::var("LEADROUTER_BENCH_STORES").unwrap_or_else(|_| "sled".into());
    for kind in kinds.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        ratio(kind);
    }
    let rig = Rig::new("sled");
    rig.run(true, 5_000);

    let mut group = c.benchmark_group("grpc");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("ping", |b| b.iter_custom(|iters| rig.run(false, iters)));
    group.bench_function("route", |b| b.iter_custom(|iters| rig.run(true, iters)));
    group.finish();
}

criterion_group!(benches, bench_grpc);
criterion_main!(benches);
