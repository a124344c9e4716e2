//! Offers through the real server: accept, decline, the sweeper's expiry, and bad answers.

mod common;

use common::*;
use leadrouter::domain::offer::OfferConfig;
use leadrouter::engine::EngineConfig;
use leadrouter_proto::v1 as pb;
use tonic::Code;

fn live(lead_id: &str) -> pb::RouteRequest {
    pb::RouteRequest {
        channel: pb::Channel::Livestream as i32,
        ..request(lead_id, "440106")
    }
}

fn answer(lead_id: &str, guide_id: &str, a: pb::OfferAnswer) -> pb::RespondToOfferRequest {
    pb::RespondToOfferRequest {
        lead_id: lead_id.into(),
        guide_id: guide_id.into(),
        answer: a as i32,
        reason: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_are_accepted_declined_and_expire_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EngineConfig {
        offers: OfferConfig {
            channels: vec!["LIVESTREAM".into()],
            expire_secs: 1,
            max_hops: 1,
            sweep_every_ms: 50,
            ..Default::default()
        },
        ..Default::default()
    };
    let server = TestServer::start_with(dir.path(), tiny(&[3, 3, 3]), cfg).await;
    let mut router = server.router().await;
    let mut catalog = server.catalog().await;

    let d = router.route(live("L1")).await.unwrap().into_inner();
    assert_eq!(d.offer_status, pb::OfferStatus::OfferOpen as i32);
    assert!(d.offer_expires_at.is_some());
    let accepted = router
        .respond_to_offer(answer("L1", &d.guide_id, pb::OfferAnswer::Accept))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.offer_status, pb::OfferStatus::OfferAccepted as i32);
    assert_eq!(accepted.guide_id, d.guide_id);
    // The member is bound to the guide who accepted.
    assert_eq!(accepted.binding.unwrap().guide_id, d.guide_id);

    let d = router.route(live("L2")).await.unwrap().into_inner();
    let declined = router
        .respond_to_offer(answer("L2", &d.guide_id, pb::OfferAnswer::Decline))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(declined.guide_id, d.guide_id);
    assert_eq!(declined.offer_hop, 1);
    assert_eq!(declined.declined_guide_ids, vec![d.guide_id.clone()]);
    assert_eq!(guide_load(&mut catalog, &d.guide_id).await.used, 0);

    // Nobody answers the re-offer: the sweeper exhausts it (max_hops 1) into the store's queue.
    let mut last = declined.clone();
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        last = router.route(live("L2")).await.unwrap().into_inner();
        if last.offer_status == pb::OfferStatus::OfferExhausted as i32 {
            break;
        }
    }
    assert_eq!(
        last.offer_status,
        pb::OfferStatus::OfferExhausted as i32,
        "{last:?}"
    );
    assert!(last.replayed);
    assert_eq!(last.guide_id, "");
    assert_eq!(last.store_id, declined.store_id, "queued at the last store");
    assert_eq!(
        last.unrouted_reason,
        pb::UnroutedReason::OffersExhausted as i32
    );
    assert_eq!(guide_load(&mut catalog, &declined.guide_id).await.used, 0);

    // Bad answers.
    for (req, code, field) in [
        (
            answer("", "G0", pb::OfferAnswer::Accept),
            Code::InvalidArgument,
            "lead_id",
        ),
        (
            answer("L1", "", pb::OfferAnswer::Accept),
            Code::InvalidArgument,
            "guide_id",
        ),
        (
            answer("L1", "G0", pb::OfferAnswer::Unspecified),
            Code::InvalidArgument,
            "answer",
        ),
        (
            pb::RespondToOfferRequest {
                reason: "r".repeat(1001),
                ..answer("L1", "G0", pb::OfferAnswer::Accept)
            },
            Code::InvalidArgument,
            "reason",
        ),
        (
            answer("L404", "G0", pb::OfferAnswer::Accept),
            Code::NotFound,
            "lead_id",
        ),
        (
            answer("L2", "G0", pb::OfferAnswer::Accept),
            Code::FailedPrecondition,
            "",
        ),
    ] {
        let e = router.respond_to_offer(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), code, "{req:?}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    // A lead routed on a channel without offers cannot be answered.
    let plain = router
        .route(request("L3", "440106"))
        .await
        .unwrap()
        .into_inner();
    let e = router
        .respond_to_offer(answer("L3", &plain.guide_id, pb::OfferAnswer::Accept))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    server.stop().await;
}
