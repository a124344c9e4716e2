"""A client with no gRPC stack: plain HTTP/1.1 and JSON (Python's urllib), as a PHP or Java backend
would call the service: route a lead, record an order, read its ownership; errors as Connect's
JSON with the HTTP status; the same keys and roles as gRPC."""

import json
import os
import pathlib
import subprocess
import tempfile
import urllib.error
import urllib.request
from datetime import datetime, timezone

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("LEADROUTER_BIN", str(ROOT / "target" / "debug" / "leadrouter"))


def _add_key(keys_file, name, role):
    out = subprocess.run(
        [BINARY, "keys", "add", "--name", name, "--role", role, "--keys-file", str(keys_file)],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def _serve():
    d = pathlib.Path(tempfile.mkdtemp(prefix="leadrouter-json-"))
    keys = d / "keys.toml"
    backend = _add_key(keys, "php-backend", "router_client")
    analyst = _add_key(keys, "analyst", "analyst")
    (d / "leadrouter.toml").write_text(f'[auth]\nkeys_file = "{keys}"\n')
    proc = subprocess.Popen(
        [BINARY, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(d / "data"), "--config", str(d / "leadrouter.toml")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"}, text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("leadrouter listening on "), line
    return proc, "http://" + line.rsplit(" ", 1)[1], backend, analyst


def call(base, method, body, key=None, content_type="application/json"):
    """POSTs JSON; returns (HTTP status, parsed JSON body)."""
    req = urllib.request.Request(base + method, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", content_type)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def test_route_order_and_ownership_with_json_alone():
    proc, base, key, analyst = _serve()
    try:
        status, routed = call(base, "/leadrouter.v1.LeadRouter/Route", {
            "leadId": "json-l1", "memberId": "json-m1", "channel": "MINI_PROGRAM",
            "regionCode": "440106", "interests": [{"category": "shoes", "weight": 1.0}], "occurredAt": now(),
        }, key)
        assert status == 200, routed
        assert routed["guideId"].startswith("G") and routed["storeId"].startswith("S"), routed
        assert routed["decisionId"], routed
        # The same lead again is replayed, as over gRPC.
        status, again = call(base, "/leadrouter.v1.LeadRouter/Route", {
            "leadId": "json-l1", "memberId": "json-m1", "channel": "MINI_PROGRAM", "regionCode": "440106",
            "occurredAt": now(),
        }, key)
        assert status == 200 and again["replayed"] is True and again["guideId"] == routed["guideId"]

        status, order = call(base, "/leadrouter.v1.Attribution/RecordOrder", {
            "orderId": "json-o1", "memberId": "json-m1", "amountCents": "19999", "paidChannel": "MINI_PROGRAM",
            "fulfillingStoreId": routed["storeId"], "occurredAt": now(),
        }, key)
        assert status == 200, order
        assert sum(int(e["amountCents"]) for e in order["entries"]) == 19999
        assert order["ownership"]["guideId"] == routed["guideId"], order

        status, own = call(base, "/leadrouter.v1.Attribution/GetOwnership", {"orderId": "json-o1"}, analyst)
        assert status == 200, own
        assert own["ownership"]["guideId"] == routed["guideId"]
        assert own["ownership"]["ruleVersion"], own
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_errors_are_connect_json_with_the_http_status():
    proc, base, key, analyst = _serve()
    try:
        status, err = call(base, "/leadrouter.v1.LeadRouter/Route", {"leadId": "x"})
        assert status == 401 and err["code"] == "unauthenticated", err
        status, err = call(base, "/leadrouter.v1.Attribution/RecordOrder", {"orderId": "o"}, analyst)
        assert status == 403 and err["code"] == "permission_denied", err
        status, err = call(base, "/leadrouter.v1.LeadRouter/Route", {"leadId": "bad", "regionCode": "440106"}, key)
        assert status == 400 and err["code"] == "invalid_argument", err
        assert "channel" in err["message"] or "occurred_at" in err["message"], err
        status, err = call(base, "/leadrouter.v1.LeadRouter/Route", {"leadId": 5}, key)
        assert status == 400 and err["code"] == "invalid_argument", err
        assert "proto3 JSON" in err["message"], err
        status, err = call(base, "/leadrouter.v1.LeadRouter/Route", {"leadId": "x"}, key, content_type="text/plain")
        assert status == 415 and "application/json" in err["message"], err
        status, err = call(base, "/leadrouter.v1.LeadRouter/Nope", {}, key)
        assert status == 404, err
        status, err = call(base, "/leadrouter.v1.Attribution/GetOwnership", {"orderId": "missing"}, analyst)
        assert status == 404 and err["code"] == "not_found", err
    finally:
        proc.terminate()
        proc.wait(timeout=10)
