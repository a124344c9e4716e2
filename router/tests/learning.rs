//! The production learning loop from the outside: `leadrouter models skill`, `models prices` and
//! `models learn` on exported decisions and outcomes, and the server loading what they wrote
//! through `[models]`.

mod common;

use common::*;
use leadrouter_proto::v1 as pb;
use std::path::{Path, PathBuf};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// One busy day of round-robin routing near one Guangzhou store (more leads than the nearby
/// guides can take), with outcomes from a planted truth: guides of even index convert 30 % of
/// their leads, the others 5 %. Returns (decisions, labels, the good guides' ids).
fn busy_day(dir: &Path, n: usize) -> (PathBuf, PathBuf, Vec<String>) {
    use leadrouter::clock::ManualClock;
    use leadrouter::domain::export::DecisionLine;
    use leadrouter::domain::{Channel, Interest, Lead, Location, SplitMix64};
    use leadrouter::engine::{Engine, EngineConfig};
    use leadrouter::storage::{Decisions, MemoryStore};
    let net = demo();
    let s0 = net
        .stores()
        .iter()
        .position(|s| {
            net.store_region_code(net.store_index(&s.id).unwrap())
                .starts_with("440106")
        })
        .expect("a Tianhe store in the demo network") as u32;
    let at = net.store(s0).location;
    let code = net.store_region_code(s0);
    let store = std::sync::Arc::new(MemoryStore::new());
    // 2026-12-01 08:00 +08:00.
    let clock = std::sync::Arc::new(ManualClock::new(1_796_083_200_000));
    let engine = Engine::new(
        demo(),
        store.clone(),
        clock.clone(),
        EngineConfig {
            policy: leadrouter::policy::PolicyConfig::RoundRobin,
            ..Default::default()
        },
    )
    .unwrap();
    let mut rng = SplitMix64::new(9);
    let mut labels = String::from("lead_id,converted\n");
    for i in 0..n {
        let lead = Lead {
            lead_id: format!("b{i}"),
            member_id: None,
            channel: Channel::MiniProgram,
            region_code: code.clone(),
            location: Some(Location {
                lat: at.lat + (rng.next_f64() - 0.5) * 0.02,
                lon: at.lon + (rng.next_f64() - 0.5) * 0.02,
            }),
            interests: vec![Interest {
                category: "shoes".into(),
                weight: 1.0,
            }],
            referrer_guide_id: None,
            occurred_at_ms: leadrouter::clock::Clock::now_ms(&*clock),
        };
        let d = engine.route(&lead).unwrap();
        if let Some((_, g)) = &d.assigned {
            let good = net.guide_index(g).unwrap().is_multiple_of(2);
            let rate = if good { 0.3 } else { 0.05 };
            labels.push_str(&format!("b{i},{}\n", u8::from(rng.next_f64() < rate)));
        }
        clock.advance_ms(10_000);
    }
    let mut lines = String::new();
    store
        .scan_decisions(&mut |d| {
            lines.push_str(&serde_json::to_string(&DecisionLine::from(&*d)).unwrap());
            lines.push('\n');
            true
        })
        .unwrap();
    let (d, l) = (dir.join("decisions.jsonl"), dir.join("labels.csv"));
    std::fs::write(&d, lines).unwrap();
    std::fs::write(&l, labels).unwrap();
    let good = net
        .guides()
        .iter()
        .enumerate()
        .filter(|(i, _)| i.is_multiple_of(2))
        .map(|(_, g)| g.id.to_string())
        .collect();
    (d, l, good)
}

#[test]
fn skill_finds_the_planted_guides_and_prices_the_short_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (decisions, labels, good) = busy_day(dir.path(), 4000);
    let skill = dir.path().join("skill.json");
    let o = cli(&[
        "models",
        "skill",
        "--decisions",
        p(&decisions),
        "--labels",
        p(&labels),
        "--out",
        p(&skill),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("skill-"), "{}", text(&o));
    let m =
        leadrouter_models::skill::SkillModel::from_json(&std::fs::read_to_string(&skill).unwrap())
            .unwrap();
    let good: std::collections::HashSet<&str> = good.iter().map(String::as_str).collect();
    let mean = |want: bool| {
        let v: Vec<f64> = m
            .guides
            .iter()
            .filter(|(g, _)| good.contains(g.as_str()) == want)
            .map(|(_, s)| s.lift())
            .collect();
        assert!(v.len() > 5, "{} guides", v.len());
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(
        mean(true) > mean(false) + 0.3,
        "{} vs {}",
        mean(true),
        mean(false)
    );

    // Prices: a dual_price config; the guides near the crowd are short of capacity.
    let config = dir.path().join("leadrouter.toml");
    std::fs::write(
        &config,
        format!(
            "[policy]\nname = \"dual_price\"\n[models]\nskill = {:?}\n",
            p(&skill)
        ),
    )
    .unwrap();
    let prices = dir.path().join("prices.json");
    let o = cli(&[
        "models",
        "prices",
        "--decisions",
        p(&decisions),
        "--config",
        p(&config),
        "--out",
        p(&prices),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let pm = leadrouter_models::prices::PriceModel::from_json(
        &std::fs::read_to_string(&prices).unwrap(),
    )
    .unwrap();
    assert!(!pm.prices.is_empty(), "{}", text(&o));
    assert!(pm.prices.values().all(|p| *p > 0.0));
    assert!(
        pm.meta.version.starts_with("prices-2026-12-01-"),
        "{}",
        pm.meta.version
    );
    // Far fewer guides are short than the network has.
    assert!(
        pm.prices.len() < demo().guides().len() / 2,
        "{}",
        pm.prices.len()
    );
    // The bound comes with its gap (a feasible assignment at the prices is the lower side).
    assert!(pm.meta.metrics["gap"] < 0.15, "{:?}", pm.meta.metrics);

    // Bad input is named and nothing is written.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"lead_id\": 3}\n").unwrap();
    let nothing = dir.path().join("nothing.json");
    let o = cli(&[
        "models",
        "prices",
        "--decisions",
        p(&bad),
        "--out",
        p(&nothing),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("bad.jsonl:1"),
        "{}",
        text(&o)
    );
    assert!(!nothing.exists());
    let o = cli(&[
        "models",
        "skill",
        "--decisions",
        p(&decisions),
        "--labels",
        p(&labels),
        "--shrinkage=-3",
        "--out",
        p(&nothing),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("shrinkage"),
        "{}",
        text(&o)
    );
    assert!(!nothing.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learn_writes_every_artifact_and_the_server_routes_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let (decisions, labels, _) = busy_day(dir.path(), 3000);
    let out = dir.path().join("models");
    let config = dir.path().join("policy.toml");
    std::fs::write(&config, "[policy]\nname = \"dual_price\"\n").unwrap();
    let o = cli(&[
        "models",
        "learn",
        "--decisions",
        p(&decisions),
        "--labels",
        p(&labels),
        "--config",
        p(&config),
        "--out-dir",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("preference: skipped"), "{t}");
    for f in [
        "skill.json",
        "propensity.json",
        "prices.json",
        "models.toml",
    ] {
        assert!(out.join(f).exists(), "{f}: {t}");
    }
    let skill = leadrouter_models::skill::SkillModel::from_json(
        &std::fs::read_to_string(out.join("skill.json")).unwrap(),
    )
    .unwrap();
    let prices = leadrouter_models::prices::PriceModel::from_json(
        &std::fs::read_to_string(out.join("prices.json")).unwrap(),
    )
    .unwrap();
    // The server runs dual_price with the [models] table `learn` wrote.
    let served = dir.path().join("served.toml");
    std::fs::write(
        &served,
        format!(
            "[policy]\nname = \"dual_price\"\n{}",
            std::fs::read_to_string(out.join("models.toml")).unwrap()
        ),
    )
    .unwrap();
    let bin = Binary::start(&dir.path().join("data"), &["--config", p(&served)]);
    let mut r = pb::lead_router_client::LeadRouterClient::connect(bin.url())
        .await
        .unwrap();
    let mut req = request("after-learning", "440106");
    req.member_id = None;
    let d = r.route(req).await.unwrap().into_inner();
    for v in [&skill.meta.version, &prices.meta.version] {
        assert!(
            d.model_versions.contains(v),
            "{v} not in {:?}",
            d.model_versions
        );
    }
    assert!(bin.terminate().success());
}

const EXPERIMENT: &str = r#"
[[experiments]]
name = "explore"
[[experiments.arms]]
name = "control"
share = 0.5
policy = { name = "scored" }
[[experiments.arms]]
name = "nearest"
share = 0.5
policy = { name = "nearest" }
"#;

async fn route_member(url: &str, lead: &str, member: &str) -> pb::RouteResponse {
    let mut r = pb::lead_router_client::LeadRouterClient::connect(url.to_string())
        .await
        .unwrap();
    let mut req = request(lead, "440106");
    req.member_id = Some(member.into());
    r.route(req).await.unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_split_members_record_arms_and_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("leadrouter.toml");
    std::fs::write(&config, "[policy]\nname = \"scored\"\n").unwrap();
    let bin = Binary::start(&dir.path().join("data"), &["--config", p(&config)]);
    let url = bin.url();
    let d = route_member(&url, "before", "m0").await;
    assert_eq!((d.policy.as_str(), d.experiment.as_str()), ("scored", ""));
    let hup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &bin.child.id().to_string()])
            .status()
            .unwrap();
    };
    let reloads = |result: &'static str| {
        let addr = bin.addr;
        async move {
            let (_, body) = http_get(addr, "/metrics").await;
            body.lines()
                .find_map(|l| {
                    l.strip_prefix(&format!(
                        "leadrouter_policy_reloads_total{{result=\"{result}\"}} "
                    ))
                })
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        }
    };
    // Experiments by SIGHUP, without a restart.
    std::fs::write(
        &config,
        format!("[policy]\nname = \"scored\"\n{EXPERIMENT}"),
    )
    .unwrap();
    hup();
    for _ in 0..100 {
        if reloads("ok").await >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(reloads("ok").await, 1);
    let mut arms = std::collections::HashMap::new();
    for m in 0..40 {
        let d = route_member(&url, &format!("l{m}"), &format!("m{m}")).await;
        assert_eq!(d.experiment, "explore");
        let want = if d.arm == "control" {
            "scored"
        } else {
            "nearest"
        };
        assert_eq!(d.policy, want, "{d:?}");
        *arms.entry(d.arm.clone()).or_insert(0) += 1;
        // The same member's next lead: the same arm.
        let again = route_member(&url, &format!("l{m}-2"), &format!("m{m}")).await;
        assert_eq!(again.arm, d.arm);
    }
    assert_eq!(arms.len(), 2, "{arms:?}");
    let (_, body) = http_get(bin.addr, "/metrics").await;
    assert!(
        body.contains("leadrouter_experiment_routes_total{experiment=\"explore\",arm=\"nearest\",outcome=\"routed\"}"),
        "{body}"
    );
    // A bad file: refused, counted, and the experiment in service stays.
    std::fs::write(
        &config,
        format!(
            "[policy]\nname = \"scored\"\n{}",
            EXPERIMENT.replace(
                "share = 0.5\npolicy = { name = \"nearest\" }",
                "share = 0.7\npolicy = { name = \"nearest\" }"
            )
        ),
    )
    .unwrap();
    hup();
    for _ in 0..100 {
        if reloads("failed").await >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(reloads("failed").await, 1);
    let d = route_member(&url, "after-bad", "m1").await;
    assert_eq!(d.experiment, "explore");
    // The decision keeps its arm in storage: replaying the lead returns it.
    let again = route_member(&url, "after-bad", "m1").await;
    assert!(again.replayed);
    assert_eq!(again.arm, d.arm);
    assert!(bin.terminate().success());
}
