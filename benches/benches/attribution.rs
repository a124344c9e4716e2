//! Durable `RecordOrder` over gRPC with 64 concurrent clients, with group commit against a flush
//! per request (the same clients, `SledConfig::group_commit = false`: the server runs each
//! order's writes and its own flush alone, one order at a time) and against one client,
//! printed as throughput ratios: what group commit buys. Then criterion's costs of a
//! trail append and of a trail page read (in-process, sled), and of an order without the disk
//! (in-memory store: validation, ownership, split, hashing).
//!
//! `cargo bench -p leadrouter-benches --bench attribution`
//! (`LEADROUTER_BENCH_CONCURRENCY` sets the concurrent clients, default 64.)

use criterion::{Criterion, criterion_group, criterion_main};
use leadrouter::attribution::{Attribution, AttributionConfig, OrderInput, TouchInput};
use leadrouter::catalog::{RegionTree, demo_files};
use leadrouter::clock::SystemClock;
use leadrouter::domain::Channel;
use leadrouter::domain::trail::{OrderFacts, Touch, TouchKind};
use leadrouter::engine::{Engine, EngineConfig};
use leadrouter::server::Services;
use leadrouter::storage::{MemoryStore, SledConfig, SledStore, Storage};
use leadrouter_benches::{Served, concurrently, median, serve_with};
use leadrouter_proto::v1 as pb;
use leadrouter_proto::v1::attribution_client::AttributionClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tonic::transport::Channel as GrpcChannel;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn engine(store: Arc<dyn Storage>) -> Arc<Engine> {
    let net = demo_files()
        .load(Arc::new(RegionTree::embedded()))
        .expect("demo network");
    Arc::new(Engine::new(net, store, Arc::new(SystemClock), EngineConfig::default()).unwrap())
}

struct Rig {
    client_rt: tokio::runtime::Runtime,
    _server_rt: tokio::runtime::Runtime,
    channel: GrpcChannel,
    next: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn new(group_commit: bool) -> Self {
        // Install the metrics recorder before the store builds its handles.
        let _ = leadrouter::server::metrics::handle();
        let dir = tempfile::tempdir().unwrap();
        let config = SledConfig {
            group_commit,
            ..SledConfig::default()
        };
        let store: Arc<dyn Storage> = Arc::new(SledStore::open(dir.path(), &config).unwrap());
        let services = Services::new(engine(store), AttributionConfig::default()).unwrap();
        let Served {
            client_rt,
            server_rt,
            channel,
        } = serve_with(
            services,
            leadrouter::server::Options {
                durable_one_at_a_time: !group_commit,
                ..Default::default()
            },
        );
        Self {
            client_rt,
            _server_rt: server_rt,
            channel,
            next: Arc::new(AtomicU64::new(0)),
            _dir: dir,
        }
    }

    /// `calls` empty calls (`LeadRouter.Ping`) with `clients` in flight: the transport's ceiling.
    fn ping(&self, clients: usize, calls: u64) -> Duration {
        concurrently(&self.client_rt, clients, calls, |n| {
            let mut client = pb::lead_router_client::LeadRouterClient::new(self.channel.clone());
            async move {
                for _ in 0..n {
                    client.ping(pb::PingRequest {}).await.expect("ping");
                }
            }
        })
    }

    /// Records `orders` new orders with `clients` in flight; returns the elapsed time.
    fn run(&self, clients: usize, orders: u64) -> Duration {
        concurrently(&self.client_rt, clients, orders, |count| {
            let mut client = AttributionClient::new(self.channel.clone());
            let next = self.next.clone();
            async move {
                for _ in 0..count {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let ms = now_ms();
                    let r = client
                        .record_order(pb::RecordOrderRequest {
                            order_id: format!("bench-{n}"),
                            member_id: format!("m{}", n % 10_000),
                            amount_cents: 100 + (n % 100_000) as i64,
                            paid_channel: pb::Channel::MiniProgram as i32,
                            fulfilling_store_id: Some("S00001".into()),
                            occurred_at: Some(leadrouter_proto::Timestamp {
                                seconds: ms / 1000,
                                nanos: 0,
                            }),
                            ..Default::default()
                        })
                        .await
                        .expect("record_order");
                    assert!(!r.into_inner().replayed);
                }
            }
        })
    }
}

fn group_commit_ratio() {
    let clients = std::env::var("LEADROUTER_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let rig = Rig::new(true);
    let solo = Rig::new(false);
    rig.run(1, 20);
    rig.run(clients, 500);
    solo.run(clients, 200);
    // Alternate rounds so all see the same machine state; compare medians.
    let (mut one, mut many, mut alone, mut pings) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let n = 100;
        one.push(n as f64 / rig.run(1, n).as_secs_f64());
        let n = 2_000;
        many.push(n as f64 / rig.run(clients, n).as_secs_f64());
        let n = 1_000;
        alone.push(n as f64 / solo.run(clients, n).as_secs_f64());
        let n = 10_000;
        pings.push(n as f64 / rig.ping(clients, n).as_secs_f64());
    }
    let (o, m, a, p) = (median(one), median(many), median(alone), median(pings));
    println!(
        "attribution/record_order durable, {clients} clients: {m:.0} orders/s with group commit; {a:.0} orders/s with a flush per request (ratio {:.1}); 1 client {o:.0} orders/s (ratio {:.1}); empty Ping {p:.0} calls/s (RecordOrder/Ping = {:.2})",
        m / a,
        m / o,
        m / p
    );
}

/// An order of a member with no trail yet.
fn new_member_order(n: u64) -> OrderInput {
    OrderInput {
        member_id: format!("new-{n}"),
        facts: OrderFacts {
            order_id: format!("o{n}"),
            amount_cents: 12_345,
            paid_channel: Channel::MiniProgram,
            fulfilling_store_id: Some("S00001".into()),
            sharing_guide_id: None,
            referrer_guide_ids: vec![],
        },
        occurred_at_ms: now_ms(),
        recorded_by: None,
    }
}

fn touch(n: u64, member: &str) -> TouchInput {
    TouchInput {
        member_id: member.to_string(),
        touch: Touch {
            touch_id: format!("t{n}"),
            kind: TouchKind::GuideChat,
            channel: Channel::MiniProgram,
            guide_id: Some("G000001".into()),
            store_id: None,
            lead_id: None,
            recorded_by: None,
        },
        occurred_at_ms: now_ms(),
    }
}

fn bench_attribution(c: &mut Criterion) {
    group_commit_ratio();

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> =
        Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap());
    let a = Attribution::new(engine(store), AttributionConfig::default()).unwrap();
    // One member with 1,000 events to read pages from.
    for n in 0..1_000 {
        a.record_touch(touch(n, "reader")).unwrap();
    }
    let mem = Attribution::new(
        engine(Arc::new(MemoryStore::new())),
        AttributionConfig::default(),
    )
    .unwrap();
    let next = AtomicU64::new(1_000);

    let mut group = c.benchmark_group("trail");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("append_touch_sled", |b| {
        b.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            a.record_touch(touch(n, &format!("m{}", n % 10_000)))
                .unwrap()
        })
    });
    // The same on sled without the flush: what the disk layout costs on the CPU.
    group.bench_function("order_unflushed_sled", |b| {
        b.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            a.record_order_unflushed(new_member_order(n)).unwrap()
        })
    });
    group.bench_function("read_page_100_of_1000_sled", |b| {
        let mut from = 1u64;
        b.iter(|| {
            let page = a.trail("reader", from, (None, None), 100).unwrap();
            from = page.next_seq.unwrap_or(1);
            page
        })
    });
    // A member with a short trail (each order a new member): validation, ownership, split,
    // hashing. (History within the rules' horizon is read and cloned per order, so members with
    // hundreds of recent events cost more.)
    group.bench_function("order_without_disk_memory", |b| {
        b.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            mem.record_order(new_member_order(n)).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_attribution);
criterion_main!(benches);
