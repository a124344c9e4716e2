//! Replay of exported decisions: the same policy reproduces what happened; another does not.

use leadrouter::catalog::{Network, RegionTree, demo_files};
use leadrouter::clock::ManualClock;
use leadrouter::domain::export::DecisionLine;
use leadrouter::engine::{Engine, EngineConfig};
use leadrouter::policy::PolicyConfig;
use leadrouter::storage::{Decisions, MemoryStore};
use leadrouter_sim::replay::{self, OrderSeen, ReplayConfig};
use leadrouter_sim::scenario::Scenario;
use leadrouter_sim::world::World;
use std::sync::Arc;

fn demo() -> anyhow::Result<Network> {
    Ok(demo_files().load(Arc::new(RegionTree::embedded()))?)
}

/// A day of `nearest` on the demo network, as `trail export --decisions` would write it.
fn history() -> Vec<DecisionLine> {
    let s = Scenario::parse("seed = 3\n[demand]\nleads_per_day = 1500").unwrap();
    let c = s.check().unwrap();
    let world = World::build(&s, &c).unwrap();
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(0));
    let engine = Engine::new(
        demo().unwrap(),
        store.clone(),
        clock.clone(),
        EngineConfig {
            policy: PolicyConfig::Nearest,
            ..Default::default()
        },
    )
    .unwrap();
    for (i, a) in world.arrivals(0).into_iter().enumerate() {
        let mut lead = a.lead;
        if i % 4 == 0 {
            lead.member_id = Some(format!("m{}", i % 40));
        }
        clock.set(lead.occurred_at_ms + 5);
        engine.route(&lead).unwrap();
    }
    let mut lines = Vec::new();
    store
        .scan_decisions(&mut |d| {
            lines.push(DecisionLine::from(&*d));
            true
        })
        .unwrap();
    lines.sort_by(|a, b| (a.decided_at_ms, &a.lead_id).cmp(&(b.decided_at_ms, &b.lead_id)));
    lines
}

#[test]
fn the_same_policy_reproduces_what_happened() {
    let lines = history();
    assert_eq!(lines.len(), 1500);
    // Each member buys after their last lead, from the guide that lead went to.
    let mut orders = Vec::new();
    for l in lines.iter().rev() {
        if let Some(m) = &l.member_id
            && !orders.iter().any(|o: &OrderSeen| &o.member_id == m)
        {
            orders.push(OrderSeen {
                member_id: m.clone(),
                at_ms: l.decided_at_ms + 3_600_000,
                owner_guide: l.guide_id.clone(),
            });
        }
    }
    let cfg = ReplayConfig {
        policies: vec![PolicyConfig::Nearest, PolicyConfig::Balance],
        threads: 2,
        ..Default::default()
    };
    let r = replay::replay(&demo, &lines, &orders, &cfg).unwrap();
    let n = lines.len() as u64;
    assert_eq!(r.happened.same_guide, r.happened.routed);
    let nearest = &r.policies[0];
    assert_eq!(
        (nearest.routed, nearest.same_guide),
        (r.happened.routed, r.happened.routed)
    );
    assert_eq!(nearest.orders_to_owner, orders.len() as u64);
    assert_eq!(r.happened.orders_to_owner, orders.len() as u64);
    assert!((nearest.estimated_value - r.happened.estimated_value).abs() < 1e-6);
    let balance = &r.policies[1];
    assert_eq!(balance.routed + balance.unrouted, n);
    assert!(balance.same_guide < n / 2, "{balance:?}");
    assert!(
        balance.distance_km / balance.with_distance as f64
            > nearest.distance_km / nearest.with_distance as f64
    );
    assert!(balance.load_gini < nearest.load_gini);
    let md = replay::markdown(&r);
    assert!(
        md.contains("| as happened |") && md.contains("| nearest |"),
        "{md}"
    );
}

fn sim(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_leadrouter-sim"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_replay_command_reads_files_and_names_bad_lines() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("decisions.jsonl");
    let text: String = history()
        .iter()
        .take(300)
        .map(|l| serde_json::to_string(l).unwrap() + "\n")
        .collect();
    std::fs::write(&file, &text).unwrap();
    let out = d.path().join("rep");
    let o = sim(&[
        "replay",
        "--decisions",
        file.to_str().unwrap(),
        "--policy",
        "nearest",
        "--policy",
        "ranking",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("| nearest | 300 | 0 | 100.0% |"),
        "{stdout}"
    );
    assert!(
        std::fs::read_to_string(out.join("replay.csv"))
            .unwrap()
            .lines()
            .count()
            == 4
    );
    // A broken line is named.
    std::fs::write(&file, format!("{text}{{\"lead_id\": 5}}\n")).unwrap();
    let o = sim(&[
        "replay",
        "--decisions",
        file.to_str().unwrap(),
        "--policy",
        "nearest",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("decisions.jsonl:301"),
        "{err}"
    );
    let o = sim(&[
        "replay",
        "--decisions",
        file.to_str().unwrap(),
        "--policy",
        "psychic",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--policy: must be one of"),
        "{err}"
    );
}

#[test]
fn the_replay_report_breaks_what_happened_down_by_arm() {
    // A day routed under an experiment: half the members by `nearest`, half by `balance`.
    let s = Scenario::parse("seed = 4\n[demand]\nleads_per_day = 800").unwrap();
    let c = s.check().unwrap();
    let world = World::build(&s, &c).unwrap();
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(0));
    let experiments: Vec<leadrouter::policy::experiments::ExperimentConfig> = toml::from_str::<
        std::collections::BTreeMap<String, Vec<leadrouter::policy::experiments::ExperimentConfig>>,
    >(
        "[[experiments]]\nname = \"x\"\nunit = \"lead\"\n\
         [[experiments.arms]]\nname = \"near\"\nshare = 0.5\npolicy = { name = \"nearest\" }\n\
         [[experiments.arms]]\nname = \"even\"\nshare = 0.5\npolicy = { name = \"balance\" }\n",
    )
    .unwrap()
    .remove("experiments")
    .unwrap();
    let engine = Engine::new(
        demo().unwrap(),
        store.clone(),
        clock.clone(),
        EngineConfig {
            experiments,
            ..Default::default()
        },
    )
    .unwrap();
    for a in world.arrivals(0) {
        clock.set(a.lead.occurred_at_ms + 5);
        let d = engine.route(&a.lead).unwrap();
        let (_, arm) = d.arm.clone().unwrap();
        assert_eq!(d.policy, if arm == "near" { "nearest" } else { "balance" });
    }
    let mut lines = Vec::new();
    store
        .scan_decisions(&mut |d| {
            lines.push(DecisionLine::from(&*d));
            true
        })
        .unwrap();
    lines.sort_by(|a, b| (a.decided_at_ms, &a.lead_id).cmp(&(b.decided_at_ms, &b.lead_id)));
    let cfg = ReplayConfig {
        policies: vec![PolicyConfig::Nearest],
        threads: 2,
        ..Default::default()
    };
    let r = replay::replay(&demo, &lines, &[], &cfg).unwrap();
    let names: Vec<&str> = r.arms.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["arm x/even", "arm x/near"]);
    let total: u64 = r.arms.iter().map(|s| s.routed + s.unrouted).sum();
    assert_eq!(total, 800);
    assert!(r.arms.iter().all(|s| s.routed > 300), "{:?}", r.arms);
    // The nearest arm's leads travel less than the balanced arm's.
    let km = |s: &replay::Side| s.distance_km / s.with_distance as f64;
    assert!(km(&r.arms[1]) < km(&r.arms[0]));
    let md = replay::markdown(&r);
    assert!(
        md.contains("## By experiment arm") && md.contains("| arm x/near |"),
        "{md}"
    );
}

#[test]
fn a_replayed_history_gets_its_optimum_and_what_other_rules_would_have_paid() {
    let d = tempfile::tempdir().unwrap();
    let p = |name: &str| d.path().join(name).to_str().unwrap().to_string();
    std::fs::write(
        p("s.toml"),
        "seed = 4\ndays = 2\n[demand]\nleads_per_day = 1500\n\
         [[policies]]\nname = \"scored\"\n\
         [[ownership]]\nversion = \"ownership-v1\"\n\
         [[ownership]]\nversion = \"service-first\"\nservice_guide_first = true\n\
         [[splits]]\nversion = \"361\"\n\
         [[splits]]\nversion = \"25-70-5\"\nowner = 25\nfulfilling_store = 70\no2o_centre = 5\n",
    )
    .unwrap();
    let o = sim(&[
        "history",
        &p("s.toml"),
        "--out",
        &p("orders.csv"),
        "--decisions",
        &p("decisions.jsonl"),
        "--labels",
        &p("labels.csv"),
        "--trail",
        &p("trail.jsonl"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = sim(&[
        "replay",
        "--decisions",
        &p("decisions.jsonl"),
        "--trail",
        &p("trail.jsonl"),
        "--scenario",
        &p("s.toml"),
        "--out",
        &p("rep"),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("hindsight optimum"), "{stdout}");
    assert!(stdout.contains("## What the trail paid"), "{stdout}");
    // No side beats the optimum of the same estimates.
    let csv = std::fs::read_to_string(p("rep/replay.csv")).unwrap();
    let optimum: f64 = stdout
        .split("dual bound): ")
        .nth(1)
        .and_then(|t| t.split(".\n").next())
        .and_then(|t| t.trim_end_matches('.').parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(optimum > 0.0);
    for line in csv.lines().skip(1) {
        let value: f64 = line.split(',').nth(7).unwrap().parse().unwrap();
        assert!(value <= optimum * (1.0 + 1e-6), "{line} above {optimum}");
    }
    // Restated under the rules it was recorded under, the trail pays what it recorded; under
    // 25/70/5 owners get less and the pay still sums to the same net revenue.
    let parties = std::fs::read_to_string(p("rep/replay_parties.csv")).unwrap();
    let mut pay: std::collections::BTreeMap<
        (String, String),
        std::collections::BTreeMap<String, i64>,
    > = Default::default();
    for line in parties.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        pay.entry((f[0].to_string(), f[1].to_string()))
            .or_default()
            .insert(f[2].to_string(), f[3].parse().unwrap());
    }
    let get = |o: &str, s: &str| pay[&(o.to_string(), s.to_string())].clone();
    let recorded = get("as recorded", "as recorded");
    let clean =
        |m: std::collections::BTreeMap<String, i64>| -> std::collections::BTreeMap<String, i64> {
            m.into_iter().filter(|(_, c)| *c != 0).collect()
        };
    assert_eq!(clean(recorded.clone()), clean(get("ownership-v1", "361")));
    let other = get("ownership-v1", "25-70-5");
    assert_ne!(clean(recorded.clone()), clean(other.clone()));
    let total = |m: &std::collections::BTreeMap<String, i64>| m.values().sum::<i64>();
    assert_eq!(total(&recorded), total(&other));
    assert_eq!(total(&recorded), total(&get("service-first", "25-70-5")));
    assert!(
        other.get("o2o:centre").unwrap() < recorded.get("o2o:centre").unwrap(),
        "5 % instead of 10 % to the O2O centre"
    );
}
