"""A third-party client (Python grpcio) records touches, orders and refunds, and checks the trail's
hash chain on its own from the canonical JSON the server returns."""

import hashlib
import json
import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp


def ts(offset=0):
    t = Timestamp()
    t.FromSeconds(int(time.time()) + offset)
    return t


def verify_chain(events):
    """Recomputes every hash: SHA-256(prev_hash + "\\n" + the event's JSON without "hash")."""
    prev = "0" * 64
    for seq, e in enumerate(events, start=1):
        assert e.seq == seq
        assert e.prev_hash == prev
        line = e.canonical_json
        obj = json.loads(line)
        assert obj["hash"] == e.hash
        suffix = ',"hash":"%s"}' % e.hash
        assert line.endswith(suffix)
        hashed = line[: -len(suffix)] + "}"
        digest = hashlib.sha256((prev + "\n" + hashed).encode()).hexdigest()
        assert digest == e.hash, f"event {seq} does not hash to its hash"
        prev = e.hash


def test_touch_order_refund_and_an_independent_chain_check(stubs, server):
    a = stubs["attribution"]
    c = stubs["common"]
    client = stubs["attribution_grpc"].AttributionStub(server["channel"])
    client.RecordTouch(
        a.RecordTouchRequest(
            touch_id="py-t1", member_id="py-m1", kind=a.LIVESTREAM_VIEW, channel=c.LIVESTREAM,
            guide_id="G000001", occurred_at=ts(-600),
        )
    )
    order = a.RecordOrderRequest(
        order_id="py-o1", member_id="py-m1", amount_cents=19_999, paid_channel=c.MINI_PROGRAM,
        fulfilling_store_id="S00002", occurred_at=ts(),
    )
    r = client.RecordOrder(order)
    assert r.ownership.rule == "LAST_TOUCH"
    assert r.ownership.guide_id == "G000001"
    assert sum(e.amount_cents for e in r.entries) == 19_999
    assert not r.replayed
    assert client.RecordOrder(order).replayed

    changed = a.RecordOrderRequest()
    changed.CopyFrom(order)
    changed.amount_cents = 20_000
    with pytest.raises(grpc.RpcError) as err:
        client.RecordOrder(changed)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "amount_cents: stored 19999, got 20000" in err.value.details()

    ref = client.RecordRefund(a.RecordRefundRequest(refund_id="py-r1", order_id="py-o1", amount_cents=999, occurred_at=ts()))
    assert sum(e.amount_cents for e in ref.entries) == -999

    own = client.GetOwnership(a.GetOwnershipRequest(order_id="py-o1"))
    assert own.refunded_cents == 999
    assert sum(e.amount_cents for e in own.net) == 19_000

    trail = client.GetTrail(a.GetTrailRequest(member_id="py-m1"))
    assert [e.type for e in trail.events] == ["touch", "order", "refund"]
    verify_chain(trail.events)
    assert client.VerifyTrail(a.VerifyTrailRequest(member_id="py-m1")).ok


@pytest.mark.parametrize(
    "field,change",
    [
        ("amount_cents", {"amount_cents": -1}),
        ("amount_cents", {"amount_cents": 10**15}),
        ("fulfilling_store_id", {"fulfilling_store_id": "nope"}),
        ("occurred_at", {"occurred_at": ts(3600)}),
        ("order_id", {"order_id": ""}),
    ],
)
def test_bad_orders_name_the_field(stubs, server, field, change):
    a = stubs["attribution"]
    client = stubs["attribution_grpc"].AttributionStub(server["channel"])
    req = a.RecordOrderRequest(
        order_id="py-bad", member_id="py-m2", amount_cents=100, paid_channel=stubs["common"].ECOMMERCE,
        fulfilling_store_id="S00001", occurred_at=ts(),
    )
    for k, v in change.items():
        if k == "occurred_at":
            req.occurred_at.CopyFrom(v)
        else:
            setattr(req, k, v)
    with pytest.raises(grpc.RpcError) as err:
        client.RecordOrder(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field), err.value.details()
