use super::*;
use crate::catalog::{
    GuideSpec, GuideStatus, Network, NetworkSpec, Ownership, PreferenceRow, Pricing, RegionTree,
    StoreSpec,
};
use crate::clock::ManualClock;
use crate::domain::{Channel, Interest, Lead, Location};
use crate::storage::{MemoryStore, SledConfig, SledStore};
use proptest::prelude::*;

/// 2026-11-23 10:00 Asia/Shanghai.
pub(crate) const T0: i64 = 1_795_400_000_000 - 1_795_400_000_000 % 86_400_000 + 2 * 3_600_000;

fn store(id: &str, region: &str, lat: f64, lon: f64, cats: &[&str], open: bool) -> StoreSpec {
    StoreSpec {
        store_id: id.into(),
        name: format!("store {id}"),
        region_code: region.into(),
        lat,
        lon,
        ownership: Ownership::Direct,
        pricing: Pricing::FullPrice,
        categories: cats.iter().map(|c| c.to_string()).collect(),
        open,
    }
}

fn guide(id: &str, store: &str, cap: u32, tier: u8, status: GuideStatus) -> GuideSpec {
    GuideSpec {
        guide_id: id.into(),
        store_id: store.into(),
        name: id.into(),
        daily_capacity: cap,
        tier,
        status,
    }
}

/// Guangzhou: 天河 440106 has S1 (shoes, kids) and S2 (shoes); 越秀 440104 has S3 (kids);
/// 番禺 440113 has a closed store S4. Beijing 朝阳 110105 has S5 with only an away guide.
pub(crate) fn small_spec() -> NetworkSpec {
    NetworkSpec {
        categories: vec!["shoes".into(), "kids".into(), "hats".into()],
        preference: vec![
            PreferenceRow {
                region_code: "nationwide".into(),
                values: vec![0.5, 0.5, 0.5],
            },
            PreferenceRow {
                region_code: "440000".into(),
                values: vec![0.9, 0.2, 0.1],
            },
        ],
        stores: vec![
            store("S1", "440106", 23.13, 113.33, &["shoes", "kids"], true),
            store("S2", "440106", 23.12, 113.36, &["shoes"], true),
            store("S3", "440104", 23.13, 113.27, &["kids"], true),
            store(
                "S4",
                "440113",
                22.94,
                113.38,
                &["shoes", "kids", "hats"],
                false,
            ),
            store(
                "S5",
                "110105",
                39.92,
                116.44,
                &["shoes", "kids", "hats"],
                true,
            ),
        ],
        guides: vec![
            guide("G1", "S1", 2, 5, GuideStatus::Active),
            guide("G2", "S1", 2, 1, GuideStatus::Active),
            guide("G3", "S2", 3, 3, GuideStatus::Active),
            guide("G4", "S3", 2, 3, GuideStatus::Active),
            guide("G5", "S3", 5, 3, GuideStatus::Left),
            guide("G6", "S4", 5, 3, GuideStatus::Active),
            guide("G7", "S5", 5, 3, GuideStatus::Away),
        ],
    }
}

pub(crate) fn small_network() -> Network {
    Network::build(Arc::new(RegionTree::embedded()), small_spec()).unwrap()
}

pub(crate) fn lead(id: &str, region: &str, cats: &[&str]) -> Lead {
    Lead {
        lead_id: id.into(),
        member_id: None,
        channel: Channel::MiniProgram,
        region_code: region.into(),
        location: None,
        interests: cats
            .iter()
            .map(|c| Interest {
                category: c.to_string(),
                weight: 1.0,
            })
            .collect(),
        referrer_guide_id: None,
        occurred_at_ms: T0,
    }
}

fn engine_with(store: Arc<dyn Storage>, clock: Arc<ManualClock>, cfg: EngineConfig) -> Engine {
    Engine::new(small_network(), store, clock, cfg).unwrap()
}

/// The small network over memory, at T0, with `cfg`.
fn engine_cfg(cfg: EngineConfig) -> Engine {
    engine_with(
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(T0)),
        cfg,
    )
}

fn engine() -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (
        engine_with(
            Arc::new(MemoryStore::new()),
            clock.clone(),
            EngineConfig::default(),
        ),
        clock,
    )
}

fn total_used(e: &Engine) -> u64 {
    e.snapshot().book.total_used(e.today())
}

#[test]
fn routes_within_the_district_and_replays() {
    let (e, _) = engine();
    let d = e.route(&lead("L1", "440106", &["shoes"])).unwrap();
    let (store, guide) = d.assigned.clone().unwrap();
    assert!(&*store == "S1" || &*store == "S2", "{store}");
    assert_eq!(d.level, Some(Level::District));
    assert_eq!(d.reasons.names().next(), Some("LEVEL_DISTRICT"));
    assert_eq!(d.policy, "scored");
    assert!(!d.replayed);
    assert!(!d.alternatives.is_empty());
    assert!(d.alternatives.iter().all(|a| a.guide_id != guide));
    assert_eq!(e.guide_load(&guide).unwrap().used, 1);

    let again = e.route(&lead("L1", "440106", &["shoes"])).unwrap();
    assert!(again.replayed);
    assert_eq!(again.assigned, d.assigned);
    assert_eq!(again.decision_id, d.decision_id);
    assert_eq!(total_used(&e), 1, "a replay consumes nothing");
}

#[test]
fn walks_up_to_the_city_and_keeps_categories() {
    let (e, _) = engine();
    // 海珠 440105 has no store: the walk reaches the city; kids are carried by S1 and S3 only.
    let d = e.route(&lead("L1", "440105", &["kids"])).unwrap();
    assert_eq!(d.level, Some(Level::City));
    let (store, _) = d.assigned.clone().unwrap();
    assert!(&*store == "S1" || &*store == "S3", "{store}");
    for a in &d.alternatives {
        assert_ne!(&*a.store_id, "S2", "S2 carries no kids");
        assert_ne!(&*a.store_id, "S4", "S4 is closed");
        assert_ne!(&*a.guide_id, "G5", "G5 has left");
    }
}

#[test]
fn capacity_is_never_exceeded_and_then_unrouted() {
    let (e, _) = engine();
    // Guangzhou's active open capacity: G1 2 + G2 2 + G3 3 + G4 2 = 9.
    let mut routed = 0;
    for i in 0..15 {
        let d = e.route(&lead(&format!("L{i}"), "440106", &[])).unwrap();
        if d.assigned.is_some() {
            routed += 1;
        } else {
            assert_eq!(d.unrouted, Some(Unrouted::AllAtCapacity));
            assert_eq!(d.reasons, Reasons::ALL_AT_CAPACITY);
        }
    }
    // Beijing's guide is away, so nationwide adds nothing.
    assert_eq!(routed, 9);
    for g in ["G1", "G2", "G3", "G4"] {
        let l = e.guide_load(g).unwrap();
        assert_eq!(l.used, l.daily_capacity, "{g}");
    }
}

#[test]
fn unrouted_reasons() {
    let (e, _) = engine();
    // Only the closed S4 and Beijing's S5 carry hats.
    let d = e.route(&lead("L1", "440106", &["hats"])).unwrap();
    assert_eq!(d.unrouted, Some(Unrouted::NoActiveGuide));
    let cfg = EngineConfig {
        candidates: CandidateConfig {
            max_level: "city".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = engine_cfg(cfg);
    let d = e.route(&lead("L2", "440106", &["hats"])).unwrap();
    assert_eq!(d.unrouted, Some(Unrouted::NoCandidate));
    // Unrouted decisions are stored and replayed too.
    let again = e.route(&lead("L2", "440106", &["hats"])).unwrap();
    assert!(again.replayed);
    assert_eq!(again.unrouted, Some(Unrouted::NoCandidate));
}

#[test]
fn bad_input_names_the_field_and_changes_nothing() {
    let (e, _) = engine();
    let cases: Vec<(Lead, &str)> = vec![
        (lead("", "440106", &[]), "lead_id"),
        (lead(&"x".repeat(129), "440106", &[]), "lead_id"),
        (lead("L1", "44010", &[]), "region_code"),
        (lead("L1", "999999", &[]), "region_code"),
        (lead("L1", "440106", &["hat"]), "interests[0].category"),
        (
            lead("L1", "440106", &["shoes", "shoes"]),
            "interests[1].category",
        ),
        (
            Lead {
                interests: vec![Interest {
                    category: "shoes".into(),
                    weight: f64::NAN,
                }],
                ..lead("L1", "440106", &[])
            },
            "interests[0].weight",
        ),
        (
            Lead {
                interests: vec![Interest {
                    category: "shoes".into(),
                    weight: -1.0,
                }],
                ..lead("L1", "440106", &[])
            },
            "interests[0].weight",
        ),
        (
            Lead {
                member_id: Some(String::new()),
                ..lead("L1", "440106", &[])
            },
            "member_id",
        ),
        (
            Lead {
                location: Some(Location {
                    lat: 100.0,
                    lon: 0.0,
                }),
                ..lead("L1", "440106", &[])
            },
            "location.lat",
        ),
        (
            Lead {
                occurred_at_ms: T0 + 3_600_000,
                ..lead("L1", "440106", &[])
            },
            "occurred_at",
        ),
        (
            Lead {
                interests: (0..33)
                    .map(|i| Interest {
                        category: format!("c{i}"),
                        weight: 1.0,
                    })
                    .collect(),
                ..lead("L1", "440106", &[])
            },
            "interests",
        ),
    ];
    for (l, field) in cases {
        match e.route(&l) {
            Err(RouteError::Invalid(f)) => assert_eq!(f.field, field, "{f}"),
            other => panic!("{field}: expected invalid, got {other:?}"),
        }
    }
    assert_eq!(e.store().decision_count().unwrap(), 0);
    assert_eq!(total_used(&e), 0);
}

#[test]
fn capacity_resets_on_the_next_business_day_in_the_brand_time_zone() {
    let (e, clock) = engine();
    for i in 0..9 {
        e.route(&lead(&format!("a{i}"), "440106", &[])).unwrap();
    }
    let d = e.route(&lead("a9", "440106", &[])).unwrap();
    assert_eq!(d.unrouted, Some(Unrouted::AllAtCapacity));
    let day = e.today();
    // T0 is 10:00 in Shanghai: 13 h later it is 23:00, the same business day.
    clock.advance_ms(13 * 3_600_000);
    assert_eq!(e.today(), day);
    // One more hour: midnight in Shanghai (16:00 UTC), a new day.
    clock.advance_ms(3_600_000);
    assert_eq!(e.today(), Day(day.0 + 1));
    let d = e.route(&lead("b0", "440106", &[])).unwrap();
    assert!(d.assigned.is_some());
    assert_eq!(d.day, Day(day.0 + 1));
}

#[test]
fn ties_use_the_seeded_draw_and_report_propensity() {
    // Two identical guides in one store: the draw decides, with propensity 1/2.
    let mut spec = small_spec();
    spec.guides = vec![
        guide("A", "S2", 100, 3, GuideStatus::Active),
        guide("B", "S2", 100, 3, GuideStatus::Active),
    ];
    let net = Network::build(Arc::new(RegionTree::embedded()), spec).unwrap();
    let cfg = EngineConfig {
        candidates: CandidateConfig {
            max_level: "district".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = Engine::new(
        net,
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(T0)),
        cfg,
    )
    .unwrap();
    let mut a = 0;
    for i in 0..40 {
        // Alternate so loads stay equal before each pair.
        let d = e
            .route(&lead(&format!("L{i}"), "440106", &["shoes"]))
            .unwrap();
        if d.propensity == 0.5 {
            assert!(d.reasons.contains(Reasons::TIE_RANDOM));
            if d.guide_id() == Some("A") {
                a += 1;
            }
        }
    }
    assert!(a > 0, "A never won a tie: the draw is not random");
}

#[test]
fn counts_and_decisions_survive_a_restart_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let first = {
        let s = Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap());
        let e = engine_with(s, clock.clone(), EngineConfig::default());
        let mut out = Vec::new();
        for i in 0..6 {
            out.push(e.route(&lead(&format!("L{i}"), "440106", &[])).unwrap());
        }
        e.flush().unwrap();
        out
    };
    let s = Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap());
    let e = engine_with(s, clock, EngineConfig::default());
    assert_eq!(total_used(&e), 6);
    for d in &first {
        let again = e.route(&d.lead).unwrap();
        assert!(again.replayed);
        assert_eq!(again.assigned, d.assigned);
    }
    // 3 left in Guangzhou.
    let routed = (10..20)
        .filter(|i| {
            e.route(&lead(&format!("L{i}"), "440106", &[]))
                .unwrap()
                .assigned
                .is_some()
        })
        .count();
    assert_eq!(routed, 3);
}

/// Runs `leads` on `threads` threads at once and checks every invariant of capacity and
/// idempotency.
fn concurrent_run(caps: &[u32], leads: &[String], threads: usize) {
    let mut spec = small_spec();
    spec.guides = caps
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            guide(
                &format!("G{i}"),
                ["S1", "S2", "S3"][i % 3],
                c,
                3,
                GuideStatus::Active,
            )
        })
        .collect();
    let net = Network::build(Arc::new(RegionTree::embedded()), spec).unwrap();
    let e = Arc::new(
        Engine::new(
            net,
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::new(T0)),
            EngineConfig::default(),
        )
        .unwrap(),
    );
    let barrier = Arc::new(std::sync::Barrier::new(threads));
    let results: Vec<Vec<Arc<Decision>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (e, barrier) = (e.clone(), barrier.clone());
                let mine: Vec<String> = leads.iter().skip(t).step_by(threads).cloned().collect();
                s.spawn(move || {
                    barrier.wait();
                    mine.iter()
                        .map(|id| e.route(&lead(id, "440106", &[])).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<&Decision> = results.iter().flatten().map(|d| d.as_ref()).collect();
    // Each lead id has exactly one decision: replays agree with it.
    let mut by_lead: std::collections::HashMap<&str, &Decision> = Default::default();
    for d in &all {
        if let Some(first) = by_lead.get(d.lead.lead_id.as_str()) {
            assert_eq!(first.decision_id, d.decision_id);
            assert_eq!(first.assigned, d.assigned);
        } else {
            by_lead.insert(&d.lead.lead_id, d);
        }
    }
    let replays = all.iter().filter(|d| d.replayed).count();
    assert_eq!(replays, all.len() - by_lead.len());
    // Per guide: distinct leads assigned == book count <= capacity.
    let snap = e.snapshot();
    let mut per_guide = vec![0u32; caps.len()];
    for d in by_lead.values() {
        if let Some(g) = d.guide_id() {
            per_guide[g[1..].parse::<usize>().unwrap()] += 1;
        }
    }
    let total_cap: u32 = caps.iter().sum();
    for (i, &n) in per_guide.iter().enumerate() {
        assert!(n <= caps[i], "guide {i}: {n} > {}", caps[i]);
        let g = snap.network.guide_index(&format!("G{i}")).unwrap();
        assert_eq!(snap.book.used(g, e.today()), n);
    }
    // Nothing is left unrouted while capacity remains.
    let routed: u32 = per_guide.iter().sum();
    assert_eq!(routed, total_cap.min(by_lead.len() as u32));
}

#[test]
fn hundreds_of_concurrent_routes_never_exceed_capacity() {
    let leads: Vec<String> = (0..400).map(|i| format!("L{i}")).collect();
    concurrent_run(&[7, 11, 3, 20, 1, 9], &leads, 8);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn no_interleaving_exceeds_a_capacity(
        caps in proptest::collection::vec(1u32..6, 1..6),
        ids in proptest::collection::vec(0u32..40, 1..80),
        threads in 2usize..6,
    ) {
        let leads: Vec<String> = ids.iter().map(|i| format!("L{i}")).collect();
        concurrent_run(&caps, &leads, threads);
    }
}

#[test]
fn radius_search_comes_first_when_the_lead_has_coordinates() {
    // S1 is ~1 km and S2 ~2.4 km from the lead; S3 (越秀) ~7 km.
    let cfg = EngineConfig {
        candidates: CandidateConfig {
            radius_km: 5.0,
            min_stores: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = engine_cfg(cfg);
    let near = Lead {
        location: Some(Location {
            lat: 23.125,
            lon: 113.34,
        }),
        ..lead("L1", "440104", &[])
    };
    let d = e.route(&near).unwrap();
    assert_eq!(d.level, Some(Level::Radius));
    assert!(d.reasons.contains(Reasons::LEVEL_RADIUS));
    let stores: Vec<&str> = std::iter::once(&*d.assigned.as_ref().unwrap().0)
        .chain(d.alternatives.iter().map(|a| &*a.store_id))
        .collect();
    assert!(
        stores.iter().all(|s| *s == "S1" || *s == "S2"),
        "{stores:?}"
    );
    // Far from every store: the radius finds nothing and the region walk takes over.
    let far = Lead {
        location: Some(Location {
            lat: 23.40,
            lon: 113.60,
        }),
        ..lead("L2", "440104", &[])
    };
    assert_ne!(e.route(&far).unwrap().level, Some(Level::Radius));
}

#[test]
fn an_exploring_policy_records_the_probability_of_its_pick_and_of_each_alternative() {
    let cfg = EngineConfig {
        policy: PolicyConfig::Softmax(crate::policy::SoftmaxConfig {
            temperature: 5.0,
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = engine_cfg(cfg);
    let mut explored = 0;
    // 天河 has three guides for shoes, with 7 leads of capacity in all.
    for i in 0..6 {
        let d = e
            .route(&lead(&format!("X{i}"), "440106", &["shoes"]))
            .unwrap();
        if d.alternatives.is_empty() {
            // The last guide with capacity left: no draw.
            assert_eq!(d.propensity, 1.0);
        } else {
            assert!(d.propensity > 0.0 && d.propensity < 1.0, "{}", d.propensity);
            let total: f64 =
                d.propensity + d.alternatives.iter().map(|a| a.propensity).sum::<f64>();
            assert!((total - 1.0).abs() < 1e-9, "{total}");
            assert!(d.alternatives.iter().all(|a| a.propensity > 0.0));
        }
        explored += usize::from(d.reasons.contains(Reasons::EXPLORED));
        // Stored with the decision: a replay returns the same probabilities.
        let again = e
            .route(&lead(&format!("X{i}"), "440106", &["shoes"]))
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.propensity, d.propensity);
        let probs = |d: &Decision| {
            d.alternatives
                .iter()
                .map(|a| a.propensity)
                .collect::<Vec<_>>()
        };
        assert_eq!(probs(&again), probs(&d));
    }
    assert!(
        explored > 0,
        "a warm softmax sometimes picks another than the best"
    );
    // A deterministic policy's alternatives had no chance.
    let e = engine_cfg(EngineConfig::default());
    let d = e.route(&lead("D1", "440106", &["shoes"])).unwrap();
    if d.propensity == 1.0 {
        assert!(d.alternatives.iter().all(|a| a.propensity == 0.0));
    }
}

#[test]
fn the_configured_policy_decides_and_is_recorded() {
    for (policy, name) in [
        (PolicyConfig::Nearest, "nearest"),
        (PolicyConfig::RoundRobin, "round_robin"),
        (PolicyConfig::default(), "scored"),
        (PolicyConfig::DualPrice(Default::default()), "dual_price"),
        (PolicyConfig::Balance, "balance"),
        (PolicyConfig::Ranking { seed: 3 }, "ranking"),
        (PolicyConfig::Softmax(Default::default()), "softmax"),
    ] {
        let cfg = EngineConfig {
            policy,
            ..Default::default()
        };
        let e = engine_cfg(cfg);
        let d = e.route(&lead("L1", "440106", &["shoes"])).unwrap();
        assert_eq!(d.policy, name);
        assert!(d.assigned.is_some());
        let again = e.route(&lead("L1", "440106", &["shoes"])).unwrap();
        assert_eq!(again.policy, name);
    }
    // Round robin takes turns among the area's guides.
    let cfg = EngineConfig {
        policy: PolicyConfig::RoundRobin,
        ..Default::default()
    };
    let e = engine_cfg(cfg);
    let picks: std::collections::HashSet<String> = (0..3)
        .map(|i| {
            e.route(&lead(&format!("L{i}"), "440106", &["shoes"]))
                .unwrap()
                .guide_id()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(picks.len(), 3, "three leads went to {picks:?}");
}

mod changes {
    use super::*;
    use crate::catalog::CatalogChange;
    use crate::engine::CatalogError;

    fn set_status(e: &Engine, g: &str, status: GuideStatus) -> Result<Applied, CatalogError> {
        e.apply_change(
            &CatalogChange::SetGuideStatus {
                guide_id: g.into(),
                status,
            },
            "ops-1",
            "shift change",
        )
    }

    #[test]
    fn a_change_takes_effect_at_once_keeps_counts_and_is_audited() {
        let (e, _) = engine();
        for i in 0..4 {
            e.route(&lead(&format!("L{i}"), "440106", &["shoes"]))
                .unwrap();
        }
        let before: Vec<u32> = ["G1", "G2", "G3"]
            .iter()
            .map(|g| e.guide_load(g).unwrap().used)
            .collect();
        // A new guide in S2 and G1 away: counts of the others carry over.
        let added = e
            .apply_change(
                &CatalogChange::UpsertGuide(guide("G9", "S2", 4, 5, GuideStatus::Active)),
                "ops-1",
                "hired",
            )
            .unwrap();
        let entry = added.entry.unwrap();
        assert_eq!(entry.seq, 1);
        assert!(entry.before.is_none());
        assert_eq!(added.network_version, e.snapshot().network.version());
        set_status(&e, "G1", GuideStatus::Away).unwrap();
        // The same change again writes nothing.
        let again = set_status(&e, "G1", GuideStatus::Away).unwrap();
        assert!(again.entry.is_none());
        let after: Vec<u32> = ["G1", "G2", "G3"]
            .iter()
            .map(|g| e.guide_load(g).unwrap().used)
            .collect();
        assert_eq!(before, after);
        assert_eq!(e.guide_load("G9").unwrap().used, 0);
        for i in 4..20 {
            let d = e
                .route(&lead(&format!("L{i}"), "440106", &["shoes"]))
                .unwrap();
            assert_ne!(d.guide_id(), Some("G1"), "G1 is away");
        }
        assert_eq!(
            e.guide_load("G9").unwrap().used,
            4,
            "the new guide is routed to"
        );
        let log = e.audit(1, 10).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].action, "set_guide_status");
        assert_eq!(log[1].target, "guide:G1");
        assert_eq!(log[1].before.as_ref().unwrap()["status"], "active");
        assert_eq!(log[1].after["status"], "away");
        assert_eq!(log[1].network_version, e.snapshot().network.version());
        assert_eq!(log[1].actor, "ops-1");
        // The saved network is the changed one.
        let saved = e.store().network().unwrap().unwrap();
        assert_eq!(&saved, e.snapshot().network.spec());
    }

    #[test]
    fn refused_changes_change_nothing() {
        let (e, _) = engine();
        let version = e.snapshot().network.version().to_string();
        let cases: Vec<(CatalogChange, &str, &str)> = vec![
            (
                CatalogChange::UpsertGuide(guide("G9", "S-NONE", 4, 5, GuideStatus::Active)),
                "ops-1",
                "guide.store_id",
            ),
            (
                CatalogChange::UpsertGuide(guide("G9", "S1", 4, 9, GuideStatus::Active)),
                "ops-1",
                "guide.tier",
            ),
            (
                CatalogChange::UpsertStore(store("S9", "999999", 23.0, 113.0, &["shoes"], true)),
                "ops-1",
                "store.region_code",
            ),
            (
                CatalogChange::UpsertStore(store("S9", "440106", 23.0, 113.0, &["socks"], true)),
                "ops-1",
                "store.categories",
            ),
            (
                CatalogChange::SetGuideStatus {
                    guide_id: "G1".into(),
                    status: GuideStatus::Away,
                },
                "",
                "operator_id",
            ),
        ];
        for (change, actor, field) in cases {
            match e.apply_change(&change, actor, "") {
                Err(CatalogError::Invalid(f)) => assert_eq!(f.field, field, "{change:?}"),
                other => panic!("{change:?}: {other:?}"),
            }
        }
        assert!(matches!(
            set_status(&e, "G5", GuideStatus::Active),
            Err(CatalogError::Precondition(_))
        ));
        assert!(matches!(
            set_status(&e, "G404", GuideStatus::Active),
            Err(CatalogError::NotFound(_))
        ));
        assert_eq!(e.snapshot().network.version(), version);
        assert!(e.audit(1, 10).unwrap().is_empty());
        assert!(e.store().network().unwrap().is_none());
    }

    #[test]
    fn changes_under_concurrent_routes_never_exceed_capacity() {
        let e = Arc::new(engine().0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let routers: Vec<_> = (0..4)
                .map(|t| {
                    let e = e.clone();
                    s.spawn(move || {
                        (0..200)
                            .map(|i| e.route(&lead(&format!("L{t}-{i}"), "440106", &[])).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let admin = s.spawn(|| {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 40 {
                    let status = if n % 2 == 0 {
                        GuideStatus::Away
                    } else {
                        GuideStatus::Active
                    };
                    set_status(&e, "G3", status).unwrap();
                    n += 1;
                }
            });
            let decisions: Vec<Arc<Decision>> = routers
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            admin.join().unwrap();
            let mut per_guide: std::collections::HashMap<&str, u32> = Default::default();
            for d in &decisions {
                if let Some(g) = d.guide_id() {
                    *per_guide.entry(g).or_default() += 1;
                }
            }
            for (g, n) in per_guide {
                let load = e.guide_load(g).unwrap();
                assert!(n <= load.daily_capacity, "{g}: {n}");
                assert_eq!(load.used, n, "{g}: the book agrees with the decisions");
            }
        });
    }
}

mod bindings {
    use super::*;
    use crate::catalog::CatalogChange;
    use crate::domain::binding::{BindingChange, BindingRuleSet, ReferralOutcome, Snatch};

    const DAY: i64 = 86_400_000;

    /// The small network with room: every guide takes 50 a day.
    fn roomy(rules: BindingRuleSet) -> (Engine, Arc<ManualClock>) {
        let mut spec = small_spec();
        for g in &mut spec.guides {
            g.daily_capacity = 50;
        }
        let clock = Arc::new(ManualClock::new(T0));
        let e = Engine::new(
            Network::build(Arc::new(RegionTree::embedded()), spec).unwrap(),
            Arc::new(MemoryStore::new()),
            clock.clone(),
            EngineConfig {
                bindings: vec![rules],
                ..Default::default()
            },
        )
        .unwrap();
        (e, clock)
    }

    fn member_lead(id: &str, member: &str, referrer: Option<&str>, clock: &ManualClock) -> Lead {
        Lead {
            member_id: Some(member.into()),
            referrer_guide_id: referrer.map(Into::into),
            occurred_at_ms: clock.now_ms(),
            ..lead(id, "440106", &["shoes"])
        }
    }

    fn set_status(e: &Engine, g: &str, status: GuideStatus) {
        e.apply_change(
            &CatalogChange::SetGuideStatus {
                guide_id: g.into(),
                status,
            },
            "ops",
            "",
        )
        .unwrap();
    }

    fn binding_events(e: &Engine, member: &str) -> Vec<crate::domain::trail::TrailEvent> {
        e.store()
            .trail_from(member, 1, 100)
            .unwrap()
            .into_iter()
            .filter(|x| x.binding().is_some())
            .collect()
    }

    #[test]
    fn a_routed_member_is_bound_and_returns_to_their_guide_within_protection() {
        let (e, clock) = roomy(BindingRuleSet::default());
        let first = e.route(&member_lead("L1", "M1", None, &clock)).unwrap();
        let guide = first.guide_id().unwrap().to_string();
        let b = first.binding.clone().unwrap();
        assert_eq!(b.change, Some(BindingChange::Bind));
        assert_eq!(b.state.as_ref().unwrap().guide_id, guide);
        let events = binding_events(&e, "M1");
        assert_eq!(events.len(), 1);
        let rec = events[0].binding().unwrap();
        assert_eq!(
            (rec.actor.as_str(), rec.cause_id.as_str()),
            ("route", "lead:L1")
        );
        assert_eq!(rec.state.rule_version, "binding-v1");
        assert_eq!(b.decided_by, "binding-v1");
        assert_eq!(b.event_seq, Some(events[0].seq));

        // Every later lead of M1 within 30 days goes to the same guide, as BOUND.
        for i in 2..8 {
            clock.advance_ms(4 * DAY);
            let d = e
                .route(&member_lead(&format!("L{i}"), "M1", None, &clock))
                .unwrap();
            assert_eq!(d.guide_id(), Some(guide.as_str()), "day {}", 4 * (i - 1));
            assert!(
                d.reasons.contains(Reasons::BOUND),
                "{:?}",
                d.reasons.names().collect::<Vec<_>>()
            );
            assert_eq!(d.binding.as_ref().unwrap().change, None);
        }
        assert_eq!(
            binding_events(&e, "M1").len(),
            1,
            "nothing changed after the bind"
        );
        // Past protection (day 30) the binding still holds but routing is free again.
        clock.set(T0 + 31 * DAY);
        let d = e.route(&member_lead("L9", "M1", None, &clock)).unwrap();
        assert!(!d.reasons.contains(Reasons::BOUND));
        assert_eq!(
            d.binding.as_ref().unwrap().state.as_ref().unwrap().guide_id,
            guide
        );
        // Past the binding's 90 days the next route binds afresh.
        clock.set(T0 + 91 * DAY);
        let d = e.route(&member_lead("L10", "M1", None, &clock)).unwrap();
        assert_eq!(
            d.binding.as_ref().unwrap().change,
            Some(BindingChange::Bind)
        );
        // A replay changes nothing and says the same.
        let again = e.route(&member_lead("L10", "M1", None, &clock)).unwrap();
        assert!(again.replayed);
        assert_eq!(again.binding, d.binding);
        assert_eq!(binding_events(&e, "M1").len(), 2);
    }

    #[test]
    fn an_away_guide_hands_to_the_same_store_and_a_guide_who_left_gets_nothing() {
        let (e, clock) = roomy(BindingRuleSet::default());
        // Bind M1 to G2 (S1) through G2's share link.
        let d = e
            .route(&member_lead("L1", "M1", Some("G2"), &clock))
            .unwrap();
        assert_eq!(d.guide_id(), Some("G2"));
        assert!(d.reasons.contains(Reasons::REFERRER));
        assert_eq!(
            d.binding.as_ref().unwrap().referral,
            Some(ReferralOutcome::Bound)
        );

        set_status(&e, "G2", GuideStatus::Away);
        let d = e.route(&member_lead("L2", "M1", None, &clock)).unwrap();
        assert_eq!(d.guide_id(), Some("G1"), "the other guide of S1");
        assert!(d.reasons.contains(Reasons::BOUND_GUIDE_UNAVAILABLE));
        let b = d.binding.as_ref().unwrap();
        assert_eq!(b.change, None);
        assert_eq!(
            b.state.as_ref().unwrap().guide_id,
            "G2",
            "the binding is kept"
        );

        set_status(&e, "G2", GuideStatus::Left);
        for i in 3..10 {
            let d = e
                .route(&member_lead(&format!("L{i}"), "M1", None, &clock))
                .unwrap();
            assert_ne!(d.guide_id(), Some("G2"));
            assert!(!d.reasons.contains(Reasons::BOUND_GUIDE_UNAVAILABLE));
        }
    }

    #[test]
    fn referrals_bind_keep_or_snatch_by_the_rule_set() {
        let (e, clock) = roomy(BindingRuleSet::default());
        e.route(&member_lead("L1", "M1", Some("G1"), &clock))
            .unwrap();
        // Inside protection: G3 (another store) cannot take M1, and M1's guide serves.
        clock.advance_ms(5 * DAY);
        let d = e
            .route(&member_lead("L2", "M1", Some("G3"), &clock))
            .unwrap();
        let b = d.binding.clone().unwrap();
        assert_eq!(b.referral, Some(ReferralOutcome::Kept));
        assert_eq!(b.state.unwrap().guide_id, "G1");
        assert_eq!(d.guide_id(), Some("G1"));
        assert!(d.reasons.contains(Reasons::BOUND));
        // G2 shares S1 with G1: G2 serves the lead, G1 keeps the member.
        let d = e
            .route(&member_lead("L3", "M1", Some("G2"), &clock))
            .unwrap();
        assert_eq!(d.guide_id(), Some("G2"));
        assert!(d.reasons.contains(Reasons::REFERRER));
        assert_eq!(d.binding.clone().unwrap().state.unwrap().guide_id, "G1");
        // After protection G3's link snatches M1 and G3 serves.
        clock.advance_ms(30 * DAY);
        let d = e
            .route(&member_lead("L4", "M1", Some("G3"), &clock))
            .unwrap();
        assert_eq!(d.guide_id(), Some("G3"));
        let b = d.binding.clone().unwrap();
        assert_eq!(b.referral, Some(ReferralOutcome::Snatched));
        assert_eq!(b.change, Some(BindingChange::Snatch));
        let last = binding_events(&e, "M1").pop().unwrap();
        let rec = last.binding().unwrap();
        assert_eq!(rec.previous_guide_id.as_deref(), Some("G1"));
        assert_eq!(rec.state.guide_id, "G3");
        // A guide who left cannot bind.
        let d = e
            .route(&member_lead("L5", "M2", Some("G5"), &clock))
            .unwrap();
        assert_eq!(
            d.binding.as_ref().unwrap().referral,
            Some(ReferralOutcome::Ignored)
        );
        assert_ne!(d.guide_id(), Some("G5"));
        // ...and the member is then bound to whoever the route chose.
        assert_eq!(
            d.binding.as_ref().unwrap().state.as_ref().unwrap().guide_id,
            d.guide_id().unwrap()
        );

        // Under `never`, not even after protection.
        let (e, clock) = roomy(BindingRuleSet {
            snatch: Snatch::Never,
            ..Default::default()
        });
        e.route(&member_lead("L1", "M1", Some("G1"), &clock))
            .unwrap();
        clock.advance_ms(60 * DAY);
        let d = e
            .route(&member_lead("L2", "M1", Some("G3"), &clock))
            .unwrap();
        assert_eq!(
            d.binding.clone().unwrap().referral,
            Some(ReferralOutcome::Kept)
        );
    }

    #[test]
    fn the_rule_set_in_force_on_the_day_decides_and_is_named() {
        let later = business_day(T0 + 10 * DAY, chrono_tz::Asia::Shanghai).to_string();
        let mut spec = small_spec();
        for g in &mut spec.guides {
            g.daily_capacity = 50;
        }
        let clock = Arc::new(ManualClock::new(T0));
        let e = Engine::new(
            Network::build(Arc::new(RegionTree::embedded()), spec).unwrap(),
            Arc::new(MemoryStore::new()),
            clock.clone(),
            EngineConfig {
                bindings: vec![
                    BindingRuleSet {
                        version: "strict".into(),
                        snatch: Snatch::Never,
                        ..Default::default()
                    },
                    BindingRuleSet {
                        version: "open".into(),
                        effective_from: later,
                        snatch: Snatch::Always,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        )
        .unwrap();
        e.route(&member_lead("L1", "M1", Some("G1"), &clock))
            .unwrap();
        clock.advance_ms(5 * DAY);
        let d = e
            .route(&member_lead("L2", "M1", Some("G3"), &clock))
            .unwrap();
        let b = d.binding.clone().unwrap();
        assert_eq!(
            (b.referral, b.decided_by.as_str()),
            (Some(ReferralOutcome::Kept), "strict")
        );
        clock.advance_ms(6 * DAY);
        let d = e
            .route(&member_lead("L3", "M1", Some("G3"), &clock))
            .unwrap();
        let b = d.binding.clone().unwrap();
        assert_eq!(
            (b.referral, b.decided_by.as_str()),
            (Some(ReferralOutcome::Snatched), "open")
        );
        assert_eq!(b.state.unwrap().rule_version, "open");
        // Two sets starting the same day, or a repeated version, are refused at start.
        let twice = EngineConfig {
            bindings: vec![BindingRuleSet::default(), BindingRuleSet::default()],
            ..Default::default()
        };
        let err = Engine::new(
            small_network(),
            Arc::new(MemoryStore::new()),
            clock.clone(),
            twice,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("bindings[1]."), "{err}");
    }

    #[test]
    fn binding_chains_verify_and_survive_on_sled() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let first = {
            let store: Arc<dyn Storage> =
                Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap());
            let e = engine_with(store, clock.clone(), EngineConfig::default());
            let d = e.route(&member_lead("L1", "M1", None, &clock)).unwrap();
            e.flush().unwrap();
            d
        };
        let store: Arc<dyn Storage> =
            Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap());
        let e = engine_with(store, clock.clone(), EngineConfig::default());
        let d = e.route(&member_lead("L2", "M1", None, &clock)).unwrap();
        assert_eq!(d.guide_id(), first.guide_id());
        assert!(d.reasons.contains(Reasons::BOUND));
        let trail = e.store().trail_from("M1", 1, 10).unwrap();
        crate::domain::trail::verify_chain(&trail).unwrap();
    }
}

mod offers {
    use super::*;
    use crate::domain::offer::{OfferAction, OfferConfig, OfferStatus, OnExhausted};
    use crate::engine::OfferError;

    fn offering(
        store: Arc<dyn Storage>,
        clock: Arc<ManualClock>,
        max_hops: u32,
        on_exhausted: OnExhausted,
    ) -> Engine {
        engine_with(
            store,
            clock,
            EngineConfig {
                offers: OfferConfig {
                    channels: vec!["LIVESTREAM".into()],
                    expire_secs: 60,
                    max_hops,
                    on_exhausted,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
    }

    fn live(id: &str, member: Option<&str>, clock: &ManualClock) -> Lead {
        Lead {
            channel: Channel::Livestream,
            member_id: member.map(Into::into),
            occurred_at_ms: clock.now_ms(),
            ..lead(id, "440106", &["shoes"])
        }
    }

    fn used(e: &Engine, g: &str) -> u32 {
        e.guide_load(g).unwrap().used
    }

    #[test]
    fn declines_and_expiries_move_the_offer_on_and_release_capacity() {
        let clock = Arc::new(ManualClock::new(T0));
        let e = offering(
            Arc::new(MemoryStore::new()),
            clock.clone(),
            2,
            OnExhausted::StoreQueue,
        );
        let d = e.route(&live("L1", Some("M1"), &clock)).unwrap();
        let first = d.guide_id().unwrap().to_string();
        let o = d.offer.clone().unwrap();
        assert_eq!((o.status, o.hop), (OfferStatus::Open, 0));
        assert_eq!(o.expires_at_ms, T0 + 60_000);
        assert_eq!(
            used(&e, &first),
            1,
            "capacity is held while the offer is open"
        );
        assert!(d.binding.is_none(), "an offer binds when accepted");

        // The holder declines: the next candidate gets it, the holder's count is released.
        let r = e
            .respond_to_offer("L1", &first, false, "busy", None)
            .unwrap();
        let second = r.decision.guide_id().unwrap().to_string();
        assert_ne!(second, first);
        assert_eq!(used(&e, &first), 0);
        assert_eq!(used(&e, &second), 1);
        let o = r.decision.offer.clone().unwrap();
        assert_eq!((o.hop, o.declined.len()), (1, 1));
        assert!(r.decision.reasons.contains(Reasons::REOFFERED));
        // The same decline again changes nothing.
        let again = e
            .respond_to_offer("L1", &first, false, "busy", None)
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.decision.guide_id(), Some(second.as_str()));
        // The first guide can no longer accept it.
        assert!(matches!(
            e.respond_to_offer("L1", &first, true, "", None),
            Err(OfferError::Precondition(_))
        ));

        // Nobody answers within 60 s: it expires to a third guide, then is exhausted.
        clock.advance_ms(59_999);
        assert_eq!(e.expire_due().unwrap(), 0);
        clock.advance_ms(1);
        assert_eq!(e.expire_due().unwrap(), 1);
        let d = e.store().decision("L1").unwrap().unwrap();
        let third = d.guide_id().unwrap().to_string();
        assert!(third != first && third != second);
        assert_eq!(used(&e, &second), 0);
        clock.advance_ms(60_000);
        assert_eq!(e.expire_due().unwrap(), 1);
        let d = e.store().decision("L1").unwrap().unwrap();
        assert_eq!(d.guide_id(), None);
        assert_eq!(d.unrouted, Some(Unrouted::OffersExhausted));
        let o = d.offer.clone().unwrap();
        assert_eq!(o.status, OfferStatus::Exhausted);
        assert_eq!(o.declined.len(), 3);
        assert!(o.queued_store_id.is_some(), "queued at the last store");
        assert_eq!(used(&e, &third), 0);
        assert_eq!(e.open_offer_count().unwrap(), 0);
        // The trail tells the whole story.
        let actions: Vec<OfferAction> = e
            .store()
            .trail_from("M1", 1, 100)
            .unwrap()
            .iter()
            .filter_map(|x| x.offer().map(|o| o.action))
            .collect();
        use OfferAction::*;
        assert_eq!(
            actions,
            vec![
                Offered, Declined, Offered, Expired, Offered, Expired, Exhausted
            ]
        );
        // A mini-program lead is not an offer.
        assert!(
            e.route(&lead("L0", "440106", &["shoes"]))
                .unwrap()
                .offer
                .is_none()
        );
    }

    #[test]
    fn accepting_binds_the_member_and_ends_the_offer() {
        let clock = Arc::new(ManualClock::new(T0));
        let e = offering(
            Arc::new(MemoryStore::new()),
            clock.clone(),
            3,
            OnExhausted::Unrouted,
        );
        let d = e.route(&live("L1", Some("M1"), &clock)).unwrap();
        let g = d.guide_id().unwrap().to_string();
        let other = if g == "G1" { "G2" } else { "G1" };
        let e404 = e.respond_to_offer("L404", &g, true, "", None).unwrap_err();
        assert!(matches!(e404, OfferError::NotFound(_)), "{e404}");
        assert!(matches!(
            e.respond_to_offer("L1", other, true, "", None),
            Err(OfferError::Precondition(_))
        ));
        assert!(matches!(
            e.respond_to_offer("L1", "", true, "", None),
            Err(OfferError::Invalid(_))
        ));
        let r = e.respond_to_offer("L1", &g, true, "on it", None).unwrap();
        assert_eq!(
            r.decision.offer.as_ref().unwrap().status,
            OfferStatus::Accepted
        );
        let b = r.decision.binding.clone().unwrap();
        assert_eq!(b.state.unwrap().guide_id, g);
        assert!(
            e.respond_to_offer("L1", &g, true, "on it", None)
                .unwrap()
                .replayed
        );
        assert_eq!(used(&e, &g), 1, "accepting keeps the one place taken");
        clock.advance_ms(3_600_000);
        assert_eq!(
            e.expire_due().unwrap(),
            0,
            "an accepted offer does not expire"
        );
        assert_eq!(
            e.store().decision("L1").unwrap().unwrap().guide_id(),
            Some(g.as_str())
        );
        // Declining an accepted offer is refused.
        assert!(matches!(
            e.respond_to_offer("L1", &g, false, "", None),
            Err(OfferError::Precondition(_))
        ));
        // Answering after expiry moves it on and says so.
        let d = e.route(&live("L2", None, &clock)).unwrap();
        let h = d.guide_id().unwrap().to_string();
        clock.advance_ms(61_000);
        let late = e.respond_to_offer("L2", &h, true, "", None).unwrap_err();
        assert!(late.to_string().contains("expired"), "{late}");
        assert_ne!(
            e.store().decision("L2").unwrap().unwrap().guide_id(),
            Some(h.as_str())
        );
    }

    #[test]
    fn open_offers_survive_a_restart_and_still_expire_on_time() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let (first, counts) = {
            let store: Arc<dyn Storage> =
                Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap());
            let e = offering(store, clock.clone(), 3, OnExhausted::Unrouted);
            let d = e.route(&live("L1", Some("M1"), &clock)).unwrap();
            let g = d.guide_id().unwrap().to_string();
            // One decline before the restart: the count moved from g to the next guide.
            let r = e.respond_to_offer("L1", &g, false, "", None).unwrap();
            e.flush().unwrap();
            (r.decision, total_used(&e))
        };
        let store: Arc<dyn Storage> =
            Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap());
        let e = offering(store, clock.clone(), 3, OnExhausted::Unrouted);
        assert_eq!(total_used(&e), counts, "counts after restart agree");
        assert_eq!(e.open_offer_count().unwrap(), 1);
        let holder = first.guide_id().unwrap().to_string();
        assert_eq!(e.guide_load(&holder).unwrap().used, 1);
        clock.set(first.offer.as_ref().unwrap().expires_at_ms);
        assert_eq!(e.expire_due().unwrap(), 1);
        let d = e.store().decision("L1").unwrap().unwrap();
        assert_ne!(d.guide_id(), Some(holder.as_str()));
        assert_eq!(d.offer.as_ref().unwrap().declined.len(), 2);
        assert_eq!(e.guide_load(&holder).unwrap().used, 0);
        e.flush().unwrap();
        drop(e);
        // And once more: the re-offer is the open one now.
        let store: Arc<dyn Storage> =
            Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap());
        let e = offering(store, clock.clone(), 3, OnExhausted::Unrouted);
        assert_eq!(e.open_offer_count().unwrap(), 1);
        assert_eq!(total_used(&e), counts);
        let trail = e.store().trail_from("M1", 1, 100).unwrap();
        crate::domain::trail::verify_chain(&trail).unwrap();
    }
}

mod relationship_sequences {
    use super::*;
    use crate::catalog::CatalogChange;
    use crate::domain::offer::{OfferConfig, OfferStatus};

    #[derive(Debug, Clone)]
    enum Op {
        Route {
            lead: u8,
            member: u8,
            offer: bool,
            referrer: Option<u8>,
        },
        Answer {
            lead: u8,
            accept: bool,
        },
        Advance {
            secs: u16,
        },
        Status {
            guide: u8,
            status: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..24, 0u8..6, any::<bool>(), proptest::option::of(0u8..7))
                .prop_map(|(lead, member, offer, referrer)| Op::Route { lead, member, offer, referrer }),
            3 => (0u8..24, any::<bool>()).prop_map(|(lead, accept)| Op::Answer { lead, accept }),
            2 => (0u16..90).prop_map(|secs| Op::Advance { secs }),
            1 => (0u8..7, 0u8..2).prop_map(|(guide, status)| Op::Status { guide, status }),
        ]
    }

    /// Book counts equal the stored decisions holding each guide today, within capacity; an
    /// offer never sits with a guide who declined it.
    fn check(e: &Engine, leads: &[String]) {
        let snap = e.snapshot();
        let today = e.today();
        let mut held = std::collections::HashMap::<String, u32>::new();
        for l in leads {
            let Some(d) = e.store().decision(l).unwrap() else {
                continue;
            };
            if let Some(g) = d.guide_id() {
                if d.day == today {
                    *held.entry(g.to_string()).or_default() += 1;
                }
                if let Some(o) = &d.offer {
                    assert!(!o.declined.iter().any(|x| &**x == g), "{l} back with {g}");
                }
            }
        }
        for (i, g) in snap.network.guides().iter().enumerate() {
            let used = snap.book.used(i as u32, today);
            assert!(
                used <= g.daily_capacity,
                "{}: {used} > {}",
                g.id,
                g.daily_capacity
            );
            assert_eq!(used, held.get(&*g.id).copied().unwrap_or(0), "{}", g.id);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn no_sequence_exceeds_a_capacity_or_assigns_a_lead_twice(
            ops in proptest::collection::vec(op(), 1..60)
        ) {
            let clock = Arc::new(ManualClock::new(T0));
            let e = engine_with(
                Arc::new(MemoryStore::new()),
                clock.clone(),
                EngineConfig {
                    offers: OfferConfig {
                        channels: vec!["LIVESTREAM".into()],
                        expire_secs: 60,
                        max_hops: 2,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            );
            let guides = ["G1", "G2", "G3", "G4", "G5", "G6", "G7"];
            let leads: Vec<String> = (0..24).map(|i| format!("L{i}")).collect();
            let mut first: std::collections::HashMap<String, String> = Default::default();
            for op in ops {
                match op {
                    Op::Route { lead: l, member, offer, referrer } => {
                        let mut x = lead(&leads[l as usize], "440106", &["shoes"]);
                        x.member_id = Some(format!("M{member}"));
                        x.referrer_guide_id = referrer.map(|r| guides[r as usize].to_string());
                        x.occurred_at_ms = clock.now_ms();
                        if offer {
                            x.channel = Channel::Livestream;
                        }
                        let d = e.route(&x).unwrap();
                        // One decision per lead: a second route replays it.
                        let id = first.entry(x.lead_id.clone()).or_insert(d.decision_id.clone());
                        prop_assert_eq!(&d.decision_id, id);
                    }
                    Op::Answer { lead: l, accept } => {
                        if let Some(d) = e.store().decision(&leads[l as usize]).unwrap()
                            && let Some(g) = d.guide_id()
                            && d.offer.as_ref().is_some_and(|o| o.status == OfferStatus::Open)
                        {
                            let g = g.to_string();
                            let _ = e.respond_to_offer(&leads[l as usize], &g, accept, "", None);
                        }
                    }
                    Op::Advance { secs } => {
                        clock.advance_ms(i64::from(secs) * 1000);
                        e.expire_due().unwrap();
                    }
                    Op::Status { guide, status } => {
                        let status = if status == 0 { GuideStatus::Active } else { GuideStatus::Away };
                        // G5 has left: refused, and that is fine.
                        let _ = e.apply_change(
                            &CatalogChange::SetGuideStatus {
                                guide_id: guides[guide as usize].into(),
                                status,
                            },
                            "ops",
                            "",
                        );
                    }
                }
                check(&e, &leads);
            }
        }
    }
}

mod transfers {
    use super::*;
    use crate::catalog::CatalogChange;
    use crate::domain::binding::BindingChange;
    use crate::engine::SuccessorRule;

    fn bind(e: &Engine, clock: &ManualClock, member: &str, guide: &str) {
        let d = e
            .route(&Lead {
                member_id: Some(member.into()),
                referrer_guide_id: Some(guide.into()),
                occurred_at_ms: clock.now_ms(),
                ..lead(&format!("L-{member}"), "440106", &["shoes"])
            })
            .unwrap();
        assert_eq!(d.binding.clone().unwrap().state.unwrap().guide_id, guide);
    }

    fn bound_to(e: &Engine, member: &str) -> String {
        let ev = e.store().latest_binding(member).unwrap().unwrap();
        ev.binding().unwrap().state.guide_id.clone()
    }

    #[test]
    fn a_leaving_guides_members_go_to_the_same_store_at_most_twice_in_the_window() {
        let (e, clock) = engine();
        bind(&e, &clock, "M1", "G1");
        bind(&e, &clock, "M2", "G1");
        bind(&e, &clock, "M3", "G3");
        let applied = e
            .apply_change(
                &CatalogChange::SetGuideStatus {
                    guide_id: "G1".into(),
                    status: GuideStatus::Left,
                },
                "hr-1",
                "resigned",
            )
            .unwrap();
        let mut moved: Vec<(String, Option<String>)> = applied
            .transferred
            .iter()
            .map(|m| (m.member_id.clone(), m.to_guide_id.clone()))
            .collect();
        moved.sort();
        assert_eq!(
            moved,
            vec![
                ("M1".to_string(), Some("G2".to_string())),
                ("M2".to_string(), Some("G2".to_string()))
            ],
            "G2 is G1's only colleague in S1"
        );
        assert_eq!(bound_to(&e, "M3"), "G3", "other guides' members stay");
        let ev = e.store().latest_binding("M1").unwrap().unwrap();
        let rec = ev.binding().unwrap();
        assert_eq!(rec.change, BindingChange::Transfer);
        assert_eq!(
            (rec.actor.as_str(), rec.reason.as_str()),
            ("hr-1", "resigned (successor rule same_store)")
        );
        assert_eq!(rec.previous_guide_id.as_deref(), Some("G1"));
        assert_eq!(rec.state.store_id, "S1");
        // The transferred binding keeps its length and protection.
        let first = e.store().trail_from("M1", 1, 1).unwrap().remove(0);
        let b0 = first.binding().unwrap();
        assert_eq!(rec.state.expires_at_ms, b0.state.expires_at_ms);
        assert_eq!(rec.state.protected_until_ms, b0.state.protected_until_ms);
        // A returning member goes to the successor.
        let d = e
            .route(&Lead {
                member_id: Some("M1".into()),
                occurred_at_ms: clock.now_ms(),
                ..lead("L-again", "440106", &["kids"])
            })
            .unwrap();
        assert_eq!(d.guide_id(), Some("G2"));
        assert!(d.reasons.contains(Reasons::BOUND));

        // A named transfer, retried: moved once.
        for _ in 0..2 {
            let moved = e
                .transfer_members(
                    "t-2",
                    "G2",
                    None,
                    &SuccessorRule::Named("G3".into()),
                    "ops",
                    "",
                )
                .unwrap();
            assert_eq!(moved.len(), 2);
            assert!(moved.iter().all(|m| m.to_guide_id.as_deref() == Some("G3")));
        }
        assert_eq!(bound_to(&e, "M1"), "G3");
        // A third transfer within 90 days is refused per member.
        let moved = e
            .transfer_members(
                "t-3",
                "G3",
                None,
                &SuccessorRule::Named("G4".into()),
                "ops",
                "",
            )
            .unwrap();
        let m1 = moved.iter().find(|m| m.member_id == "M1").unwrap();
        assert_eq!(m1.to_guide_id, None);
        assert!(m1.why.contains("already transferred 2 times"), "{}", m1.why);
        let m3 = moved.iter().find(|m| m.member_id == "M3").unwrap();
        assert_eq!(m3.to_guide_id.as_deref(), Some("G4"), "M3 was never moved");
        clock.advance_ms(91 * 86_400_000);
        let moved = e
            .transfer_members(
                "t-4",
                "G3",
                None,
                &SuccessorRule::Named("G4".into()),
                "ops",
                "",
            )
            .unwrap();
        assert!(
            moved.is_empty(),
            "the bindings lapsed after 90 days: nothing to move"
        );
        // Bad input.
        for (rule, from) in [
            (SuccessorRule::Named("G5".into()), "G4"),
            (SuccessorRule::Named("G404".into()), "G4"),
            (SuccessorRule::Named("G4".into()), "G4"),
        ] {
            assert!(matches!(
                e.transfer_members("t-5", from, None, &rule, "ops", ""),
                Err(CatalogError::Invalid(_))
            ));
        }
        assert!(matches!(
            e.transfer_members("t-5", "G404", None, &SuccessorRule::SameStore, "ops", ""),
            Err(CatalogError::NotFound(_))
        ));
        for m in ["M1", "M2", "M3"] {
            let trail = e.store().trail_from(m, 1, 100).unwrap();
            crate::domain::trail::verify_chain(&trail).unwrap();
        }
    }
}

/// The simulator's hindsight optimum gives each lead the edges `reachable` lists: whatever the
/// counts, route() never places a lead outside them, at any level of the walk.
#[test]
fn route_never_leaves_the_reachable_guides() {
    let net = crate::catalog::demo_files()
        .load(Arc::new(RegionTree::embedded()))
        .unwrap();
    // The six districts with the most stores.
    let districts: Vec<(String, Location)> = {
        let mut by: std::collections::BTreeMap<String, (usize, Location)> = Default::default();
        for (i, st) in net.stores().iter().enumerate() {
            by.entry(net.store_region_code(i as u32))
                .or_insert((0, st.location))
                .0 += 1;
        }
        let mut v: Vec<_> = by.into_iter().collect();
        v.sort_by_key(|(code, (n, _))| (std::cmp::Reverse(*n), code.clone()));
        v.into_iter().take(6).map(|(c, (_, at))| (c, at)).collect()
    };
    for radius_km in [0.0, 6.0] {
        let cfg = EngineConfig {
            candidates: CandidateConfig {
                max_level: "city".into(),
                radius_km,
                ..Default::default()
            },
            ..Default::default()
        };
        let e = Engine::new(
            crate::catalog::demo_files()
                .load(Arc::new(RegionTree::embedded()))
                .unwrap(),
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::new(T0)),
            cfg,
        )
        .unwrap();
        let cats = ["shoes", "kids", "womenswear", "sports"];
        let mut levels = std::collections::BTreeSet::new();
        for i in 0..4000 {
            let (district, at) = &districts[i % districts.len()];
            let at = (
                at.lat + (i % 7) as f64 * 0.01,
                at.lon - (i % 5) as f64 * 0.01,
            );
            let l = Lead {
                location: Some(Location {
                    lat: at.0,
                    lon: at.1,
                }),
                ..lead(&format!("R{i}"), district, &[cats[i % cats.len()]])
            };
            let reach: Vec<u32> = e.reachable(&l).unwrap().iter().map(|c| c.guide).collect();
            let d = e.route(&l).unwrap();
            if let Some(g) = d.guide_id() {
                let g = net.guide_index(g).unwrap();
                assert!(reach.contains(&g), "lead {i}: guide {g} not in {reach:?}");
                levels.insert(d.level.unwrap());
            }
        }
        // The walk went past the district once the district's guides filled up.
        assert!(
            levels.contains(&Level::City),
            "radius {radius_km}: {levels:?}"
        );
    }
}

mod learned_preference {
    use super::*;
    use leadrouter_models::PreferenceMatrix;
    use leadrouter_models::preference_fit::{ModelMeta, PreferenceModel};

    fn model(version: &str, rows: Vec<(u64, Vec<f32>)>, cats: &[&str]) -> Arc<PreferenceModel> {
        Arc::new(PreferenceModel {
            matrix: PreferenceMatrix::new(cats.iter().map(|c| c.to_string()).collect(), rows)
                .unwrap(),
            meta: ModelMeta {
                kind: "preference".into(),
                format: 1,
                version: version.into(),
                created_at_ms: T0,
                inputs: vec![],
                from_ms: T0,
                to_ms: T0,
                params: Default::default(),
                metrics: Default::default(),
            },
        })
    }

    /// 越秀 (440104) loves kids, 天河 (440106) does not.
    fn yuexiu_kids() -> Arc<PreferenceModel> {
        model(
            "pref-yuexiu",
            vec![
                (0, vec![0.5, 0.5, 0.5]),
                (440104000000, vec![0.1, 1.0, 0.1]),
                (440106000000, vec![1.0, 0.0, 0.1]),
            ],
            &["shoes", "kids", "hats"],
        )
    }

    #[test]
    fn a_learned_model_moves_the_pick_and_is_recorded() {
        let e = engine_cfg(EngineConfig::default());
        let store_of = |d: &Decision| d.assigned.as_ref().unwrap().0.to_string();
        let before = e.route(&lead("K1", "440106", &["kids"])).unwrap();
        assert_eq!(store_of(&before), "S1");
        assert!(before.model_versions.is_empty());
        assert_eq!(e.set_preference_model(Some(yuexiu_kids())).unwrap(), None);
        let after = e.route(&lead("K2", "440106", &["kids"])).unwrap();
        assert_eq!(store_of(&after), "S3");
        assert_eq!(after.model_versions, vec!["pref-yuexiu".to_string()]);
        // The replay of the first lead still says what it used.
        let again = e.route(&lead("K1", "440106", &["kids"])).unwrap();
        assert!(again.replayed && again.model_versions.is_empty());
        // Back to the shipped matrix.
        assert_eq!(
            e.set_preference_model(None).unwrap().as_deref(),
            Some("pref-yuexiu")
        );
        let back = e.route(&lead("K3", "440106", &["kids"])).unwrap();
        assert_eq!(store_of(&back), "S1");
        assert!(back.model_versions.is_empty());
    }

    #[test]
    fn a_model_that_does_not_fit_is_refused_and_the_old_one_stays() {
        let e = engine_cfg(EngineConfig::default());
        e.set_preference_model(Some(yuexiu_kids())).unwrap();
        let wrong_cats = model("bad-cats", vec![(0, vec![0.5, 0.5])], &["shoes", "kids"]);
        let err = e.set_preference_model(Some(wrong_cats)).unwrap_err();
        assert!(err.contains("categories"), "{err}");
        let unknown = model(
            "bad-region",
            vec![
                (0, vec![0.5, 0.5, 0.5]),
                (449999000000, vec![1.0, 1.0, 1.0]),
            ],
            &["shoes", "kids", "hats"],
        );
        let err = e.set_preference_model(Some(unknown)).unwrap_err();
        assert!(err.contains("449999"), "{err}");
        let d = e.route(&lead("K9", "440106", &["kids"])).unwrap();
        assert_eq!(d.model_versions, vec!["pref-yuexiu".to_string()]);
    }

    /// Swapping models while four threads route: no route fails, no capacity is passed, and a
    /// network change keeps the model in service.
    #[test]
    fn swaps_under_load_keep_capacity() {
        let e = Arc::new(engine_cfg(EngineConfig::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (e, stop) = (e.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        e.route(&lead(&format!("W{t}-{n}"), "440106", &["kids"]))
                            .unwrap();
                        n += 1;
                    }
                })
            })
            .collect();
        for i in 0..40 {
            let m = (i % 2 == 0).then(yuexiu_kids);
            e.set_preference_model(m).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        let snap = e.snapshot();
        for (g, guide) in snap.network.guides().iter().enumerate() {
            assert!(snap.book.used(g as u32, e.today()) <= guide.daily_capacity);
        }
        e.set_preference_model(Some(yuexiu_kids())).unwrap();
        e.apply_change(
            &crate::catalog::CatalogChange::SetGuideStatus {
                guide_id: "G2".into(),
                status: GuideStatus::Away,
            },
            "ops",
            "lunch",
        )
        .unwrap();
        assert_eq!(
            e.snapshot()
                .network
                .learned()
                .map(|m| m.meta.version.clone()),
            Some("pref-yuexiu".into())
        );
    }
}

mod learned_propensity {
    use super::*;
    use leadrouter_models::propensity::{CHANNELS, PropensityModel, feature_names};

    /// A propensity model that believes in G3 (its past rate 0.9, everyone else's 0.05).
    fn believes_in_g3(version: &str) -> Arc<PropensityModel> {
        let k = feature_names().len();
        let mut weights = vec![0.0; k];
        weights[4] = 6.0; // guide_rate
        let text = serde_json::json!({
            "kind": "propensity", "format": 1, "version": version, "created_at_ms": 0,
            "inputs": [], "from_ms": 0, "to_ms": 0, "params": {}, "metrics": {},
            "features": feature_names(), "means": vec![0.0; k], "scales": vec![1.0; k],
            "weights": weights, "intercept": -3.0,
            "guide_rates": {"G3": 0.9}, "prior_rate": 0.05,
            "validation": {"examples": 0, "base_rate": 0.0, "auc": 0.5, "log_loss": 0.0, "calibration": []}
        })
        .to_string();
        Arc::new(PropensityModel::from_json(&text).unwrap())
    }

    #[test]
    fn channels_line_up_with_the_models() {
        let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, CHANNELS);
    }

    #[test]
    fn scored_follows_the_learned_propensity_and_records_it() {
        let e = engine_cfg(EngineConfig::default());
        let guide = |d: &Decision| d.guide_id().unwrap().to_string();
        let before = e.route(&lead("P1", "440106", &["shoes"])).unwrap();
        assert_ne!(guide(&before), "G3");
        assert_eq!(
            e.set_propensity_model(Some(believes_in_g3("prop-g3")))
                .unwrap(),
            None
        );
        let after = e.route(&lead("P2", "440106", &["shoes"])).unwrap();
        assert_eq!(guide(&after), "G3");
        assert!(
            after.reasons.contains(Reasons::LIKELY_TO_CONVERT),
            "{:?}",
            after.reasons
        );
        assert_eq!(after.model_versions, vec!["prop-g3".to_string()]);
        // Both models: both versions, preference first.
        let pref = leadrouter_models::preference_fit::PreferenceModel::from_json(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/demo/models/preference.json"
            ))
            .unwrap(),
        );
        // The demo artifact's categories are not the small network's: refused, propensity kept.
        assert!(
            e.set_preference_model(Some(Arc::new(pref.unwrap())))
                .is_err()
        );
        let d = e.route(&lead("P3", "440106", &["shoes"])).unwrap();
        assert_eq!(d.model_versions, vec!["prop-g3".to_string()]);
        // Out again.
        assert_eq!(
            e.set_propensity_model(None).unwrap().as_deref(),
            Some("prop-g3")
        );
        let d = e.route(&lead("P4", "440106", &["shoes"])).unwrap();
        assert!(d.model_versions.is_empty());
        assert!(!d.reasons.contains(Reasons::LIKELY_TO_CONVERT));
    }
}

#[test]
fn member_segments_are_in_service_for_policies() {
    use leadrouter_models::segments::MemberSegments;
    let e = engine_cfg(EngineConfig::default());
    let segs =
        Arc::new(MemberSegments::new([("m-a".to_string(), 3u16), ("m-b".to_string(), 1)]).unwrap());
    let version = segs.version.clone();
    e.set_member_segments(Some(segs)).unwrap();
    let snap = e.snapshot();
    assert_eq!(snap.network.member_segment("m-a"), Some(3));
    assert_eq!(snap.network.member_segment("m-z"), None);
    let mut l = lead("SEG1", "440106", &["shoes"]);
    l.member_id = Some("m-a".into());
    let d = e.route(&l).unwrap();
    assert_eq!(d.model_versions, vec![version]);
    assert!(MemberSegments::new([("x".to_string(), 1u16), ("x".to_string(), 2)]).is_err());
}

/// Guangzhou again: 天河 440106 buys shoes, 越秀 440104 buys kids; both stores are in 番禺 440113,
/// whose own row leans slightly to kids. S1 sells only shoes, S2 only kids.
fn taste_engine(regional_taste: f64) -> Engine {
    let spec = NetworkSpec {
        categories: vec!["shoes".into(), "kids".into()],
        preference: vec![
            PreferenceRow {
                region_code: "nationwide".into(),
                values: vec![0.5, 0.5],
            },
            PreferenceRow {
                region_code: "440106".into(),
                values: vec![1.0, 0.1],
            },
            PreferenceRow {
                region_code: "440104".into(),
                values: vec![0.1, 1.0],
            },
            PreferenceRow {
                region_code: "440113".into(),
                values: vec![0.5, 0.6],
            },
        ],
        stores: vec![
            store("S1", "440113", 22.94, 113.38, &["shoes"], true),
            store("S2", "440113", 22.95, 113.37, &["kids"], true),
        ],
        guides: vec![
            guide("G1", "S1", 10, 3, GuideStatus::Active),
            guide("G2", "S2", 10, 3, GuideStatus::Active),
        ],
    };
    let net = Network::build(Arc::new(RegionTree::embedded()), spec).unwrap();
    let cfg = EngineConfig {
        candidates: CandidateConfig {
            min_stores: 2,
            regional_taste,
            ..Default::default()
        },
        ..Default::default()
    };
    Engine::new(
        net,
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(T0)),
        cfg,
    )
    .unwrap()
}

#[test]
fn a_leads_district_taste_moves_its_pick() {
    let both = ["shoes", "kids"];
    // Same stated interests, same candidates, different districts of one city: different stores.
    let e = taste_engine(0.2);
    let tianhe = e.route(&lead("T1", "440106", &both)).unwrap();
    let yuexiu = e.route(&lead("T2", "440104", &both)).unwrap();
    assert_eq!(
        &*tianhe.assigned.as_ref().unwrap().0,
        "S1",
        "天河 buys shoes"
    );
    assert_eq!(
        &*yuexiu.assigned.as_ref().unwrap().0,
        "S2",
        "越秀 buys kids"
    );
    // A lead that states nothing is matched on its district's taste alone.
    let silent = e.route(&lead("T3", "440106", &[])).unwrap();
    assert_eq!(&*silent.assigned.as_ref().unwrap().0, "S1");
    let silent = e.route(&lead("T4", "440104", &[])).unwrap();
    assert_eq!(&*silent.assigned.as_ref().unwrap().0, "S2");
    // Taste off: both districts follow the stores' own region (番禺 leans to kids).
    let off = taste_engine(0.0);
    for (id, region) in [("U1", "440106"), ("U2", "440104")] {
        let d = off.route(&lead(id, region, &both)).unwrap();
        assert_eq!(
            &*d.assigned.as_ref().unwrap().0,
            "S2",
            "{region} without taste"
        );
    }
    // Out of range is refused, naming the field.
    let bad = CandidateConfig {
        regional_taste: 1.5,
        ..Default::default()
    };
    assert!(
        bad.check()
            .unwrap_err()
            .starts_with("routing.regional_taste:")
    );
}
