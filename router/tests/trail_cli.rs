//! `leadrouter trail export | verify` against the real binary: live, offline and on files.

mod common;

use common::*;
use leadrouter_proto::v1 as pb;
use std::path::Path;

async fn record(url: &str) {
    let mut a = pb::attribution_client::AttributionClient::connect(url.to_string())
        .await
        .unwrap();
    for m in 0..3 {
        for t in 0..4 {
            a.record_touch(pb::RecordTouchRequest {
                touch_id: format!("t{m}-{t}"),
                member_id: format!("m{m}"),
                kind: pb::TouchKind::GuideChat as i32,
                channel: pb::Channel::Community as i32,
                guide_id: Some(format!("G00000{}", t + 1)),
                occurred_at: Some(now_ts()),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        a.record_order(pb::RecordOrderRequest {
            order_id: format!("o{m}"),
            member_id: format!("m{m}"),
            amount_cents: 9_999,
            paid_channel: pb::Channel::MiniProgram as i32,
            fulfilling_store_id: Some("S00001".into()),
            occurred_at: Some(now_ts()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    a.record_refund(pb::RecordRefundRequest {
        refund_id: "r0".into(),
        order_id: "o0".into(),
        amount_cents: Some(1),
        occurred_at: Some(now_ts()),
    })
    .await
    .unwrap();
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_verify_live_offline_and_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bin = Binary::start(&data, &[]);
    record(&bin.url()).await;
    let url = bin.url();

    // Live: one member.
    let live = dir.path().join("m0.jsonl");
    let o = tokio::task::spawn_blocking({
        let (url, live) = (url.clone(), live.clone());
        move || {
            cli(&[
                "trail",
                "export",
                "--server",
                &url,
                "--member",
                "m0",
                "--out",
                path(&live),
            ])
        }
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // Six events and the member's head line.
    let live_lines: Vec<String> = std::fs::read_to_string(&live)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(live_lines.len(), 7);
    assert!(live_lines[6].starts_with("{\"member_head\":{\"member_id\":\"m0\",\"events\":6,"));
    let o = cli(&["trail", "verify", path(&live)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("ok: 6 events of 1 members; 1 orders and 1 refunds"),
        "{}",
        text(&o)
    );
    let o = tokio::task::spawn_blocking({
        let url = url.clone();
        move || cli(&["trail", "verify", "--server", &url, "--member", "m0"])
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // Every member, live.
    let o = tokio::task::spawn_blocking({
        let url = url.clone();
        move || cli(&["trail", "verify", "--server", &url])
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("ok: 16 events of 3 members; 3 orders and 1 refunds"),
        "{}",
        text(&o)
    );
    let o = cli(&["trail", "export", "--server", &url]);
    assert!(!o.status.success());
    assert!(text(&o).contains("needs --member"), "{}", text(&o));
    // A settlement statement: three orders of 99.99, one refund of 0.01.
    let o = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            cli(&[
                "ledger",
                "--server",
                &url,
                "--from",
                "2001-01-01",
                "--to",
                "2100-01-01",
            ])
        }
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let total = out.lines().last().unwrap().to_string();
    assert!(
        total.starts_with("total") && total.ends_with("299.96"),
        "{out}"
    );
    assert!(out.contains("store:S00001"), "{out}");
    let o = cli(&[
        "ledger",
        "--server",
        &url,
        "--from",
        "2000-13-01",
        "--to",
        "2100-01-01",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--from"), "{}", text(&o));
    // The data directory is locked while the server runs: a clear message.
    let o = cli(&["trail", "verify", "--data-dir", path(&data)]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("in use by a running server"),
        "{}",
        text(&o)
    );

    // Offline, after a clean stop: everything.
    assert!(bin.terminate().success());
    let all = dir.path().join("all.jsonl");
    let o = cli(&[
        "trail",
        "export",
        "--data-dir",
        path(&data),
        "--out",
        path(&all),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<String> = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // 16 events and a head line for each of the 3 members.
    assert_eq!(lines.len(), 19);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("\"member_head\""))
            .count(),
        3
    );
    let o = cli(&["trail", "verify", "--data-dir", path(&data)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("16 events of 3 members; 3 orders and 1 refunds recomputed, 0 differ"),
        "{}",
        text(&o)
    );

    // Every model credits the three orders; by channel, all touches were COMMUNITY.
    let o = cli(&["trail", "models", path(&all), "--csv"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines_out = out.lines();
    assert_eq!(
        lines_out.next(),
        Some("channel,first,last,linear,time_decay,position_based,markov")
    );
    let row: Vec<&str> = lines_out.next().unwrap().split(',').collect();
    assert_eq!(row[0], "COMMUNITY");
    assert!(
        row[1..].iter().all(|v| v.parse::<f64>().unwrap() == 3.0),
        "{out}"
    );
    let o = cli(&["trail", "models", "--journeys", "no-such-file.csv"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no-such-file.csv"), "{}", text(&o));

    // Tampering with an amount is named by line.
    let i = lines
        .iter()
        .position(|l| l.contains("\"order_id\":\"o1\"") && l.contains("\"type\":\"order\""))
        .unwrap();
    let mut bad = lines.clone();
    bad[i] = bad[i].replacen("\"amount_cents\":9999", "\"amount_cents\":9", 1);
    assert_ne!(bad[i], lines[i]);
    let tampered = dir.path().join("bad.jsonl");
    std::fs::write(&tampered, bad.join("\n")).unwrap();
    let o = cli(&["trail", "verify", path(&tampered)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("chain broken at item {}", i + 1)),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("altered"), "{}", text(&o));
    // Dropping a line breaks the chain at the next event of that member.
    let mut gap = lines.clone();
    gap.remove(1);
    std::fs::write(&tampered, gap.join("\n")).unwrap();
    let o = cli(&["trail", "verify", path(&tampered)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("missing or out of order"), "{}", text(&o));
    // An export whose last events were cut off is reported, not passed as a shorter trail:
    // the member's last event gone (its head line stays) …
    let head = lines
        .iter()
        .position(|l| l.contains("\"member_head\""))
        .unwrap();
    let mut short = lines.clone();
    short.remove(head - 1);
    std::fs::write(&tampered, short.join("\n")).unwrap();
    let o = cli(&["trail", "verify", path(&tampered)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cut short"), "{}", text(&o));
    // … or the file cut in the middle of the last member's events (no head line after them).
    let last_head = lines.len() - 1;
    std::fs::write(&tampered, lines[..last_head - 1].join("\n")).unwrap();
    let o = cli(&["trail", "verify", path(&tampered)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no head line"), "{}", text(&o));
    // A line that is not an event.
    std::fs::write(&tampered, format!("{}\nnot json\n", lines[0])).unwrap();
    let o = cli(&["trail", "verify", path(&tampered)]);
    assert!(
        text(&o).contains("line 2 is not a trail event"),
        "{}",
        text(&o)
    );
}

/// Routing decisions leave a stopped server as JSON Lines, in the order decided, for replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_export_for_replay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bin = Binary::start(&data, &[]);
    let mut r = pb::lead_router_client::LeadRouterClient::connect(bin.url())
        .await
        .unwrap();
    for i in 0..12 {
        let mut req = request(&format!("lead-{i}"), "440106");
        if i % 3 != 0 {
            req.member_id = None;
        }
        r.route(req).await.unwrap();
    }
    // Nothing to read while the server holds the directory.
    let o = cli(&["trail", "export", "--decisions", "--data-dir", path(&data)]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("in use by a running server"),
        "{}",
        text(&o)
    );
    assert!(bin.terminate().success());

    let out = dir.path().join("decisions.jsonl");
    let o = cli(&[
        "trail",
        "export",
        "--decisions",
        "--data-dir",
        path(&data),
        "--out",
        path(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("exported 12 decisions"), "{}", text(&o));
    let lines: Vec<leadrouter::domain::export::DecisionLine> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    assert!(
        lines
            .windows(2)
            .all(|w| w[0].decided_at_ms <= w[1].decided_at_ms)
    );
    assert!(
        lines
            .iter()
            .all(|l| l.guide_id.is_some() && l.policy == "scored")
    );
    assert_eq!(lines.iter().filter(|l| l.member_id.is_some()).count(), 4);
    assert_eq!(lines[0].lead().unwrap().region_code, "440106");
    // A window of days that holds none of them, and a bad date.
    let o = cli(&[
        "trail",
        "export",
        "--decisions",
        "--data-dir",
        path(&data),
        "--to",
        "2000-01-01",
    ]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", text(&o));
    let o = cli(&[
        "trail",
        "export",
        "--decisions",
        "--data-dir",
        path(&data),
        "--from",
        "2026-02-30",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("--from"),
        "{}",
        text(&o)
    );
    let o = cli(&["trail", "export", "--from", "2026-01-01"]);
    assert!(!o.status.success(), "--from needs --decisions");
}
