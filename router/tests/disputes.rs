//! The Disputes service through a real server: open → show → resolve, concurrent reviewers,
//! the books after a reassignment and a later refund, and bad input on every field.

mod common;

use common::*;
use leadrouter_proto::v1 as pb;
use pb::resolve_dispute_request::Outcome;
use tonic::Code;

fn open(order: &str, claimed: &str) -> pb::OpenDisputeRequest {
    pb::OpenDisputeRequest {
        order_id: order.into(),
        claimant: "store:S1".into(),
        claimed_owner: claimed.into(),
        reason: "served in store".into(),
        opened_by: "mgr-1".into(),
        reopens: String::new(),
        request_id: String::new(),
    }
}

fn resolve(id: &str, outcome: Outcome, owner: &str, reviewer: &str) -> pb::ResolveDisputeRequest {
    pb::ResolveDisputeRequest {
        dispute_id: id.into(),
        outcome: outcome as i32,
        new_owner: owner.into(),
        reviewer_id: reviewer.into(),
        reason: "chat log and store receipt".into(),
        correct_binding: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_show_resolve_concurrently_and_the_books_follow() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), tiny(&[5, 5, 5])).await;
    let mut a = server.attribution().await;
    let mut disputes = server.disputes().await;
    // m1 is routed (bound to a guide), then orders through the mini-program.
    let mut router = server.router().await;
    let routed = router
        .route(pb::RouteRequest {
            member_id: Some("m1".into()),
            ..request("L1", "440106")
        })
        .await
        .unwrap()
        .into_inner();
    a.record_order(pb::RecordOrderRequest {
        order_id: "o1".into(),
        member_id: "m1".into(),
        amount_cents: 10_000,
        paid_channel: pb::Channel::MiniProgram as i32,
        fulfilling_store_id: Some("S2".into()),
        sharing_guide_id: None,
        referrer_guide_ids: vec![],
        // A second after the route (now_ts() drops the milliseconds the binding has).
        occurred_at: Some(leadrouter_proto::Timestamp {
            seconds: now_ts().seconds + 1,
            nanos: 0,
        }),
    })
    .await
    .unwrap();
    let other = if routed.guide_id == "G0" { "G1" } else { "G0" };
    let claimed = format!("guide:{other}");

    let d = disputes
        .open_dispute(open("o1", &claimed))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.dispute_id, "D1");
    assert_eq!(d.owner_at_open, format!("guide:{}", routed.guide_id));
    let shown = disputes
        .get_dispute(pb::GetDisputeRequest {
            dispute_id: "D1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(shown.chain_ok);
    assert_eq!(shown.order.as_ref().unwrap().owner_party, d.owner_at_open);
    assert_eq!(shown.recomputed, shown.order.as_ref().unwrap().ownership);
    assert_eq!(shown.rule_sets.len(), 1);
    assert_eq!(shown.decisions.len(), 1, "the route that bound m1");
    assert_eq!(shown.decisions[0].lead_id, "L1");
    assert!(shown.trail.iter().any(|e| e.r#type == "binding"));

    // Two reviewers at once: one wins.
    let (mut c1, mut c2) = (server.disputes().await, server.disputes().await);
    let (x, y) = tokio::join!(
        c1.resolve_dispute(resolve("D1", Outcome::Reassign, &claimed, "rev-a")),
        c2.resolve_dispute(resolve("D1", Outcome::Reassign, "store:S1", "rev-b")),
    );
    let (won, lost) = match (x, y) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w.into_inner(), l),
        other => panic!("exactly one must win: {other:?}"),
    };
    assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
    let view = a
        .get_ownership(pb::GetOwnershipRequest {
            order_id: "o1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.net.iter().map(|e| e.amount_cents).sum::<i64>(), 10_000);
    assert_eq!(won.status, pb::DisputeStatus::DisputeReassigned as i32);
    assert_eq!(view.owner_party, won.new_owner);
    assert_eq!(view.adjustments.len(), 1, "the loser moved nothing");
    // A full refund afterwards leaves every party at zero.
    a.record_refund(pb::RecordRefundRequest {
        refund_id: "r1".into(),
        order_id: "o1".into(),
        amount_cents: None,
        occurred_at: Some(leadrouter_proto::Timestamp {
            seconds: now_ts().seconds + 2,
            nanos: 0,
        }),
    })
    .await
    .unwrap();
    let view = a
        .get_ownership(pb::GetOwnershipRequest {
            order_id: "o1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        view.net.iter().all(|e| e.amount_cents == 0),
        "{:?}",
        view.net
    );
    let listed = disputes
        .list_disputes(pb::ListDisputesRequest {
            status: won.status,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.disputes.len(), 1);
    let verified = a
        .verify_trail(pb::VerifyTrailRequest {
            member_id: "m1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verified.ok, "{verified:?}");

    // Bad input on every field; nothing is written.
    for (req, field) in [
        (open("", &claimed), "order_id"),
        (
            pb::OpenDisputeRequest {
                claimant: "x".into(),
                ..open("o1", &claimed)
            },
            "claimant",
        ),
        (open("o1", "guide:G404"), "claimed_owner"),
        (
            pb::OpenDisputeRequest {
                reason: String::new(),
                ..open("o1", &claimed)
            },
            "reason",
        ),
        (
            pb::OpenDisputeRequest {
                opened_by: String::new(),
                ..open("o1", &claimed)
            },
            "opened_by",
        ),
        (
            pb::OpenDisputeRequest {
                reopens: "X1".into(),
                ..open("o1", "channel:ECOMMERCE")
            },
            "reopens",
        ),
    ] {
        let e = disputes.open_dispute(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{req:?}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let e = disputes
        .open_dispute(open("o404", &claimed))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    for (id, code) in [
        ("", Code::InvalidArgument),
        ("X1", Code::InvalidArgument),
        ("D0", Code::InvalidArgument),
        ("D9", Code::NotFound),
    ] {
        let e = disputes
            .get_dispute(pb::GetDisputeRequest {
                dispute_id: id.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{id:?}: {e:?}");
    }
    for (req, field) in [
        (resolve("", Outcome::Uphold, "", "rev"), "dispute_id"),
        (resolve("D1", Outcome::Unspecified, "", "rev"), "outcome"),
        (resolve("D1", Outcome::Reassign, "", "rev"), "new_owner"),
        (
            resolve("D1", Outcome::Uphold, "guide:G0", "rev"),
            "new_owner",
        ),
        (
            resolve("D1", Outcome::Reassign, "store:S404", "rev"),
            "new_owner",
        ),
        (resolve("D1", Outcome::Uphold, "", ""), "reviewer_id"),
        (
            pb::ResolveDisputeRequest {
                correct_binding: true,
                ..resolve("D1", Outcome::Uphold, "", "rev")
            },
            "correct_binding",
        ),
        (
            pb::ResolveDisputeRequest {
                correct_binding: true,
                ..resolve("D1", Outcome::Reassign, "store:S1", "rev")
            },
            "correct_binding",
        ),
        (
            pb::ResolveDisputeRequest {
                reason: " ".into(),
                ..resolve("D1", Outcome::Uphold, "", "rev")
            },
            "reason",
        ),
    ] {
        let e = disputes.resolve_dispute(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{req:?}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let e = disputes
        .resolve_dispute(resolve("D9", Outcome::Uphold, "", "rev"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    for (req, field) in [
        (
            pb::ListDisputesRequest {
                status: 9,
                ..Default::default()
            },
            "status",
        ),
        (
            pb::ListDisputesRequest {
                page_size: 501,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListDisputesRequest {
                page_token: "x".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        let e = disputes.list_disputes(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{req:?}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let all = disputes
        .list_disputes(pb::ListDisputesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.disputes.len(), 1, "bad requests wrote nothing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_cli_lists_shows_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), tiny(&[5, 5, 5])).await;
    let url = server.url();
    let mut a = server.attribution().await;
    a.record_touch(pb::RecordTouchRequest {
        touch_id: "t1".into(),
        member_id: "m1".into(),
        kind: pb::TouchKind::GuideChat as i32,
        channel: pb::Channel::MiniProgram as i32,
        guide_id: Some("G0".into()),
        store_id: None,
        lead_id: None,
        occurred_at: Some(leadrouter_proto::Timestamp {
            seconds: now_ts().seconds - 60,
            nanos: 0,
        }),
    })
    .await
    .unwrap();
    a.record_order(pb::RecordOrderRequest {
        order_id: "o1".into(),
        member_id: "m1".into(),
        amount_cents: 9_999,
        paid_channel: pb::Channel::MiniProgram as i32,
        fulfilling_store_id: Some("S1".into()),
        sharing_guide_id: None,
        referrer_guide_ids: vec![],
        occurred_at: Some(now_ts()),
    })
    .await
    .unwrap();
    server
        .disputes()
        .await
        .open_dispute(open("o1", "guide:G1"))
        .await
        .unwrap();
    let run = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&args)
        })
        .await
        .unwrap()
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let o = run(s(&["disputes", "list", "--server", &url])).await;
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("D1") && t.contains("open") && t.contains("guide:G0"),
        "{t}"
    );
    let o = run(s(&["disputes", "show", "D1", "--server", &url])).await;
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("chain: intact") && t.contains("LAST_TOUCH"),
        "{t}"
    );
    let o = run(s(&["disputes", "show", "D1", "--json", "--server", &url])).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["dispute"]["status"], "open");
    assert_eq!(v["chain_ok"], true);
    assert_eq!(v["owner_party"], "guide:G0");

    let o = run(s(&[
        "disputes",
        "resolve",
        "D1",
        "--reassign",
        "guide:G1",
        "--reviewer",
        "rev-1",
        "--reason",
        "chat log",
        "--server",
        &url,
    ]))
    .await;
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("reassigned to guide:G1 by rev-1"), "{t}");
    let o = run(s(&[
        "disputes",
        "list",
        "--status",
        "reassigned",
        "--json",
        "--server",
        &url,
    ]))
    .await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["new_owner"], "guide:G1");

    // Clear failures: resolved already, not found, unreachable, bad flags.
    let o = run(s(&[
        "disputes",
        "resolve",
        "D1",
        "--uphold",
        "--reviewer",
        "rev-2",
        "--reason",
        "no",
        "--server",
        &url,
    ]))
    .await;
    assert!(!o.status.success());
    assert!(text(&o).contains("already reassigned"), "{}", text(&o));
    let o = run(s(&["disputes", "show", "D9", "--server", &url])).await;
    assert!(!o.status.success());
    assert!(
        text(&o).contains("dispute \"D9\" not found"),
        "{}",
        text(&o)
    );
    let o = run(s(&["disputes", "list", "--server", "http://127.0.0.1:1"])).await;
    assert!(!o.status.success());
    assert!(
        text(&o).contains("cannot reach the server at http://127.0.0.1:1"),
        "{}",
        text(&o)
    );
    let o = run(s(&[
        "disputes", "list", "--status", "closed", "--server", &url,
    ]))
    .await;
    assert!(!o.status.success());
    assert!(
        text(&o).contains("--status: must be open, upheld or reassigned"),
        "{}",
        text(&o)
    );
    let o = run(s(&[
        "disputes",
        "resolve",
        "D1",
        "--reviewer",
        "r",
        "--reason",
        "x",
    ]))
    .await;
    assert!(!o.status.success(), "neither --uphold nor --reassign");
    server.stop().await;
}

/// Retries of one OpenDispute open one dispute, and a final dispute cannot be resolved again
/// through a duplicate: the credit moves once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_opens_open_one_dispute_and_credit_moves_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), tiny(&[5, 5, 5])).await;
    let mut a = server.attribution().await;
    let mut disputes = server.disputes().await;
    a.record_order(pb::RecordOrderRequest {
        order_id: "o7".into(),
        member_id: "m7".into(),
        amount_cents: 10_000,
        paid_channel: pb::Channel::MiniProgram as i32,
        fulfilling_store_id: Some("S2".into()),
        sharing_guide_id: Some("G0".into()),
        referrer_guide_ids: vec![],
        occurred_at: Some(now_ts()),
    })
    .await
    .unwrap();
    let req = pb::OpenDisputeRequest {
        request_id: "req-1".into(),
        ..open("o7", "guide:G1")
    };
    let mut ids = Vec::new();
    for i in 0..6 {
        let d = disputes
            .open_dispute(req.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.replayed, i > 0);
        assert_eq!(d.request_id, "req-1");
        ids.push(d.dispute_id);
    }
    assert!(ids.iter().all(|d| d == "D1"), "{ids:?}");
    // The same key with other content is a conflict; no key while one is open is refused.
    let e = disputes
        .open_dispute(pb::OpenDisputeRequest {
            reason: "another story".into(),
            ..req.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(e.message().contains("reason: stored"), "{}", e.message());
    let e = disputes
        .open_dispute(open("o7", "guide:G1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("D1 open"), "{}", e.message());
    disputes
        .resolve_dispute(resolve("D1", Outcome::Reassign, "guide:G1", "rev-1"))
        .await
        .unwrap();
    // A new dispute on a final one must say it reopens it; so a retry cannot move credit again.
    let e = disputes
        .open_dispute(open("o7", "guide:G2"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("set reopens = D1"), "{}", e.message());
    let again = disputes
        .open_dispute(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(again.status, pb::DisputeStatus::DisputeReassigned as i32);
    let own = a
        .get_ownership(pb::GetOwnershipRequest {
            order_id: "o7".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.adjustments.len(), 1);
    server.stop().await;
}
