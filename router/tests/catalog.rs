//! Catalog administration through the real server: changes take effect without a restart, are
//! audited, survive a restart, and bad input changes nothing.

mod common;

use common::*;
use leadrouter_proto::v1 as pb;
use tonic::Code;

fn guide(id: &str, store: &str, cap: u32, status: pb::GuideStatus) -> pb::Guide {
    pb::Guide {
        guide_id: id.into(),
        store_id: store.into(),
        name: format!("guide {id}"),
        daily_capacity: cap,
        tier: 3,
        status: status as i32,
    }
}

fn store(id: &str) -> pb::Store {
    pb::Store {
        store_id: id.into(),
        name: "天河新店".into(),
        region_code: "440106".into(),
        location: Some(pb::Location {
            lat: 23.14,
            lon: 113.34,
        }),
        ownership: pb::StoreOwnership::Direct as i32,
        pricing: pb::StorePricing::FullPrice as i32,
        categories: vec!["shoes".into()],
        open: true,
        guides: vec![],
    }
}

fn set_status(guide_id: &str, status: pb::GuideStatus) -> pb::SetGuideStatusRequest {
    pb::SetGuideStatusRequest {
        guide_id: guide_id.into(),
        status: status as i32,
        operator_id: "ops-7".into(),
        reason: "test".into(),
    }
}

async fn audit(
    catalog: &mut pb::catalog_client::CatalogClient<tonic::transport::Channel>,
) -> Vec<pb::AuditEntry> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = catalog
            .list_audit(pb::ListAuditRequest {
                after_seq: after,
                page_size: 2,
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.entries);
        if page.next_after_seq == 0 {
            return all;
        }
        after = page.next_after_seq;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_take_effect_at_once_are_audited_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_saved(dir.path(), tiny(&[3, 3, 3])).await;
    let mut catalog = server.catalog().await;
    let mut router = server.router().await;

    // G0 goes away: no lead reaches them.
    let r = catalog
        .set_guide_status(set_status("G0", pb::GuideStatus::Away))
        .await
        .unwrap()
        .into_inner();
    let e = r.entry.unwrap();
    assert_eq!(
        (e.seq, e.action.as_str(), e.target.as_str()),
        (1, "set_guide_status", "guide:G0")
    );
    assert_eq!(e.operator_id, "ops-7");
    assert!(e.before_json.contains("\"active\""), "{}", e.before_json);
    assert!(e.after_json.contains("\"away\""), "{}", e.after_json);
    // A new store with one guide.
    catalog
        .upsert_store(pb::UpsertStoreRequest {
            store: Some(store("S9")),
            operator_id: "ops-7".into(),
            reason: "opened".into(),
        })
        .await
        .unwrap();
    let r = catalog
        .upsert_guide(pb::UpsertGuideRequest {
            guide: Some(guide("G9", "S9", 5, pb::GuideStatus::Active)),
            operator_id: "ops-7".into(),
            reason: "hired".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let version = r.network_version.clone();
    let net = catalog
        .get_network(pb::GetNetworkRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(net.network_version, version);
    assert_eq!((net.stores, net.guides, net.active_guides), (4, 4, 3));

    // 3 + 3 + 5 places are active; G0's 3 are not.
    let mut per_guide = std::collections::HashMap::<String, u32>::new();
    for i in 0..14 {
        let d = router
            .route(request(&format!("L{i}"), "440106"))
            .await
            .unwrap()
            .into_inner();
        *per_guide.entry(d.guide_id).or_default() += 1;
    }
    assert_eq!(per_guide.get("G0"), None);
    assert_eq!(per_guide["G9"], 5);
    assert_eq!(per_guide[""], 3, "{per_guide:?}");

    // The same change again records nothing.
    let again = catalog
        .set_guide_status(set_status("G0", pb::GuideStatus::Away))
        .await
        .unwrap()
        .into_inner();
    assert!(again.entry.is_none());
    assert_eq!(again.network_version, version);
    let log = audit(&mut catalog).await;
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    server.stop().await;

    // After a restart the changed network serves, with today's counts.
    let server = TestServer::start_saved(dir.path(), tiny(&[3, 3, 3])).await;
    let mut catalog = server.catalog().await;
    let net = catalog
        .get_network(pb::GetNetworkRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(net.network_version, version);
    assert_eq!(guide_load(&mut catalog, "G9").await.used, 5);
    assert_eq!(
        guide_load(&mut catalog, "G0").await.status,
        pb::GuideStatus::Away as i32
    );
    assert_eq!(audit(&mut catalog).await, log);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_changes_name_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_saved(dir.path(), tiny(&[3, 3, 3])).await;
    let mut catalog = server.catalog().await;
    let version = catalog
        .get_network(pb::GetNetworkRequest {})
        .await
        .unwrap()
        .into_inner()
        .network_version;

    let op = |s: pb::Store| pb::UpsertStoreRequest {
        store: Some(s),
        operator_id: "ops-7".into(),
        reason: String::new(),
    };
    let stores: Vec<(pb::UpsertStoreRequest, &str)> = vec![
        (
            pb::UpsertStoreRequest {
                store: None,
                operator_id: "ops-7".into(),
                reason: String::new(),
            },
            "store",
        ),
        (
            op(pb::Store {
                store_id: String::new(),
                ..store("S9")
            }),
            "store.store_id",
        ),
        (
            op(pb::Store {
                store_id: "S 9".into(),
                ..store("S9")
            }),
            "store.store_id",
        ),
        (
            op(pb::Store {
                name: " ".into(),
                ..store("S9")
            }),
            "store.name",
        ),
        (
            op(pb::Store {
                region_code: "999999".into(),
                ..store("S9")
            }),
            "store.region_code",
        ),
        (
            op(pb::Store {
                region_code: "440000".into(),
                ..store("S9")
            }),
            "store.region_code",
        ),
        (
            op(pb::Store {
                location: None,
                ..store("S9")
            }),
            "store.location",
        ),
        (
            op(pb::Store {
                location: Some(pb::Location {
                    lat: 23.0,
                    lon: f64::NAN,
                }),
                ..store("S9")
            }),
            "store.lon",
        ),
        (
            op(pb::Store {
                ownership: 0,
                ..store("S9")
            }),
            "store.ownership",
        ),
        (
            op(pb::Store {
                pricing: 9,
                ..store("S9")
            }),
            "store.pricing",
        ),
        (
            op(pb::Store {
                categories: vec![],
                ..store("S9")
            }),
            "store.categories",
        ),
        (
            op(pb::Store {
                categories: vec!["hats".into()],
                ..store("S9")
            }),
            "store.categories",
        ),
        (
            op(pb::Store {
                guides: vec![guide("G9", "S9", 1, pb::GuideStatus::Active)],
                ..store("S9")
            }),
            "store.guides",
        ),
        (
            pb::UpsertStoreRequest {
                operator_id: String::new(),
                ..op(store("S9"))
            },
            "operator_id",
        ),
        (
            pb::UpsertStoreRequest {
                reason: "x".repeat(1001),
                ..op(store("S9"))
            },
            "reason",
        ),
    ];
    for (req, field) in stores {
        let e = catalog.upsert_store(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{req:?}: {e:?}");
        assert!(
            e.message().starts_with(&format!("{field}: ")),
            "{field}: {}",
            e.message()
        );
    }

    let g = |x: pb::Guide| pb::UpsertGuideRequest {
        guide: Some(x),
        operator_id: "ops-7".into(),
        reason: String::new(),
    };
    let ok = guide("G9", "S1", 3, pb::GuideStatus::Active);
    let guides: Vec<(pb::UpsertGuideRequest, &str)> = vec![
        (
            pb::UpsertGuideRequest {
                guide: None,
                operator_id: "ops-7".into(),
                reason: String::new(),
            },
            "guide",
        ),
        (
            g(pb::Guide {
                guide_id: String::new(),
                ..ok.clone()
            }),
            "guide.guide_id",
        ),
        (
            g(pb::Guide {
                guide_id: "g".repeat(129),
                ..ok.clone()
            }),
            "guide.guide_id",
        ),
        (
            g(pb::Guide {
                store_id: "S404".into(),
                ..ok.clone()
            }),
            "guide.store_id",
        ),
        (
            g(pb::Guide {
                daily_capacity: 0,
                ..ok.clone()
            }),
            "guide.daily_capacity",
        ),
        (
            g(pb::Guide {
                daily_capacity: 10_001,
                ..ok.clone()
            }),
            "guide.daily_capacity",
        ),
        (
            g(pb::Guide {
                tier: 0,
                ..ok.clone()
            }),
            "guide.tier",
        ),
        (
            g(pb::Guide {
                tier: 300,
                ..ok.clone()
            }),
            "guide.tier",
        ),
        (
            g(pb::Guide {
                status: 0,
                ..ok.clone()
            }),
            "guide.status",
        ),
        (
            g(pb::Guide {
                status: 42,
                ..ok.clone()
            }),
            "guide.status",
        ),
        (
            g(pb::Guide {
                name: "n".repeat(201),
                ..ok.clone()
            }),
            "guide.name",
        ),
    ];
    for (req, field) in guides {
        let e = catalog.upsert_guide(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{req:?}: {e:?}");
        assert!(
            e.message().starts_with(&format!("{field}: ")),
            "{field}: {}",
            e.message()
        );
    }

    for (req, field) in [
        (set_status("", pb::GuideStatus::Away), "guide_id"),
        (
            pb::SetGuideStatusRequest {
                status: 0,
                ..set_status("G1", pb::GuideStatus::Away)
            },
            "status",
        ),
        (
            pb::SetGuideStatusRequest {
                status: 7,
                ..set_status("G1", pb::GuideStatus::Away)
            },
            "status",
        ),
        (
            pb::SetGuideStatusRequest {
                operator_id: "a b".into(),
                ..set_status("G1", pb::GuideStatus::Away)
            },
            "operator_id",
        ),
    ] {
        let e = catalog.set_guide_status(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{req:?}: {e:?}");
        assert!(
            e.message().starts_with(&format!("{field}: ")),
            "{field}: {}",
            e.message()
        );
    }
    let e = catalog
        .set_guide_status(set_status("G404", pb::GuideStatus::Away))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = catalog
        .list_audit(pb::ListAuditRequest {
            after_seq: 0,
            page_size: 501,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // A guide who left cannot come back.
    catalog
        .set_guide_status(set_status("G2", pb::GuideStatus::Left))
        .await
        .unwrap();
    let e = catalog
        .set_guide_status(set_status("G2", pb::GuideStatus::Active))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let e = catalog
        .upsert_guide(g(guide("G2", "S2", 3, pb::GuideStatus::Active)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    // Only the one good change is in the log; the network moved only by it.
    let log = audit(&mut catalog).await;
    assert_eq!(log.len(), 1);
    assert_ne!(log[0].network_version, version);
    assert_eq!(
        catalog
            .get_network(pb::GetNetworkRequest {})
            .await
            .unwrap()
            .into_inner()
            .network_version,
        log[0].network_version
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_guides_members_move_and_the_history_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    // S0 holds G0 and G3; S1 holds G1; S2 holds G2.
    let server = TestServer::start_saved(dir.path(), tiny(&[5, 5, 5, 5])).await;
    let mut catalog = server.catalog().await;
    let mut router = server.router().await;
    let mut attribution = server.attribution().await;
    for (lead, member) in [("L1", "m-1"), ("L2", "m-2")] {
        let d = router
            .route(pb::RouteRequest {
                member_id: Some(member.into()),
                referrer_guide_id: Some("G0".into()),
                ..request(lead, "440106")
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.binding.unwrap().guide_id, "G0");
    }
    let left = catalog
        .set_guide_status(set_status("G0", pb::GuideStatus::Left))
        .await
        .unwrap()
        .into_inner();
    let mut moved: Vec<(String, String)> = left
        .transfers
        .iter()
        .map(|t| (t.member_id.clone(), t.to_guide_id.clone()))
        .collect();
    moved.sort();
    assert_eq!(
        moved,
        vec![("m-1".into(), "G3".into()), ("m-2".into(), "G3".into())]
    );

    // An operator moves G3's members to G1, twice with the same id: once.
    let req = pb::TransferMembersRequest {
        transfer_id: "t-1".into(),
        from_guide_id: "G3".into(),
        rule: pb::SuccessorRule::Named as i32,
        to_guide_id: "G1".into(),
        operator_id: "ops-7".into(),
        reason: "rebalancing".into(),
    };
    let first = catalog
        .transfer_members(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.transfers.len(), 2);
    assert!(first.transfers.iter().all(|t| t.to_guide_id == "G1"));
    assert_eq!(first.entry.as_ref().unwrap().action, "transfer_members");
    let again = catalog
        .transfer_members(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(
        again.entry.is_none(),
        "a retry moves nobody and records nothing"
    );
    assert!(again.transfers.iter().all(|t| t.to_guide_id == "G1"));

    let history = attribution
        .get_binding_history(pb::GetBindingHistoryRequest {
            member_id: "m-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .intervals;
    let got: Vec<(&str, &str, &str)> = history
        .iter()
        .map(|i| (i.guide_id.as_str(), i.began.as_str(), i.ended.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("G0", "bind", "transfer"),
            ("G3", "transfer", "transfer"),
            ("G1", "transfer", ""),
        ]
    );
    assert_eq!(history[2].why, "rebalancing (successor rule named)");
    assert!(history[2].to.is_none());

    // Bad input names the field and moves nobody.
    for (bad, code, field) in [
        (
            pb::TransferMembersRequest {
                transfer_id: String::new(),
                ..req.clone()
            },
            Code::InvalidArgument,
            "transfer_id",
        ),
        (
            pb::TransferMembersRequest {
                rule: 0,
                ..req.clone()
            },
            Code::InvalidArgument,
            "rule",
        ),
        (
            pb::TransferMembersRequest {
                to_guide_id: "G404".into(),
                transfer_id: "t-2".into(),
                ..req.clone()
            },
            Code::InvalidArgument,
            "to_guide_id",
        ),
        (
            pb::TransferMembersRequest {
                to_guide_id: "G0".into(),
                transfer_id: "t-2".into(),
                ..req.clone()
            },
            Code::InvalidArgument,
            "to_guide_id",
        ),
        (
            pb::TransferMembersRequest {
                rule: pb::SuccessorRule::SameStore as i32,
                transfer_id: "t-2".into(),
                ..req.clone()
            },
            Code::InvalidArgument,
            "to_guide_id",
        ),
        (
            pb::TransferMembersRequest {
                from_guide_id: "G404".into(),
                rule: pb::SuccessorRule::SameStore as i32,
                to_guide_id: String::new(),
                transfer_id: "t-2".into(),
                ..req.clone()
            },
            Code::NotFound,
            "from_guide_id",
        ),
        (
            pb::TransferMembersRequest {
                operator_id: String::new(),
                transfer_id: "t-2".into(),
                ..req.clone()
            },
            Code::InvalidArgument,
            "operator_id",
        ),
    ] {
        let e = catalog.transfer_members(bad.clone()).await.unwrap_err();
        assert_eq!(e.code(), code, "{bad:?}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let e = attribution
        .get_binding_history(pb::GetBindingHistoryRequest {
            member_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    server.stop().await;
}
