//! Keys, roles, store scopes, the principal as actor, rate limits, message limits and unknown
//! paths, against the real server on port 0. The permission test is driven by the contract's
//! descriptors: an RPC without an entry in the permission table fails it.

mod common;

use common::*;
use leadrouter::auth::{Access, Keyring, KeysFile, PERMISSIONS, Role, permission};
use leadrouter::engine::EngineConfig;
use leadrouter::server::{Gate, Options, Transport};
use leadrouter_proto::v1 as pb;
use prost::Message;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

async fn raw_call(
    url: &str,
    path: &'static str,
    key: Option<&str>,
    body: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    raw_on(channel, path, key, body).await
}

struct Keys {
    by_role: HashMap<Role, String>,
    file: KeysFile,
}

const NOW: &str = "2026-12-02T00:00:00Z";

fn keys() -> Keys {
    let mut file = KeysFile::default();
    let mut by_role = HashMap::new();
    for r in Role::ALL {
        let k = file.add(&format!("k-{r}"), r, vec![], NOW.into()).unwrap();
        by_role.insert(r, k);
    }
    Keys { by_role, file }
}

fn keyed(file: &KeysFile) -> Options {
    Options {
        gate: std::sync::Arc::new(Gate::with_keys(
            Keyring::from_file(file),
            1e6,
            1e6,
            Duration::from_secs(30),
        )),
        transport: Transport::default(),
        ..Options::default()
    }
}

fn with_key<T>(msg: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {key}")).unwrap(),
    );
    r
}

#[test]
fn the_permission_table_names_every_method_and_nothing_else() {
    let methods = contract_methods();
    for m in &methods {
        if m.starts_with("/leadrouter.storage") {
            continue;
        }
        assert!(
            permission(m).is_some(),
            "{m} has no entry in the permission table (router/src/auth/permissions.rs)"
        );
    }
    for p in PERMISSIONS {
        let grpc = p.path.matches('/').count() == 2 && p.path.contains('.');
        if grpc && p.path.starts_with("/leadrouter.") {
            assert!(
                methods.iter().any(|m| m == p.path),
                "stale entry {}",
                p.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_without_a_key_with_a_wrong_role_and_with_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        keyed(&k.file),
    )
    .await;
    let url = server.url();
    let mut checked = 0;
    for m in contract_methods() {
        if !m.starts_with("/leadrouter.v1.") {
            continue;
        }
        let path: &'static str = Box::leak(m.clone().into_boxed_str());
        let entry = permission(path).unwrap();
        let no_key = raw_call(&url, path, None, vec![]).await.unwrap_err();
        assert_eq!(no_key.code(), Code::Unauthenticated, "{m} without a key");
        let wrong = raw_call(&url, path, Some("lrk_not-a-key"), vec![])
            .await
            .unwrap_err();
        assert_eq!(
            wrong.code(),
            Code::Unauthenticated,
            "{m} with an unknown key"
        );
        for role in Role::ALL {
            let allowed = match entry.access {
                Access::Open | Access::AnyKey => true,
                Access::Roles(r) => role == Role::Admin || r.contains(&role),
            };
            let got = raw_call(&url, path, Some(&k.by_role[&role]), vec![]).await;
            match got {
                Err(s) if s.code() == Code::PermissionDenied && !allowed => {
                    assert!(s.message().contains("needs role"), "{m}: {}", s.message());
                    assert!(
                        !s.message().contains("lrk_"),
                        "{m}: a key in {}",
                        s.message()
                    );
                }
                Err(s) if !allowed => {
                    panic!("{m} as {role}: {:?} instead of PERMISSION_DENIED", s.code())
                }
                Err(s) => assert!(
                    !matches!(s.code(), Code::PermissionDenied | Code::Unauthenticated),
                    "{m} as {role}: refused ({})",
                    s.message()
                ),
                Ok(_) => assert!(allowed, "{m} as {role} was answered"),
            }
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} methods");
    server.stop().await;
}

fn order(id: &str, guide: &str, cents: i64) -> pb::RecordOrderRequest {
    pb::RecordOrderRequest {
        order_id: id.into(),
        member_id: format!("m-{id}"),
        amount_cents: cents,
        paid_channel: pb::Channel::MiniProgram as i32,
        fulfilling_store_id: Some("S0".into()),
        sharing_guide_id: Some(guide.into()),
        occurred_at: Some(now_ts()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        keyed(&k.file),
    )
    .await;
    let mut a = server.attribution().await;
    let e = a
        .record_order(with_key(
            order("O-1", "G0", 100_000_000),
            &k.by_role[&Role::Analyst],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("router_client"), "{}", e.message());
    let e = a.record_order(order("O-1", "G0", 100)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = a
        .get_ownership(with_key(
            pb::GetOwnershipRequest {
                order_id: "O-1".into(),
            },
            &k.by_role[&Role::Admin],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    // The right key records it.
    a.record_order(with_key(
        order("O-1", "G0", 100),
        &k.by_role[&Role::RouterClient],
    ))
    .await
    .unwrap();
    let mut c = server.catalog().await;
    let e = c
        .set_guide_status(with_key(
            pb::SetGuideStatusRequest {
                guide_id: "G0".into(),
                status: pb::GuideStatus::Left as i32,
                operator_id: String::new(),
                reason: "bye".into(),
            },
            &k.by_role[&Role::RouterClient],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let load = c
        .get_guide_load(with_key(
            pb::GetGuideLoadRequest {
                guide_id: "G0".into(),
            },
            &k.by_role[&Role::Operator],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(load.status, pb::GuideStatus::Active as i32);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_scoped_keys_act_on_their_own_stores_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeysFile::default();
    let op = file
        .add("s0-ops", Role::Operator, vec!["S0".into()], NOW.into())
        .unwrap();
    let app = file
        .add("s0-app", Role::GuideApp, vec!["S0".into()], NOW.into())
        .unwrap();
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        keyed(&file),
    )
    .await;
    let mut c = server.catalog().await;
    let status = |guide: &str| pb::SetGuideStatusRequest {
        guide_id: guide.into(),
        status: pb::GuideStatus::Away as i32,
        operator_id: String::new(),
        reason: "shift".into(),
    };
    // G1 works in S1.
    let e = c
        .set_guide_status(with_key(status("G1"), &op))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("limited to stores S0"),
        "{}",
        e.message()
    );
    let done = c
        .set_guide_status(with_key(status("G0"), &op))
        .await
        .unwrap()
        .into_inner();
    // The actor is the key's name.
    assert_eq!(done.entry.unwrap().operator_id, "s0-ops");
    let e = c
        .list_audit(with_key(pb::ListAuditRequest::default(), &op))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let mut store = c
        .list_stores(with_key(pb::ListStoresRequest::default(), &op))
        .await
        .unwrap()
        .into_inner()
        .stores
        .into_iter()
        .find(|s| s.store_id == "S1")
        .unwrap();
    store.guides.clear();
    store.open = false;
    let e = c
        .upsert_store(with_key(
            pb::UpsertStoreRequest {
                store: Some(store),
                operator_id: String::new(),
                reason: "close".into(),
            },
            &op,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = c
        .get_guide_load(with_key(
            pb::GetGuideLoadRequest {
                guide_id: "G1".into(),
            },
            &app,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let mut r = server.router().await;
    let e = r
        .respond_to_offer(with_key(
            pb::RespondToOfferRequest {
                lead_id: "L-1".into(),
                guide_id: "G1".into(),
                answer: pb::OfferAnswer::Accept as i32,
                reason: String::new(),
            },
            &app,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Nothing changed for S1's guide.
    let g1 = c
        .get_guide_load(with_key(
            pb::GetGuideLoadRequest {
                guide_id: "G1".into(),
            },
            &op,
        ))
        .await;
    assert_eq!(g1.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(
        server.engine.guide_load("G1").unwrap().status,
        leadrouter::catalog::GuideStatus::Active
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reviewer_is_the_key_and_not_the_one_who_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeysFile::default();
    let client = file
        .add("backend", Role::RouterClient, vec![], NOW.into())
        .unwrap();
    let opener = file
        .add("rev-open", Role::Reviewer, vec![], NOW.into())
        .unwrap();
    let judge = file
        .add("rev-7", Role::Reviewer, vec![], NOW.into())
        .unwrap();
    let other_store = file
        .add("s2-rev", Role::Reviewer, vec!["S2".into()], NOW.into())
        .unwrap();
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        keyed(&file),
    )
    .await;
    let mut a = server.attribution().await;
    a.record_order(with_key(order("O-9", "G0", 10_000), &client))
        .await
        .unwrap();
    let mut d = server.disputes().await;
    let open = d
        .open_dispute(with_key(
            pb::OpenDisputeRequest {
                order_id: "O-9".into(),
                claimant: "store:S1".into(),
                claimed_owner: "store:S1".into(),
                reason: "served in S1".into(),
                opened_by: String::new(),
                reopens: String::new(),
                request_id: String::new(),
            },
            &opener,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(open.opened_by, "rev-open");
    let resolve = |reviewer: &str| pb::ResolveDisputeRequest {
        dispute_id: open.dispute_id.clone(),
        outcome: pb::resolve_dispute_request::Outcome::Reassign as i32,
        new_owner: "store:S1".into(),
        reviewer_id: reviewer.into(),
        reason: "chat log".into(),
        correct_binding: false,
    };
    let e = d
        .resolve_dispute(with_key(resolve(""), &opener))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    let e = d
        .resolve_dispute(with_key(resolve("the-boss"), &judge))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().starts_with("reviewer_id:"), "{}", e.message());
    let e = d
        .resolve_dispute(with_key(resolve(""), &other_store))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    let e = d
        .get_dispute(with_key(
            pb::GetDisputeRequest {
                dispute_id: open.dispute_id.clone(),
            },
            &other_store,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Still open: none of the refused calls resolved it.
    let still = d
        .get_dispute(with_key(
            pb::GetDisputeRequest {
                dispute_id: open.dispute_id.clone(),
            },
            &judge,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        still.dispute.unwrap().status,
        pb::DisputeStatus::DisputeOpen as i32
    );
    let done = d
        .resolve_dispute(with_key(resolve(""), &judge))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.reviewer_id, "rev-7");
    assert_eq!(done.status, pb::DisputeStatus::DisputeReassigned as i32);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_is_told_when_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeysFile::default();
    let key = file.add("slow", Role::Analyst, vec![], NOW.into()).unwrap();
    file.keys[0].rate_per_sec = Some(1.0);
    let fast = file.add("fast", Role::Analyst, vec![], NOW.into()).unwrap();
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        keyed(&file),
    )
    .await;
    let mut c = server.catalog().await;
    let mut refused = None;
    for _ in 0..5 {
        match c
            .get_network(with_key(pb::GetNetworkRequest {}, &key))
            .await
        {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("five calls at once passed a rate of 1/s with burst 2");
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("retry after"), "{}", e.message());
    let wait: u64 = e
        .metadata()
        .get("retry-after-ms")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1000).contains(&wait), "{wait}");
    // Another key is not slowed down.
    for _ in 0..5 {
        c.get_network(with_key(pb::GetNetworkRequest {}, &fast))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    c.get_network(with_key(pb::GetNetworkRequest {}, &key))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_malformed_bodies_are_the_callers_fault() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let mut options = keyed(&k.file);
    options.transport.limits.max_message_bytes = 64 * 1024;
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        options,
    )
    .await;
    let url = server.url();
    let key = &k.by_role[&Role::RouterClient];
    let mut big = request("L-big", "440106");
    big.lead_id = "x".repeat(100 * 1024);
    let e = raw_call(
        &url,
        "/leadrouter.v1.LeadRouter/Route",
        Some(key),
        big.encode_to_vec(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(e.message().contains("max_message_bytes"), "{}", e.message());
    for garbage in [
        vec![0xff; 40],
        vec![0x0a, 0x7f, 0x01],
        b"hello world".to_vec(),
    ] {
        let e = raw_call(&url, "/leadrouter.v1.LeadRouter/Route", Some(key), garbage)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert!(!e.message().contains("RouteRequest."), "{}", e.message());
    }
    // A long field is quoted short in the error.
    let mut long = request("L-long", "440106");
    long.region_code = "9".repeat(60 * 1024);
    let e = raw_call(
        &url,
        "/leadrouter.v1.LeadRouter/Route",
        Some(key),
        long.encode_to_vec(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().len() < 1024, "{} bytes", e.message().len());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_and_metrics_need_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        keyed(&k.file),
    )
    .await;
    let (status, _) = http_get(server.addr, "/v1/route").await;
    assert!(status.contains(" 404 "), "{status}");
    let (status, _) = http_get(server.addr, "/healthz").await;
    assert!(status.contains(" 200 "), "{status}");
    let (status, body) = http_get(server.addr, "/metrics").await;
    assert!(status.contains(" 401 "), "{status}");
    assert!(body.contains("unauthenticated"), "{body}");
    let e = raw_call(
        &server.url(),
        "/leadrouter.v1.LeadRouter/Nope",
        Some(&k.by_role[&Role::Admin]),
        vec![],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    // POST to a GET page.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 405"));
    // With the monitoring key, the metrics; no key or member id in them.
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        format!(
            "GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            k.by_role[&Role::Monitoring]
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("leadrouter_requests_refused_total"), "{text}");
    assert!(!text.contains("lrk_") && !text.contains("k-admin"));
    server.stop().await;
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_leadrouter"))
}

/// `leadrouter keys add` prints the key on stdout, and only there.
fn add_key(file: &std::path::Path, name: &str, role: &str) -> String {
    let out = bin()
        .args(["keys", "add", "--name", name, "--role", role, "--keys-file"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("lrk_"), "{key}");
    key
}

#[test]
fn off_loopback_without_keys_the_server_refuses_to_start_and_says_how() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("leadrouter keys add"), "{err}");
    assert!(err.contains("mode = \"open\""), "{err}");
    // Nothing was created on disk.
    assert!(!dir.path().join("data").exists());
    // Said plainly, it serves open.
    let config = dir.path().join("open.toml");
    std::fs::write(&config, "[auth]\nmode = \"open\"\n").unwrap();
    let mut b = Binary::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(b.addr.ip().is_loopback());
    let _ = b.child.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reload_on_sighup_while_calls_continue() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let old = add_key(&keys, "old-backend", "router_client");
    let config = dir.path().join("leadrouter.toml");
    std::fs::write(
        &config,
        format!("[auth]\nkeys_file = {:?}\n", keys.to_str().unwrap()),
    )
    .unwrap();
    let b = Binary::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let url = b.url();
    let ping = |key: String| {
        let url = url.clone();
        async move {
            let mut c = pb::lead_router_client::LeadRouterClient::connect(url)
                .await
                .unwrap();
            c.ping(with_key(pb::PingRequest {}, &key)).await.map(|_| ())
        }
    };
    ping(old.clone()).await.unwrap();
    // Calls keep going while the file changes and the server reloads it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, u2, k2) = (stop.clone(), url.clone(), old.clone());
    let load = tokio::spawn(async move {
        let mut c = pb::lead_router_client::LeadRouterClient::connect(u2)
            .await
            .unwrap();
        let mut refused_other = 0;
        let mut n = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) && n < 20_000 {
            n += 1;
            match c.ping(with_key(pb::PingRequest {}, &k2)).await {
                Ok(_) => {}
                Err(e) if e.code() == Code::Unauthenticated => {}
                Err(_) => refused_other += 1,
            }
        }
        refused_other
    });
    let new = add_key(&keys, "new-backend", "router_client");
    let out = bin()
        .args(["keys", "revoke", "--name", "old-backend", "--keys-file"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed = bin()
        .args(["keys", "list", "--keys-file"])
        .arg(&keys)
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains("old-backend") && listed.contains("new-backend"));
    assert!(!listed.contains(&old[4..]) && !listed.contains(&new[4..]));
    let hup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &b.child.id().to_string()])
            .status()
            .unwrap()
    };
    hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ping(new.clone()).await.is_err() {
        assert!(Instant::now() < deadline, "the new key never worked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ping(old.clone()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    // A broken file keeps the keys in service.
    std::fs::write(&keys, "[[key]]\nname = \"broken\n").unwrap();
    hup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    ping(new.clone()).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        load.await.unwrap(),
        0,
        "calls failed other than by the revoked key"
    );
    b.terminate();
}

/// Inputs a hostile client sent in review: each was accepted or crashed before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_refused_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), tiny(&[5, 5, 5])).await;
    let mut c = server.catalog().await;
    let mut store = c
        .list_stores(pb::ListStoresRequest::default())
        .await
        .unwrap()
        .into_inner()
        .stores
        .remove(0);
    store.guides.clear();
    store.categories = vec!["shoes".to_string(); 50_000];
    let e = c
        .upsert_store(pb::UpsertStoreRequest {
            store: Some(store),
            operator_id: "ops".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("repeats"), "{}", e.message());
    assert!(e.message().len() < 600);
    assert!(
        c.list_audit(pb::ListAuditRequest::default())
            .await
            .unwrap()
            .into_inner()
            .entries
            .is_empty()
    );
    let mut a = server.attribution().await;
    for party in ["planet:mars", ":", "guide:", "channel:MOON", "o2o:moon"] {
        let e = a
            .list_ledger(pb::ListLedgerRequest {
                from: Some(leadrouter_proto::Timestamp {
                    seconds: 946_684_800,
                    nanos: 0,
                }),
                to: Some(now_ts()),
                party: party.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{party}");
        assert!(e.message().starts_with("party:"), "{}", e.message());
    }
    // The business day 2000-01-01 begins before 2000-01-01T00:00Z east of UTC: a window from
    // there is a fair question.
    a.list_ledger(pb::ListLedgerRequest {
        from: Some(leadrouter_proto::Timestamp {
            seconds: 946_684_800 - 8 * 3600,
            nanos: 0,
        }),
        to: Some(now_ts()),
        party: "o2o:centre".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    server.stop().await;

    // The README's own network command, and provinces that are not codes.
    let out_dir = dir.path().join("net");
    let o = bin()
        .args([
            "network",
            "generate",
            "--stores",
            "200",
            "--guides-per-store",
            "3-9",
        ])
        .args(["--provinces", "44,33", "--seed", "7", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("--provinces[0]: must be a 6-digit province code")
    );
    for (p, said) in [("990000", "not a province"), ("440000,330000", "")] {
        let o = bin()
            .args([
                "network",
                "generate",
                "--stores",
                "200",
                "--guides-per-store",
                "3-9",
            ])
            .args(["--provinces", p, "--seed", "7", "--out"])
            .arg(&out_dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.success(), said.is_empty(), "{p}: {err}");
        assert!(err.contains(said), "{err}");
    }
}

/// Every write records the key that made it: the decision, the touch, the order, the refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_record_the_calling_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeysFile::default();
    let key = file
        .add("miniprogram", Role::RouterClient, vec![], NOW.into())
        .unwrap();
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        keyed(&file),
    )
    .await;
    let mut r = server.router().await;
    r.route(with_key(request("L-k", "440106"), &key))
        .await
        .unwrap();
    let stored = server.engine.store().decision("L-k").unwrap().unwrap();
    assert_eq!(stored.recorded_by.as_deref(), Some("miniprogram"));
    let mut a = server.attribution().await;
    a.record_touch(with_key(
        pb::RecordTouchRequest {
            touch_id: "T-k".into(),
            member_id: "m-k".into(),
            kind: pb::TouchKind::GuideChat as i32,
            channel: pb::Channel::MiniProgram as i32,
            guide_id: Some("G0".into()),
            occurred_at: Some(now_ts()),
            ..Default::default()
        },
        &key,
    ))
    .await
    .unwrap();
    a.record_order(with_key(order("O-k", "G0", 500), &key))
        .await
        .unwrap();
    let mut refund = pb::RecordRefundRequest {
        refund_id: "R-k".into(),
        order_id: "O-k".into(),
        amount_cents: Some(100),
        occurred_at: Some(now_ts()),
    };
    a.record_refund(with_key(refund.clone(), &key))
        .await
        .unwrap();
    for member in ["m-k", "m-O-k"] {
        let t = a
            .get_trail(with_key(
                pb::GetTrailRequest {
                    member_id: member.into(),
                    page_size: 100,
                    ..Default::default()
                },
                &key,
            ))
            .await
            .unwrap()
            .into_inner();
        let written: Vec<_> = t
            .events
            .iter()
            .filter(|e| !e.canonical_json.contains("\"type\":\"binding\""))
            .collect();
        assert!(!written.is_empty());
        for e in written {
            assert!(
                e.canonical_json.contains("\"recorded_by\":\"miniprogram\""),
                "{}",
                e.canonical_json
            );
        }
    }
    // A retry replays whoever sends it.
    refund.amount_cents = Some(100);
    assert!(
        a.record_refund(with_key(refund, &key))
            .await
            .unwrap()
            .into_inner()
            .replayed
    );
    server.stop().await;
}

/// A guide app's answer to an offer names the key that sent it in the trail event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_answer_records_the_guide_apps_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeysFile::default();
    let client = file
        .add("miniprogram", Role::RouterClient, vec![], NOW.into())
        .unwrap();
    let app = file
        .add("guide-app-7", Role::GuideApp, vec![], NOW.into())
        .unwrap();
    let cfg = EngineConfig {
        offers: leadrouter::domain::offer::OfferConfig {
            channels: vec!["LIVESTREAM".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let server = TestServer::start_options(dir.path(), tiny(&[5, 5, 5]), cfg, keyed(&file)).await;
    let mut r = server.router().await;
    for (lead, accept) in [("L-a", true), ("L-d", false)] {
        let d = r
            .route(with_key(
                pb::RouteRequest {
                    channel: pb::Channel::Livestream as i32,
                    ..request(lead, "440106")
                },
                &client,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.offer_status, pb::OfferStatus::OfferOpen as i32);
        r.respond_to_offer(with_key(
            pb::RespondToOfferRequest {
                lead_id: lead.into(),
                guide_id: d.guide_id.clone(),
                answer: if accept {
                    pb::OfferAnswer::Accept
                } else {
                    pb::OfferAnswer::Decline
                } as i32,
                reason: String::new(),
            },
            &app,
        ))
        .await
        .unwrap();
        let trail = server
            .engine
            .store()
            .trail_from(&format!("m-{lead}"), 0, usize::MAX)
            .unwrap();
        let offers: Vec<_> = trail
            .iter()
            .filter_map(|e| match &e.body {
                leadrouter::domain::trail::EventBody::Offer(o) => Some(o),
                _ => None,
            })
            .collect();
        assert_eq!(
            offers[0].recorded_by.as_deref(),
            Some("miniprogram"),
            "{offers:?}"
        );
        let answered = if accept {
            leadrouter::domain::offer::OfferAction::Accepted
        } else {
            leadrouter::domain::offer::OfferAction::Declined
        };
        let answer = offers.iter().find(|o| o.action == answered).unwrap();
        assert_eq!(answer.actor, d.guide_id);
        assert_eq!(answer.recorded_by.as_deref(), Some("guide-app-7"));
    }
    server.stop().await;
}

/// A router_client key reads what it recorded; another router_client key does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_client_reads_its_own_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeysFile::default();
    let mine = file
        .add("brand", Role::RouterClient, vec![], NOW.into())
        .unwrap();
    let partner = file
        .add("partner", Role::RouterClient, vec![], NOW.into())
        .unwrap();
    let analyst = file.add("bi", Role::Analyst, vec![], NOW.into()).unwrap();
    let server = TestServer::start_options(
        dir.path(),
        tiny(&[5, 5, 5]),
        EngineConfig::default(),
        keyed(&file),
    )
    .await;
    let mut a = server.attribution().await;
    a.record_order(with_key(order("O-a", "G0", 500), &mine))
        .await
        .unwrap();
    let own = |k: &str| {
        with_key(
            pb::GetOwnershipRequest {
                order_id: "O-a".into(),
            },
            k,
        )
    };
    let trail = |k: &str| {
        with_key(
            pb::GetTrailRequest {
                member_id: "m-O-a".into(),
                page_size: 10,
                ..Default::default()
            },
            k,
        )
    };
    a.get_ownership(own(&mine)).await.unwrap();
    a.get_trail(trail(&mine)).await.unwrap();
    a.get_ownership(own(&analyst)).await.unwrap();
    a.get_trail(trail(&analyst)).await.unwrap();
    for e in [
        a.get_ownership(own(&partner)).await.unwrap_err(),
        a.get_trail(trail(&partner)).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
        assert!(!e.message().contains("\"brand\""), "{}", e.message());
    }
    server.stop().await;
}
