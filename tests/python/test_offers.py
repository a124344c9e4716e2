"""A third-party client (the guides' app) answers offers: accept, decline, and one left to expire."""

import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp


def live_lead(stubs, lead_id):
    ts = Timestamp()
    ts.FromSeconds(int(time.time()))
    return stubs["router"].RouteRequest(
        lead_id=lead_id,
        member_id="offer-" + lead_id,
        channel=stubs["common"].LIVESTREAM,
        region_code="330106",
        occurred_at=ts,
    )


def test_accept_decline_and_expiry(stubs, offer_server):
    r = stubs["router"]
    router = stubs["router_grpc"].LeadRouterStub(offer_server["channel"])

    first = router.Route(live_lead(stubs, "py-offer-1"))
    assert first.offer_status == r.OFFER_OPEN and first.guide_id
    accepted = router.RespondToOffer(
        r.RespondToOfferRequest(lead_id="py-offer-1", guide_id=first.guide_id, answer=r.ACCEPT)
    )
    assert accepted.offer_status == r.OFFER_ACCEPTED
    assert accepted.binding.guide_id == first.guide_id

    second = router.Route(live_lead(stubs, "py-offer-2"))
    moved = router.RespondToOffer(
        r.RespondToOfferRequest(lead_id="py-offer-2", guide_id=second.guide_id, answer=r.DECLINE, reason="in a meeting")
    )
    assert moved.offer_status == r.OFFER_OPEN
    assert moved.guide_id != second.guide_id
    assert list(moved.declined_guide_ids) == [second.guide_id]
    assert "REOFFERED" in moved.reasons

    # Nobody answers the re-offer; after max_hops it waits in the store's queue.
    deadline = time.time() + 5
    while True:
        now = router.Route(live_lead(stubs, "py-offer-2"))
        if now.offer_status == r.OFFER_EXHAUSTED or time.time() > deadline:
            break
        time.sleep(0.1)
    assert now.offer_status == r.OFFER_EXHAUSTED
    assert now.guide_id == "" and now.store_id == moved.store_id
    assert now.unrouted_reason == r.OFFERS_EXHAUSTED

    try:
        router.RespondToOffer(r.RespondToOfferRequest(lead_id="py-offer-2", guide_id=moved.guide_id, answer=r.ACCEPT))
        raise AssertionError("expected FAILED_PRECONDITION")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e

    a = stubs["attribution"]
    trail = stubs["attribution_grpc"].AttributionStub(offer_server["channel"]).GetTrail(
        a.GetTrailRequest(member_id="offer-py-offer-2")
    )
    assert [e.offer.action for e in trail.events] == ["offered", "declined", "offered", "expired", "exhausted"]
