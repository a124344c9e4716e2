#!/usr/bin/env bash
# Rebuilds the demo network's learned artifacts (router/data/demo/models/) from a generated
# history: two weeks of the stale-matrix scenario routed by `scored`. Seeded: the same inputs
# give the same artifact.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run --release -q -p leadrouter-sim -- history simulations/scenarios/stale_matrix.toml \
  --days 14 --policy scored --out "$tmp/orders.csv"
cargo run --release -q -p leadrouter -- models preference --orders "$tmp/orders.csv" \
  --half-life-days 90 --shrinkage 30 --out router/data/demo/models/preference.json
