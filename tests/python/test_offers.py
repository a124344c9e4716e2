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


def sse_events(url, headers, lead_id, want):
    """Reads Server-Sent Events from `url` until `want` events about `lead_id`; returns them as
    (id, event, data) tuples."""
    import json
    import urllib.request

    req = urllib.request.Request(url, headers=headers)
    got, event = [], {}
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if not line:
                if "data" in event:
                    data = json.loads(event["data"])
                    if data["leadId"] == lead_id:
                        got.append((event["id"], event["event"], data))
                        if len(got) == want:
                            return got
                event = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                event[key] = value.lstrip(" ")
    return got


def test_the_guide_app_is_told_over_grpc_and_sse_and_resumes(stubs, offer_server):
    r, g = stubs["router"], stubs["guides"]
    router = stubs["router_grpc"].LeadRouterStub(offer_server["channel"])
    guides = stubs["guides_grpc"].GuidesStub(offer_server["channel"])
    first = router.Route(live_lead(stubs, "py-watch-1"))
    guide = first.guide_id
    # From the start of the order ("0-0" comes before every event), the guide's stream.
    stream = guides.WatchOffers(g.WatchOffersRequest(guide_id=guide, after_event_id="0-0"), timeout=10)
    offered = next(e for e in stream if e.lead_id == "py-watch-1")
    assert offered.kind == g.OFFER_UPDATE_OFFERED
    assert offered.lead.lead.region_code == "330106"
    assert offered.expires_at.seconds > 0
    router.RespondToOffer(r.RespondToOfferRequest(lead_id="py-watch-1", guide_id=guide, answer=r.DECLINE))
    left = next(e for e in stream if e.lead_id == "py-watch-1")
    assert left.kind == g.OFFER_UPDATE_LEFT and left.guide_id == guide
    stream.cancel()

    # The same events as SSE, resumed after the offer by Last-Event-ID: the decline comes next.
    url = f"http://{offer_server['address']}/v1/offers/events?guide_id={guide}"
    [(sse_id, kind, data)] = sse_events(url, {"Last-Event-ID": offered.event_id}, "py-watch-1", 1)
    assert (sse_id, kind) == (left.event_id, "left")
    assert data["eventId"] == left.event_id and data["kind"] == "OFFER_UPDATE_LEFT"

    # The guide's desk of today no longer holds it; a bad request names the field.
    desk = guides.ListGuideLeads(g.ListGuideLeadsRequest(guide_id=guide))
    assert "py-watch-1" not in [lead.decision.lead_id for lead in desk.leads]
    try:
        guides.ListStoreQueue(g.ListStoreQueueRequest(store_id=first.store_id, limit=501))
        raise AssertionError("expected INVALID_ARGUMENT")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in e.details()
