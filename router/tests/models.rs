//! Learned models from the outside: `leadrouter models preference`, the server loading the
//! artifact named in `[models]`, and SIGHUP swapping it (a bad file keeps the model in service).

mod common;

use common::*;
use leadrouter_proto::v1 as pb;
use std::path::Path;
use std::process::Command;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Orders in two Guangzhou districts: 天河 buys shoes, 越秀 kids.
fn orders_csv(extra: &str) -> String {
    let mut s = String::from("order_id,region_code,category,amount_cents,occurred_at\n");
    for i in 0..60 {
        let (region, cat) = if i % 2 == 0 {
            ("440106", "shoes")
        } else {
            ("440104", "kids")
        };
        s.push_str(&format!(
            "o{i},{region},{cat},19900,2026-11-{:02}T10:00:00+08:00\n",
            1 + i % 20
        ));
    }
    s.push_str(extra);
    s
}

#[test]
fn learns_a_preference_artifact_and_names_bad_lines() {
    let d = tempfile::tempdir().unwrap();
    let orders = d.path().join("orders.csv");
    std::fs::write(&orders, orders_csv("")).unwrap();
    let out = d.path().join("pref.json");
    let o = cli(&[
        "models",
        "preference",
        "--orders",
        p(&orders),
        "--out",
        p(&out),
        "--shrinkage",
        "5",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("from 60 orders"), "{}", text(&o));
    let model = leadrouter::app::models::load_preference(&out).unwrap();
    let row = |code: u64| model.matrix.row(code).unwrap().to_vec();
    let shoes = model.matrix.category_index("shoes").unwrap();
    let kids = model.matrix.category_index("kids").unwrap();
    assert_eq!(row(440106000000)[shoes], 1.0);
    assert_eq!(row(440104000000)[kids], 1.0);
    assert!(row(440106000000)[kids] < 0.5);

    for (bad, want) in [
        (
            "x1,440106,hats,100,2026-11-02T10:00:00+08:00\n",
            "62: category",
        ),
        (
            "x1,449999,shoes,100,2026-11-02T10:00:00+08:00\n",
            "62: region_code",
        ),
        (
            "x1,440106,shoes,-5,2026-11-02T10:00:00+08:00\n",
            "62: amount_cents",
        ),
        ("x1,440106,shoes,100,yesterday\n", "62: occurred_at"),
        (
            "o3,440106,shoes,100,2026-11-02T10:00:00+08:00\n",
            "62: order_id",
        ),
    ] {
        std::fs::write(&orders, orders_csv(bad)).unwrap();
        let out = d.path().join("bad.json");
        let o = cli(&[
            "models",
            "preference",
            "--orders",
            p(&orders),
            "--out",
            p(&out),
        ]);
        assert!(!o.status.success());
        assert!(text(&o).contains(want), "{want}: {}", text(&o));
        assert!(!out.exists(), "nothing written for a bad input");
    }
    std::fs::write(&orders, orders_csv("")).unwrap();
    let o = cli(&[
        "models",
        "preference",
        "--orders",
        p(&orders),
        "--out",
        p(&out),
        "--half-life-days",
        "0",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("half_life_days"),
        "{}",
        text(&o)
    );
}

/// The demo network's shipped artifact fits the demo network.
#[test]
fn the_shipped_demo_artifact_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo/models/preference.json");
    let model = leadrouter::app::models::load_preference(&path).unwrap();
    let net = demo();
    net.check_learned(&model).unwrap();
    assert!(model.meta.version.starts_with("pref-"));
    assert!(model.meta.metrics["orders"] > 10_000.0);
}

async fn versions(url: &str, lead: &str) -> Vec<String> {
    let mut r = pb::lead_router_client::LeadRouterClient::connect(url.to_string())
        .await
        .unwrap();
    let mut req = request(lead, "440106");
    req.member_id = None;
    r.route(req).await.unwrap().into_inner().model_versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_loads_the_artifact_and_sighup_swaps_it() {
    let d = tempfile::tempdir().unwrap();
    let orders = d.path().join("orders.csv");
    std::fs::write(&orders, orders_csv("")).unwrap();
    let model = d.path().join("pref.json");
    let fit = |half_life: &str, out: &Path| {
        let o = cli(&[
            "models",
            "preference",
            "--orders",
            p(&orders),
            "--out",
            p(out),
            "--half-life-days",
            half_life,
        ]);
        assert!(o.status.success(), "{}", text(&o));
        leadrouter::app::models::load_preference(out)
            .unwrap()
            .meta
            .version
            .clone()
    };
    let first = fit("90", &model);
    let config = d.path().join("leadrouter.toml");
    std::fs::write(&config, format!("[models]\npreference = {:?}\n", p(&model))).unwrap();

    // A bad artifact at start: the server refuses to start and names the file.
    let bad = d.path().join("bad.json");
    std::fs::write(&bad, "{\"kind\": \"preference\"}").unwrap();
    let bad_config = d.path().join("bad.toml");
    std::fs::write(
        &bad_config,
        format!("[models]\npreference = {:?}\n", p(&bad)),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_leadrouter"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            p(&d.path().join("x")),
            "--config",
            p(&bad_config),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("bad.json"), "{}", text(&o));

    let bin = Binary::start(&d.path().join("data"), &["--config", p(&config)]);
    let url = bin.url();
    assert_eq!(versions(&url, "L1").await, vec![first.clone()]);
    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
    };
    // A broken file and SIGHUP: the model in service stays, the failure is counted.
    std::fs::write(&model, "not json").unwrap();
    hup(bin.child.id());
    let mut failed = false;
    for _ in 0..100 {
        let (_, body) = http_get(bin.addr, "/metrics").await;
        if body.contains("leadrouter_model_reloads_total{result=\"failed\"} 1") {
            failed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(failed, "the failed reload is counted");
    assert_eq!(versions(&url, "L2").await, vec![first.clone()]);
    // A new artifact and SIGHUP: routes use it.
    let second = fit("7", &model);
    assert_ne!(first, second);
    hup(bin.child.id());
    let mut got = Vec::new();
    for i in 0..100 {
        got = versions(&url, &format!("L3-{i}")).await;
        if got == vec![second.clone()] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(got, vec![second]);
    assert!(bin.terminate().success());
}

/// Decisions of round-robin routing on the demo network with outcomes drawn from a planted
/// truth (near stores convert), as the propensity command reads them.
fn routed_history(dir: &Path, n: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    use leadrouter::clock::ManualClock;
    use leadrouter::domain::export::DecisionLine;
    use leadrouter::domain::{Channel, Interest, Lead, Location, SplitMix64};
    use leadrouter::engine::{Engine, EngineConfig};
    use leadrouter::storage::{Decisions, MemoryStore};
    let net = demo();
    let stores: Vec<(String, Location)> = net
        .stores()
        .iter()
        .enumerate()
        .map(|(i, s)| (net.store_region_code(i as u32), s.location))
        .collect();
    let store = std::sync::Arc::new(MemoryStore::new());
    let clock = std::sync::Arc::new(ManualClock::new(1_795_000_000_000));
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
    let mut rng = SplitMix64::new(5);
    let mut labels = String::from("lead_id,converted\n");
    for i in 0..n {
        let (code, at) = &stores[rng.below(stores.len() as u64) as usize];
        let lead = Lead {
            lead_id: format!("h{i}"),
            member_id: None,
            channel: Channel::MiniProgram,
            region_code: code.clone(),
            location: Some(Location {
                lat: at.lat + (rng.next_f64() - 0.5) * 0.1,
                lon: at.lon + (rng.next_f64() - 0.5) * 0.1,
            }),
            interests: vec![Interest {
                category: "shoes".into(),
                weight: 1.0,
            }],
            referrer_guide_id: None,
            occurred_at_ms: clock.now_ms(),
        };
        let d = engine.route(&lead).unwrap();
        if let Some((s, _)) = &d.assigned {
            let km = lead
                .location
                .unwrap()
                .distance_km(&net.store(net.store_index(s).unwrap()).location);
            let p = 1.0 / (1.0 + (-(0.5 - 0.4 * km)).exp());
            labels.push_str(&format!("h{i},{}\n", u8::from(rng.next_f64() < p)));
        }
        clock.advance_ms(20_000);
    }
    use leadrouter::clock::Clock;
    let mut lines = String::new();
    let mut all = Vec::new();
    store
        .scan_decisions(&mut |d| {
            all.push(DecisionLine::from(&*d));
            true
        })
        .unwrap();
    for l in all {
        lines.push_str(&serde_json::to_string(&l).unwrap());
        lines.push('\n');
    }
    let (d, l) = (dir.join("decisions.jsonl"), dir.join("labels.csv"));
    std::fs::write(&d, lines).unwrap();
    std::fs::write(&l, labels).unwrap();
    (d, l)
}

#[test]
fn learns_a_propensity_artifact_and_reports_its_quality() {
    let dir = tempfile::tempdir().unwrap();
    let (decisions, labels) = routed_history(dir.path(), 3000);
    let out = dir.path().join("prop.json");
    let o = cli(&[
        "models",
        "propensity",
        "--decisions",
        p(&decisions),
        "--labels",
        p(&labels),
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    let auc: f64 = t
        .split("AUC ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{t}"));
    assert!(auc > 0.65, "distance decides here: {t}");
    assert!(t.contains("calibration:"), "{t}");
    let model = leadrouter_models::propensity::PropensityModel::from_json(
        &std::fs::read_to_string(&out).unwrap(),
    )
    .unwrap();
    assert!(model.meta.version.starts_with("prop-"));
    // Bad labels are named by line; nothing is written.
    std::fs::write(&labels, "lead_id,converted\nh0,maybe\n").unwrap();
    let bad = dir.path().join("bad.json");
    let o = cli(&[
        "models",
        "propensity",
        "--decisions",
        p(&decisions),
        "--labels",
        p(&labels),
        "--out",
        p(&bad),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("labels.csv:2: converted"),
        "{}",
        text(&o)
    );
    assert!(!bad.exists());
    let o = cli(&[
        "models",
        "propensity",
        "--decisions",
        p(&decisions),
        "--out",
        p(&bad),
    ]);
    assert!(!o.status.success(), "labels or a trail are needed");
}

#[test]
fn segments_members_by_their_tags() {
    let d = tempfile::tempdir().unwrap();
    let tags = d.path().join("tags.csv");
    let mut csv = String::from("member_id,tag,weight\n");
    for i in 0..60 {
        let (a, b) = if i % 2 == 0 {
            ("sports", "shoes")
        } else {
            ("kids", "womenswear")
        };
        csv.push_str(&format!("m{i},{a},{}\nm{i},{b},1\n", 2 + i % 3));
    }
    std::fs::write(&tags, &csv).unwrap();
    let out = d.path().join("seg.json");
    let asg = d.path().join("asg.csv");
    let o = cli(&[
        "models",
        "segments",
        "--tags",
        p(&tags),
        "--k",
        "2",
        "--out",
        p(&out),
        "--assignments",
        p(&asg),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: Vec<(String, String)> = std::fs::read_to_string(&asg)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (m, s) = l.split_once(',').unwrap();
            (m.to_string(), s.to_string())
        })
        .collect();
    assert_eq!(rows.len(), 60);
    let seg = |m: &str| rows.iter().find(|r| r.0 == m).unwrap().1.clone();
    assert_eq!(seg("m0"), seg("m2"));
    assert_eq!(seg("m1"), seg("m3"));
    assert_ne!(seg("m0"), seg("m1"));
    std::fs::write(&tags, format!("{csv}m9,kids,lots\n")).unwrap();
    let o = cli(&[
        "models",
        "segments",
        "--tags",
        p(&tags),
        "--k",
        "2",
        "--out",
        p(&out),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("tags.csv:122: weight"),
        "{}",
        text(&o)
    );
}

/// Preference from an exported trail: the trail's orders, with the category taken from the
/// member's lead in the exported decisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learns_preference_from_an_exported_trail() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let bin = Binary::start(&data, &[]);
    let mut r = pb::lead_router_client::LeadRouterClient::connect(bin.url())
        .await
        .unwrap();
    let mut a = pb::attribution_client::AttributionClient::connect(bin.url())
        .await
        .unwrap();
    let mut store_region = None;
    for i in 0..12 {
        let mut req = request(&format!("t{i}"), "440106");
        req.interests = vec![pb::Interest {
            category: "shoes".into(),
            weight: 1.0,
        }];
        let routed = r.route(req).await.unwrap().into_inner();
        store_region.get_or_insert(routed.store_id.clone());
        a.record_order(pb::RecordOrderRequest {
            order_id: format!("ord{i}"),
            member_id: format!("m-t{i}"),
            amount_cents: 19_900,
            paid_channel: pb::Channel::MiniProgram as i32,
            fulfilling_store_id: Some(routed.store_id),
            occurred_at: Some(now_ts()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    assert!(bin.terminate().success());
    let (trail, decisions) = (
        d.path().join("trail.jsonl"),
        d.path().join("decisions.jsonl"),
    );
    let o = cli(&[
        "trail",
        "export",
        "--data-dir",
        p(&data),
        "--out",
        p(&trail),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&[
        "trail",
        "export",
        "--decisions",
        "--data-dir",
        p(&data),
        "--out",
        p(&decisions),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = d.path().join("pref.json");
    let o = cli(&[
        "models",
        "preference",
        "--trail",
        p(&trail),
        "--decisions",
        p(&decisions),
        "--out",
        p(&out),
        "--shrinkage",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("from 12 orders"), "{}", text(&o));
    let model = leadrouter::app::models::load_preference(&out).unwrap();
    let net = demo();
    let s = net.store_index(&store_region.unwrap()).unwrap();
    let code = net.regions().get(net.store(s).region).code;
    let shoes = model.matrix.category_index("shoes").unwrap();
    assert_eq!(model.matrix.row(code).unwrap()[shoes], 1.0);
    let o = cli(&[
        "models",
        "preference",
        "--trail",
        p(&trail),
        "--out",
        p(&out),
    ]);
    assert!(!o.status.success(), "--trail needs --decisions");
}

#[test]
fn member_segments_files_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("members.csv");
    std::fs::write(&f, "member_id,segment\nm1,0\nm2,3\n").unwrap();
    let s = leadrouter::app::models::load_member_segments(&f).unwrap();
    assert_eq!((s.segment("m2"), s.len()), (Some(3), 2));
    for (text, want) in [
        ("member_id,segment\nm1,0\nm1,1\n", "3: member_id"),
        ("member_id,segment\nm1,x\n", "2: segment"),
        ("member,segment\n", "1: header"),
    ] {
        std::fs::write(&f, text).unwrap();
        let e = format!(
            "{:#}",
            leadrouter::app::models::load_member_segments(&f).unwrap_err()
        );
        assert!(e.contains(want), "{want}: {e}");
    }
}
