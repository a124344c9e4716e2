"""A third-party client (Python grpcio) over TLS and mutual TLS, with keys: certificates are made
here (cryptography), keys by `leadrouter keys add`."""

import datetime
import ipaddress
import os
import pathlib
import subprocess
import tempfile

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import ROOT
from test_grpc_client import route_request

BINARY = os.environ.get("LEADROUTER_BIN", str(ROOT / "target" / "debug" / "leadrouter"))


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer, key, issuer_key, *, ca=False, sans=(), usage=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test CA", "test CA", ca_key, ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert(
        "localhost",
        "test CA",
        srv_key,
        ca_key,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _cert("client", "test CA", cli_key, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
    (d / "ca.pem").write_bytes(pem(ca))
    (d / "server.pem").write_bytes(pem(srv))
    (d / "server.key").write_bytes(_pem_key(srv_key))
    return {"dir": d, "ca": pem(ca), "client_cert": pem(cli), "client_key": _pem_key(cli_key)}


def _add_key(keys_file, name, role):
    out = subprocess.run(
        [BINARY, "keys", "add", "--name", name, "--role", role, "--keys-file", str(keys_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _serve(pki, mutual):
    d = pathlib.Path(tempfile.mkdtemp(prefix="leadrouter-tls-"))
    keys = d / "keys.toml"
    client_key = _add_key(keys, "py-backend", "router_client")
    analyst_key = _add_key(keys, "py-analyst", "analyst")
    config = d / "leadrouter.toml"
    tls = f'[tls]\ncert = "{pki["dir"] / "server.pem"}"\nkey = "{pki["dir"] / "server.key"}"\n'
    if mutual:
        tls += f'client_ca = "{pki["dir"] / "ca.pem"}"\n'
    config.write_text(f'[auth]\nkeys_file = "{keys}"\n{tls}')
    proc = subprocess.Popen(
        [BINARY, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(d / "data"), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn"},
        text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("leadrouter listening on "), line
    port = line.rsplit(":", 1)[1]
    return proc, f"localhost:{port}", client_key, analyst_key


def _channel(target, pki, key=None, mutual=False):
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"],
        private_key=pki["client_key"] if mutual else None,
        certificate_chain=pki["client_cert"] if mutual else None,
    )
    if key:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(key))
    return grpc.secure_channel(target, creds)


def test_tls_with_keys(stubs, pki):
    proc, target, client_key, analyst_key = _serve(pki, mutual=False)
    try:
        ch = _channel(target, pki, client_key)
        grpc.channel_ready_future(ch).result(timeout=10)
        router = stubs["router_grpc"].LeadRouterStub(ch)
        d = router.Route(route_request(stubs, "py-tls-1"))
        assert d.guide_id

        anon = stubs["router_grpc"].LeadRouterStub(_channel(target, pki))
        with pytest.raises(grpc.RpcError) as e:
            anon.Route(route_request(stubs, "py-tls-2"))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED

        analyst = stubs["router_grpc"].LeadRouterStub(_channel(target, pki, analyst_key))
        with pytest.raises(grpc.RpcError) as e:
            analyst.Route(route_request(stubs, "py-tls-3"))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "router_client" in e.value.details()
        assert analyst_key not in e.value.details()
        # The analyst was refused before routing: the lead is new for the backend.
        again = router.Route(route_request(stubs, "py-tls-3"))
        assert not again.replayed
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_mutual_tls(stubs, pki):
    proc, target, client_key, _ = _serve(pki, mutual=True)
    try:
        with_cert = stubs["router_grpc"].LeadRouterStub(_channel(target, pki, client_key, mutual=True))
        assert with_cert.Route(route_request(stubs, "py-mtls-1"), timeout=10).guide_id
        without = stubs["router_grpc"].LeadRouterStub(_channel(target, pki, client_key, mutual=False))
        with pytest.raises(grpc.RpcError) as e:
            without.Route(route_request(stubs, "py-mtls-2"), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
