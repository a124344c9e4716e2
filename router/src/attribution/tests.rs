use super::*;
use crate::clock::ManualClock;
use crate::domain::Channel;
use crate::domain::trail::{OwnershipRule, Role, TouchKind, verify_chain};
use crate::engine::EngineConfig;
use crate::engine::tests::{T0, small_network};
use crate::storage::{MemoryStore, SledConfig, SledStore, Storage};
use recompute::Recomputer;

const DAY: i64 = 86_400_000;

fn service_on(store: Arc<dyn Storage>, cfg: AttributionConfig) -> (Attribution, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Arc::new(
        Engine::new(
            small_network(),
            store,
            clock.clone(),
            EngineConfig::default(),
        )
        .unwrap(),
    );
    (Attribution::new(engine, cfg).unwrap(), clock)
}

fn service() -> (Attribution, Arc<ManualClock>) {
    service_on(Arc::new(MemoryStore::new()), AttributionConfig::default())
}

fn touch(id: &str, member: &str, kind: TouchKind, guide: Option<&str>, at: i64) -> TouchInput {
    TouchInput {
        member_id: member.into(),
        touch: Touch {
            touch_id: id.into(),
            kind,
            channel: Channel::MiniProgram,
            guide_id: guide.map(Into::into),
            store_id: None,
            lead_id: None,
            recorded_by: None,
        },
        occurred_at_ms: at,
    }
}

fn order(id: &str, member: &str, cents: i64, at: i64) -> OrderInput {
    OrderInput {
        member_id: member.into(),
        facts: OrderFacts {
            order_id: id.into(),
            amount_cents: cents,
            paid_channel: Channel::Ecommerce,
            fulfilling_store_id: Some("S2".into()),
            sharing_guide_id: None,
            referrer_guide_ids: vec![],
        },
        occurred_at_ms: at,
        recorded_by: None,
    }
}

fn refund(id: &str, order: &str, cents: Option<i64>, at: i64) -> RefundInput {
    RefundInput {
        refund_id: id.into(),
        order_id: order.into(),
        amount_cents: cents,
        occurred_at_ms: at,
        recorded_by: None,
    }
}

fn all_events(store: &dyn Storage) -> Vec<TrailEvent> {
    let mut out = Vec::new();
    store
        .scan_trails(&mut |e| {
            out.push(e);
            true
        })
        .unwrap();
    out
}

#[test]
fn an_order_is_owned_by_the_last_touch_and_split_361() {
    let (a, _) = service();
    let t = a
        .record_touch(touch(
            "T1",
            "M1",
            TouchKind::ShareLinkClick,
            Some("G1"),
            T0 - DAY,
        ))
        .unwrap();
    assert!(!t.replayed);
    // The guide's store is filled in.
    assert_eq!(t.event.touch().unwrap().store_id.as_deref(), Some("S1"));
    let o = a.record_order(order("O1", "M1", 10_001, T0)).unwrap();
    let rec = o.event.order().unwrap();
    assert_eq!(rec.ownership.rule, OwnershipRule::LastTouch);
    assert_eq!(rec.ownership.guide_id.as_deref(), Some("G1"));
    assert_eq!(rec.ownership.deciding_events, vec![1]);
    assert_eq!(rec.ownership.rule_version, "ownership-v1");
    assert_eq!(rec.split_version, "361");
    let got: Vec<(&str, i64)> = rec
        .entries
        .iter()
        .map(|e| (e.party.as_str(), e.amount_cents))
        .collect();
    assert_eq!(
        got,
        vec![("guide:G1", 3000), ("store:S2", 6001), ("o2o:centre", 1000)]
    );
    assert_eq!(o.event.seq, 2);
    assert_eq!(o.event.prev_hash, t.event.hash);
}

#[test]
fn the_same_ids_replay_and_different_content_is_refused_naming_the_fields() {
    let (a, _) = service();
    let first = a.record_order(order("O1", "M1", 500, T0)).unwrap();
    let again = a.record_order(order("O1", "M1", 500, T0)).unwrap();
    assert!(again.replayed);
    assert_eq!(again.event, first.event);
    let mut changed = order("O1", "M2", 600, T0);
    changed.facts.paid_channel = Channel::MiniProgram;
    let e = a.record_order(changed).unwrap_err();
    let AttributionError::Conflict { differences, .. } = &e else {
        panic!("{e}")
    };
    let text = differences.join("; ");
    assert!(text.contains("amount_cents: stored 500, got 600"), "{text}");
    assert!(text.contains("member_id"), "{text}");
    assert!(text.contains("paid_channel"), "{text}");
    // Nothing was written by the refused calls.
    assert_eq!(all_events(a.engine().store().as_ref()).len(), 1);

    a.record_touch(touch("T1", "M1", TouchKind::GuideChat, Some("G2"), T0))
        .unwrap();
    assert!(
        a.record_touch(touch("T1", "M1", TouchKind::GuideChat, Some("G2"), T0))
            .unwrap()
            .replayed
    );
    let e = a
        .record_touch(touch("T1", "M1", TouchKind::GuideChat, Some("G3"), T0))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("guide_id: stored \"G2\", got \"G3\""),
        "{e}"
    );
}

#[test]
fn bad_input_names_the_field_and_writes_nothing() {
    let (a, _) = service();
    let cases: Vec<(OrderInput, &str)> = vec![
        (order("O1", "M1", 0, T0), "amount_cents"),
        (order("O1", "M1", -5, T0), "amount_cents"),
        (order("O1", "M1", 100_000_001, T0), "amount_cents"),
        (order("O1", "M1", 100, T0 + 301_000), "occurred_at"),
        (order("", "M1", 100, T0), "order_id"),
        (order("O1", "", 100, T0), "member_id"),
        (
            {
                let mut o = order("O1", "M1", 100, T0);
                o.facts.fulfilling_store_id = Some("S404".into());
                o
            },
            "fulfilling_store_id",
        ),
        (
            {
                let mut o = order("O1", "M1", 100, T0);
                o.facts.sharing_guide_id = Some("G404".into());
                o
            },
            "sharing_guide_id",
        ),
        (
            {
                let mut o = order("O1", "M1", 100, T0);
                o.facts.referrer_guide_ids = vec!["G1".into(), "nope".into()];
                o
            },
            "referrer_guide_ids[1]",
        ),
        (
            {
                let mut o = order("O1", "M1", 100, T0);
                o.facts.referrer_guide_ids = vec!["G1".into(), "G2".into(), "G1".into()];
                o
            },
            "referrer_guide_ids[2]",
        ),
    ];
    for (input, field) in cases {
        match a.record_order(input) {
            Err(AttributionError::Invalid(f)) => assert_eq!(f.field, field, "{f}"),
            other => panic!("{field}: {other:?}"),
        }
    }
    let e = a
        .record_touch(touch("T1", "M1", TouchKind::ShareLinkClick, None, T0))
        .unwrap_err();
    assert!(e.to_string().starts_with("guide_id: must be set"), "{e}");
    let mut visit = touch("T2", "M1", TouchKind::StoreVisit, None, T0);
    visit.touch.store_id = Some("S404".into());
    assert!(
        a.record_touch(visit)
            .unwrap_err()
            .to_string()
            .contains("unknown store")
    );
    assert!(all_events(a.engine().store().as_ref()).is_empty());
}

#[test]
fn refunds_reverse_proportionally_and_never_exceed_the_order() {
    let (a, _) = service();
    a.record_touch(touch(
        "T1",
        "M1",
        TouchKind::Binding,
        Some("G3"),
        T0 - 5 * DAY,
    ))
    .unwrap();
    a.record_order(order("O1", "M1", 999, T0)).unwrap();
    let r1 = a
        .record_refund(refund("R1", "O1", Some(333), T0 + 1))
        .unwrap();
    let sum: i64 = r1
        .event
        .refund()
        .unwrap()
        .entries
        .iter()
        .map(|e| e.amount_cents)
        .sum();
    assert_eq!(sum, -333);
    let e = a
        .record_refund(refund("R2", "O1", Some(700), T0 + 2))
        .unwrap_err();
    assert!(matches!(e, AttributionError::Precondition(_)), "{e}");
    assert!(e.to_string().contains("666"), "{e}");
    // The rest.
    a.record_refund(refund("R3", "O1", None, T0 + 3)).unwrap();
    let view = a.order("O1").unwrap();
    assert_eq!(view.refunded_cents, 999);
    assert_eq!(view.refunds.len(), 2);
    assert!(
        view.net.iter().all(|e| e.amount_cents == 0),
        "{:?}",
        view.net
    );
    let e = a
        .record_refund(refund("R4", "O1", None, T0 + 4))
        .unwrap_err();
    assert!(e.to_string().contains("fully refunded"), "{e}");
    // A replayed refund, and one that differs.
    assert!(
        a.record_refund(refund("R1", "O1", Some(333), T0 + 1))
            .unwrap()
            .replayed
    );
    let e = a
        .record_refund(refund("R1", "O1", Some(334), T0 + 1))
        .unwrap_err();
    assert!(
        e.to_string().contains("amount_cents: stored 333, got 334"),
        "{e}"
    );
    assert!(matches!(
        a.record_refund(refund("R5", "O404", None, T0)).unwrap_err(),
        AttributionError::NotFound { .. }
    ));
    let e = a
        .record_refund(refund("R6", "O1", None, T0 - 1))
        .unwrap_err();
    assert!(
        e.to_string().starts_with("occurred_at: must not precede"),
        "{e}"
    );
}

#[test]
fn trails_page_and_filter_by_time() {
    let (a, _) = service();
    for i in 0..30 {
        a.record_touch(touch(
            &format!("T{i}"),
            "M1",
            TouchKind::GuideChat,
            Some("G1"),
            T0 - (30 - i) * DAY,
        ))
        .unwrap();
    }
    a.record_touch(touch("X", "M2", TouchKind::GuideChat, Some("G1"), T0))
        .unwrap();
    let p = a.trail("M1", 1, (None, None), 12).unwrap();
    assert_eq!(p.events.len(), 12);
    assert_eq!(p.next_seq, Some(13));
    let mut seen = p.events;
    let mut next = p.next_seq;
    while let Some(n) = next {
        let p = a.trail("M1", n, (None, None), 12).unwrap();
        next = p.next_seq;
        seen.extend(p.events);
    }
    assert_eq!(seen.len(), 30);
    assert_eq!(verify_chain(&seen).unwrap(), 30);
    // Days 10..20 before T0: events T10..T19.
    let p = a
        .trail("M1", 1, (Some(T0 - 20 * DAY), Some(T0 - 10 * DAY)), 100)
        .unwrap();
    assert_eq!(p.events.len(), 10);
    assert_eq!(p.events[0].touch().unwrap().touch_id, "T10");
    assert!(a.trail("M1", 1, (Some(T0), Some(T0 - 1)), 10).is_err());
    assert!(a.trail("M1", 1, (None, None), 0).is_err());
}

#[test]
fn stage_changes_by_effective_date_and_recomputation_agrees() {
    let cfg = AttributionConfig {
        splits: vec![
            SplitPolicy::default(),
            SplitPolicy {
                version: "stage2".into(),
                effective_from: "2026-11-20".into(),
                owner: 25,
                fulfilling_store: 70,
                o2o_centre: 5,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let (a, clock) = service_on(Arc::new(MemoryStore::new()), cfg.clone());
    // 2026-11-10 falls under "361", today under "stage2".
    let old = T0 - 13 * DAY;
    a.record_order(order("O-old", "M1", 1000, old)).unwrap();
    let now = a.record_order(order("O-new", "M1", 1000, T0)).unwrap();
    assert_eq!(
        a.order("O-old")
            .unwrap()
            .order
            .order()
            .unwrap()
            .split_version,
        "361"
    );
    assert_eq!(now.event.order().unwrap().split_version, "stage2");
    let cents: Vec<i64> = now
        .event
        .order()
        .unwrap()
        .entries
        .iter()
        .map(|e| e.amount_cents)
        .collect();
    assert_eq!(cents, vec![250, 700, 50]);
    // A mix of members, touches, orders and refunds, then recompute from the exported events.
    for m in 0..20 {
        let member = format!("M{m}");
        for t in 0..5 {
            let kind = TouchKind::ALL[(m + t) % TouchKind::ALL.len()];
            let mut input = touch(
                &format!("T{m}-{t}"),
                &member,
                kind,
                Some(["G1", "G2", "G3", "G4"][t % 4]),
                T0 - (m as i64 % 9) * DAY + t as i64,
            );
            if kind == TouchKind::StoreVisit {
                input.touch.store_id = Some("S3".into());
            }
            a.record_touch(input).unwrap();
        }
        let mut o = order(&format!("O{m}"), &member, 100 + m as i64 * 37, T0 + 10);
        if m % 3 == 0 {
            o.facts.sharing_guide_id = Some("G4".into());
        }
        a.record_order(o).unwrap();
        if m % 2 == 0 {
            a.record_refund(refund(
                &format!("R{m}"),
                &format!("O{m}"),
                Some(31),
                T0 + 20,
            ))
            .unwrap();
        }
        clock.advance_ms(1);
    }
    let events = all_events(a.engine().store().as_ref());
    assert_eq!(verify_chain(&events).unwrap(), events.len());
    let book = a.rules();
    let mut r = Recomputer::new(&book);
    for e in events.iter().cloned() {
        r.push(e);
    }
    assert_eq!(r.summary.orders, 22);
    assert_eq!(r.summary.refunds, 10);
    assert!(
        r.summary.mismatches.is_empty(),
        "{:?}",
        r.summary.mismatches
    );
    // A tampered owner is found.
    let mut tampered = events.clone();
    let i = tampered.iter().position(|e| e.order().is_some()).unwrap();
    if let EventBody::Order(o) = &mut tampered[i].body {
        o.ownership.guide_id = Some("G9".into());
    }
    let member = tampered[i].member_id.clone();
    let book = a.rules();
    let mut r = Recomputer::new(&book);
    for e in tampered {
        r.push(e);
    }
    // The order, and a refund of it (whose owner debit follows the stored owner), and nothing
    // else.
    let m = &r.summary.mismatches;
    assert!(m[0].what.contains("stored owner guide:G9"), "{m:?}");
    assert!(
        m.len() <= 2 && m.iter().all(|x| x.member_id == member),
        "{m:?}"
    );
}

#[test]
fn concurrent_orders_on_one_member_chain_without_forks_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> =
        Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap());
    let (a, _) = service_on(store.clone(), AttributionConfig::default());
    let a = Arc::new(a);
    std::thread::scope(|s| {
        for t in 0..8 {
            let a = a.clone();
            s.spawn(move || {
                for i in 0..25 {
                    // Every thread also retries an order another thread records.
                    let id = format!("O{}", (t * 25 + i) % 150);
                    a.record_order(order(&id, "M1", 100, T0)).unwrap();
                    a.record_touch(touch(
                        &format!("T{t}-{i}"),
                        "M1",
                        TouchKind::GuideChat,
                        Some("G1"),
                        T0,
                    ))
                    .unwrap();
                }
            });
        }
    });
    let events = all_events(store.as_ref());
    assert_eq!(events.iter().filter(|e| e.order().is_some()).count(), 150);
    assert_eq!(events.len(), 150 + 200);
    assert_eq!(verify_chain(&events).unwrap(), 350);
}

#[test]
fn config_errors_name_the_key() {
    let mut cfg = AttributionConfig::default();
    cfg.splits.push(SplitPolicy::default());
    assert!(
        cfg.check()
            .unwrap_err()
            .contains("attribution.splits[1].version")
    );
    let cfg = AttributionConfig {
        max_order_amount_cents: 0,
        ..Default::default()
    };
    assert!(
        cfg.check()
            .unwrap_err()
            .starts_with("attribution.max_order_amount_cents")
    );
    let cfg = AttributionConfig {
        ownership: vec![OwnershipRuleSet {
            effective_from: "soon".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(
        cfg.check()
            .unwrap_err()
            .starts_with("attribution.ownership[0].effective_from")
    );
}

#[test]
fn a_small_history_limit_reads_only_the_newest_events_and_recomputes_the_same() {
    let cfg = AttributionConfig {
        history_limit: 2,
        ..Default::default()
    };
    let (a, _) = service_on(Arc::new(MemoryStore::new()), cfg);
    // The oldest touch is a guide chat; with only two events read it cannot decide.
    a.record_touch(touch(
        "C",
        "M1",
        TouchKind::GuideChat,
        Some("G1"),
        T0 - 3 * DAY,
    ))
    .unwrap();
    for i in 0..3 {
        a.record_touch(touch(
            &format!("T{i}"),
            "M1",
            TouchKind::EcommerceVisit,
            None,
            T0 - DAY,
        ))
        .unwrap();
    }
    let o = a.record_order(order("O1", "M1", 100, T0)).unwrap();
    assert_eq!(o.event.seq, 5);
    assert_eq!(
        o.event.order().unwrap().ownership.rule,
        OwnershipRule::PaidChannel
    );
    let events = all_events(a.engine().store().as_ref());
    assert_eq!(verify_chain(&events).unwrap(), 5);
    let book = a.rules();
    let mut r = Recomputer::new(&book);
    for e in events {
        r.push(e);
    }
    assert!(
        r.summary.mismatches.is_empty(),
        "{:?}",
        r.summary.mismatches
    );
    // With the default limit the chat decides.
    let (b, _) = service();
    b.record_touch(touch(
        "C",
        "M1",
        TouchKind::GuideChat,
        Some("G1"),
        T0 - 3 * DAY,
    ))
    .unwrap();
    let o = b.record_order(order("O1", "M1", 100, T0)).unwrap();
    assert_eq!(
        o.event.order().unwrap().ownership.rule,
        OwnershipRule::LastTouch
    );
}

#[test]
fn a_binding_touch_binds_and_decides_however_much_history_follows() {
    let cfg = AttributionConfig {
        history_limit: 2,
        ..Default::default()
    };
    let (a, _) = service_on(Arc::new(MemoryStore::new()), cfg);
    a.record_touch(touch(
        "B",
        "M1",
        TouchKind::Binding,
        Some("G1"),
        T0 - 3 * DAY,
    ))
    .unwrap();
    for i in 0..3 {
        a.record_touch(touch(
            &format!("T{i}"),
            "M1",
            TouchKind::EcommerceVisit,
            None,
            T0 - DAY,
        ))
        .unwrap();
    }
    let events = all_events(a.engine().store().as_ref());
    let bind = events[1]
        .binding()
        .expect("the BINDING touch is followed by a binding event");
    assert_eq!(
        (bind.state.guide_id.as_str(), bind.actor.as_str()),
        ("G1", "touch")
    );
    assert_eq!(bind.cause_id, "touch:B");
    let o = a.record_order(order("O1", "M1", 100, T0)).unwrap();
    let own = &o.event.order().unwrap().ownership;
    assert_eq!(own.rule, OwnershipRule::BoundGuide);
    assert_eq!(own.deciding_events, vec![2]);
    // A later BINDING touch with another guide inside protection is kept out.
    a.record_touch(touch("B2", "M1", TouchKind::Binding, Some("G3"), T0 + 1))
        .unwrap();
    let latest = a.engine().store().latest_binding("M1").unwrap().unwrap();
    assert_eq!(latest.binding().unwrap().state.guide_id, "G1");
    assert!(a.verify_trail("M1").unwrap().ok());
}

#[test]
fn concurrent_refunds_never_exceed_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> =
        Arc::new(SledStore::open(dir.path(), &SledConfig::default()).unwrap());
    let (a, _) = service_on(store, AttributionConfig::default());
    a.record_order(order("O1", "M1", 1000, T0)).unwrap();
    let outcomes: Vec<Result<Recorded, AttributionError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let a = &a;
                s.spawn(move || a.record_refund(refund(&format!("R{i}"), "O1", Some(200), T0 + 1)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 5);
    assert!(
        outcomes
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, AttributionError::Precondition(_)))
    );
    let view = a.order("O1").unwrap();
    assert_eq!(view.refunded_cents, 1000);
    assert!(
        view.net.iter().all(|e| e.amount_cents == 0),
        "{:?}",
        view.net
    );
    let check = a.verify_trail("M1").unwrap();
    assert!(check.ok(), "{check:?}");
}

#[test]
fn verify_all_checks_every_member_and_names_a_forged_event() {
    let (a, _) = service();
    for m in 0..5 {
        let member = format!("M{m}");
        a.record_touch(touch(
            &format!("T{m}"),
            &member,
            TouchKind::GuideChat,
            Some("G1"),
            T0,
        ))
        .unwrap();
        a.record_order(order(&format!("O{m}"), &member, 500, T0))
            .unwrap();
    }
    let all = a.verify_all().unwrap();
    assert!(all.ok(), "{all:?}");
    assert_eq!((all.members, all.events, all.recomputed.orders), (5, 10, 5));
    // Someone writes an event past the service, chained to nothing.
    let store = a.engine().store();
    let (forged, line) = TrailEvent::next_with_line(
        "M3",
        Some((2, crate::domain::trail::GENESIS)),
        T0,
        T0,
        EventBody::Touch(Touch {
            touch_id: "X".into(),
            kind: TouchKind::Binding,
            channel: Channel::MiniProgram,
            guide_id: Some("G9".into()),
            store_id: None,
            lead_id: None,
            recorded_by: None,
        }),
    );
    // The store checks where an event goes (seq 3 after 2), not its hashes: verify does.
    let appended = store
        .append_events(&[crate::storage::Append {
            event: forged,
            line,
            key: Some(crate::storage::TrailKey::Touch("X")),
        }])
        .unwrap();
    assert_eq!(appended, crate::storage::Appended::Stored);
    let all = a.verify_all().unwrap();
    let b = all.chain.unwrap_err();
    assert_eq!((b.member_id.as_str(), b.seq), ("M3", 3));
    assert!(b.why.contains("prev_hash"), "{b}");
    assert!(!a.verify_trail("M3").unwrap().ok());
    assert!(a.verify_trail("M2").unwrap().ok());
}

fn ledger_on(store: Arc<dyn Storage>) {
    let (a, _) = service_on(store, AttributionConfig::default());
    // Ten orders an hour apart (guide G1 owns the even ones through a share link), a refund.
    a.record_touch(touch(
        "T",
        "M0",
        TouchKind::ShareLinkClick,
        Some("G1"),
        T0 - 20 * 3_600_000,
    ))
    .unwrap();
    for i in 0..10i64 {
        let member = if i % 2 == 0 { "M0" } else { "M1" };
        a.record_order(order(
            &format!("O{i}"),
            member,
            1000 + i,
            T0 - (10 - i) * 3_600_000,
        ))
        .unwrap();
    }
    a.record_refund(refund("R", "O4", Some(500), T0)).unwrap();
    let all_at = |party: Option<&str>, from: i64, to: i64| {
        let mut lines = Vec::new();
        let mut after = None;
        loop {
            let page = a.ledger(from, to, party, after.as_ref(), 3).unwrap();
            lines.extend(page.lines);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        lines
    };
    let all = all_at(None, T0 - 100 * 3_600_000, T0 + 1);
    let sum: i64 = all.iter().map(|l| l.entry.amount_cents).sum();
    assert_eq!(sum, (0..10).map(|i| 1000 + i).sum::<i64>() - 500);
    // In time order, the refund last.
    assert!(
        all.windows(2)
            .all(|w| w[0].occurred_at_ms <= w[1].occurred_at_ms)
    );
    assert_eq!(all.last().unwrap().refund_id.as_deref(), Some("R"));
    // One party: G1 owns the even orders, 30 % of each (floored), less its share of the refund
    // (its entry × 500 / 1004, floored).
    let g1 = all_at(Some("guide:G1"), T0 - 100 * 3_600_000, T0 + 1);
    let credit: i64 = (0..10)
        .filter(|i| i % 2 == 0)
        .map(|i| (1000 + i) * 30 / 100)
        .sum();
    let want = credit - (1004 * 30 / 100) * 500 / 1004;
    assert_eq!(g1.iter().map(|l| l.entry.amount_cents).sum::<i64>(), want);
    // A window: orders 5..=7 only ([T0-5h, T0-2h)).
    let w = all_at(None, T0 - 5 * 3_600_000, T0 - 2 * 3_600_000);
    let mut ids: Vec<&str> = w.iter().map(|l| l.order_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids, vec!["O5", "O6", "O7"]);
    assert!(a.ledger(T0, T0, None, None, 10).is_err());
    assert!(a.ledger(0, T0, Some("G1"), None, 10).is_err());
    assert!(a.ledger(0, T0, None, None, 0).is_err());
}

#[test]
fn the_ledger_pages_in_time_order_on_memory() {
    ledger_on(Arc::new(MemoryStore::new()));
}

#[test]
fn the_ledger_pages_in_time_order_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    ledger_on(Arc::new(
        SledStore::open(dir.path(), &SledConfig::default()).unwrap(),
    ));
}

#[test]
fn a_bound_members_order_belongs_to_their_guide_extends_the_binding_and_recomputes() {
    use crate::clock::Clock;
    use crate::domain::Lead;
    use crate::domain::binding::BindingChange;
    let (a, clock) = service();
    let lead = |id: &str, referrer: Option<&str>| Lead {
        lead_id: id.into(),
        member_id: Some("M1".into()),
        channel: Channel::MiniProgram,
        region_code: "440106".into(),
        location: None,
        interests: vec![],
        referrer_guide_id: referrer.map(Into::into),
        occurred_at_ms: clock.now_ms(),
    };
    let d = a.engine().route(&lead("L1", Some("G3"))).unwrap();
    assert_eq!(d.guide_id(), Some("G3"));
    // A later touch with another guide does not beat the binding inside protection.
    clock.advance_ms(2 * DAY);
    a.record_touch(touch(
        "t1",
        "M1",
        TouchKind::GuideChat,
        Some("G1"),
        clock.now_ms(),
    ))
    .unwrap();
    clock.advance_ms(DAY);
    let o = a
        .record_order(order("O1", "M1", 10_000, clock.now_ms()))
        .unwrap();
    let own = &o.event.order().unwrap().ownership;
    assert_eq!(own.rule, OwnershipRule::BoundGuide);
    assert_eq!(own.guide_id.as_deref(), Some("G3"));
    assert_eq!(own.store_id.as_deref(), Some("S2"));
    assert_eq!(own.deciding_events, vec![1], "the route's binding event");
    // The order restarted the binding: an extend event follows it.
    let trail = a.engine().store().trail_from("M1", 1, 10).unwrap();
    let ext = trail.last().unwrap();
    let rec = ext.binding().unwrap();
    assert_eq!(ext.seq, o.event.seq + 1);
    assert_eq!(
        (rec.change, rec.actor.as_str()),
        (BindingChange::Extend, "order")
    );
    assert_eq!(rec.cause_id, "order:O1");
    assert_eq!(rec.state.protected_until_ms, clock.now_ms() + 30 * DAY);
    // Day 32 of the first binding, day 29 after the order: still protected, still G3's.
    clock.advance_ms(29 * DAY);
    let o2 = a
        .record_order(order("O2", "M1", 5_000, clock.now_ms()))
        .unwrap();
    assert_eq!(
        o2.event.order().unwrap().ownership.rule,
        OwnershipRule::BoundGuide
    );
    // Recomputing from the trail agrees, and the chain holds.
    let check = a.verify_trail("M1").unwrap();
    assert!(check.ok(), "{:?}", check.recomputed.mismatches);
    assert_eq!(check.recomputed.orders, 2);
    // Without the extension the second order would have fallen outside protection.
    let (b, clock) = service();
    b.engine()
        .route(&Lead {
            occurred_at_ms: clock.now_ms(),
            ..lead("L1", Some("G3"))
        })
        .unwrap();
    clock.advance_ms(31 * DAY);
    b.record_touch(touch(
        "t1",
        "M1",
        TouchKind::GuideChat,
        Some("G1"),
        clock.now_ms(),
    ))
    .unwrap();
    let o = b
        .record_order(order("O1", "M1", 10_000, clock.now_ms()))
        .unwrap();
    let own = &o.event.order().unwrap().ownership;
    assert_eq!(own.rule, OwnershipRule::LastTouch);
    assert_eq!(own.guide_id.as_deref(), Some("G1"));
    assert!(b.verify_trail("M1").unwrap().ok());
}

fn reassign_to(id: &str, order: &str, to: &str, at: i64) -> ReassignInput {
    ReassignInput {
        adjustment_id: id.into(),
        order_id: order.into(),
        to_party: to.into(),
        actor: "reviewer-1".into(),
        reason: "the store showed the guide chat".into(),
        occurred_at_ms: at,
        rebind: false,
    }
}

fn reassignment_on(store: Arc<dyn Storage>) {
    let (a, _) = service_on(store, AttributionConfig::default());
    a.record_touch(touch(
        "t1",
        "M1",
        TouchKind::GuideChat,
        Some("G1"),
        T0 - DAY,
    ))
    .unwrap();
    a.record_order(order("O1", "M1", 10_000, T0)).unwrap();
    a.record_refund(refund("R1", "O1", Some(2_000), T0 + 1))
        .unwrap();
    let owner_of = |v: &OrderView, party: &str| -> i64 {
        v.net
            .iter()
            .filter(|e| e.party == party && e.role == Role::Owner)
            .map(|e| e.amount_cents)
            .sum()
    };
    let before = a.order("O1").unwrap();
    assert_eq!(before.owner_party, "guide:G1");
    assert_eq!(
        owner_of(&before, "guide:G1"),
        2_400,
        "30% of the 8,000 left"
    );

    let r = a
        .reassign(reassign_to("dispute:D1", "O1", "guide:G3", T0 + 2))
        .unwrap();
    let adj = r.event.adjustment().unwrap();
    assert_eq!(
        (adj.from_party.as_str(), adj.to_party.as_str()),
        ("guide:G1", "guide:G3")
    );
    assert_eq!(adj.entries.iter().map(|e| e.amount_cents).sum::<i64>(), 0);
    let after = a.order("O1").unwrap();
    assert_eq!(after.owner_party, "guide:G3");
    assert_eq!(owner_of(&after, "guide:G1"), 0);
    assert_eq!(owner_of(&after, "guide:G3"), 2_400);
    assert_eq!(after.net.iter().map(|e| e.amount_cents).sum::<i64>(), 8_000);
    // The order's own entries are untouched.
    assert_eq!(after.order, before.order);

    // Retries replay; the same id for another owner is refused; so is the current owner.
    assert!(
        a.reassign(reassign_to("dispute:D1", "O1", "guide:G3", T0 + 2))
            .unwrap()
            .replayed
    );
    assert!(matches!(
        a.reassign(reassign_to("dispute:D1", "O1", "guide:G2", T0 + 2)),
        Err(AttributionError::Conflict { .. })
    ));
    assert!(matches!(
        a.reassign(reassign_to("dispute:D2", "O1", "guide:G3", T0 + 2)),
        Err(AttributionError::Precondition(_))
    ));
    for (bad, field) in [
        (reassign_to("", "O1", "guide:G2", T0 + 2), "adjustment_id"),
        (reassign_to("d", "O1", "guide:G404", T0 + 2), "to_party"),
        (reassign_to("d", "O1", "G2", T0 + 2), "to_party"),
        (reassign_to("d", "O1", "channel:FAX", T0 + 2), "to_party"),
        (
            ReassignInput {
                reason: " ".into(),
                ..reassign_to("d", "O1", "guide:G2", T0 + 2)
            },
            "reason",
        ),
        (
            ReassignInput {
                actor: String::new(),
                ..reassign_to("d", "O1", "guide:G2", T0 + 2)
            },
            "actor",
        ),
        (reassign_to("d", "O1", "guide:G2", T0 - 5), "occurred_at"),
    ] {
        match a.reassign(bad.clone()) {
            Err(AttributionError::Invalid(f)) => assert_eq!(f.field, field, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(matches!(
        a.reassign(reassign_to("d", "O404", "guide:G2", T0 + 2)),
        Err(AttributionError::NotFound { .. })
    ));

    // A later refund debits the new owner; the full refund leaves every party at zero.
    let r2 = a.record_refund(refund("R2", "O1", None, T0 + 3)).unwrap();
    let owner_entry = r2
        .event
        .refund()
        .unwrap()
        .entries
        .iter()
        .find(|e| e.role == Role::Owner)
        .unwrap()
        .clone();
    assert_eq!(
        (owner_entry.party.as_str(), owner_entry.amount_cents),
        ("guide:G3", -2_400)
    );
    let done = a.order("O1").unwrap();
    assert!(
        done.net.iter().all(|e| e.amount_cents == 0),
        "{:?}",
        done.net
    );
    // The ledger lists the adjustment, and the order's lines sum to zero.
    let page = a.ledger(T0 - DAY, T0 + DAY, None, None, 100).unwrap();
    assert_eq!(
        page.lines
            .iter()
            .filter(|l| l.adjustment_id.as_deref() == Some("dispute:D1"))
            .count(),
        2
    );
    assert_eq!(
        page.lines.iter().map(|l| l.entry.amount_cents).sum::<i64>(),
        0
    );
    // Recomputing from the trail agrees with every stored entry; what verification adds is
    // that these adjustments were made directly, by no dispute (disputes' own tests resolve).
    let check = a.verify_trail("M1").unwrap();
    assert!(check.chain.is_ok());
    assert!(
        !check.recomputed.mismatches.is_empty()
            && check
                .recomputed
                .mismatches
                .iter()
                .all(|m| m.what.contains("no dispute of that id exists")),
        "{:?}",
        check.recomputed.mismatches
    );
}

#[test]
fn a_reassignment_moves_the_owner_credit_and_later_refunds_follow_it_on_memory() {
    reassignment_on(Arc::new(MemoryStore::new()));
}

#[test]
fn a_reassignment_moves_the_owner_credit_and_later_refunds_follow_it_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    reassignment_on(Arc::new(
        SledStore::open(dir.path(), &SledConfig::default()).unwrap(),
    ));
}

mod disputes {
    use super::*;
    use crate::attribution::disputes::{DisputeFilter, DisputeStatus, OpenInput, Verdict};

    fn open(order: &str, claimed: &str) -> OpenInput {
        OpenInput {
            order_id: order.into(),
            claimant: "store:S1".into(),
            claimed_owner: claimed.into(),
            reason: "the member was served in store by G3".into(),
            opened_by: "store-manager-1".into(),
            reopens: None,
            request_id: None,
        }
    }

    fn setup() -> Attribution {
        let (a, _) = service();
        a.record_touch(touch(
            "t1",
            "M1",
            TouchKind::GuideChat,
            Some("G1"),
            T0 - DAY,
        ))
        .unwrap();
        a.record_order(order("O1", "M1", 10_000, T0)).unwrap();
        a.record_touch(touch(
            "t2",
            "M2",
            TouchKind::GuideChat,
            Some("G4"),
            T0 - DAY,
        ))
        .unwrap();
        a.record_order(order("O2", "M2", 5_000, T0)).unwrap();
        a
    }

    /// A resolution stopped after its adjustment (a crash before the dispute's own record):
    /// verification names the stray adjustment, recovery completes the resolution as decided
    /// (binding correction, record, audit entry), and an UPHOLD can no longer contradict it.
    #[test]
    fn an_interrupted_reassignment_is_completed_as_decided() {
        let a = setup();
        a.open_dispute(open("O1", "guide:G3")).unwrap();
        a.reassign(ReassignInput {
            adjustment_id: "dispute:D1".into(),
            order_id: "O1".into(),
            to_party: "guide:G3".into(),
            actor: "rev-9".into(),
            reason: "chat log".into(),
            occurred_at_ms: T0 + 1,
            rebind: true,
        })
        .unwrap();
        assert_eq!(a.dispute("D1").unwrap().status, DisputeStatus::Open);
        let check = a.verify_trail("M1").unwrap();
        assert!(!check.ok());
        assert!(
            check.recomputed.mismatches[0]
                .what
                .contains("dispute D1 is open"),
            "{:?}",
            check.recomputed.mismatches
        );
        assert!(!a.verify_all().unwrap().ok());
        let audits_before = a.engine().audit(1, 100).unwrap().len();
        assert_eq!(a.recover_disputes().unwrap(), 1);
        assert_eq!(a.recover_disputes().unwrap(), 0, "completed once");
        let d = a.dispute("D1").unwrap();
        assert_eq!(d.status, DisputeStatus::Reassigned);
        let r = d.resolution.unwrap();
        assert_eq!(
            (r.reviewer.as_str(), r.new_owner.as_deref()),
            ("rev-9", Some("guide:G3"))
        );
        assert!(
            r.binding_seq.is_some(),
            "the binding correction was made too"
        );
        let bound = a.engine().store().latest_binding("M1").unwrap().unwrap();
        assert_eq!(bound.binding().unwrap().state.guide_id, "G3");
        let audits = a.engine().audit(1, 100).unwrap();
        assert_eq!(audits.len(), audits_before + 1);
        assert_eq!(audits.last().unwrap().action, "resolve_dispute");
        assert!(a.verify_trail("M1").unwrap().ok());
        match a.resolve_dispute("D1", Verdict::Uphold, "rev-2", "no") {
            Err(AttributionError::Precondition(m)) => assert!(m.contains("reassigned"), "{m}"),
            other => panic!("{other:?}"),
        }
        // An adjustment no dispute made is named.
        a.reassign(ReassignInput {
            adjustment_id: "manual:1".into(),
            order_id: "O2".into(),
            to_party: "guide:G3".into(),
            actor: "root".into(),
            reason: "by hand".into(),
            occurred_at_ms: T0 + 1,
            rebind: false,
        })
        .unwrap();
        let check = a.verify_trail("M2").unwrap();
        assert!(
            check.recomputed.mismatches[0]
                .what
                .contains("no dispute of that id exists"),
            "{:?}",
            check.recomputed.mismatches
        );
    }

    #[test]
    fn open_show_resolve_and_the_books_follow() {
        let a = setup();
        let d = a.open_dispute(open("O1", "guide:G3")).unwrap().0;
        assert_eq!(
            (d.dispute_id.as_str(), d.status),
            ("D1", DisputeStatus::Open)
        );
        assert_eq!(d.owner_at_open, "guide:G1");
        let ev = a.evidence(&d).unwrap();
        assert!(ev.check.ok());
        assert_eq!(ev.trail.len(), 2);
        assert_eq!(ev.recomputed, ev.order.order.order().unwrap().ownership);
        assert_eq!(ev.alternatives.len(), 1);
        assert_eq!(ev.alternatives[0].ownership.guide_id.as_deref(), Some("G1"));

        let r = a
            .resolve_dispute(
                "D1",
                Verdict::Reassign {
                    to: "guide:G3".into(),
                    rebind: false,
                },
                "rev-1",
                "chat log",
            )
            .unwrap();
        assert_eq!(r.status, DisputeStatus::Reassigned);
        let view = a.order("O1").unwrap();
        assert_eq!(view.owner_party, "guide:G3");
        assert_eq!(view.net.iter().map(|e| e.amount_cents).sum::<i64>(), 10_000);
        assert_eq!(
            r.resolution.unwrap().adjustment_seq,
            Some(view.adjustments[0].seq)
        );
        let audit = a.engine().audit(1, 10).unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(
            (audit[0].action.as_str(), audit[0].target.as_str()),
            ("resolve_dispute", "dispute:D1")
        );
        assert_eq!(audit[0].actor, "rev-1");
        // Resolved is final.
        assert!(matches!(
            a.resolve_dispute("D1", Verdict::Uphold, "rev-2", "no"),
            Err(AttributionError::Precondition(_))
        ));
        // Refunds after the reassignment debit the new owner, to zero.
        a.record_refund(refund("R1", "O1", None, T0 + 10)).unwrap();
        assert!(
            a.order("O1")
                .unwrap()
                .net
                .iter()
                .all(|e| e.amount_cents == 0)
        );
        // Reopening links the old dispute; it may put the owner back.
        let again = a
            .open_dispute(OpenInput {
                reopens: Some("D1".into()),
                request_id: None,
                claimant: "guide:G1".into(),
                ..open("O1", "guide:G1")
            })
            .unwrap()
            .0;
        assert_eq!(
            (again.dispute_id.as_str(), again.reopens.as_deref()),
            ("D2", Some("D1"))
        );
        assert!(a.verify_trail("M1").unwrap().ok());
    }

    #[test]
    fn a_reassignment_may_correct_the_binding() {
        let a = setup();
        a.open_dispute(open("O1", "guide:G3")).unwrap();
        let r = a
            .resolve_dispute(
                "D1",
                Verdict::Reassign {
                    to: "guide:G3".into(),
                    rebind: true,
                },
                "rev-1",
                "G3 served the member",
            )
            .unwrap();
        let seq = r.resolution.unwrap().binding_seq.unwrap();
        let latest = a.engine().store().latest_binding("M1").unwrap().unwrap();
        assert_eq!(latest.seq, seq);
        let b = latest.binding().unwrap();
        assert_eq!(
            (b.state.guide_id.as_str(), b.actor.as_str()),
            ("G3", "rev-1")
        );
        assert_eq!(b.cause_id, "dispute:D1");
        assert!(a.verify_trail("M1").unwrap().ok());
        let history = a.binding_history("M1").unwrap();
        assert_eq!(history.last().unwrap().guide_id, "G3");
        // A binding is to a guide.
        a.open_dispute(open("O2", "store:S2")).unwrap();
        assert!(matches!(
            a.resolve_dispute(
                "D2",
                Verdict::Reassign {
                    to: "store:S2".into(),
                    rebind: true
                },
                "rev-1",
                "x"
            ),
            Err(AttributionError::Invalid(f)) if f.field == "correct_binding"
        ));
    }

    #[test]
    fn two_reviewers_at_once_one_wins() {
        let a = Arc::new(setup());
        a.open_dispute(open("O1", "guide:G3")).unwrap();
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = ["guide:G3", "guide:G4"]
                .into_iter()
                .enumerate()
                .map(|(i, to)| {
                    let a = a.clone();
                    s.spawn(move || {
                        a.resolve_dispute(
                            "D1",
                            Verdict::Reassign {
                                to: to.into(),
                                rebind: false,
                            },
                            &format!("rev-{i}"),
                            "x",
                        )
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(AttributionError::Precondition(_))))
        );
        assert_eq!(a.order("O1").unwrap().adjustments.len(), 1);
    }

    #[test]
    fn lists_filter_and_page_and_bad_input_writes_nothing() {
        let a = setup();
        a.open_dispute(open("O1", "guide:G3")).unwrap();
        a.open_dispute(OpenInput {
            claimant: "channel:ECOMMERCE".into(),
            ..open("O2", "store:S2")
        })
        .unwrap();
        a.resolve_dispute("D2", Verdict::Uphold, "rev-1", "owner stands")
            .unwrap();
        let all = DisputeFilter::default();
        let (page, next) = a.list_disputes(&all, 0, 1).unwrap();
        assert_eq!((page[0].dispute_id.as_str(), next), ("D1", Some(1)));
        let (page, _) = a.list_disputes(&all, 1, 1).unwrap();
        assert_eq!(page[0].dispute_id, "D2");
        let open_only = DisputeFilter {
            status: Some(DisputeStatus::Open),
            ..Default::default()
        };
        assert_eq!(a.list_disputes(&open_only, 0, 10).unwrap().0.len(), 1);
        let by_guide = DisputeFilter {
            guide_id: Some("G4".into()),
            ..Default::default()
        };
        assert_eq!(
            a.list_disputes(&by_guide, 0, 10).unwrap().0[0].order_id,
            "O2"
        );
        let by_claimant = DisputeFilter {
            claimant: Some("channel:ECOMMERCE".into()),
            ..Default::default()
        };
        assert_eq!(a.list_disputes(&by_claimant, 0, 10).unwrap().0.len(), 1);
        let by_store = DisputeFilter {
            store_id: Some("S2".into()),
            ..Default::default()
        };
        assert_eq!(
            a.list_disputes(&by_store, 0, 10).unwrap().0.len(),
            2,
            "S2 fulfilled both"
        );

        for (bad, field) in [
            (open("", "guide:G3"), "order_id"),
            (
                OpenInput {
                    claimant: "nobody".into(),
                    ..open("O1", "guide:G3")
                },
                "claimant",
            ),
            (open("O1", "guide:G404"), "claimed_owner"),
            (
                OpenInput {
                    reason: String::new(),
                    ..open("O1", "guide:G3")
                },
                "reason",
            ),
            (
                OpenInput {
                    opened_by: "a b".into(),
                    ..open("O1", "guide:G3")
                },
                "opened_by",
            ),
        ] {
            match a.open_dispute(bad.clone()) {
                Err(AttributionError::Invalid(f)) => assert_eq!(f.field, field, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(matches!(
            a.open_dispute(open("O404", "guide:G3")),
            Err(AttributionError::NotFound { .. })
        ));
        assert!(matches!(
            a.open_dispute(open("O1", "guide:G1")),
            Err(AttributionError::Precondition(_))
        ));
        assert!(matches!(
            a.open_dispute(OpenInput {
                reopens: Some("D1".into()),
                request_id: None,
                ..open("O1", "guide:G3")
            }),
            Err(AttributionError::Precondition(_))
        ));
        assert!(matches!(
            a.dispute("D9"),
            Err(AttributionError::NotFound { .. })
        ));
        assert!(matches!(a.dispute("9"), Err(AttributionError::Invalid(_))));
        for (verdict, reviewer, reason, field) in [
            (Verdict::Uphold, "", "x", "reviewer_id"),
            (Verdict::Uphold, "rev", " ", "reason"),
            (
                Verdict::Reassign {
                    to: "store:S404".into(),
                    rebind: false,
                },
                "rev",
                "x",
                "new_owner",
            ),
        ] {
            match a.resolve_dispute("D1", verdict, reviewer, reason) {
                Err(AttributionError::Invalid(f)) => assert_eq!(f.field, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert_eq!(a.dispute("D1").unwrap().status, DisputeStatus::Open);
        assert_eq!(a.list_disputes(&all, 0, 10).unwrap().0.len(), 2);
    }
}

/// A member stays bound to a guide who left (no transfer: the budget is spent or transfers on
/// leave are off). Orders placed after that credit the guide's store, never the guide; a
/// departed referrer is not credited either; and the export recomputes the same.
#[test]
fn a_departed_guide_is_never_credited_for_a_later_order() {
    use crate::catalog::{CatalogChange, GuideStatus};
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Arc::new(
        Engine::new(
            small_network(),
            Arc::new(MemoryStore::new()),
            clock.clone(),
            EngineConfig {
                transfers: crate::engine::TransferConfig {
                    on_leave: false,
                    ..Default::default()
                },
                ..EngineConfig::default()
            },
        )
        .unwrap(),
    );
    let cfg = AttributionConfig {
        splits: vec![split::SplitPolicy {
            owner: 30,
            fulfilling_store: 50,
            o2o_centre: 10,
            referrer_1: 10,
            ..split::SplitPolicy::default()
        }],
        ..AttributionConfig::default()
    };
    let a = Attribution::new(engine.clone(), cfg).unwrap();
    a.record_touch(touch("B", "M1", TouchKind::Binding, Some("G1"), T0 - DAY))
        .unwrap();
    // Before leaving, G1 owns the member's order.
    let before = a.record_order(order("O0", "M1", 10_000, T0 - 1)).unwrap();
    assert_eq!(
        before.event.order().unwrap().ownership.guide_id.as_deref(),
        Some("G1")
    );
    engine
        .apply_change(
            &CatalogChange::SetGuideStatus {
                guide_id: "G1".into(),
                status: GuideStatus::Left,
            },
            "ops",
            "resigned",
        )
        .unwrap();
    assert_eq!(
        engine
            .store()
            .latest_binding("M1")
            .unwrap()
            .unwrap()
            .binding()
            .unwrap()
            .state
            .guide_id,
        "G1",
        "the member is still bound to the guide who left"
    );
    let mut o = order("O1", "M1", 10_001, T0);
    o.facts.referrer_guide_ids = vec!["G1".into()];
    let rec = a.record_order(o).unwrap();
    let r = rec.event.order().unwrap();
    assert_eq!(r.ownership.rule, OwnershipRule::BoundGuide);
    assert_eq!(r.ownership.guide_id, None);
    assert_eq!(r.ownership.store_id.as_deref(), Some("S1"));
    assert!(
        r.ownership.explanation.contains("G1 had left"),
        "{}",
        r.ownership.explanation
    );
    assert_eq!(r.departed_guide_ids, vec!["G1".to_string()]);
    assert!(
        r.entries.iter().all(|e| e.party != "guide:G1"),
        "{:?}",
        r.entries
    );
    assert_eq!(
        r.entries.iter().map(|e| e.amount_cents).sum::<i64>(),
        10_001
    );
    assert!(
        r.entries
            .iter()
            .any(|e| e.party == "store:S1" && e.role == Role::Owner)
    );
    // The trail, exported, recomputes the same owner and split.
    let check = a.verify_trail("M1").unwrap();
    assert!(check.ok(), "{:?}", check.recomputed.mismatches);

    // With departed = next_rule the sharing guide, then the paid channel, decide instead.
    let mut rules = rules::OwnershipRuleSet {
        departed: rules::Departed::NextRule,
        ..Default::default()
    };
    rules.version = "ownership-v2".into();
    let events = all_events(engine.store().as_ref());
    let binding = events.iter().rev().find(|e| e.binding().is_some());
    let facts = &r.facts;
    let own = rules.decide(facts, None, T0, &[], binding, &|g: &str| g == "G1");
    assert_eq!(own.rule, OwnershipRule::PaidChannel);
    assert_eq!(own.channel, Some(Channel::Ecommerce));
}
