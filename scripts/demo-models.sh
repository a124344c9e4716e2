#!/usr/bin/env bash
# Rebuilds the demo network's learned artifacts (router/data/demo/models/) from a generated
# history of the stale-matrix scenario (simulations/scenarios/stale_matrix.toml). Preference:
# two weeks routed by `scored`. Seeded: the same inputs give the same artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run --release -q -p leadrouter-sim -- history simulations/scenarios/stale_matrix.toml \
  --days 14 --policy scored --out "$tmp/orders.csv"
cargo run --release -q -p leadrouter -- models preference --orders "$tmp/orders.csv" \
  --half-life-days 90 --shrinkage 30 --out router/data/demo/models/preference.json
# Propensity: two weeks of the same world routed round robin (varied guides for the same kind
# of lead), each lead labelled by whether it converted.
cargo run --release -q -p leadrouter-sim -- history simulations/scenarios/stale_matrix.toml \
  --days 14 --policy round_robin --out "$tmp/rr.csv" --decisions "$tmp/rr.jsonl" --labels "$tmp/rr-labels.csv"
cargo run --release -q -p leadrouter -- models propensity --decisions "$tmp/rr.jsonl" \
  --labels "$tmp/rr-labels.csv" --out router/data/demo/models/propensity.json
