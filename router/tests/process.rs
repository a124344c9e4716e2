//! The real binary: killed with SIGKILL mid-run, stopped with SIGTERM, restarted on its data.

mod common;

use common::*;
use leadrouter_proto::v1 as pb;
use std::collections::HashMap;
use std::time::Duration;

async fn route_many(url: &str, prefix: &str, n: usize) -> Vec<pb::RouteResponse> {
    let client = pb::lead_router_client::LeadRouterClient::connect(url.to_string())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut c = client.clone();
        let id = format!("{prefix}-{i}");
        tasks.push(tokio::spawn(async move {
            let mut req = request(&id, ["440106", "330106", "110105", "510104"][i % 4]);
            req.interests = vec![pb::Interest {
                category: "womenswear".into(),
                weight: 1.0,
            }];
            c.route(req).await.unwrap().into_inner()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn loads(url: &str, guides: impl Iterator<Item = String>) -> HashMap<String, u32> {
    let mut c = pb::catalog_client::CatalogClient::connect(url.to_string())
        .await
        .unwrap();
    let mut out = HashMap::new();
    for g in guides {
        out.insert(g.clone(), guide_load(&mut c, &g).await.used);
    }
    out
}

/// Decisions acknowledged more than the flush interval (100 ms) before a SIGKILL are all there
/// after a restart, and every guide's count equals its stored decisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_flushed_decision_and_counts_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Binary::start(dir.path(), &[]);
    let acked = route_many(&bin.url(), "k", 200).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A burst in flight while the process dies: these may or may not survive.
    let url = bin.url();
    let burst = tokio::spawn(async move {
        let client = pb::lead_router_client::LeadRouterClient::connect(url)
            .await
            .unwrap();
        let mut ok = Vec::new();
        for i in 0..2000 {
            let mut c = client.clone();
            match c.route(request(&format!("burst-{i}"), "440106")).await {
                Ok(r) => ok.push(r.into_inner()),
                Err(_) => break,
            }
        }
        ok
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    bin.kill();
    let burst = burst.await.unwrap();
    assert!(!burst.is_empty(), "the burst never started before the kill");

    let bin = Binary::start(dir.path(), &[]);
    let again = route_many(&bin.url(), "k", 200).await;
    for (a, b) in acked.iter().zip(&again) {
        assert_eq!(a.lead_id, b.lead_id);
        assert!(b.replayed, "{} was lost", a.lead_id);
        assert_eq!(a.guide_id, b.guide_id);
        assert_eq!(a.decision_id, b.decision_id);
    }
    // Counts agree with whatever decisions survived: replay the burst to learn which did.
    let mut client = pb::lead_router_client::LeadRouterClient::connect(bin.url())
        .await
        .unwrap();
    let mut expected: HashMap<String, u32> = HashMap::new();
    for r in acked.iter() {
        if !r.guide_id.is_empty() {
            *expected.entry(r.guide_id.clone()).or_default() += 1;
        }
    }
    for r in &burst {
        let again = client
            .route(request(&r.lead_id, "440106"))
            .await
            .unwrap()
            .into_inner();
        if again.replayed {
            assert_eq!(again.guide_id, r.guide_id);
            if !r.guide_id.is_empty() {
                *expected.entry(r.guide_id.clone()).or_default() += 1;
            }
        } else {
            // Lost in the crash and routed anew now: count the new decision instead.
            if !again.guide_id.is_empty() {
                *expected.entry(again.guide_id.clone()).or_default() += 1;
            }
        }
    }
    let got = loads(&bin.url(), expected.keys().cloned()).await;
    assert_eq!(got, expected);
    bin.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_everything_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Binary::start(dir.path(), &[]);
    let acked = route_many(&bin.url(), "t", 100).await;
    // No pause: the graceful shutdown must flush what the background flush has not.
    let status = bin.terminate();
    assert!(status.success(), "{status:?}");
    let bin = Binary::start(dir.path(), &[]);
    let again = route_many(&bin.url(), "t", 100).await;
    assert!(again.iter().all(|r| r.replayed));
    for (a, b) in acked.iter().zip(&again) {
        assert_eq!(a.guide_id, b.guide_id);
    }
    bin.kill();
}

#[test]
fn serve_reports_a_bad_network_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    leadrouter::catalog::NetworkFiles::from_spec(&tiny_spec(&[1, 2]))
        .write_dir(&net)
        .unwrap();
    let stores = std::fs::read_to_string(net.join("stores.csv")).unwrap();
    std::fs::write(
        net.join("stores.csv"),
        stores.replacen("440106", "440199", 1),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leadrouter"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--network")
        .arg(&net)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stores.csv:2: field `region_code`: unknown region code \"440199\""),
        "{err}"
    );
}

/// 64 clients send orders; the process is killed with SIGKILL in the middle. After a restart,
/// every acknowledged order is there exactly once with entries summing to its amount, every
/// trail still chains, and resending an acknowledged order replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_no_acknowledged_order() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Binary::start(dir.path(), &[]);
    let client = pb::attribution_client::AttributionClient::connect(bin.url())
        .await
        .unwrap();
    let at = now_ts();
    let order = move |c: usize, i: usize| pb::RecordOrderRequest {
        order_id: format!("c{c}-{i}"),
        member_id: format!("m{}", c % 16),
        amount_cents: 100 + (c * 1000 + i) as i64,
        paid_channel: pb::Channel::MiniProgram as i32,
        fulfilling_store_id: Some("S00001".into()),
        sharing_guide_id: i.is_multiple_of(3).then(|| "G000001".to_string()),
        referrer_guide_ids: vec![],
        occurred_at: Some(at),
    };
    let mut clients = Vec::new();
    for c in 0..64 {
        let mut client = client.clone();
        clients.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                match client.record_order(order(c, i)).await {
                    Ok(r) => acked.push(r.into_inner()),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    bin.kill();
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.unwrap());
    }
    assert!(
        acked.len() >= 64,
        "only {} orders before the kill",
        acked.len()
    );
    eprintln!("{} orders acknowledged before the kill", acked.len());

    let bin = Binary::start(dir.path(), &[]);
    let mut client = pb::attribution_client::AttributionClient::connect(bin.url())
        .await
        .unwrap();
    // Exactly once: each order id appears once in its member's trail, and the trails chain.
    orders_exactly_once(&mut client, &acked, 16).await;
    // Resending an acknowledged order replays it.
    let first = &acked[0];
    let (c, i) = first.order_id[1..].split_once('-').unwrap();
    let again = client
        .record_order(order(c.parse().unwrap(), i.parse().unwrap()))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(again.event, first.event);
    bin.kill();
}

/// SIGKILL while 48 reviewers reassign at once: after the restart every dispute is either
/// open with no credit moved, or reassigned with its adjustment, binding correction and audit
/// entry; the trails verify (every adjustment belongs to a resolved dispute), and an UPHOLD
/// cannot contradict a move that reached the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_reassignments_leaves_each_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Binary::start(dir.path(), &[]);
    let url = bin.url();
    let mut a = pb::attribution_client::AttributionClient::connect(url.clone())
        .await
        .unwrap();
    let mut d = pb::disputes_client::DisputesClient::connect(url.clone())
        .await
        .unwrap();
    let n = 48;
    for i in 0..n {
        a.record_order(pb::RecordOrderRequest {
            order_id: format!("o{i}"),
            member_id: format!("m{i}"),
            amount_cents: 10_000 + i as i64,
            paid_channel: pb::Channel::MiniProgram as i32,
            fulfilling_store_id: Some("S00001".into()),
            sharing_guide_id: Some("G000001".into()),
            referrer_guide_ids: vec![],
            occurred_at: Some(now_ts()),
        })
        .await
        .unwrap();
        d.open_dispute(pb::OpenDisputeRequest {
            order_id: format!("o{i}"),
            claimant: "store:S00001".into(),
            claimed_owner: "guide:G000002".into(),
            reason: "served in store".into(),
            opened_by: "mgr-1".into(),
            reopens: String::new(),
            request_id: format!("open-{i}"),
        })
        .await
        .unwrap();
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut d = d.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let r = d
                .resolve_dispute(pb::ResolveDisputeRequest {
                    dispute_id: format!("D{}", i + 1),
                    outcome: pb::resolve_dispute_request::Outcome::Reassign as i32,
                    new_owner: "guide:G000002".into(),
                    reviewer_id: format!("rev-{i}"),
                    reason: "chat log".into(),
                    correct_binding: true,
                })
                .await;
            if r.is_ok() {
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            r.is_ok()
        }));
    }
    // Kill once a few have been acknowledged, with the rest in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while done.load(std::sync::atomic::Ordering::SeqCst) < 3 && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    bin.kill();
    let mut acked = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() {
            acked.push(i);
        }
    }
    eprintln!(
        "{} of {n} resolutions acknowledged before the kill",
        acked.len()
    );

    let bin = Binary::start(dir.path(), &[]);
    let url = bin.url();
    let mut a = pb::attribution_client::AttributionClient::connect(url.clone())
        .await
        .unwrap();
    let mut d = pb::disputes_client::DisputesClient::connect(url.clone())
        .await
        .unwrap();
    let mut reassigned = 0;
    for i in 0..n {
        let got = d
            .get_dispute(pb::GetDisputeRequest {
                dispute_id: format!("D{}", i + 1),
            })
            .await
            .unwrap()
            .into_inner();
        let dispute = got.dispute.unwrap();
        let order = got.order.unwrap();
        if dispute.status == pb::DisputeStatus::DisputeReassigned as i32 {
            reassigned += 1;
            assert_eq!(order.adjustments.len(), 1, "D{}", i + 1);
            assert_eq!(dispute.adjustment_seq, order.adjustments[0].seq);
            assert!(dispute.binding_seq > 0, "D{}: no binding correction", i + 1);
            assert_eq!(dispute.reviewer_id, format!("rev-{i}"));
            let e = d
                .resolve_dispute(pb::ResolveDisputeRequest {
                    dispute_id: format!("D{}", i + 1),
                    outcome: pb::resolve_dispute_request::Outcome::Uphold as i32,
                    new_owner: String::new(),
                    reviewer_id: "rev-late".into(),
                    reason: "owner stands".into(),
                    correct_binding: false,
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        } else {
            assert_eq!(dispute.status, pb::DisputeStatus::DisputeOpen as i32);
            assert!(
                !acked.contains(&i),
                "D{} was acknowledged but is open",
                i + 1
            );
            assert!(
                order.adjustments.is_empty(),
                "D{}: credit moved while open",
                i + 1
            );
        }
    }
    let v = a
        .verify_trail(pb::VerifyTrailRequest {
            member_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.ok, "{v:?}");
    // One audit entry per reassignment.
    let mut c = pb::catalog_client::CatalogClient::connect(url)
        .await
        .unwrap();
    let audit = c
        .list_audit(pb::ListAuditRequest {
            after_seq: 0,
            page_size: 500,
        })
        .await
        .unwrap()
        .into_inner();
    let resolutions = audit
        .entries
        .iter()
        .filter(|e| e.action == "resolve_dispute")
        .count();
    assert_eq!(resolutions, reassigned);
    assert!(reassigned >= acked.len());
    bin.kill();
}

/// A damaged record is data loss, not a reason to retry: DATA_LOSS, counted in /metrics, shown
/// by /healthz; the other members are served; an export keeps what it can read and names what it
/// skipped. A data directory missing its database file is said to be so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_records_are_data_loss_and_an_export_skips_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bin = Binary::start(&data, &[]);
    let mut a = pb::attribution_client::AttributionClient::connect(bin.url())
        .await
        .unwrap();
    for m in ["m1", "m2"] {
        for i in 0..3 {
            a.record_order(pb::RecordOrderRequest {
                order_id: format!("{m}-o{i}"),
                member_id: m.into(),
                amount_cents: 1_000,
                paid_channel: pb::Channel::MiniProgram as i32,
                fulfilling_store_id: Some("S00001".into()),
                sharing_guide_id: None,
                referrer_guide_ids: vec![],
                occurred_at: Some(now_ts()),
            })
            .await
            .unwrap();
        }
    }
    assert!(bin.terminate().success());
    {
        let db = sled::open(&data).unwrap();
        let trails = db.open_tree("trails").unwrap();
        let (k, _) = trails
            .scan_prefix(b"e")
            .map(|kv| kv.unwrap())
            .find(|(_, v)| {
                let v = String::from_utf8_lossy(v);
                v.contains("\"member_id\":\"m1\"") && v.contains("m1-o1")
            })
            .unwrap();
        trails
            .insert(k, &b"{\"member_id\":\"m1\",\"seq\":"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let bin = Binary::start(&data, &[]);
    // The check at start reports the damage before anyone reads it.
    let mut health = String::new();
    for _ in 0..100 {
        health = http_get(bin.addr, "/healthz").await.1;
        if health.contains("\"damaged_records_at_start\":1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(health.contains("\"status\":\"degraded\""), "{health}");
    assert!(
        health.contains("\"damaged_records_at_start\":1"),
        "{health}"
    );
    let mut a = pb::attribution_client::AttributionClient::connect(bin.url())
        .await
        .unwrap();
    let trail = |m: &str| pb::GetTrailRequest {
        member_id: m.into(),
        page_size: 100,
        ..Default::default()
    };
    let e = a.get_trail(trail("m1")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::DataLoss, "{}", e.message());
    assert_eq!(
        a.get_trail(trail("m2"))
            .await
            .unwrap()
            .into_inner()
            .events
            .len(),
        3
    );
    let (_, health) = http_get(bin.addr, "/healthz").await;
    assert!(health.contains("\"status\":\"degraded\""), "{health}");
    let (_, metrics) = http_get(bin.addr, "/metrics").await;
    assert!(
        metrics.contains("leadrouter_storage_damaged_reads_total 1"),
        "{metrics}"
    );
    assert!(bin.terminate().success());

    let out = dir.path().join("all.jsonl");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_leadrouter"))
        .args(["trail", "export", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("skipped 1 damaged record"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("\"member_id\":\"m2\""))
            .count(),
        4
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("\"member_id\":\"m1\""))
            .count(),
        3
    );

    std::fs::remove_file(data.join("db")).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_leadrouter"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("database file db is missing"), "{err}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Fuzzed requests (random bytes to every method, invalid fields, oversize repeated fields) are
/// refused without keeping anything: after a warm-up, three times as many again leave the
/// server's resident memory where it was (within a margin for the allocator).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_under_fuzzed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Binary::start(&dir.path().join("data"), &[]);
    let pid = bin.child.id();
    let methods = std::sync::Arc::new(contract_methods());
    let channel = tonic::transport::Endpoint::from_shared(bin.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let burst = |from: u64, n: u64| {
        let tasks: Vec<_> = (0..16u64)
            .map(|t| {
                let (channel, methods) = (channel.clone(), methods.clone());
                tokio::spawn(async move {
                    let mut refused = 0u64;
                    let mut x = (from + t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let mut next = move || {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x
                    };
                    for i in (from + t..from + n).step_by(16) {
                        if started.elapsed() > Duration::from_secs(240) {
                            break;
                        }
                        let (path, body) = match i % 4 {
                            0 | 1 => {
                                let len = (next() % 3000) as usize;
                                let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                                (methods[next() as usize % methods.len()].clone(), body)
                            }
                            2 => {
                                let junk: String = (0..(next() % 4000)).map(|_| 'ä').collect();
                                let r = pb::RouteRequest {
                                    lead_id: junk.clone(),
                                    member_id: Some(junk.clone()),
                                    region_code: junk,
                                    ..request("x", "440106")
                                };
                                (
                                    "/leadrouter.v1.LeadRouter/Route".to_string(),
                                    prost::Message::encode_to_vec(&r),
                                )
                            }
                            _ => {
                                let n = if i % 64 == 3 { 200_000 } else { 500 };
                                let store = pb::Store {
                                    store_id: format!("S-fuzz-{i}"),
                                    name: "fuzz".into(),
                                    region_code: "440106".into(),
                                    categories: (0..n).map(|c| format!("c{c}")).collect(),
                                    ..Default::default()
                                };
                                let r = pb::UpsertStoreRequest {
                                    store: Some(store),
                                    operator_id: String::new(),
                                    reason: "fuzz".into(),
                                };
                                (
                                    "/leadrouter.v1.Catalog/UpsertStore".to_string(),
                                    prost::Message::encode_to_vec(&r),
                                )
                            }
                        };
                        if raw_on(channel.clone(), &path, None, body).await.is_err() {
                            refused += 1;
                        }
                    }
                    refused
                })
            })
            .collect();
        async move {
            let mut refused = 0;
            for t in tasks {
                refused += t.await.unwrap();
            }
            refused
        }
    };
    let warm = burst(0, 4_000).await;
    assert!(warm > 3_000, "most fuzzed requests are refused ({warm})");
    let before = rss_kib(pid);
    let refused = burst(4_000, 16_000).await;
    assert!(refused > 9_000, "{refused}");
    let after = rss_kib(pid);
    eprintln!(
        "rss after warm-up {before} KiB, after 12,000 more fuzzed requests {after} KiB ({:?})",
        started.elapsed()
    );
    assert!(
        after <= before + 48 * 1024,
        "resident memory grew from {before} KiB to {after} KiB over 12,000 refused requests"
    );
    // Still serving.
    let mut r = pb::lead_router_client::LeadRouterClient::new(channel);
    r.route(request("L-after", "440106")).await.unwrap();
}
