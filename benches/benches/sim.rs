//! The simulator's speed (issue: ≥ 1M simulated leads per policy per minute on 2 cores; the
//! dual bound of a 1M-lead day in ≤ 60 s, within 1 % of the exact optimum where computable).
//!
//! `cargo bench -p leadrouter-benches --bench sim`
//!
//! 1. `sim/run`: a whole run (arrivals, reachable guides valued by the truth, the day's
//!    yardstick, every policy routing on its own engine, dual prices learned, orders through
//!    attribution) of one day on the reference network, with two policies and anonymous leads
//!    (routing alone: no binding decides a route). Printed: simulated leads per policy per minute, the
//!    phases, and as a ratio against the same engine's bare `route()` per lead in the same
//!    process (what the simulation adds on top of production routing).
//! 2. `dual/bound`: the dual bound of synthetic days; then one 1M-lead day timed once, with its
//!    gap, and a 50k-lead day where the exact optimum is computed for comparison.
//!
//! 3. `sim/members`: two 20,000-lead days of the demo network with members (returning from
//!    the first day on the second), one policy under two binding rule sets, each run's trails
//!    restated under two ownership rule sets × two split policies: eight combinations, on one
//!    thread. Printed: seconds per simulated 20,000-lead day per run (a policy under a binding
//!    rule set, with its four ownership × split restatements; target: under 10 s), and the
//!    phases.
//!
//! `LEADROUTER_BENCH_SIM_LEADS` (default 100000) sets the leads of the run;
//! `LEADROUTER_BENCH_SIM_ONLY=sim`, `=dual` or `=members` runs one part.

use criterion::{Criterion, criterion_group, criterion_main};
use leadrouter::clock::ManualClock;
use leadrouter::engine::{Engine, EngineConfig};
use leadrouter::storage::MemoryStore;
use leadrouter_sim::dual::{self, DualOptions};
use leadrouter_sim::flow;
use leadrouter_sim::instance::Instance;
use leadrouter_sim::run::{Options, run};
use leadrouter_sim::scenario::Scenario;
use leadrouter_sim::world::World;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn leads() -> u32 {
    std::env::var("LEADROUTER_BENCH_SIM_LEADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn scenario(leads: u32) -> Scenario {
    Scenario::parse(&format!(
        "seed = 9\ndays = 1\n[network]\nsource = \"reference\"\n[members]\nanonymous = 1.0\n\
         [demand]\nleads_per_day = {leads}\n\
         [yardstick]\nexact_max_edges = 0\ndual_iterations = 100\n\
         [[policies]]\nname = \"scored\"\n[[policies]]\nname = \"dual_price\"\n"
    ))
    .unwrap()
}

/// Bare route() per lead on the same engine configuration and arrivals: the reference.
fn bare_route_per_lead(s: &Scenario) -> Duration {
    let c = s.check().unwrap();
    let world = World::build(s, &c).unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let engine = Engine::new(
        world.fresh_network(),
        Arc::new(MemoryStore::new()),
        clock.clone(),
        EngineConfig {
            candidates: s.routing.clone(),
            alternatives: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let arrivals = world.arrivals(0);
    let t = Instant::now();
    for a in &arrivals {
        clock.set(a.lead.occurred_at_ms);
        std::hint::black_box(engine.route(&a.lead).unwrap());
    }
    t.elapsed() / arrivals.len() as u32
}

fn only(part: &str) -> bool {
    std::env::var("LEADROUTER_BENCH_SIM_ONLY").map_or(true, |v| v == part)
}

fn bench_sim(c: &mut Criterion) {
    if !only("sim") {
        return;
    }
    let n = leads();
    let s = scenario(n);
    let checked = s.check().unwrap();
    let opts = Options {
        progress: false,
        threads: 2,
        record_orders: false,
    };
    let r = run(&s, &checked, opts).unwrap();
    let t = r.timings;
    let total = t.edges + t.yardstick + t.routing + t.learning + t.money;
    let policies = s.policies.len() as f64;
    let per_policy_minute = f64::from(n) * policies * 60.0 / total.as_secs_f64();
    let bare = bare_route_per_lead(&s);
    let per_lead_policy = total.as_secs_f64() / (f64::from(n) * policies);
    println!(
        "sim/run reference network, {n} leads, {} policies, 2 threads: {:.2} s \
         (edges {:.2} s, yardstick {:.2} s, routing {:.2} s, learning {:.2} s, money {:.2} s) \
         => {:.2}M simulated leads per policy per minute",
        s.policies.len(),
        total.as_secs_f64(),
        t.edges.as_secs_f64(),
        t.yardstick.as_secs_f64(),
        t.routing.as_secs_f64(),
        t.learning.as_secs_f64(),
        t.money.as_secs_f64(),
        per_policy_minute / 1e6
    );
    println!(
        "sim/run cost per lead and policy {:.2} us = {:.2} x a bare route() ({:.2} us) in the same process",
        per_lead_policy * 1e6,
        per_lead_policy / bare.as_secs_f64(),
        bare.as_secs_f64() * 1e6
    );
    let small = scenario(10_000);
    let small_c = small.check().unwrap();
    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    g.bench_function("run/10k_leads_2_policies", |b| {
        b.iter(|| run(&small, &small_c, opts).unwrap())
    });
    g.finish();
}

/// Members, trails and ownership: two demo days, eight policy × rule-set combinations.
fn bench_members(c: &mut Criterion) {
    if !only("members") {
        return;
    }
    let text = "seed = 9\ndays = 2\n[demand]\nleads_per_day = 20000\n\
        [[policies]]\nname = \"dual_price\"\n\
        [[bindings]]\nversion = \"protect-30\"\n\
        [[bindings]]\nversion = \"protect-90\"\nprotection_days = 90\n\
        [[ownership]]\nversion = \"bound-first\"\n\
        [[ownership]]\nversion = \"service-first\"\nservice_guide_first = true\n\
        [[splits]]\nversion = \"361\"\n\
        [[splits]]\nversion = \"25-70-5\"\nowner = 25\nfulfilling_store = 70\no2o_centre = 5\n";
    let s = Scenario::parse(text).unwrap();
    let checked = s.check().unwrap();
    let opts = Options {
        progress: false,
        threads: 1,
        record_orders: false,
    };
    let t0 = Instant::now();
    let r = run(&s, &checked, opts).unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let t = r.timings;
    let combos = s.policies.len() * s.bindings.len() * s.ownership.len() * s.splits.len();
    let members: u64 = r.days.iter().map(|d| d.policies[0].member_leads).sum();
    let events: usize = r.policies.iter().map(|p| p.trails.events).sum();
    assert!(r.policies.iter().all(|p| p.trails.ok));
    println!(
        "sim/members demo network, 2 days x 20000 leads ({members} member leads), {} runs \
         ({combos} policy x rule-set combinations), 1 thread: {wall:.2} s (edges {:.2} s, \
         yardstick {:.2} s, routing {:.2} s, learning {:.2} s, trails and money {:.2} s; \
         {events} trail events) => {:.2} s per 20000-lead day per run, its {} ownership x split \
         restatements included",
        r.policies.len(),
        t.edges.as_secs_f64(),
        t.yardstick.as_secs_f64(),
        t.routing.as_secs_f64(),
        t.learning.as_secs_f64(),
        t.money.as_secs_f64(),
        wall / (2.0 * r.policies.len() as f64),
        s.ownership.len() * s.splits.len()
    );
    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    let small =
        Scenario::parse(&text.replace("leads_per_day = 20000", "leads_per_day = 2000")).unwrap();
    let small_c = small.check().unwrap();
    g.bench_function("members/2x2000_leads_8_combinations", |b| {
        b.iter(|| run(&small, &small_c, opts).unwrap())
    });
    g.finish();
}

fn bench_dual(c: &mut Criterion) {
    if !only("dual") {
        return;
    }
    let mut g = c.benchmark_group("dual");
    g.sample_size(10);
    let inst = Instance::random(100_000, 6_000, 20, 30, 1);
    let opts = DualOptions {
        threads: 2,
        ..Default::default()
    };
    g.bench_function("bound/100k_leads_2M_edges", |b| {
        b.iter(|| dual::bound(&inst, None, opts))
    });
    g.finish();

    // Where the exact optimum is computable: how far above it the bound stops.
    let mid = Instance::random(20_000, 1_200, 20, 30, 2);
    let t = Instant::now();
    let opt = flow::solve(&mid).value;
    let exact = t.elapsed();
    let t = Instant::now();
    let b = dual::bound(&mid, None, opts);
    let took = t.elapsed();
    println!(
        "dual/20k leads, 400k edges: exact optimum {opt:.1} in {:.2} s; bound {:.1} in {:.2} s = {:.4}% above the optimum ({} steps)",
        exact.as_secs_f64(),
        b.upper,
        took.as_secs_f64(),
        100.0 * (b.upper - opt) / opt,
        b.iterations
    );
    // A 1M-lead day, once.
    let big = Instance::random(1_000_000, 60_000, 20, 30, 3);
    let t = Instant::now();
    let b = dual::bound(&big, None, opts);
    println!(
        "dual/1M leads, 20M edges, 2 threads: bound {:.1} in {:.2} s; a feasible assignment worth {:.1} is within {:.4}% of it ({} steps)",
        b.upper,
        t.elapsed().as_secs_f64(),
        b.lower,
        100.0 * b.gap(),
        b.iterations
    );
}

criterion_group!(benches, bench_sim, bench_members, bench_dual);
criterion_main!(benches);
