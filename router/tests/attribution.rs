//! The Attribution service through a real server on port 0, with tonic clients.

mod common;

use common::*;
use leadrouter_proto::v1 as pb;
use tonic::Code;

fn ts_offset(secs: i64) -> leadrouter_proto::Timestamp {
    let mut t = now_ts();
    t.seconds += secs;
    t
}

fn touch(id: &str, member: &str, kind: pb::TouchKind, guide: &str) -> pb::RecordTouchRequest {
    pb::RecordTouchRequest {
        touch_id: id.into(),
        member_id: member.into(),
        kind: kind as i32,
        channel: pb::Channel::MiniProgram as i32,
        guide_id: Some(guide.into()),
        store_id: None,
        lead_id: None,
        occurred_at: Some(ts_offset(-3600)),
    }
}

fn order(id: &str, member: &str, cents: i64) -> pb::RecordOrderRequest {
    pb::RecordOrderRequest {
        order_id: id.into(),
        member_id: member.into(),
        amount_cents: cents,
        paid_channel: pb::Channel::MiniProgram as i32,
        fulfilling_store_id: Some("S2".into()),
        sharing_guide_id: None,
        referrer_guide_ids: vec![],
        occurred_at: Some(now_ts()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_order_refund_trail_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), tiny(&[5, 5, 5])).await;
    let mut a = server.attribution().await;

    let t = a
        .record_touch(touch("t1", "m1", pb::TouchKind::ShareLinkClick, "G1"))
        .await
        .unwrap()
        .into_inner();
    let ev = t.event.unwrap();
    assert_eq!((ev.seq, ev.r#type.as_str()), (1, "touch"));
    assert_eq!(ev.prev_hash, "0".repeat(64));

    // One request, sent again below: `occurred_at` must not move between the calls.
    let first = order("o1", "m1", 12_345);
    let o = a.record_order(first.clone()).await.unwrap().into_inner();
    let own = o.ownership.clone().unwrap();
    assert_eq!(
        (own.rule.as_str(), own.guide_id.as_str()),
        ("LAST_TOUCH", "G1")
    );
    assert_eq!(own.store_id, "S1");
    assert_eq!(own.deciding_events, vec![1]);
    assert_eq!(
        o.entries.iter().map(|e| e.amount_cents).sum::<i64>(),
        12_345
    );
    assert!(!o.replayed);
    // The same order again: the stored result.
    let again = a.record_order(first.clone()).await.unwrap().into_inner();
    assert!(again.replayed);
    assert_eq!(again.event, o.event);
    // Other content: ALREADY_EXISTS naming the field.
    let e = a
        .record_order(pb::RecordOrderRequest {
            amount_cents: 12_346,
            ..first.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(
        e.message()
            .contains("amount_cents: stored 12345, got 12346"),
        "{}",
        e.message()
    );

    let r = a
        .record_refund(pb::RecordRefundRequest {
            refund_id: "r1".into(),
            order_id: "o1".into(),
            amount_cents: Some(345),
            occurred_at: Some(now_ts()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.entries.iter().map(|e| e.amount_cents).sum::<i64>(), -345);
    let e = a
        .record_refund(pb::RecordRefundRequest {
            refund_id: "r2".into(),
            order_id: "o1".into(),
            amount_cents: Some(12_001),
            occurred_at: Some(now_ts()),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());

    let v = a
        .get_ownership(pb::GetOwnershipRequest {
            order_id: "o1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.refunded_cents, 345);
    assert_eq!(v.net.iter().map(|e| e.amount_cents).sum::<i64>(), 12_000);
    assert_eq!(v.refunds.len(), 1);
    let e = a
        .get_ownership(pb::GetOwnershipRequest {
            order_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Paged trail: three events, two per page.
    let p1 = a
        .get_trail(pb::GetTrailRequest {
            member_id: "m1".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p1.events.len(), 2);
    let p2 = a
        .get_trail(pb::GetTrailRequest {
            member_id: "m1".into(),
            page_size: 2,
            page_token: p1.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p2.events.len(), 1);
    assert_eq!(p2.events[0].r#type, "refund");
    assert_eq!(p2.events[0].prev_hash, p1.events[1].hash);
    // Every event carries its canonical line, and the hash is over it (without "hash").
    for e in p1.events.iter().chain(&p2.events) {
        assert!(
            e.canonical_json
                .contains(&format!("\"hash\":\"{}\"", e.hash))
        );
    }

    // The ledger for the hour around now: the order's entries and the refund's reversals.
    let ledger = a
        .list_ledger(pb::ListLedgerRequest {
            from: Some(ts_offset(-3600)),
            to: Some(ts_offset(3600)),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ledger.lines.len(), 3);
    assert!(!ledger.next_page_token.is_empty());
    let rest = a
        .list_ledger(pb::ListLedgerRequest {
            from: Some(ts_offset(-3600)),
            to: Some(ts_offset(3600)),
            page_token: ledger.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rest.next_page_token.is_empty());
    let total: i64 = ledger
        .lines
        .iter()
        .chain(&rest.lines)
        .map(|l| l.amount_cents)
        .sum();
    assert_eq!(total, 12_000);
    assert!(rest.lines.iter().all(|l| l.refund_id == "r1"));
    let e = a
        .list_ledger(pb::ListLedgerRequest {
            to: Some(ts_offset(3600)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().starts_with("from"), "{}", e.message());

    let v = a
        .verify_trail(pb::VerifyTrailRequest {
            member_id: "m1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{v:?}");
    assert_eq!((v.events, v.orders, v.refunds), (3, 1, 1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_invalid_argument_naming_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), tiny(&[5, 5, 5])).await;
    let mut a = server.attribution().await;
    let cases: Vec<(pb::RecordOrderRequest, &str)> = vec![
        (order("o1", "m1", -1), "amount_cents"),
        (order("o1", "m1", 0), "amount_cents"),
        (order("o1", "m1", i64::MAX), "amount_cents"),
        (
            pb::RecordOrderRequest {
                fulfilling_store_id: Some("S404".into()),
                ..order("o1", "m1", 100)
            },
            "fulfilling_store_id",
        ),
        (
            pb::RecordOrderRequest {
                occurred_at: Some(ts_offset(86_400)),
                ..order("o1", "m1", 100)
            },
            "occurred_at",
        ),
        (
            pb::RecordOrderRequest {
                occurred_at: None,
                ..order("o1", "m1", 100)
            },
            "occurred_at",
        ),
        (
            pb::RecordOrderRequest {
                paid_channel: 0,
                ..order("o1", "m1", 100)
            },
            "paid_channel",
        ),
        (order("o 1", "m1", 100), "order_id"),
        (order("o1", &"m".repeat(200), 100), "member_id"),
        (
            pb::RecordOrderRequest {
                sharing_guide_id: Some("G404".into()),
                ..order("o1", "m1", 100)
            },
            "sharing_guide_id",
        ),
    ];
    for (req, field) in cases {
        let e = a.record_order(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {}", e.message());
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let e = a
        .record_touch(pb::RecordTouchRequest {
            kind: 0,
            ..touch("t1", "m1", pb::TouchKind::GuideChat, "G1")
        })
        .await
        .unwrap_err();
    assert!(e.message().starts_with("kind"), "{}", e.message());
    let e = a
        .get_trail(pb::GetTrailRequest {
            member_id: "m1".into(),
            page_size: 5000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().starts_with("page_size"), "{}", e.message());
    // Nothing was written.
    let t = a
        .get_trail(pb::GetTrailRequest {
            member_id: "m1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(t.events.is_empty());
    let e = a
        .get_ownership(pb::GetOwnershipRequest {
            order_id: "o1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_a_restart_and_concurrent_duplicates_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), tiny(&[5, 5, 5])).await;
    let a = server.attribution().await;
    let mut tasks = Vec::new();
    let at = now_ts();
    for i in 0..64 {
        let mut a = a.clone();
        tasks.push(tokio::spawn(async move {
            // Each order is sent twice by different tasks.
            let n = i % 32;
            let mut req = order(&format!("o{n}"), &format!("m{}", n % 5), 1000 + n as i64);
            req.occurred_at = Some(at);
            a.record_order(req).await.unwrap().into_inner()
        }));
    }
    let mut replayed = 0;
    for t in tasks {
        replayed += usize::from(t.await.unwrap().replayed);
    }
    assert_eq!(replayed, 32);
    server.stop().await;
    let server = TestServer::start(dir.path(), tiny(&[5, 5, 5])).await;
    let mut a = server.attribution().await;
    for i in 0..32 {
        let v = a
            .get_ownership(pb::GetOwnershipRequest {
                order_id: format!("o{i}"),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            v.entries.iter().map(|e| e.amount_cents).sum::<i64>(),
            v.amount_cents
        );
    }
    for m in 0..5 {
        let v = a
            .verify_trail(pb::VerifyTrailRequest {
                member_id: format!("m{m}"),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(v.ok, "{v:?}");
    }
    server.stop().await;
}
