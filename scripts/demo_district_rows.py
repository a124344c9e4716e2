#!/usr/bin/env python3
"""Adds district rows to the demo network's preference matrix from a simulated order history.

    leadrouter-sim history simulations/scenarios/demo_history.toml --out orders.csv
    python3 scripts/demo_district_rows.py orders.csv router/data/demo

It writes them to `preference_districts.csv` beside `preference.csv` (which the network
generator writes, and this script only reads); the demo network loads both.

A district gets a row when it has at least MIN_ORDERS orders. Sales are read per store that
carries the category (a district where one store in five sells shoes has not shown that it
dislikes shoes), shrunk towards the district's parent row by KAPPA orders, and scaled to the
parent's favourite carried category; categories no store of the district carries keep the
parent's value.
"""
import collections
import csv
import sys
from pathlib import Path

MIN_ORDERS = 300
KAPPA = 30.0


def main(orders_csv: str, demo_dir: str) -> None:
    demo = Path(demo_dir)
    with open(demo / "preference.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    cats = header[1:]
    matrix = {r[0]: [float(v) for v in r[1:]] for r in body}
    carried = collections.defaultdict(lambda: [0] * len(cats))
    with open(demo / "stores.csv", newline="") as f:
        for s in csv.DictReader(f):
            if s["open"] != "true":
                continue
            for c in s["categories"].split(";"):
                carried[s["region_code"][:6]][cats.index(c)] += 1
    sold = collections.defaultdict(lambda: [0] * len(cats))
    with open(orders_csv, newline="") as f:
        for o in csv.DictReader(f):
            d = o["region_code"][:6]
            if d[4:6] != "00":
                sold[d][cats.index(o["category"])] += 1

    def parent(d: str) -> list[float]:
        for code in (d[:4] + "00" + "0" * 6, d[:2] + "0000" + "0" * 6, "nationwide"):
            if code in matrix:
                return matrix[code]
        raise SystemExit(f"no parent row for district {d}")

    out = {}
    for d, n in sorted(sold.items()):
        total = sum(n)
        if total < MIN_ORDERS:
            continue
        up = parent(d)
        have = [i for i in range(len(cats)) if carried[d][i] > 0]
        rate = [n[i] / carried[d][i] if i in have else 0.0 for i in range(len(cats))]
        rsum = sum(rate)
        usum = sum(up[i] for i in have)
        if rsum <= 0 or usum <= 0:
            continue
        share = {i: (total * rate[i] / rsum + KAPPA * up[i] / usum) / (total + KAPPA) for i in have}
        top, up_top = max(share.values()), max(up[i] for i in have)
        out[d + "000000"] = [
            round(share[i] / top * up_top, 3) if i in have else up[i] for i in range(len(cats))
        ]
    with open(demo / "preference_districts.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for code in sorted(out):
            w.writerow([code] + [f"{v:g}" for v in out[code]])
    print(f"{len(out)} district rows")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
