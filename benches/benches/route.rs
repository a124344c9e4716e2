//! route() in-process on the reference network (10,000 stores, 60,000 guides), over the sled and
//! in-memory stores: criterion's per-call time, then p50 / p99 / p99.9 of single calls.
//!
//! `cargo bench -p leadrouter-benches --bench route`
//! (`LEADROUTER_BENCH_STORES=memory` or `=sled` runs one store only.)
//!
//! Every lead comes from a new member (`LEADROUTER_BENCH_MEMBERS=new`, the default): the full
//! path, candidates and policy, plus the binding event each new member gets. `=none` sends leads
//! without a member (routing alone); `=returning` cycles through 20,000 members, who are bound
//! after their first lead and then go straight to their guide.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use leadrouter::clock::{Clock, ManualClock};
use leadrouter::domain::Lead;
use leadrouter::engine::{Engine, EngineConfig};
use leadrouter::storage::{MemoryStore, SledConfig, SledStore, Storage};
use leadrouter_benches::{T0, lead_templates, micros, percentile, reference_network};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Routes per simulated business day before the bench clock moves to the next day, so capacity
/// never runs out and every call takes the full path.
const PER_DAY: u64 = 200_000;

struct Rig {
    engine: Engine,
    clock: Arc<ManualClock>,
    templates: Vec<Lead>,
    n: u64,
    members: String,
    _dir: Option<tempfile::TempDir>,
}

impl Rig {
    fn new(kind: &str) -> Self {
        let net = reference_network();
        let templates = lead_templates(&net, 20_000, 7);
        let clock = Arc::new(ManualClock::new(T0));
        let (store, dir): (Arc<dyn Storage>, _) = match kind {
            "sled" => {
                let dir = tempfile::tempdir().unwrap();
                (
                    Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap()),
                    Some(dir),
                )
            }
            _ => (Arc::new(MemoryStore::new()), None),
        };
        let engine = Engine::new(net, store, clock.clone(), EngineConfig::default()).unwrap();
        Self {
            engine,
            clock,
            templates,
            n: 0,
            members: std::env::var("LEADROUTER_BENCH_MEMBERS").unwrap_or_else(|_| "new".into()),
            _dir: dir,
        }
    }

    /// The next fresh lead (a new id every call).
    fn next_lead(&mut self) -> Lead {
        self.n += 1;
        if self.n.is_multiple_of(PER_DAY) {
            self.clock.advance_ms(86_400_000);
        }
        let mut lead = self.templates[(self.n % self.templates.len() as u64) as usize].clone();
        lead.lead_id = format!("b{}", self.n);
        lead.member_id = match self.members.as_str() {
            "none" => None,
            "returning" => lead.member_id,
            _ => Some(format!("bm{}", self.n)),
        };
        lead.occurred_at_ms = self.clock.now_ms() - 1000;
        lead
    }
}

/// Single-call latencies: back to back (`rate = None`, saturating both cores together with the
/// store's background writer) or paced at `rate` routes per second (a busy brand's peak).
fn latency_report(kind: &str, rig: &mut Rig, calls: usize, rate: Option<u32>) {
    let mut times = Vec::with_capacity(calls);
    let gap = rate.map(|r| Duration::from_secs_f64(1.0 / f64::from(r)));
    let mut next = Instant::now();
    let mut routed = 0usize;
    let mut levels = std::collections::BTreeMap::new();
    for _ in 0..calls {
        let lead = rig.next_lead();
        if let Some(gap) = gap {
            next += gap;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
        let t = Instant::now();
        let d = rig.engine.route(&lead).unwrap();
        times.push(t.elapsed());
        routed += usize::from(d.assigned.is_some());
        *levels
            .entry(d.level.map_or("none", |l| l.as_str()))
            .or_insert(0usize) += 1;
    }
    times.sort();
    let mode = rate.map_or("back-to-back".to_string(), |r| format!("paced {r}/s"));
    println!(
        "route/{kind}/reference [{mode}, members {}]: p50 {:.2} µs  p99 {:.2} µs  p99.9 {:.2} µs  max {:.0} µs  ({calls} calls, {:.1}% routed)",
        rig.members,
        micros(percentile(&times, 50.0)),
        micros(percentile(&times, 99.0)),
        micros(percentile(&times, 99.9)),
        micros(*times.last().unwrap_or(&Duration::ZERO)),
        100.0 * routed as f64 / calls as f64,
    );
    println!("route/{kind}/reference [{mode}]: candidates found at {levels:?}");
}

fn bench_route(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4));
    // LEADROUTER_BENCH_STORES=memory (or sled) narrows the run, e.g. for a profiler.
    let kinds = std::env::var("LEADROUTER_BENCH_STORES").unwrap_or_else(|_| "memory,sled".into());
    for kind in kinds.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let mut rig = Rig::new(kind);
        // Warm up caches and sled's tree before measuring.
        for _ in 0..20_000 {
            let lead = rig.next_lead();
            rig.engine.route(&lead).unwrap();
        }
        latency_report(kind, &mut rig, 200_000, None);
        latency_report(kind, &mut rig, 20_000, Some(5_000));
        group.bench_function(BenchmarkId::new("reference", kind), |b| {
            b.iter_custom(|iters| {
                let leads: Vec<Lead> = (0..iters).map(|_| rig.next_lead()).collect();
                let t = Instant::now();
                for lead in &leads {
                    black_box(rig.engine.route(lead).unwrap());
                }
                t.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_route);
criterion_main!(benches);
