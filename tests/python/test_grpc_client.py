"""A third-party client (Python grpcio) calls Route, health and reflection on the real server."""

import time

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def now():
    ts = Timestamp()
    ts.FromSeconds(int(time.time()))
    return ts


def route_request(stubs, lead_id, **fields):
    r = stubs["router"]
    req = r.RouteRequest(
        lead_id=lead_id,
        member_id="member-" + lead_id,
        channel=stubs["common"].LIVESTREAM,
        region_code="330106",
        occurred_at=now(),
    )
    req.interests.add(category="outerwear", weight=1.0)
    req.interests.add(category="shoes", weight=0.5)
    for k, v in fields.items():
        setattr(req, k, v)
    return req


def test_route_replay_and_load(stubs, server):
    client = stubs["router_grpc"].LeadRouterStub(server["channel"])
    first = client.Route(route_request(stubs, "py-1"))
    assert first.guide_id and first.store_id
    assert first.lead_id == "py-1"
    assert first.policy == "scored"
    assert not first.replayed
    assert 0 < first.propensity <= 1
    assert any(r.startswith("LEVEL_") for r in first.reasons)

    again = client.Route(route_request(stubs, "py-1"))
    assert again.replayed
    assert again.decision_id == first.decision_id
    assert again.guide_id == first.guide_id

    catalog = stubs["catalog_grpc"].CatalogStub(server["channel"])
    load = catalog.GetGuideLoad(stubs["catalog"].GetGuideLoadRequest(guide_id=first.guide_id))
    assert load.used == 1
    assert load.store_id == first.store_id
    network = catalog.GetNetwork(stubs["catalog"].GetNetworkRequest())
    assert network.stores >= 400
    assert "outerwear" in network.categories


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"lead_id": ""}, "lead_id: must not be empty"),
        ({"region_code": "12345"}, "region_code: must be a GB/T 2260 code of 6 or 12 digits"),
        ({"channel": 77}, "channel: unknown enum value 77"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(stubs, server, fields, message):
    client = stubs["router_grpc"].LeadRouterStub(server["channel"])
    with pytest.raises(grpc.RpcError) as err:
        client.Route(route_request(stubs, fields.pop("lead_id", "py-bad"), **fields))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(message), err.value.details()


def test_bad_interest_weight(stubs, server):
    client = stubs["router_grpc"].LeadRouterStub(server["channel"])
    req = route_request(stubs, "py-bad-weight")
    req.interests[1].weight = float("nan")
    with pytest.raises(grpc.RpcError) as err:
        client.Route(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("interests[1].weight:"), err.value.details()


def test_health(server):
    health = health_pb2_grpc.HealthStub(server["channel"])
    for service in ["", "leadrouter.v1.LeadRouter", "leadrouter.v1.Catalog"]:
        resp = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_services_and_serves_descriptors(server):
    stub = reflection_pb2_grpc.ServerReflectionStub(server["channel"])
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"leadrouter.v1.LeadRouter", "leadrouter.v1.Catalog", "grpc.health.v1.Health"} <= names


def test_route_through_reflection_alone(server):
    """No generated code: message types come from the server's reflection."""
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(server["channel"]))
    service = pool.FindServiceByName("leadrouter.v1.LeadRouter")
    method = service.FindMethodByName("Route")
    Request = message_factory.GetMessageClass(method.input_type)
    Response = message_factory.GetMessageClass(method.output_type)
    req = Request(lead_id="py-reflect", channel=1, region_code="110105")
    req.occurred_at.FromSeconds(int(time.time()))
    call = server["channel"].unary_unary(
        "/leadrouter.v1.LeadRouter/Route",
        request_serializer=Request.SerializeToString,
        response_deserializer=Response.FromString,
    )
    resp = call(req)
    assert resp.lead_id == "py-reflect"
    assert resp.guide_id
