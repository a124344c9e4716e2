//! Black-box tests: the real server on port 0, called with a tonic client.

mod common;

use common::*;
use leadrouter_proto::v1 as pb;
use std::collections::HashMap;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routes_replays_and_reports_load() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), demo()).await;
    let mut client = server.router().await;
    let mut req = request("lead-1", "440106");
    req.location = Some(pb::Location {
        lat: 23.135,
        lon: 113.33,
    });
    req.interests = vec![
        pb::Interest {
            category: "shoes".into(),
            weight: 2.0,
        },
        pb::Interest {
            category: "sports".into(),
            weight: 1.0,
        },
    ];
    let r = client.route(req.clone()).await.unwrap().into_inner();
    assert_eq!(r.lead_id, "lead-1");
    assert!(!r.guide_id.is_empty(), "{r:?}");
    assert!(!r.store_id.is_empty());
    assert!(r.decision_id.starts_with("dec-"));
    assert_eq!(r.policy, "scored");
    assert!(!r.replayed);
    assert!(r.score > 0.0);
    assert!(r.propensity > 0.0 && r.propensity <= 1.0);
    assert!(!r.alternatives.is_empty() && r.alternatives.len() <= 5);
    assert!(
        r.reasons.iter().any(|x| x.starts_with("LEVEL_")),
        "{:?}",
        r.reasons
    );
    assert!(!r.business_day.is_empty());

    let mut catalog = server.catalog().await;
    let load = guide_load(&mut catalog, &r.guide_id).await;
    assert_eq!(load.used, 1);
    assert_eq!(load.store_id, r.store_id);
    assert_eq!(load.business_day, r.business_day);

    let again = client.route(req).await.unwrap().into_inner();
    assert!(again.replayed);
    assert_eq!(again.decision_id, r.decision_id);
    assert_eq!(again.guide_id, r.guide_id);
    let load = guide_load(&mut catalog, &r.guide_id).await;
    assert_eq!(load.used, 1, "a replay consumes nothing");

    let e = catalog
        .get_guide_load(pb::GetGuideLoadRequest {
            guide_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capacity_holds_under_hundreds_of_concurrent_calls() {
    let dir = tempfile::tempdir().unwrap();
    let caps = [3, 5, 1, 7, 2, 4];
    let server = TestServer::start(dir.path(), tiny(&caps)).await;
    let client = server.router().await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let mut c = client.clone();
        // Every lead id twice: replays race with first calls.
        tasks.push(tokio::spawn(async move {
            c.route(request(&format!("L{}", i % 150), "440106"))
                .await
                .unwrap()
                .into_inner()
        }));
    }
    let mut by_lead: HashMap<String, pb::RouteResponse> = HashMap::new();
    let mut replays = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.replayed {
            replays += 1;
        }
        if let Some(first) = by_lead.get(&r.lead_id) {
            assert_eq!(first.decision_id, r.decision_id);
            assert_eq!(first.guide_id, r.guide_id);
        } else {
            by_lead.insert(r.lead_id.clone(), r);
        }
    }
    assert_eq!(replays, 150);
    let mut per_guide: HashMap<String, u32> = HashMap::new();
    for r in by_lead.values() {
        if r.guide_id.is_empty() {
            assert_eq!(r.unrouted_reason, pb::UnroutedReason::AllAtCapacity as i32);
        } else {
            *per_guide.entry(r.guide_id.clone()).or_default() += 1;
        }
    }
    let mut catalog = server.catalog().await;
    for (i, cap) in caps.iter().enumerate() {
        let id = format!("G{i}");
        let n = per_guide.get(&id).copied().unwrap_or(0);
        assert_eq!(n, *cap, "{id} took {n} of {cap}");
        let load = guide_load(&mut catalog, &id).await;
        assert_eq!(load.used, *cap);
    }
    // Unrouted leads are counted by reason.
    let (_, metrics) = http_get(server.addr, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("leadrouter_routes_total")
                && l.contains("reason=\"ALL_AT_CAPACITY\"")),
        "{metrics}"
    );
    server.stop().await;
}

fn bad_requests() -> Vec<(pb::RouteRequest, &'static str)> {
    let ok = || request("bad-1", "440106");
    let interest = |c: &str, w: f64| pb::Interest {
        category: c.into(),
        weight: w,
    };
    vec![
        (
            pb::RouteRequest {
                lead_id: String::new(),
                ..ok()
            },
            "lead_id: must not be empty",
        ),
        (
            pb::RouteRequest {
                lead_id: "x".repeat(200),
                ..ok()
            },
            "lead_id: must be at most 128 bytes",
        ),
        (
            pb::RouteRequest {
                lead_id: "有 空格".into(),
                ..ok()
            },
            "lead_id: must be printable ASCII",
        ),
        (
            pb::RouteRequest {
                member_id: Some(String::new()),
                ..ok()
            },
            "member_id: must not be empty",
        ),
        (
            pb::RouteRequest { channel: 0, ..ok() },
            "channel: must be set",
        ),
        (
            pb::RouteRequest {
                channel: 42,
                ..ok()
            },
            "channel: unknown enum value 42",
        ),
        (
            pb::RouteRequest {
                region_code: "4401".into(),
                ..ok()
            },
            "region_code: must be a GB/T 2260 code",
        ),
        (
            pb::RouteRequest {
                region_code: "990000".into(),
                ..ok()
            },
            "region_code: unknown region code",
        ),
        (
            pb::RouteRequest {
                location: Some(pb::Location {
                    lat: 91.0,
                    lon: 113.0,
                }),
                ..ok()
            },
            "location.lat: must be a finite number in [-90, 90]",
        ),
        (
            pb::RouteRequest {
                location: Some(pb::Location {
                    lat: 23.0,
                    lon: f64::INFINITY,
                }),
                ..ok()
            },
            "location.lon: must be a finite number in [-180, 180]",
        ),
        (
            pb::RouteRequest {
                interests: vec![interest("shoes", -0.5)],
                ..ok()
            },
            "interests[0].weight: must be a finite number",
        ),
        (
            pb::RouteRequest {
                interests: vec![interest("shoes", 1.0), interest("kids", f64::NAN)],
                ..ok()
            },
            "interests[1].weight: must be a finite number",
        ),
        (
            pb::RouteRequest {
                interests: vec![interest("spaceships", 1.0)],
                ..ok()
            },
            "interests[0].category: unknown category",
        ),
        (
            pb::RouteRequest {
                interests: (0..40).map(|_| interest("shoes", 1.0)).collect(),
                ..ok()
            },
            "interests: at most 32 entries",
        ),
        (
            pb::RouteRequest {
                occurred_at: None,
                ..ok()
            },
            "occurred_at: must be set",
        ),
        (
            pb::RouteRequest {
                occurred_at: Some(leadrouter_proto::Timestamp {
                    seconds: now_ts().seconds + 86_400,
                    nanos: 0,
                }),
                ..ok()
            },
            "occurred_at: lies",
        ),
        (
            pb::RouteRequest {
                occurred_at: Some(leadrouter_proto::Timestamp {
                    seconds: now_ts().seconds,
                    nanos: 2_000_000_000,
                }),
                ..ok()
            },
            "occurred_at.nanos: must be in",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_naming_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), demo()).await;
    let mut client = server.router().await;
    for (req, want) in bad_requests() {
        let e = client.route(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{want}: {e:?}");
        assert!(
            e.message().starts_with(want),
            "want {want:?}, got {:?}",
            e.message()
        );
    }
    assert_eq!(server.engine.store().decision_count().unwrap(), 0);
    assert_eq!(
        server
            .engine
            .snapshot()
            .book
            .total_used(server.engine.today()),
        0
    );
    // The id used by every bad request was never recorded: a good request routes it afresh.
    let r = client
        .route(request("bad-1", "440106"))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.replayed);
    let (_, metrics) = http_get(server.addr, "/metrics").await;
    assert!(
        metrics.contains("leadrouter_route_rejected_total{field=\"interests[].weight\"} 2"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_metrics_and_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), demo()).await;

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&server).await);
    for service in ["", "leadrouter.v1.LeadRouter", "leadrouter.v1.Catalog"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }

    // Reflection v1 and v1alpha both list the services.
    use tonic_reflection::pb::v1 as r1;
    use tonic_reflection::pb::v1alpha as r1a;
    let mut c = r1::server_reflection_client::ServerReflectionClient::new(channel(&server).await);
    let req = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = c
        .server_reflection_info(tokio_stream_once(req))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(r1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        resp.message_response
    else {
        panic!("{resp:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "leadrouter.v1.LeadRouter",
        "leadrouter.v1.Catalog",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
    let mut c = r1a::server_reflection_client::ServerReflectionClient::new(channel(&server).await);
    let req = r1a::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            r1a::server_reflection_request::MessageRequest::FileContainingSymbol(
                "leadrouter.v1.LeadRouter".into(),
            ),
        ),
    };
    let mut stream = c
        .server_reflection_info(tokio_stream_once(req))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        resp.message_response,
        Some(r1a::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
    ));

    // Catalog: summary and paging.
    let mut catalog = server.catalog().await;
    let n = catalog
        .get_network(pb::GetNetworkRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.stores, 420);
    assert_eq!(n.provinces.len(), 7);
    assert_eq!(n.provinces.iter().map(|p| p.stores).sum::<u32>(), 420);
    let mut seen = 0;
    let mut token = String::new();
    loop {
        let page = catalog
            .list_stores(pb::ListStoresRequest {
                page_size: 150,
                page_token: token,
                region_code: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        seen += page.stores.len();
        assert!(
            page.stores
                .iter()
                .all(|s| !s.guides.is_empty() || s.guides.is_empty())
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, 420);
    let gd = catalog
        .list_stores(pb::ListStoresRequest {
            page_size: 500,
            page_token: String::new(),
            region_code: "440000".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!gd.stores.is_empty());
    assert!(gd.stores.iter().all(|s| s.region_code.starts_with("44")));
    let e = catalog
        .list_stores(pb::ListStoresRequest {
            page_size: 501,
            page_token: String::new(),
            region_code: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("page_size:"));

    // HTTP beside gRPC on the same port.
    let mut client = server.router().await;
    client.route(request("m-1", "110105")).await.unwrap();
    let (status, body) = http_get(server.addr, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"status\":\"serving\""), "{body}");
    let (status, metrics) = http_get(server.addr, "/metrics").await;
    assert!(status.contains("200"));
    for name in [
        "leadrouter_route_duration_seconds_bucket",
        "leadrouter_routes_total",
        "leadrouter_capacity_used",
        "leadrouter_capacity_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
    assert!(metrics.contains("channel=\"MINI_PROGRAM\""));
    // Today's load spread: one lead routed, so one active guide is busy and the rest idle.
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {metrics}"))
    };
    let active = gauge("leadrouter_guides_active");
    assert!(active > 100.0, "{active}");
    assert_eq!(gauge("leadrouter_guides_idle"), active - 1.0);
    let gini = gauge("leadrouter_guide_load_gini");
    assert!((gini - (active - 1.0) / active).abs() < 1e-9, "{gini}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_carry_as_many_alternatives_as_asked_and_the_decision_keeps_all() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), demo()).await;
    let mut client = server.router().await;
    let none = client
        .route(pb::RouteRequest {
            max_alternatives: Some(0),
            ..request("alt-1", "440106")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!none.guide_id.is_empty());
    assert!(none.alternatives.is_empty());
    let two = client
        .route(pb::RouteRequest {
            max_alternatives: Some(2),
            ..request("alt-2", "440106")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(two.alternatives.len(), 2);
    // The replay without a limit shows every alternative the decision recorded.
    let all = client
        .route(request("alt-1", "440106"))
        .await
        .unwrap()
        .into_inner();
    assert!(all.replayed);
    assert_eq!(all.alternatives.len(), 5);
    server.stop().await;
}

/// Guards against replies held back by Nagle's algorithm and the client's delayed ACK (40 ms on
/// Linux): the server sets TCP_NODELAY. Forty sequential calls take about 40 ms without the
/// stall and over 1.6 s with it; the bound leaves a wide margin either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_routes_are_not_held_back_by_delayed_acks() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), demo()).await;
    let mut client = server.router().await;
    client.route(request("warm", "440106")).await.unwrap();
    let started = std::time::Instant::now();
    for i in 0..40 {
        client
            .route(request(&format!("seq-{i}"), "440106"))
            .await
            .unwrap();
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_millis(800),
        "40 routes took {elapsed:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_decisions_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), tiny(&[4, 4, 4])).await;
    let mut client = server.router().await;
    let mut first = Vec::new();
    for i in 0..7 {
        first.push(
            client
                .route(request(&format!("L{i}"), "440106"))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    server.stop().await;

    let server = TestServer::start(dir.path(), tiny(&[4, 4, 4])).await;
    let mut client = server.router().await;
    for r in &first {
        let again = client
            .route(request(&r.lead_id, "440106"))
            .await
            .unwrap()
            .into_inner();
        assert!(again.replayed);
        assert_eq!(again.guide_id, r.guide_id);
    }
    // 12 places, 7 taken before the restart.
    let mut routed = 0;
    for i in 100..110 {
        if !client
            .route(request(&format!("L{i}"), "440106"))
            .await
            .unwrap()
            .into_inner()
            .guide_id
            .is_empty()
        {
            routed += 1;
        }
    }
    assert_eq!(routed, 5);
    server.stop().await;
}

/// A one-message request stream.
fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> {
    tonic::codegen::tokio_stream::iter(vec![item])
}

async fn channel(server: &TestServer) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap()
}
