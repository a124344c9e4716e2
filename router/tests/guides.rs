//! The guides' side through the real server: a guide's leads, a store's queue, claims racing,
//! and the offer stream over gRPC and Server-Sent Events, resumed from the last event id.

mod common;

use common::*;
use leadrouter::auth::{Keyring, KeysFile, Role};
use leadrouter::domain::offer::OfferConfig;
use leadrouter::engine::EngineConfig;
use leadrouter::server::{Gate, Options, Transport};
use leadrouter_proto::v1 as pb;
use pb::guides_client::GuidesClient;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tonic::Code;
use tonic::metadata::MetadataValue;

type Guides = GuidesClient<tonic::transport::Channel>;

/// Offers on livestream leads, answered within 60 s, no re-offer: a decline queues the lead at
/// the declining guide's store.
fn offers() -> EngineConfig {
    EngineConfig {
        offers: OfferConfig {
            channels: vec!["LIVESTREAM".into()],
            expire_secs: 60,
            max_hops: 0,
            sweep_every_ms: 50,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn live(lead_id: &str) -> pb::RouteRequest {
    pb::RouteRequest {
        channel: pb::Channel::Livestream as i32,
        ..request(lead_id, "440106")
    }
}

fn store_of(guide: &str) -> String {
    // tiny(): guide Gi works in store S(i % 3).
    let i: usize = guide[1..].parse().unwrap();
    format!("S{}", i % 3)
}

async fn watch(g: &mut Guides, store: &str, after: &str) -> tonic::Streaming<pb::OfferUpdate> {
    g.watch_offers(pb::WatchOffersRequest {
        guide_id: String::new(),
        store_id: store.into(),
        after_event_id: after.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

async fn next(s: &mut tonic::Streaming<pb::OfferUpdate>) -> pb::OfferUpdate {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .expect("the stream is open")
}

fn kind(u: &pb::OfferUpdate) -> pb::OfferUpdateKind {
    pb::OfferUpdateKind::try_from(u.kind).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guide_app_lists_is_told_at_once_and_one_of_two_claims_wins() {
    let dir = tempfile::tempdir().unwrap();
    // Two guides per store: G0 and G3 in S0, G1 and G4 in S1, G2 and G5 in S2.
    let server = TestServer::start_with(dir.path(), tiny(&[5; 6]), offers()).await;
    let mut router = server.router().await;
    let mut guides = GuidesClient::connect(server.url()).await.unwrap();
    let mut streams = Vec::new();
    for s in ["S0", "S1", "S2"] {
        streams.push(watch(&mut guides, s, "").await);
    }

    let d = router.route(live("L1")).await.unwrap().into_inner();
    assert_eq!(d.offer_status, pb::OfferStatus::OfferOpen as i32);
    let (g, s) = (d.guide_id.clone(), d.store_id.clone());
    assert_eq!(store_of(&g), s);
    let si: usize = s[1..].parse().unwrap();
    let offered = next(&mut streams[si]).await;
    assert_eq!(kind(&offered), pb::OfferUpdateKind::OfferUpdateOffered);
    assert_eq!((&*offered.guide_id, &*offered.lead_id), (&*g, "L1"));
    assert!(offered.expires_at.is_some() && offered.at.is_some());
    let lead = offered.lead.clone().unwrap();
    assert_eq!(lead.lead.unwrap().region_code, "440106");
    assert_eq!(lead.decision.unwrap().guide_id, g);

    // The guide's desk lists the open offer.
    let desk = guides
        .list_guide_leads(pb::ListGuideLeadsRequest {
            guide_id: g.clone(),
            business_day: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(desk.leads.len(), 1);
    assert_eq!(desk.open_offers, 1);
    assert_eq!(desk.business_day, d.business_day);

    // Declined with no re-offer left: queued at the store.
    let declined = router
        .respond_to_offer(pb::RespondToOfferRequest {
            lead_id: "L1".into(),
            guide_id: g.clone(),
            answer: pb::OfferAnswer::Decline as i32,
            reason: "busy".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        declined.offer_status,
        pb::OfferStatus::OfferExhausted as i32
    );
    let left = next(&mut streams[si]).await;
    let queued = next(&mut streams[si]).await;
    assert_eq!(kind(&left), pb::OfferUpdateKind::OfferUpdateLeft);
    assert_eq!(left.guide_id, g);
    assert_eq!(kind(&queued), pb::OfferUpdateKind::OfferUpdateQueued);
    assert_eq!(queued.store_id, s);
    let queue = guides
        .list_store_queue(pb::ListStoreQueueRequest {
            store_id: s.clone(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.leads.len(), 1);
    assert_eq!(queue.leads[0].decision.as_ref().unwrap().lead_id, "L1");

    // A guide of another store may not claim it; the two guides of the store race.
    let other = format!("G{}", (si + 1) % 3);
    let claim = |guide: String| pb::ClaimQueuedLeadRequest {
        lead_id: "L1".into(),
        guide_id: guide,
        reason: String::new(),
    };
    let e = guides.claim_queued_lead(claim(other)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
    let pair = [format!("G{si}"), format!("G{}", si + 3)];
    let racing: Vec<_> = pair
        .iter()
        .map(|guide| {
            let (mut c, r) = (guides.clone(), claim(guide.clone()));
            tokio::spawn(async move { c.claim_queued_lead(r).await })
        })
        .collect();
    let mut won = Vec::new();
    for (t, guide) in racing.into_iter().zip(&pair) {
        match t.await.unwrap() {
            Ok(r) => won.push((guide.clone(), r.into_inner())),
            Err(e) => {
                assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
                assert!(e.message().contains("claimed by"), "{}", e.message());
            }
        }
    }
    assert_eq!(won.len(), 1, "exactly one claim wins");
    let (winner, reply) = &won[0];
    assert_eq!(reply.offer_status, pb::OfferStatus::OfferClaimed as i32);
    assert_eq!(&reply.guide_id, winner);
    let claimed = next(&mut streams[si]).await;
    assert_eq!(kind(&claimed), pb::OfferUpdateKind::OfferUpdateClaimed);
    assert_eq!(&claimed.guide_id, winner);
    // Claiming again is a replay; the queue is empty; the claim took capacity.
    let again = guides
        .claim_queued_lead(claim(winner.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    let queue = guides
        .list_store_queue(pb::ListStoreQueueRequest {
            store_id: s.clone(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(queue.leads.is_empty());
    let mut catalog = server.catalog().await;
    assert_eq!(guide_load(&mut catalog, winner).await.used, 1);

    // A reconnect after the first event sees the rest, in the same order with the same ids.
    let mut resumed = watch(&mut guides, &s, &offered.event_id).await;
    for seen in [&left, &queued, &claimed] {
        let u = next(&mut resumed).await;
        assert_eq!((&u.event_id, u.kind), (&seen.event_id, seen.kind));
    }
    // Nothing else was pending for that store.
    let quiet = tokio::time::timeout(Duration::from_millis(300), resumed.message()).await;
    assert!(quiet.is_err(), "after the claim: {quiet:?}");
    // A new offer is told to its store's stream, and to no other.
    let d2 = router.route(live("L2")).await.unwrap().into_inner();
    let at: usize = d2.store_id[1..].parse().unwrap();
    let u = next(&mut streams[at]).await;
    assert_eq!((&*u.lead_id, &*u.guide_id), ("L2", &*d2.guide_id));
    for (i, st) in streams.iter_mut().enumerate().filter(|(i, _)| *i != at) {
        let quiet = tokio::time::timeout(Duration::from_millis(300), st.message()).await;
        assert!(quiet.is_err(), "store S{i} was told of {quiet:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_to_the_guides_side_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), tiny(&[5; 3]), offers()).await;
    let mut guides = GuidesClient::connect(server.url()).await.unwrap();
    let watch = |g: &str, s: &str, a: &str| pb::WatchOffersRequest {
        guide_id: g.into(),
        store_id: s.into(),
        after_event_id: a.into(),
    };
    for (req, code, needle) in [
        (watch("", "", ""), Code::InvalidArgument, "exactly one"),
        (watch("G0", "S0", ""), Code::InvalidArgument, "exactly one"),
        (watch("nobody", "", ""), Code::NotFound, "guide_id"),
        (watch("", "S9", ""), Code::NotFound, "store_id"),
        (
            watch("G0", "", "42"),
            Code::InvalidArgument,
            "after_event_id",
        ),
    ] {
        let e = guides.watch_offers(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), code, "{req:?}: {}", e.message());
        assert!(e.message().contains(needle), "{req:?}: {}", e.message());
    }
    let e = guides
        .list_guide_leads(pb::ListGuideLeadsRequest {
            guide_id: "G0".into(),
            business_day: "2026-13-01".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("business_day"), "{}", e.message());
    let e = guides
        .list_store_queue(pb::ListStoreQueueRequest {
            store_id: "S0".into(),
            limit: 501,
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("limit"), "{}", e.message());
    let e = guides
        .claim_queued_lead(pb::ClaimQueuedLeadRequest {
            lead_id: "never-routed".into(),
            guide_id: "G0".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    server.stop().await;
}

/// Reads one SSE stream over plain HTTP/1.1: the status line, then events as (id, event, data).
struct Sse {
    lines: tokio::io::Lines<BufReader<tokio::net::TcpStream>>,
}

async fn sse_get(addr: std::net::SocketAddr, path: &str, headers: &str) -> (String, Sse) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n").as_bytes())
        .await
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    let status = lines.next_line().await.unwrap().unwrap();
    // Headers.
    while let Some(l) = lines.next_line().await.unwrap() {
        if l.is_empty() {
            break;
        }
    }
    (status, Sse { lines })
}

impl Sse {
    /// The next event (chunked framing and keep-alive comments skipped).
    async fn event(&mut self) -> (String, String, serde_json::Value) {
        let (mut id, mut kind, mut data) = (String::new(), String::new(), String::new());
        let read = async {
            while let Some(l) = self.lines.next_line().await.unwrap() {
                if let Some(v) = l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")) {
                    id = v.to_string();
                } else if let Some(v) = l
                    .strip_prefix("event: ")
                    .or_else(|| l.strip_prefix("event:"))
                {
                    kind = v.to_string();
                } else if let Some(v) = l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))
                {
                    data.push_str(v);
                } else if l.is_empty() && !data.is_empty() {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("an event within 10 s");
        (id, kind, serde_json::from_str(&data).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_follow_a_guide_and_resume_from_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), tiny(&[5; 1]), offers()).await;
    let mut router = server.router().await;
    let (status, mut sse) = sse_get(server.addr, "/v1/offers/events?guide_id=G0", "").await;
    assert!(status.contains("200"), "{status}");
    router.route(live("L1")).await.unwrap();
    let (id1, kind1, data1) = sse.event().await;
    assert_eq!(kind1, "offered");
    assert_eq!(data1["eventId"], id1);
    assert_eq!(data1["kind"], "OFFER_UPDATE_OFFERED");
    assert_eq!(data1["leadId"], "L1");
    assert_eq!(data1["lead"]["lead"]["regionCode"], "440106");
    router
        .respond_to_offer(pb::RespondToOfferRequest {
            lead_id: "L1".into(),
            guide_id: "G0".into(),
            answer: pb::OfferAnswer::Accept as i32,
            reason: String::new(),
        })
        .await
        .unwrap();
    let (id2, kind2, _) = sse.event().await;
    assert_eq!(kind2, "accepted");
    assert_ne!(id1, id2);
    router.route(live("L2")).await.unwrap();
    let (id3, _, data3) = sse.event().await;
    assert_eq!(data3["leadId"], "L2");
    drop(sse);

    // A browser reconnects with Last-Event-ID: what followed it, nothing before.
    let (status, mut again) = sse_get(
        server.addr,
        "/v1/offers/events?guide_id=G0&after=0-0",
        &format!("Last-Event-ID: {id1}\r\n"),
    )
    .await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(again.event().await.0, id2);
    assert_eq!(again.event().await.0, id3);

    // Bad requests get a Connect error naming what is wrong, and no stream.
    for (path, headers, needle) in [
        ("/v1/offers/events", "", "exactly one"),
        ("/v1/offers/events?guide=G0", "", "guide"),
        (
            "/v1/offers/events?guide_id=G0",
            "Last-Event-ID: yesterday\r\n",
            "Last-Event-ID",
        ),
        ("/v1/offers/events?store_id=S7", "", "store_id"),
    ] {
        let (status, body) = http_get_with(server.addr, path, headers).await;
        assert!(status.contains(" 4"), "{path}: {status}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
    server.stop().await;
}

fn with_key<T>(msg: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {key}")).unwrap(),
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_limited_guide_app_sees_and_claims_in_its_stores_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = KeysFile::default();
    let now = "2026-12-02T00:00:00Z";
    let app = file
        .add("s0-app", Role::GuideApp, vec!["S0".into()], now.into())
        .unwrap();
    let client = file
        .add("mini", Role::RouterClient, vec![], now.into())
        .unwrap();
    let options = Options {
        gate: std::sync::Arc::new(Gate::with_keys(
            Keyring::from_file(&file),
            1e6,
            1e6,
            Duration::from_secs(30),
        )),
        transport: Transport::default(),
        ..Options::default()
    };
    let server = TestServer::start_options(dir.path(), tiny(&[5; 3]), offers(), options).await;
    let mut guides = GuidesClient::connect(server.url()).await.unwrap();
    let watch = |g: &str, s: &str| pb::WatchOffersRequest {
        guide_id: g.into(),
        store_id: s.into(),
        after_event_id: String::new(),
    };
    for req in [watch("G1", ""), watch("", "S1")] {
        let e = guides.watch_offers(with_key(req, &app)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    }
    let e = guides
        .watch_offers(with_key(watch("G0", ""), &client))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    let e = guides
        .list_store_queue(with_key(
            pb::ListStoreQueueRequest {
                store_id: "S2".into(),
                limit: 0,
            },
            &app,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = guides
        .claim_queued_lead(with_key(
            pb::ClaimQueuedLeadRequest {
                lead_id: "L1".into(),
                guide_id: "G2".into(),
                reason: String::new(),
            },
            &app,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Its own store's stream opens; SSE without a key is refused.
    guides
        .watch_offers(with_key(watch("", "S0"), &app))
        .await
        .unwrap();
    let (status, _) = http_get_with(server.addr, "/v1/offers/events?store_id=S0", "").await;
    assert!(status.contains("401"), "{status}");
    let (status, _) = http_get_with(
        server.addr,
        "/v1/offers/events?store_id=S1",
        &format!("Authorization: Bearer {app}\r\n"),
    )
    .await;
    assert!(status.contains("403"), "{status}");
    server.stop().await;
}
