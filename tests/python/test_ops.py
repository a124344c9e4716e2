"""ops/: the alerting rules pass promtool's own tests, every alert has a runbook entry, and every
metric the alerts and the Grafana dashboard name is one a live server exports."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import urllib.request
from datetime import datetime, timezone

import pytest
import yaml

from conftest import start, stop

ROOT = pathlib.Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
RULES = OPS / "prometheus" / "alerts.yml"


def _promtool():
    tool = shutil.which("promtool")
    if tool is None:
        # CI installs Debian's prometheus package (.ci/run); a developer's machine may not have it.
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return tool


def test_the_alerting_rules_pass_promtool():
    tool = _promtool()
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(OPS / "prometheus" / "alerts_test.yml")]):
        out = subprocess.run([tool, *args], capture_output=True, text=True, cwd=OPS / "prometheus")
        assert out.returncode == 0, out.stdout + out.stderr


def _alerts():
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_every_alert_is_tested_and_has_a_runbook_entry():
    runbook = (OPS / "runbook.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^## (.+)$", runbook, re.M)}
    tests = (OPS / "prometheus" / "alerts_test.yml").read_text()
    for a in _alerts():
        name = a["alert"]
        assert a["annotations"]["runbook_url"] == f"ops/runbook.md#{name.lower()}", name
        assert name.lower() in headings, f"{name} has no entry in ops/runbook.md"
        assert a["labels"]["severity"] in ("critical", "warning", "info"), name
        # Each alert has a test case that expects it to fire.
        assert re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels", tests), f"{name} is never tested firing"


def _names_in(expr):
    """Metric names an expression reads (histogram series by their family's name)."""
    names = set(re.findall(r"\b(leadrouter_[a-z0-9_]+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count")) else n for n in names}


def _exported(address):
    body = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    families = set(re.findall(r"^# TYPE (\S+) ", body, re.M))
    series = {re.split(r"[{ ]", line, 1)[0] for line in body.splitlines() if line and not line.startswith("#")}
    return families | series, body


def _post(address, method, body):
    req = urllib.request.Request(
        f"http://{address}/{method}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


def test_every_metric_the_alerts_and_the_dashboard_read_is_exported():
    dashboard = json.loads((OPS / "grafana" / "leadrouter.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    wanted = set()
    for e in exprs + [a["expr"] for a in _alerts()]:
        wanted |= _names_in(e)
    assert {"leadrouter_route_duration_seconds", "leadrouter_storage_up", "leadrouter_build_info"} <= wanted
    # With a learned model in service, so that its info gauge is exported too.
    config = pathlib.Path(tempfile.mkdtemp(prefix="leadrouter-ops-")) / "leadrouter.toml"
    config.write_text(f'[models]\npreference = "{ROOT / "router/data/demo/models/preference.json"}"\n')
    proc, address, channel = start(["--config", str(config)])
    try:
        # A route and an order, so that their histograms and the flush have samples.
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        _post(address, "leadrouter.v1.LeadRouter/Route", {
            "leadId": "ops-1", "memberId": "m-ops", "channel": "MINI_PROGRAM", "regionCode": "440106",
            "interests": [{"category": "shoes", "weight": 1}], "occurredAt": now,
        })
        _post(address, "leadrouter.v1.Attribution/RecordOrder", {
            "orderId": "ops-o1", "memberId": "m-ops", "amountCents": "19900", "paidChannel": "MINI_PROGRAM",
            "fulfillingStoreId": "S00001", "occurredAt": now,
        })
        exported, body = _exported(address)
        missing = sorted(wanted - exported)
        assert not missing, f"named in ops/ but not exported: {missing}"
        version = re.search(r'^leadrouter_build_info\{version="([^"]+)"\} 1$', body, re.M)
        assert version, body
        # The demo server's network and default policy, named as in service.
        in_service = re.search(r'^leadrouter_config_info\{([^}]*)\} 1$', body, re.M)
        assert in_service and 'policy="scored"' in in_service.group(1), body
        assert "network_version=" in in_service.group(1), body
        assert re.search(r'^leadrouter_model_info\{kind="preference",version="[^"]+"\} 1$', body, re.M), body
    finally:
        stop(proc, channel)
