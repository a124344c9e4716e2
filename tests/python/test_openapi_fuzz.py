"""The JSON surface fuzzed against its own OpenAPI document (schemathesis, a third-party tool): on
a running server, no generated request gets a 5xx, and every reply (status, content type, body)
conforms to the document the server serves at /openapi.json."""

import json
import pathlib
import shutil
import subprocess
import sys
import urllib.request

from conftest import start, stop

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def _st():
    found = shutil.which("st") or str(pathlib.Path(sys.executable).parent / "st")
    assert pathlib.Path(found).exists(), "schemathesis is not installed (tests/python/requirements.txt)"
    return found


def test_every_reply_conforms_and_none_is_a_server_error():
    proc, address, channel = start()
    try:
        url = f"http://{address}/openapi.json"
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.loads(r.read())
        assert doc["openapi"] == "3.1.0"
        assert "/leadrouter.v1.LeadRouter/Route" in doc["paths"]
        run = subprocess.run(
            [_st(), "run", url, "-c", CHECKS, "-n", "40", "--phases", "coverage,fuzzing", "--seed", "20261202",
             "--request-timeout", "10"],
            capture_output=True, text=True, timeout=600,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    finally:
        stop(proc, channel)
