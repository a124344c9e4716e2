"""A third-party client binds a member through a guide's share link, sends the guide away through
the Catalog service, and sees the member handed to the same store, with the audit log to show."""

import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp


def now():
    ts = Timestamp()
    ts.FromSeconds(int(time.time()))
    return ts


def lead(stubs, lead_id, member_id, region_code, referrer=None):
    req = stubs["router"].RouteRequest(
        lead_id=lead_id,
        member_id=member_id,
        channel=stubs["common"].MINI_PROGRAM,
        region_code=region_code,
        occurred_at=now(),
    )
    if referrer:
        req.referrer_guide_id = referrer
    return req


def a_store_with_two_active_guides(stubs, catalog):
    c = stubs["catalog"]
    token = ""
    while True:
        page = catalog.ListStores(c.ListStoresRequest(page_size=200, page_token=token))
        for s in page.stores:
            active = [g for g in s.guides if g.status == c.ACTIVE and g.daily_capacity >= 5]
            if s.open and len(active) >= 2:
                return s, active
        assert page.next_page_token, "no store with two active guides"
        token = page.next_page_token


def test_referral_binds_and_an_away_guide_hands_to_the_same_store(stubs, server):
    router = stubs["router_grpc"].LeadRouterStub(server["channel"])
    catalog = stubs["catalog_grpc"].CatalogStub(server["channel"])
    r, c = stubs["router"], stubs["catalog"]
    store, (sharer, *_) = a_store_with_two_active_guides(stubs, catalog)

    first = router.Route(lead(stubs, "py-bind-1", "py-member-1", store.region_code, sharer.guide_id))
    assert first.guide_id == sharer.guide_id
    assert "REFERRER" in first.reasons
    assert first.binding.referral == r.REFERRAL_BOUND
    assert first.binding.change == "bind"
    assert first.binding.guide_id == sharer.guide_id
    assert first.binding.protected_until.seconds > time.time()
    assert first.binding.event_seq == 1

    changed = catalog.SetGuideStatus(
        c.SetGuideStatusRequest(guide_id=sharer.guide_id, status=c.AWAY, operator_id="py-ops", reason="off shift")
    )
    assert changed.entry.action == "set_guide_status"
    try:
        second = router.Route(lead(stubs, "py-bind-2", "py-member-1", store.region_code))
        assert second.store_id == store.store_id
        assert second.guide_id != sharer.guide_id
        assert "BOUND_GUIDE_UNAVAILABLE" in second.reasons
        assert second.binding.guide_id == sharer.guide_id, "the binding is kept"
        assert second.binding.change == ""
    finally:
        catalog.SetGuideStatus(
            c.SetGuideStatusRequest(guide_id=sharer.guide_id, status=c.ACTIVE, operator_id="py-ops")
        )

    audit = catalog.ListAudit(c.ListAuditRequest())
    targets = [(e.action, e.target, e.operator_id) for e in audit.entries]
    assert ("set_guide_status", "guide:" + sharer.guide_id, "py-ops") in targets

    # The binding is an event of the member's trail, like touches and orders.
    a = stubs["attribution"]
    trail = stubs["attribution_grpc"].AttributionStub(server["channel"]).GetTrail(
        a.GetTrailRequest(member_id="py-member-1")
    )
    assert [e.type for e in trail.events] == ["binding"]
    assert trail.events[0].binding.guide_id == sharer.guide_id
    assert trail.events[0].binding.cause_id == "lead:py-bind-1"


def test_a_bad_catalog_change_names_the_field(stubs, server):
    catalog = stubs["catalog_grpc"].CatalogStub(server["channel"])
    c = stubs["catalog"]
    try:
        catalog.UpsertGuide(
            c.UpsertGuideRequest(
                guide=c.Guide(guide_id="py-g", store_id="nowhere", name="x", daily_capacity=5, tier=3, status=c.ACTIVE),
                operator_id="py-ops",
            )
        )
        raise AssertionError("expected INVALID_ARGUMENT")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.details().startswith("guide.store_id: "), e.details()
