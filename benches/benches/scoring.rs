//! Scoring cost per candidate with the learned models loaded: `scored` ranking a lead's
//! candidates on the demo network with the demo's preference and propensity artifacts, against
//! the same ranking with the shipped matrix only (same process, same candidates).
//!
//! Then each policy's ranking cost per candidate against `scored`'s in the same run: `softmax`
//! (the exploring policy), `dual_price`, and both floored policies.
//!
//! `cargo bench -p leadrouter-benches --bench scoring`

use criterion::{Criterion, criterion_group, criterion_main};
use leadrouter::catalog::{LearnedModels, Network, RegionTree, demo_files};
use leadrouter::clock::ManualClock;
use leadrouter::domain::{Channel, Day, Interest, Lead, Location, SplitMix64};
use leadrouter::engine::{CandidateConfig, Engine, EngineConfig};
use leadrouter::policy::{Candidate, Policy, PolicyConfig, RouteContext, Scored, ScoredWeights};
use leadrouter::storage::MemoryStore;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn models() -> LearnedModels {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../router/data/demo/models");
    LearnedModels {
        preference: Some(
            leadrouter::app::models::load_preference(&dir.join("preference.json")).unwrap(),
        ),
        propensity: Some(
            leadrouter::app::models::load_propensity(&dir.join("propensity.json")).unwrap(),
        ),
        ..Default::default()
    }
}

/// Candidates of 200 leads near demo stores, up to the city level.
fn candidate_sets(net: Network) -> Vec<Vec<Candidate>> {
    let stores: Vec<(String, Location)> = net
        .stores()
        .iter()
        .enumerate()
        .map(|(i, s)| (net.store_region_code(i as u32), s.location))
        .collect();
    let engine = Engine::new(
        net,
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(1_795_000_000_000)),
        EngineConfig {
            candidates: CandidateConfig {
                max_level: "city".into(),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    let mut rng = SplitMix64::new(3);
    (0..200)
        .map(|i| {
            let (code, at) = &stores[rng.below(stores.len() as u64) as usize];
            let lead = Lead {
                lead_id: format!("s{i}"),
                member_id: None,
                channel: Channel::MiniProgram,
                region_code: code.clone(),
                location: Some(Location {
                    lat: at.lat + 0.01,
                    lon: at.lon - 0.01,
                }),
                interests: vec![Interest {
                    category: "womenswear".into(),
                    weight: 1.0,
                }],
                referrer_guide_id: None,
                occurred_at_ms: 1_795_000_000_000,
            };
            engine.reachable(&lead).unwrap()
        })
        .collect()
}

fn rank_all(policy: &dyn Policy, net: &Network, sets: &[Vec<Candidate>]) -> usize {
    let mut n = 0;
    for (i, cands) in sets.iter().enumerate() {
        let mut ctx = RouteContext {
            network: net,
            region: net.regions().root(),
            level: leadrouter::domain::Level::City,
            day: Day(20_000),
            rng: SplitMix64::new(i as u64),
            channel: 0,
            hour: 20,
            segment: None,
        };
        n += black_box(policy.rank(&mut ctx, cands, 6)).order.len();
    }
    n
}

fn bench_scoring(c: &mut Criterion) {
    let regions = Arc::new(RegionTree::embedded());
    let (spec, _) = demo_files().parse().unwrap();
    let plain = Network::build(regions.clone(), spec.clone()).unwrap();
    let learned = Network::build_with(regions, spec, models()).unwrap();
    let sets = candidate_sets(
        Network::build(Arc::new(RegionTree::embedded()), plain.spec().clone()).unwrap(),
    );
    let total: usize = sets.iter().map(Vec::len).sum();
    let policy = Scored::new(ScoredWeights::default()).unwrap();
    let mut g = c.benchmark_group("scoring");
    g.bench_function("scored/shipped_matrix", |b| {
        b.iter(|| rank_all(&policy, &plain, &sets))
    });
    g.bench_function("scored/learned_models", |b| {
        b.iter(|| rank_all(&policy, &learned, &sets))
    });
    g.finish();
    // Per candidate, alternating rounds in one process.
    let per = |net: &Network| {
        let t = Instant::now();
        for _ in 0..20 {
            rank_all(&policy, net, &sets);
        }
        t.elapsed().as_secs_f64() * 1e9 / (20.0 * total as f64)
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        a.push(per(&plain));
        b.push(per(&learned));
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    println!(
        "scoring/scored per candidate ({} candidates over {} leads): shipped matrix {:.1} ns, learned preference + propensity {:.1} ns (ratio {:.2})",
        total,
        sets.len(),
        a[2],
        b[2],
        b[2] / a[2]
    );
    // The policies, per candidate on the learned network, each against scored.
    let configs: Vec<(&str, PolicyConfig)> = [
        ("scored", "name = \"scored\""),
        ("scored floor 0.5", "name = \"scored\"\nfloor = 0.5"),
        ("softmax", "name = \"softmax\""),
        ("dual_price", "name = \"dual_price\""),
        ("dual_price floor 0.5", "name = \"dual_price\"\nfloor = 0.5"),
    ]
    .into_iter()
    .map(|(n, t)| (n, toml::from_str(t).unwrap()))
    .collect();
    let built: Vec<Box<dyn Policy>> = configs
        .iter()
        .map(|(_, c)| c.build(&learned).unwrap())
        .collect();
    let mut g = c.benchmark_group("policies");
    for ((name, _), p) in configs.iter().zip(&built) {
        g.bench_function(*name, |b| b.iter(|| rank_all(p.as_ref(), &learned, &sets)));
    }
    g.finish();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); built.len()];
    for _ in 0..5 {
        for (k, p) in built.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..20 {
                rank_all(p.as_ref(), &learned, &sets);
            }
            times[k].push(t.elapsed().as_secs_f64() * 1e9 / (20.0 * total as f64));
        }
    }
    for t in &mut times {
        t.sort_by(f64::total_cmp);
    }
    let line: Vec<String> = configs
        .iter()
        .zip(&times)
        .map(|((n, _), t)| format!("{n} {:.1} ns ({:.2})", t[2], t[2] / times[0][2]))
        .collect();
    println!(
        "policies per candidate (ratio to scored): {}",
        line.join(", ")
    );
}

criterion_group!(benches, bench_scoring);
criterion_main!(benches);
