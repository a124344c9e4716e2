"""Fixtures: Python stubs generated from the repo's proto, and the real leadrouter binary."""

import os
import pathlib
import subprocess
import sys
import tempfile

import grpc
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def stubs():
    """Generates leadrouter.v1 stubs with grpcio-tools into a temp dir and imports them."""
    import grpc_tools
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="leadrouter-stubs-")
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto" / "leadrouter" / "v1").glob("*.proto"))
    code = protoc.main(
        ["grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}", *protos]
    )
    assert code == 0, f"protoc failed with {code}"
    sys.path.insert(0, out)
    from leadrouter.v1 import (
        attribution_pb2,
        attribution_pb2_grpc,
        catalog_pb2,
        catalog_pb2_grpc,
        common_pb2,
        guides_pb2,
        guides_pb2_grpc,
        router_pb2,
        router_pb2_grpc,
    )

    return {
        "attribution": attribution_pb2,
        "attribution_grpc": attribution_pb2_grpc,
        "common": common_pb2,
        "router": router_pb2,
        "router_grpc": router_pb2_grpc,
        "catalog": catalog_pb2,
        "catalog_grpc": catalog_pb2_grpc,
        "guides": guides_pb2,
        "guides_grpc": guides_pb2_grpc,
    }


def start(extra_args=()):
    """Starts `leadrouter serve` on a free port over a fresh data directory; returns
    (process, address, channel)."""
    binary = os.environ.get("LEADROUTER_BIN", str(ROOT / "target" / "debug" / "leadrouter"))
    assert pathlib.Path(binary).exists(), f"{binary} not built: run `cargo build -p leadrouter` first"
    data = tempfile.mkdtemp(prefix="leadrouter-data-")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, *extra_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"},
        text=True,
    )
    line = proc.stdout.readline().strip()
    prefix = "leadrouter listening on "
    assert line.startswith(prefix), f"unexpected first line {line!r}"
    address = line[len(prefix):]
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=10)
    return proc, address, channel


def stop(proc, channel):
    channel.close()
    proc.terminate()
    assert proc.wait(timeout=10) == 0, "leadrouter did not stop cleanly on SIGTERM"


@pytest.fixture(scope="session")
def server():
    """The demo network on the default configuration."""
    proc, address, channel = start()
    yield {"address": address, "channel": channel}
    stop(proc, channel)


@pytest.fixture(scope="session")
def offer_server(tmp_path_factory):
    """The demo network with livestream leads routed as offers that expire after 1 s."""
    config = tmp_path_factory.mktemp("config") / "leadrouter.toml"
    config.write_text('[offers]\nchannels = ["LIVESTREAM"]\nexpire_secs = 1\nmax_hops = 1\nsweep_every_ms = 50\n')
    proc, address, channel = start(["--config", str(config)])
    yield {"address": address, "channel": channel}
    stop(proc, channel)
