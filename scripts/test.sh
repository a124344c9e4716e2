#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, property and black-box tests) with nextest, then the
# third-party client test in Python (grpcio) against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import grpc, grpc_tools, grpc_health, grpc_reflection, pytest, playwright' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r tests/python/requirements.txt
fi

cargo build --locked -p leadrouter --bin leadrouter
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace
else
  cargo test --locked --workspace
fi
LEADROUTER_BIN="$PWD/target/debug/leadrouter" python3 -m pytest -q tests/python
