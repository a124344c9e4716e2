//! The storage contract (DESIGN §6) on every backend, starting with two engines on one storage:
//! what replicas on one database would do. Each guarantee is checked by racing threads through
//! both engines at once: a guide's capacity is never passed, a contested lead gets one decision,
//! a contested member head one event per write, a contested order one entry set, and an offer
//! expires once however many sweepers run.

mod common;

use common::tiny;
use leadrouter::attribution::{Attribution, AttributionConfig, OrderInput, TouchInput};
use leadrouter::clock::ManualClock;
use leadrouter::domain::offer::{OfferAction, OfferConfig, OnExhausted};
use leadrouter::domain::trail::{EventBody, OrderFacts, Touch, TouchKind};
use leadrouter::domain::{Channel, Lead};
use leadrouter::engine::{Engine, EngineConfig};
use leadrouter::storage::{
    LedgerCursor, MemoryStore, NoticeKind, NoticesOf, PostgresConfig, PostgresStore, SledConfig,
    SledStore, Storage, TrailKey,
};
use std::collections::HashMap;
use std::sync::Arc;

const T0: i64 = 1_795_000_000_000;
/// Threads per engine.
const THREADS: usize = 8;

/// A storage to test, and what keeps it alive (a temporary directory).
struct Backend {
    storage: Arc<dyn Storage>,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<leadrouter_pgtest::PgCluster>,
    /// The database's URL (PostgreSQL only).
    url: Option<String>,
}

fn memory() -> Backend {
    Backend {
        storage: Arc::new(MemoryStore::new()),
        _dir: None,
        _pg: None,
        url: None,
    }
}

fn sled() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    Backend {
        storage: Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap()),
        _dir: Some(dir),
        _pg: None,
        url: None,
    }
}

/// A throwaway cluster of its own, migrated.
fn postgres() -> Backend {
    let pg = leadrouter_pgtest::PgCluster::start();
    let url = pg.database();
    Backend {
        storage: Arc::new(PostgresStore::open(&PostgresConfig::new(url.clone())).unwrap()),
        _dir: None,
        _pg: Some(pg),
        url: Some(url),
    }
}

impl Backend {
    /// The same data opened again, as another replica opens it where the backend allows (a
    /// PostgreSQL store of its own, with nothing it has seen); else this storage.
    fn another(&self) -> Arc<dyn Storage> {
        match &self.url {
            Some(url) => Arc::new(PostgresStore::open(&PostgresConfig::new(url.clone())).unwrap()),
            None => self.storage.clone(),
        }
    }
}

/// Two engines (replicas) on one storage, with one clock.
fn two_engines(
    b: &Backend,
    caps: &[u32],
    cfg: EngineConfig,
) -> ([Arc<Engine>; 2], Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = || {
        Arc::new(Engine::new(tiny(caps), b.storage.clone(), clock.clone(), cfg.clone()).unwrap())
    };
    ([engine(), engine()], clock)
}

fn lead(id: &str, member: Option<&str>, channel: Channel) -> Lead {
    Lead {
        lead_id: id.into(),
        member_id: member.map(Into::into),
        channel,
        region_code: "440106".into(),
        location: None,
        interests: vec![],
        referrer_guide_id: None,
        occurred_at_ms: T0,
    }
}

/// Runs `f(engine index, thread index)` on THREADS threads per engine at once.
fn race(f: impl Fn(usize, usize) + Sync) {
    std::thread::scope(|s| {
        for e in 0..2 {
            for t in 0..THREADS {
                let f = &f;
                s.spawn(move || f(e, t));
            }
        }
    });
}

fn capacity_is_never_passed(b: Backend) {
    let caps = [3, 2, 1];
    let (engines, _) = two_engines(&b, &caps, EngineConfig::default());
    let routed = std::sync::Mutex::new(HashMap::<String, u32>::new());
    race(|e, t| {
        for i in 0..10 {
            let d = engines[e]
                .route(&lead(&format!("L{e}-{t}-{i}"), None, Channel::MiniProgram))
                .unwrap();
            if let Some(g) = d.guide_id() {
                *routed.lock().unwrap().entry(g.to_string()).or_default() += 1;
            }
        }
    });
    let routed = routed.into_inner().unwrap();
    for (i, cap) in caps.iter().enumerate() {
        let got = routed.get(&format!("G{i}")).copied().unwrap_or(0);
        assert_eq!(got, *cap, "guide G{i} took {got} leads, capacity {cap}");
    }
    let day = engines[0].today();
    let mut counts = b.storage.day_counts(day).unwrap();
    counts.sort();
    assert_eq!(
        counts,
        vec![("G0".into(), 3), ("G1".into(), 2), ("G2".into(), 1)]
    );
    assert_eq!(
        b.storage.decision_count().unwrap(),
        (2 * THREADS * 10) as u64
    );
}

fn a_contested_lead_gets_one_decision(b: Backend) {
    let (engines, _) = two_engines(&b, &[5, 5, 5], EngineConfig::default());
    let ids = std::sync::Mutex::new(Vec::new());
    race(|e, _| {
        for _ in 0..5 {
            let d = engines[e]
                .route(&lead("L-contested", Some("m-1"), Channel::MiniProgram))
                .unwrap();
            ids.lock()
                .unwrap()
                .push((d.decision_id.clone(), d.replayed));
        }
    });
    let ids = ids.into_inner().unwrap();
    assert!(ids.iter().all(|(id, _)| *id == ids[0].0), "{ids:?}");
    assert_eq!(ids.iter().filter(|(_, replayed)| !replayed).count(), 1);
    assert_eq!(b.storage.decision_count().unwrap(), 1);
    let used: u32 = b
        .storage
        .day_counts(engines[0].today())
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(used, 1);
    // One binding event for the member, from the one route that was stored.
    let trail = b.storage.trail_from("m-1", 1, 100).unwrap();
    assert_eq!(trail.len(), 1, "{trail:?}");
}

fn touch(id: String, member: &str) -> TouchInput {
    TouchInput {
        member_id: member.into(),
        touch: Touch {
            touch_id: id,
            kind: TouchKind::EcommerceVisit,
            channel: Channel::Ecommerce,
            guide_id: None,
            store_id: None,
            lead_id: None,
            recorded_by: None,
        },
        occurred_at_ms: T0,
    }
}

fn a_contested_head_gets_one_event_per_write(b: Backend) {
    let (engines, _) = two_engines(&b, &[5, 5, 5], EngineConfig::default());
    let services: Vec<Attribution> = engines
        .iter()
        .map(|e| Attribution::new(e.clone(), AttributionConfig::default()).unwrap())
        .collect();
    race(|e, t| {
        for i in 0..20 {
            services[e]
                .record_touch(touch(format!("T{e}-{t}-{i}"), "M"))
                .unwrap();
        }
    });
    let trail = b.storage.trail_from("M", 1, 10_000).unwrap();
    let n = 2 * THREADS * 20;
    assert_eq!(trail.len(), n);
    assert!(trail.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1));
    let check = services[0].verify_trail("M").unwrap();
    assert!(check.ok(), "{check:?}");
    assert_eq!(check.events, n);
}

fn a_contested_order_gets_one_entry_set(b: Backend) {
    let (engines, _) = two_engines(&b, &[5, 5, 5], EngineConfig::default());
    let services: Vec<Attribution> = engines
        .iter()
        .map(|e| Attribution::new(e.clone(), AttributionConfig::default()).unwrap())
        .collect();
    let order = |member: &str| OrderInput {
        member_id: member.into(),
        facts: OrderFacts {
            order_id: "O-1".into(),
            amount_cents: 10_000,
            paid_channel: Channel::MiniProgram,
            fulfilling_store_id: Some("S1".into()),
            sharing_guide_id: Some("G1".into()),
            referrer_guide_ids: vec![],
        },
        occurred_at_ms: T0,
        recorded_by: None,
    };
    let replies = std::sync::Mutex::new(Vec::new());
    race(|e, t| {
        // Touches of the member race with the order, moving its head.
        services[e]
            .record_touch(touch(format!("T{e}-{t}"), "M"))
            .unwrap();
        let r = services[e].record_order(order("M")).unwrap();
        replies
            .lock()
            .unwrap()
            .push((r.event.hash.clone(), r.replayed));
    });
    let replies = replies.into_inner().unwrap();
    assert!(replies.iter().all(|(h, _)| *h == replies[0].0));
    assert_eq!(replies.iter().filter(|(_, replayed)| !replayed).count(), 1);
    let orders: Vec<_> = b
        .storage
        .trail_from("M", 1, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.body, EventBody::Order(_)))
        .collect();
    assert_eq!(orders.len(), 1);
    let ledger = b
        .storage
        .ledger_events(T0 - 1, T0 + 1, None::<&LedgerCursor>, 100)
        .unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        b.storage
            .trail_event(TrailKey::Order("O-1"))
            .unwrap()
            .unwrap()
            .hash,
        replies[0].0
    );
    assert!(services[1].verify_trail("M").unwrap().ok());
}

fn an_offer_expires_once_however_many_sweepers(b: Backend) {
    let cfg = EngineConfig {
        offers: OfferConfig {
            channels: vec!["LIVESTREAM".into()],
            expire_secs: 60,
            max_hops: 1,
            on_exhausted: OnExhausted::StoreQueue,
            ..Default::default()
        },
        ..Default::default()
    };
    let (engines, clock) = two_engines(&b, &[20, 20, 20], cfg);
    let leads = 30;
    for i in 0..leads {
        let member = format!("m{i}");
        engines[i % 2]
            .route(&lead(&format!("L{i}"), Some(&member), Channel::Livestream))
            .unwrap();
    }
    assert_eq!(engines[1].open_offer_count().unwrap(), leads);
    // Every offer lapses; eight sweepers on two engines move each once (a re-offer), then
    // every re-offer lapses and is exhausted once.
    for round in 0..2 {
        clock.advance_ms(61_000);
        let moved = std::sync::atomic::AtomicUsize::new(0);
        race(|e, _| {
            let n = engines[e].expire_due().unwrap();
            moved.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(moved.into_inner(), leads, "round {round}");
    }
    assert_eq!(engines[0].open_offer_count().unwrap(), 0);
    for i in 0..leads {
        let trail = b.storage.trail_from(&format!("m{i}"), 1, 100).unwrap();
        let actions: Vec<OfferAction> = trail
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Offer(o) => Some(o.action),
                _ => None,
            })
            .collect();
        assert_eq!(
            actions,
            vec![
                OfferAction::Offered,
                OfferAction::Expired,
                OfferAction::Offered,
                OfferAction::Expired,
                OfferAction::Exhausted
            ],
            "member m{i}"
        );
    }
    // Exhausted offers hold no capacity.
    assert!(b.storage.day_counts(engines[0].today()).unwrap().is_empty());
}

fn a_contested_dispute_opens_once_and_resolves_once(b: Backend) {
    use leadrouter::attribution::disputes::{DisputeStatus, OpenInput, Verdict};
    let (engines, _) = two_engines(&b, &[5, 5, 5], EngineConfig::default());
    let services: Vec<Attribution> = engines
        .iter()
        .map(|e| Attribution::new(e.clone(), AttributionConfig::default()).unwrap())
        .collect();
    services[0]
        .record_order(OrderInput {
            member_id: "M".into(),
            facts: OrderFacts {
                order_id: "O-d".into(),
                amount_cents: 10_000,
                paid_channel: Channel::MiniProgram,
                fulfilling_store_id: Some("S1".into()),
                sharing_guide_id: None,
                referrer_guide_ids: vec![],
            },
            occurred_at_ms: T0,
            recorded_by: None,
        })
        .unwrap();
    let open = |t: usize| OpenInput {
        order_id: "O-d".into(),
        claimant: "store:S2".into(),
        claimed_owner: "store:S2".into(),
        reason: "the customer came to S2".into(),
        opened_by: "ops".into(),
        reopens: None,
        // Half the threads retry one request; the others send requests of their own.
        request_id: Some(if t.is_multiple_of(2) {
            "R-1".into()
        } else {
            format!("R-{t}")
        }),
    };
    let opened = std::sync::Mutex::new(Vec::new());
    race(|e, t| {
        if let Ok((d, _)) = services[e].open_dispute(open(t)) {
            opened.lock().unwrap().push(d.dispute_id);
        }
    });
    let opened = opened.into_inner().unwrap();
    assert!(!opened.is_empty());
    assert!(opened.iter().all(|id| *id == opened[0]), "{opened:?}");
    assert_eq!(b.storage.dispute_head().unwrap(), Some(1));
    // Two reviewers on two replicas: one resolution, one audit entry, credit moved once.
    let resolved = std::sync::Mutex::new(Vec::new());
    race(|e, t| {
        let verdict = if t.is_multiple_of(2) {
            Verdict::Uphold
        } else {
            Verdict::Reassign {
                to: "store:S2".into(),
                rebind: false,
            }
        };
        if let Ok(d) =
            services[e].resolve_dispute(&opened[0], verdict, &format!("rev-{e}-{t}"), "checked")
        {
            resolved.lock().unwrap().push(d.status);
        }
    });
    let resolved = resolved.into_inner().unwrap();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    let d = services[1].dispute(&opened[0]).unwrap();
    assert_eq!(d.status, resolved[0]);
    assert!(d.resolving.is_none());
    let audit = engines[0].audit(1, 100).unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "resolve_dispute")
            .count(),
        1
    );
    let adjustments = b
        .storage
        .trail_from("M", 1, 100)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.body, EventBody::Adjustment(_)))
        .count();
    assert_eq!(
        adjustments,
        usize::from(d.status == DisputeStatus::Reassigned)
    );
    assert!(services[0].verify_trail("M").unwrap().ok());
}

fn concurrent_catalog_changes_both_land_with_unique_audit_numbers(b: Backend) {
    use leadrouter::catalog::{CatalogChange, GuideStatus};
    let (engines, _) = two_engines(&b, &[5, 5, 5, 5, 5, 5], EngineConfig::default());
    leadrouter::app::save_network(b.storage.as_ref(), &engines[0].snapshot().network).unwrap();
    std::thread::scope(|s| {
        for (e, guide) in [(0, "G1"), (1, "G2"), (0, "G3"), (1, "G4")] {
            let engine = &engines[e];
            s.spawn(move || {
                engine
                    .apply_change(
                        &CatalogChange::SetGuideStatus {
                            guide_id: guide.into(),
                            status: GuideStatus::Away,
                        },
                        "ops",
                        "test",
                    )
                    .unwrap();
            });
        }
    });
    // Each engine took up the others' changes: all four are saved and in service on both.
    let saved = b.storage.network().unwrap().unwrap();
    for g in ["G1", "G2", "G3", "G4"] {
        let spec = saved.guides.iter().find(|x| x.guide_id == g).unwrap();
        assert_eq!(spec.status, GuideStatus::Away, "{g}");
    }
    for e in &engines {
        e.refresh_from_storage().unwrap();
        assert_eq!(
            Some(e.snapshot().network.version().to_string()),
            b.storage.network_version().unwrap()
        );
    }
    let seqs: Vec<u64> = engines[0]
        .audit(1, 100)
        .unwrap()
        .iter()
        .map(|a| a.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
}

/// Every read agrees with a scan of what was written: the ledger in cursor order and its
/// pages, a trail's pages both ways, an order's follow-ups, a member's latest binding, a
/// guide's members, the id keys, the counts and the numbered logs.
fn every_read_agrees_with_a_scan(b: Backend) {
    use leadrouter::attribution::RefundInput;
    let (engines, clock) = two_engines(&b, &[50, 50, 50], EngineConfig::default());
    let service = Attribution::new(engines[0].clone(), AttributionConfig::default()).unwrap();
    for m in 0..6 {
        let member = format!("M{m}");
        engines[m % 2]
            .route(&lead(&format!("L{m}"), Some(&member), Channel::StoreQr))
            .unwrap();
        for t in 0..3 {
            service
                .record_touch(touch(format!("T{m}-{t}"), &member))
                .unwrap();
        }
        for o in 0..2 {
            let order_id = format!("O{m}-{o}");
            service
                .record_order(OrderInput {
                    member_id: member.clone(),
                    facts: OrderFacts {
                        order_id: order_id.clone(),
                        amount_cents: 1_000 + m as i64,
                        paid_channel: Channel::MiniProgram,
                        fulfilling_store_id: Some("S1".into()),
                        sharing_guide_id: None,
                        referrer_guide_ids: vec![],
                    },
                    // Ties on occurred_at: the cursor orders by kind, then id.
                    occurred_at_ms: T0 + (m as i64 % 3) * 1_000,
                    recorded_by: None,
                })
                .unwrap();
            if o == 0 {
                service
                    .record_refund(RefundInput {
                        refund_id: format!("R{m}"),
                        order_id,
                        amount_cents: Some(100),
                        occurred_at_ms: T0 + 5_000,
                        recorded_by: None,
                    })
                    .unwrap();
            }
        }
        clock.advance_ms(10);
    }
    let s = &b.storage;
    let mut all = Vec::new();
    s.scan_trails(&mut |e| {
        all.push(e);
        true
    })
    .unwrap();
    let kinds = |k: &str| all.iter().filter(|e| e.body.kind() == k).count();
    assert_eq!(
        (kinds("touch"), kinds("order"), kinds("refund")),
        (18, 12, 6),
        "{:?}",
        all.iter().map(|e| e.body.kind()).collect::<Vec<_>>()
    );
    // The ledger, whole and in pages of 3.
    let mut expected: Vec<(LedgerCursor, String)> = all
        .iter()
        .filter_map(|e| LedgerCursor::of(e).map(|c| (c, e.hash.clone())))
        .collect();
    expected.sort();
    let whole: Vec<String> = s
        .ledger_events(T0, T0 + 10_000, None, 1_000)
        .unwrap()
        .iter()
        .map(|e| e.hash.clone())
        .collect();
    assert_eq!(
        whole,
        expected.iter().map(|(_, h)| h.clone()).collect::<Vec<_>>()
    );
    let mut paged = Vec::new();
    let mut after: Option<LedgerCursor> = None;
    loop {
        let page = s.ledger_events(T0, T0 + 10_000, after.as_ref(), 3).unwrap();
        let Some(last) = page.last() else { break };
        after = LedgerCursor::of(last);
        paged.extend(page.iter().map(|e| e.hash.clone()));
    }
    assert_eq!(paged, whole);
    let window = s
        .ledger_events(T0 + 5_000, T0 + 6_000, None, 1_000)
        .unwrap();
    assert_eq!(window.len(), 6, "the refunds at T0+5s alone: {window:?}");
    for m in 0..6 {
        let member = format!("M{m}");
        let mine: Vec<_> = all.iter().filter(|e| e.member_id == member).collect();
        let from = s.trail_from(&member, 3, 2).unwrap();
        assert_eq!(
            from.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4],
            "{member}"
        );
        let before = s.trail_before(&member, 5, 10).unwrap();
        assert_eq!(
            before.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![4, 3, 2, 1]
        );
        let (head, hash) = s.trail_head(&member).unwrap().unwrap();
        assert_eq!(head, mine.len() as u64);
        assert_eq!(hash, mine.last().unwrap().hash);
        let binding = s.latest_binding(&member).unwrap().unwrap();
        assert_eq!(
            Some(&binding.hash),
            mine.iter()
                .rev()
                .find(|e| e.binding().is_some())
                .map(|e| &e.hash)
        );
        let order = format!("O{m}-0");
        let follow = s.follow_ups_of(&order).unwrap();
        assert_eq!(follow.len(), 1);
        assert_eq!(follow[0].refund().unwrap().refund_id, format!("R{m}"));
        assert!(s.follow_ups_of(&format!("O{m}-1")).unwrap().is_empty());
        let by_key = s.trail_event(TrailKey::Order(&order)).unwrap().unwrap();
        assert_eq!(by_key.order().unwrap().facts.order_id, order);
        assert!(
            s.trail_event(TrailKey::Touch(&format!("T{m}-1")))
                .unwrap()
                .is_some()
        );
        assert!(
            s.trail_event(TrailKey::Refund(&format!("R{m}")))
                .unwrap()
                .is_some()
        );
        assert!(s.trail_event(TrailKey::Order("nope")).unwrap().is_none());
    }
    assert!(s.trail_head("nobody").unwrap().is_none());
    assert!(s.latest_binding("nobody").unwrap().is_none());
    // A guide's members, in pages of 1.
    let mut bound: HashMap<String, Vec<String>> = HashMap::new();
    for e in all.iter().filter_map(|e| e.binding().map(|b| (b, e))) {
        bound
            .entry(e.0.state.guide_id.to_string())
            .or_default()
            .push(e.1.member_id.clone());
    }
    for (guide, mut members) in bound {
        members.sort();
        members.dedup();
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.members_of(&guide, after.as_deref(), 1).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            paged.extend(page);
        }
        assert_eq!(paged, members, "{guide}");
    }
    // Decisions, counts, and what a scan of them says.
    let mut leads = Vec::new();
    s.scan_decisions(&mut |d| {
        leads.push(d.lead.lead_id.clone());
        true
    })
    .unwrap();
    assert_eq!(leads, (0..6).map(|m| format!("L{m}")).collect::<Vec<_>>());
    assert_eq!(s.decision_count().unwrap(), 6);
    let day = engines[0].today();
    let counted: u32 = s.day_counts(day).unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(counted, 6);
    for (g, n) in s.day_counts(day).unwrap() {
        assert_eq!(s.guide_count(&g, day).unwrap(), n);
    }
    // The numbered logs.
    let first = s.append_audit(&|seq| format!("{{\"seq\":{seq}}}")).unwrap();
    let second = s.append_audit(&|seq| format!("{{\"seq\":{seq}}}")).unwrap();
    assert_eq!(second, first + 1);
    assert_eq!(s.audit_head().unwrap(), Some(second));
    let entries = s.audit_from(first, 10).unwrap();
    assert_eq!(
        entries,
        vec![
            (first, format!("{{\"seq\":{first}}}")),
            (second, format!("{{\"seq\":{second}}}"))
        ]
    );
}

/// What replicas serve: each announcement replaces the replica's last, and only those seen
/// lately are listed, by id.
fn replicas_are_announced_and_listed(b: Backend) {
    use leadrouter::storage::ReplicaState;
    let state = |id: &str, seen: i64, models: &str| ReplicaState {
        id: id.into(),
        address: format!("10.0.0.{}:50051", id.len()),
        started_at_ms: T0,
        seen_at_ms: seen,
        network_version: "n1".into(),
        models: models.into(),
        rules: "r1".into(),
    };
    let s = &b.storage;
    s.announce(&state("b", T0 + 1_000, "")).unwrap();
    s.announce(&state("a", T0 + 2_000, "")).unwrap();
    s.announce(&state("b", T0 + 3_000, "pref-v2")).unwrap();
    assert_eq!(
        s.replicas(T0).unwrap(),
        vec![
            state("a", T0 + 2_000, ""),
            state("b", T0 + 3_000, "pref-v2")
        ]
    );
    assert_eq!(
        s.replicas(T0 + 2_500).unwrap(),
        vec![state("b", T0 + 3_000, "pref-v2")]
    );
}

/// An audit entry under a key is written once, however many writers race to write it; other
/// keys and unkeyed entries get numbers of their own.
fn an_audit_entry_under_a_key_is_written_once(b: Backend) {
    let seqs = std::sync::Mutex::new(Vec::new());
    race(|e, t| {
        let key = format!("k{}", t % 2);
        let seq = b
            .storage
            .append_audit_once(&key, &|seq| format!("{{\"seq\":{seq},\"by\":\"{e}-{t}\"}}"))
            .unwrap();
        b.storage
            .append_audit(&|seq| format!("{{\"seq\":{seq}}}"))
            .unwrap();
        seqs.lock().unwrap().push((key, seq));
    });
    let seqs = seqs.into_inner().unwrap();
    for k in ["k0", "k1"] {
        let mine: Vec<u64> = seqs
            .iter()
            .filter(|(key, _)| key == k)
            .map(|s| s.1)
            .collect();
        assert!(mine.iter().all(|s| *s == mine[0]), "{k}: {mine:?}");
    }
    let entries = b.storage.audit_from(1, 1_000).unwrap();
    // Two keyed entries and one unkeyed entry per writer, numbered 1.. without gaps.
    assert_eq!(entries.len(), 2 + 2 * THREADS);
    assert!(
        entries
            .iter()
            .enumerate()
            .all(|(i, (seq, _))| *seq == i as u64 + 1)
    );
}

/// A member's binding that another replica changed is never used: the route made on the head
/// this replica saw is refused, and decided again on the binding as it is.
fn a_binding_changed_elsewhere_is_never_used(b: Backend) {
    let clock = Arc::new(ManualClock::new(T0));
    let net = || tiny(&[5, 5, 5, 5, 5, 5]);
    let here = Engine::new(net(), b.storage.clone(), clock.clone(), Default::default()).unwrap();
    let there = Engine::new(net(), b.another(), clock.clone(), Default::default()).unwrap();
    let first = here
        .route(&lead("l1", Some("m1"), Channel::MiniProgram))
        .unwrap();
    let (_, bound) = first.assigned.clone().expect("routed");
    assert_eq!(
        first
            .binding
            .as_ref()
            .unwrap()
            .state
            .as_ref()
            .unwrap()
            .guide_id,
        *bound
    );
    // Another guide of the same store, as the other replica moves the member to.
    let g: usize = bound[1..].parse().unwrap();
    let to = &*format!("G{}", (g + 3) % 6);
    let moved = there
        .transfer_members(
            "t1",
            &bound,
            None,
            &leadrouter::engine::SuccessorRule::Named(to.into()),
            "ops",
            "the guide moves on",
        )
        .unwrap();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].to_guide_id.as_deref(), Some(to));
    clock.advance_ms(60_000);
    let second = here
        .route(&lead("l2", Some("m1"), Channel::MiniProgram))
        .unwrap();
    assert_eq!(
        second.assigned.as_ref().map(|a| &*a.1),
        Some(to),
        "the binding {to} set elsewhere decides: {second:?}"
    );
    assert_eq!(
        second
            .binding
            .as_ref()
            .unwrap()
            .state
            .as_ref()
            .unwrap()
            .guide_id,
        to
    );
    // And on the next route too, from what this replica has now seen.
    let third = here
        .route(&lead("l3", Some("m1"), Channel::MiniProgram))
        .unwrap();
    assert_eq!(third.assigned.as_ref().map(|a| &*a.1), Some(to));
}

/// Publications are numbered by the storage, one per publish however many writers race, and
/// the last one is what is read.
fn publications_are_numbered_once_each(b: Backend) {
    assert_eq!(b.storage.publication_seq("models").unwrap(), 0);
    assert!(b.storage.publication("models").unwrap().is_none());
    let seqs = std::sync::Mutex::new(Vec::new());
    race(|e, t| {
        let body = format!("{e}-{t}");
        let seq = b
            .storage
            .publish("models", "test", T0, body.as_bytes())
            .unwrap();
        seqs.lock().unwrap().push((seq, body));
    });
    let mut seqs = seqs.into_inner().unwrap();
    seqs.sort();
    let numbers: Vec<u64> = seqs.iter().map(|s| s.0).collect();
    assert_eq!(numbers, (1..=2 * THREADS as u64).collect::<Vec<_>>());
    let last = b.storage.publication("models").unwrap().unwrap();
    assert_eq!(last.seq, 2 * THREADS as u64);
    assert_eq!(last.body, seqs.last().unwrap().1.as_bytes());
    assert_eq!(b.another().publication_seq("models").unwrap(), last.seq);
    assert_eq!(b.storage.publication_seq("rules").unwrap(), 0, "by name");
}

/// Offers that lapse once, then wait in the queue of their last guide's store.
fn queued_config() -> EngineConfig {
    EngineConfig {
        offers: OfferConfig {
            channels: vec!["LIVESTREAM".into()],
            expire_secs: 60,
            max_hops: 0,
            on_exhausted: OnExhausted::StoreQueue,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn a_queued_lead_is_claimed_once_and_desks_follow(b: Backend) {
    // Two guides per store (Gi and Gi+3 in store Si), capacity for everything.
    let (engines, clock) = two_engines(&b, &[50; 6], queued_config());
    let leads = 12;
    for i in 0..leads {
        let member = format!("m{i}");
        engines[i % 2]
            .route(&lead(&format!("L{i}"), Some(&member), Channel::Livestream))
            .unwrap();
    }
    let day = engines[0].today();
    let on_desks: usize = (0..6)
        .map(|g| b.storage.guide_leads(&format!("G{g}"), day).unwrap().len())
        .sum();
    assert_eq!(on_desks, leads, "every open offer is on its guide's desk");
    clock.advance_ms(61_000);
    while engines[0].expire_due().unwrap() > 0 {}
    // Every lead now waits at its last guide's store, on no desk.
    let mut queued: Vec<(String, String)> = Vec::new();
    for s in 0..3 {
        let store = format!("S{s}");
        for d in engines[1].store_queue(&store, 100).unwrap() {
            queued.push((store.clone(), d.lead.lead_id.clone()));
        }
    }
    assert_eq!(queued.len(), leads);
    for g in 0..3 {
        assert!(
            b.storage
                .guide_leads(&format!("G{g}"), day)
                .unwrap()
                .is_empty()
        );
    }
    // Guide Gi (of store Si) and a racer on the other engine claim every lead of Si at once:
    // one claim wins per lead, the other is told who has it, and capacity is taken once.
    let wins = std::sync::Mutex::new(Vec::new());
    race(|e, t| {
        for (store, lead_id) in &queued {
            let s: usize = store[1..].parse().unwrap();
            let guide = format!("G{}", s + 3 * (t % 2));
            match engines[e].claim_queued(lead_id, &guide, "I'll call them", Some("app")) {
                Ok(r) if !r.replayed => wins.lock().unwrap().push(lead_id.clone()),
                Ok(_) => {}
                Err(err) => {
                    let msg = err.to_string();
                    assert!(
                        msg.contains("claimed by") || msg.contains("kept changing"),
                        "{msg}"
                    );
                }
            }
        }
    });
    let mut wins = wins.into_inner().unwrap();
    wins.sort();
    let mut expected: Vec<String> = queued.iter().map(|(_, l)| l.clone()).collect();
    expected.sort();
    assert_eq!(wins, expected, "each queued lead is won exactly once");
    let today = engines[0].today();
    let mut total = 0;
    for s in 0..3 {
        assert!(
            engines[0]
                .store_queue(&format!("S{s}"), 100)
                .unwrap()
                .is_empty()
        );
        let in_store = queued
            .iter()
            .filter(|(st, _)| *st == format!("S{s}"))
            .count();
        let (mut on_desks, mut used) = (0, 0);
        for guide in [format!("G{s}"), format!("G{}", s + 3)] {
            let desk = b.storage.guide_leads(&guide, today).unwrap();
            assert!(desk.iter().all(|d| d.guide_id() == Some(guide.as_str())));
            let taken = b.storage.guide_count(&guide, today).unwrap() as usize;
            assert_eq!(
                taken,
                desk.len(),
                "{guide}'s capacity is taken once per claim"
            );
            on_desks += desk.len();
            used += taken;
        }
        assert_eq!((on_desks, used), (in_store, in_store), "store S{s}");
        total += on_desks;
    }
    assert_eq!(total, leads);
    // The claim is in the member's trail, after the exhaustion.
    for (_, lead_id) in &queued {
        let d = b.storage.decision(lead_id).unwrap().unwrap();
        let member = d.lead.member_id.clone().unwrap();
        let actions: Vec<OfferAction> = (b.storage.trail_from(&member, 1, 100).unwrap())
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Offer(o) => Some(o.action),
                _ => None,
            })
            .collect();
        assert_eq!(
            actions,
            vec![
                OfferAction::Offered,
                OfferAction::Expired,
                OfferAction::Exhausted,
                OfferAction::Claimed
            ],
            "{member}"
        );
        // Claiming again what one holds is a replay; another guide of the store is refused.
        let holder = d.guide_id().unwrap().to_string();
        assert!(
            engines[1]
                .claim_queued(lead_id, &holder, "", None)
                .unwrap()
                .replayed
        );
    }
}

fn notices_are_read_in_one_order_without_gaps(b: Backend) {
    let (engines, clock) = two_engines(&b, &[500, 500, 500], queued_config());
    let start = b.storage.last_notice().unwrap();
    assert!(
        b.storage
            .notices(NoticesOf::All, start, 10)
            .unwrap()
            .is_empty()
    );
    // Routes on both engines while a reader follows the notices from another connection.
    let reader = b.another();
    let done = std::sync::atomic::AtomicBool::new(false);
    let per_thread = 5;
    let followed = std::thread::scope(|s| {
        let follower = s.spawn(|| {
            let mut seen = Vec::new();
            let mut after = start;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let page = reader.notices(NoticesOf::All, after, 7).unwrap();
                for n in &page {
                    assert!(n.id > after, "notices come in order");
                    after = n.id;
                    seen.push(n.clone());
                }
                if (finished && page.is_empty()) || std::time::Instant::now() > deadline {
                    return seen;
                }
            }
        });
        race(|e, t| {
            for i in 0..per_thread {
                let id = format!("N{e}-{t}-{i}");
                engines[e]
                    .route(&lead(&id, Some(&format!("m-{id}")), Channel::Livestream))
                    .unwrap();
            }
        });
        done.store(true, std::sync::atomic::Ordering::Release);
        follower.join().unwrap()
    });
    let routed = 2 * THREADS * per_thread;
    assert_eq!(
        followed.len(),
        routed,
        "a follower misses nothing and sees nothing twice"
    );
    let all = b.storage.notices(NoticesOf::All, start, 10_000).unwrap();
    assert_eq!(
        all, followed,
        "the follower saw what a later read sees, in that order"
    );
    assert!(
        all.iter()
            .all(|n| n.kind == NoticeKind::Offered && n.expires_at_ms.is_some())
    );
    // Per guide and store: each reader sees its own, in the same order.
    for g in 0..3 {
        let mine = b
            .storage
            .notices(NoticesOf::Guide(&format!("G{g}")), start, 10_000)
            .unwrap();
        let expected: Vec<_> = all
            .iter()
            .filter(|n| n.guide_id == format!("G{g}"))
            .cloned()
            .collect();
        assert_eq!(mine, expected);
        let store = b
            .storage
            .notices(NoticesOf::Store(&format!("S{g}")), start, 10_000)
            .unwrap();
        assert_eq!(store, expected, "one guide per store");
    }
    assert_eq!(b.storage.last_notice().unwrap(), all.last().unwrap().id);
    // An expiry tells the guide the offer left and the store that the lead waits there.
    let mark = b.storage.last_notice().unwrap();
    clock.advance_ms(61_000);
    while engines[1].expire_due().unwrap() > 0 {}
    let after = b.storage.notices(NoticesOf::All, mark, 10_000).unwrap();
    assert_eq!(after.len(), 2 * routed);
    for pair in after.chunks(2) {
        assert_eq!(pair[0].kind, NoticeKind::Left);
        assert_eq!(pair[1].kind, NoticeKind::Queued);
        assert_eq!(pair[0].lead_id, pair[1].lead_id);
        assert_eq!(pair[0].store_id, pair[1].store_id);
        assert!(pair[1].guide_id.is_empty());
    }
    // Notices from before a cut-off are forgotten; the rest stay readable.
    assert_eq!(b.storage.prune_notices(T0 + 30_000).unwrap(), routed as u64);
    assert_eq!(
        b.storage.notices(NoticesOf::All, start, 10_000).unwrap(),
        after
    );
}

macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $test() { super::$test(super::memory()) })*
        }
        mod sled {
            $(#[test] fn $test() { super::$test(super::sled()) })*
        }
        mod postgres {
            $(#[test] fn $test() { super::$test(super::postgres()) })*
        }
    };
}

on_every_backend!(
    capacity_is_never_passed,
    a_contested_lead_gets_one_decision,
    a_contested_head_gets_one_event_per_write,
    a_contested_order_gets_one_entry_set,
    an_offer_expires_once_however_many_sweepers,
    a_contested_dispute_opens_once_and_resolves_once,
    concurrent_catalog_changes_both_land_with_unique_audit_numbers,
    every_read_agrees_with_a_scan,
    replicas_are_announced_and_listed,
    an_audit_entry_under_a_key_is_written_once,
    a_binding_changed_elsewhere_is_never_used,
    publications_are_numbered_once_each,
    a_queued_lead_is_claimed_once_and_desks_follow,
    notices_are_read_in_one_order_without_gaps,
);

/// PostgreSQL tells other replicas of a network save at once (LISTEN/NOTIFY), besides the
/// polling every backend gets.
#[test]
fn postgres_tells_other_replicas_of_a_network_save() {
    let b = postgres();
    let other = PostgresStore::open(&PostgresConfig::new(b.url.clone().unwrap())).unwrap();
    let changed = other.changes().expect("postgres listens");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The first wake-up says the listener is connected (and to catch up on what it missed).
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), changed.notified())
            .await
            .expect("the listener connects")
    });
    let net = tiny(&[1, 2, 3]);
    leadrouter::app::save_network(b.storage.as_ref(), &net).unwrap();
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), changed.notified())
            .await
            .expect("the other replica hears of the save")
    });
    use leadrouter::storage::Networks;
    assert_eq!(
        other.network_version().unwrap().as_deref(),
        Some(net.version())
    );
}

/// With `ca_file`, every connection to the database is TLS, verified against the CA: a server
/// whose certificate another CA signed is refused, and nothing goes in the clear.
#[test]
fn postgres_connections_are_tls_verified_against_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki(dir.path());
    let pg = leadrouter_pgtest::PgCluster::start_tls(
        &std::fs::read_to_string(&pki.cert).unwrap(),
        &std::fs::read_to_string(&pki.key).unwrap(),
    );
    let url = pg.database();
    let mut config = PostgresConfig::new(url.clone());
    config.ca_file = Some(pki.ca.clone());
    let store = PostgresStore::open(&config).unwrap();
    store.ping().unwrap();
    let db = url.rsplit('/').next().unwrap();
    let clear = pg.psql_on(
        db,
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'leadrouter' AND NOT s.ssl",
    );
    let tls = pg.psql_on(
        db,
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'leadrouter' AND s.ssl",
    );
    assert_eq!(clear, "0");
    assert_ne!(tls, "0");
    // Another CA: the server's certificate does not verify, and nothing is opened.
    let other = tempfile::tempdir().unwrap();
    let stranger = common::pki(other.path());
    let mut config = PostgresConfig::new(url);
    config.ca_file = Some(stranger.ca.clone());
    let e = PostgresStore::open(&config).unwrap_err().to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}
