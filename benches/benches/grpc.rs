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
//!
//! Then the backends side by side: `Route` and durable `RecordOrder` on PostgreSQL (a throwaway
//! cluster on this machine, fsync on, `synchronous_commit` for decisions off as configured by
//! default) against sled, as throughput ratios in the same run; and what one route of a new lead
//! costs the database in transactions and statements (`pg_stat_database`,
//! `pg_stat_statements`). `LEADROUTER_BENCH_POSTGRES=0` skips them.

use criterion::{Criterion, criterion_group, criterion_main};
use leadrouter::clock::SystemClock;
use leadrouter::engine::{Engine, EngineConfig};
use leadrouter::storage::{
    MemoryStore, PostgresConfig, PostgresStore, SledConfig, SledStore, Storage,
};
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
    /// The cluster a `postgres` rig serves on (dropped last), and its database's name.
    pg: Option<(leadrouter_pgtest::PgCluster, String)>,
}

/// One kind of call.
#[derive(Clone, Copy, PartialEq)]
enum Call {
    Ping,
    Route,
    /// A durable `RecordOrder` (acknowledged once committed / flushed).
    Order,
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

fn now_ts() -> leadrouter_proto::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    leadrouter_proto::Timestamp {
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
        let mut pg = None;
        let store: Arc<dyn Storage> = match kind {
            "memory" => Arc::new(MemoryStore::new()),
            "postgres" => {
                let cluster = leadrouter_pgtest::PgCluster::start_with(&[
                    "-c",
                    "shared_preload_libraries=pg_stat_statements",
                ]);
                let url = cluster.database();
                let db = url.rsplit('/').next().unwrap().to_string();
                cluster.psql_on(&db, "CREATE EXTENSION pg_stat_statements");
                let mut config = PostgresConfig::new(url);
                config.pool_size = 32;
                let store = Arc::new(PostgresStore::open(&config).unwrap());
                leadrouter::app::save_network(store.as_ref(), &net).unwrap();
                pg = Some((cluster, db));
                store
            }
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
            pg,
        }
    }

    /// Runs `calls` calls of one kind with `concurrency` in flight; returns the elapsed time.
    fn run(&self, call: Call, calls: u64) -> Duration {
        concurrently(&self.client_rt, self.concurrency, calls, |count| {
            let channel = self.channel.clone();
            let (templates, next) = (self.templates.clone(), self.next.clone());
            let max_alternatives = self.max_alternatives;
            let auth = self.auth.clone();
            async move {
                let mut client = LeadRouterClient::new(channel.clone());
                let mut orders = pb::attribution_client::AttributionClient::new(channel);
                for _ in 0..count {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    match call {
                        Call::Route => {
                            let mut req = templates[(n % templates.len() as u64) as usize].clone();
                            req.lead_id = format!("g{n}");
                            req.occurred_at = Some(now_ts());
                            req.max_alternatives = max_alternatives;
                            client.route(keyed(req, &auth)).await.expect("route");
                        }
                        Call::Ping => {
                            client
                                .ping(keyed(pb::PingRequest {}, &auth))
                                .await
                                .expect("ping");
                        }
                        Call::Order => {
                            let req = pb::RecordOrderRequest {
                                order_id: format!("o{n}"),
                                member_id: format!("m{}", n % 4096),
                                amount_cents: 10_000 + (n % 997) as i64,
                                paid_channel: pb::Channel::MiniProgram as i32,
                                fulfilling_store_id: Some("S00001".into()),
                                occurred_at: Some(now_ts()),
                                ..Default::default()
                            };
                            orders
                                .record_order(keyed(req, &auth))
                                .await
                                .expect("record order");
                        }
                    }
                }
            }
        })
    }

    /// Throughput (calls/s) of `calls` calls of one kind.
    fn throughput(&self, call: Call, calls: u64) -> f64 {
        calls as f64 / self.run(call, calls).as_secs_f64()
    }

    /// `(statements, transactions)` the database has run so far (statistics of this database).
    /// Idle backends report their transaction counts within 10 s (PGSTAT_IDLE_INTERVAL): the
    /// reading waits that long first.
    fn database_work(&self) -> (f64, f64) {
        let (pg, db) = self.pg.as_ref().expect("a postgres rig");
        std::thread::sleep(Duration::from_secs(11));
        let statements: f64 = pg
            .psql_on(db, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements")
            .parse()
            .unwrap();
        let xacts: f64 = pg
            .psql_on(
                db,
                "SELECT xact_commit + xact_rollback FROM pg_stat_database \
                 WHERE datname = current_database()",
            )
            .parse()
            .unwrap();
        (statements, xacts)
    }
}

/// CPU seconds used so far by processes named `name` (`None`: this process), from /proc.
fn cpu_seconds(name: Option<&str>) -> f64 {
    let ticks = |stat: &str| -> Option<f64> {
        // After the command's closing parenthesis: state, then fields 4.., utime and stime
        // are the 12th and 13th of them.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
    };
    let total: f64 = match name {
        None => std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| ticks(&s))
            .unwrap_or(0.0),
        Some(name) => std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|s| s.contains(&format!("({name})")))
            .filter_map(|s| ticks(&s))
            .sum(),
    };
    total / 100.0
}

/// Route and durable RecordOrder on PostgreSQL against sled, alternating rounds; then one
/// client routing new leads alone on PostgreSQL, counting what each costs the database.
fn backends() {
    let sled = Rig::new("sled");
    let pg = Rig::new("postgres");
    for rig in [&sled, &pg] {
        rig.run(Call::Route, 5_000);
        rig.run(Call::Order, 2_000);
    }
    let (mut route, mut order) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for _ in 0..5 {
        route.0.push(sled.throughput(Call::Route, 10_000));
        route.1.push(pg.throughput(Call::Route, 10_000));
        order.0.push(sled.throughput(Call::Order, 4_000));
        order.1.push(pg.throughput(Call::Order, 4_000));
    }
    // Where the CPU goes while PostgreSQL serves routes: its processes, and this one (server
    // and client).
    let (db0, me0) = (cpu_seconds(Some("postgres")), cpu_seconds(None));
    let took = pg.run(Call::Route, 10_000).as_secs_f64();
    let (db1, me1) = (cpu_seconds(Some("postgres")), cpu_seconds(None));
    println!(
        "grpc/backends/postgres: 10000 routes in {took:.2} s; CPU per route: database {:.0} µs, server and client {:.0} µs",
        (db1 - db0) / 10_000.0 * 1e6,
        (me1 - me0) / 10_000.0 * 1e6
    );
    let (rs, rp) = (median(route.0), median(route.1));
    let (os, op) = (median(order.0), median(order.1));
    println!(
        "grpc/backends (concurrency {}): Route sled {rs:.0} calls/s, postgres {rp:.0} calls/s, postgres/sled = {:.2}; RecordOrder (durable) sled {os:.0} calls/s, postgres {op:.0} calls/s, postgres/sled = {:.2}",
        sled.concurrency,
        rp / rs,
        op / os
    );
    // What one new lead's route costs: the same calls one at a time.
    let (s0, x0) = pg.database_work();
    let n = 1_000;
    concurrently(&pg.client_rt, 1, n, |count| {
        let mut client = LeadRouterClient::new(pg.channel.clone());
        let (templates, next, auth) = (pg.templates.clone(), pg.next.clone(), pg.auth.clone());
        async move {
            for _ in 0..count {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let mut req = templates[(i % templates.len() as u64) as usize].clone();
                req.lead_id = format!("one{i}");
                req.member_id = Some(format!("new-member-{i}"));
                req.occurred_at = Some(now_ts());
                client.route(keyed(req, &auth)).await.expect("route");
            }
        }
    });
    let (s1, x1) = pg.database_work();
    // The readings count themselves (two statements, two transactions), and the replica's
    // refreshes (two reads a second) are counted with the routes.
    println!(
        "grpc/backends/postgres: a new member's route, one at a time, costs {:.2} transactions and {:.2} statements, BEGIN and COMMIT included (over {n} routes)",
        (x1 - x0 - 2.0) / n as f64,
        (s1 - s0 - 2.0) / n as f64
    );
}

fn ratio(kind: &str) {
    let rig = Rig::new(kind);
    // Warm up both paths.
    rig.run(Call::Ping, 5_000);
    rig.run(Call::Route, 5_000);
    // Alternate rounds so both see the same machine state; compare medians.
    let calls = 20_000;
    let (mut ping, mut route) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        ping.push(rig.throughput(Call::Ping, calls));
        route.push(rig.throughput(Call::Route, calls));
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
    if std::env::var("LEADROUTER_BENCH_POSTGRES").as_deref() != Ok("0") {
        backends();
    }
    let rig = Rig::new("sled");
    rig.run(Call::Route, 5_000);

    let mut group = c.benchmark_group("grpc");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("ping", |b| {
        b.iter_custom(|iters| rig.run(Call::Ping, iters))
    });
    group.bench_function("route", |b| {
        b.iter_custom(|iters| rig.run(Call::Route, iters))
    });
    group.finish();
}

criterion_group!(benches, bench_grpc);
criterion_main!(benches);
