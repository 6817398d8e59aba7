"""The `auto` row of a `recmeta evaluate` report.json under the current router: each seed's
route is chosen again from the validation tables the report kept, and each test user gets
the list of the model it now routes them to (the per-user records the report kept).

python benchmarks/reroute.py reports/amazon/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from recmeta.routing import routing, served_by


def main() -> None:
    report = json.loads(Path(sys.argv[1]).read_text())
    records = pd.DataFrame(report["records"])
    records = records[~records["skipped"].astype(bool)]
    cells = records.groupby(["seed", "model", "shots"])["ndcg@10"].mean()
    rerouted: dict[int, list[float]] = {}
    for seed, stored in report["config"]["routes"].items():
        route = routing(stored["validation"], stored.get("noise"))
        print(f"seed {seed}: bands then {stored['bands']}, now {route['bands']}")
        for k in sorted(records["shots"].unique()):
            rerouted.setdefault(int(k), []).append(cells[(int(seed), served_by(route, int(k)), k)])
    by_model = cells.groupby(["model", "shots"]).mean().unstack()
    singles = by_model.drop(index="auto", errors="ignore")
    print("| ndcg@10 | " + " | ".join(f"K={k}" for k in rerouted) + " |")
    print("|---|" + "---:|" * len(rerouted))
    print("| auto, rerouted | " + " | ".join(f"{sum(v) / len(v):.3f}" for v in rerouted.values()) + " |")
    if "auto" in by_model.index:
        print("| auto, as run | " + " | ".join(f"{by_model.loc['auto', k]:.3f}" for k in rerouted) + " |")
    print("| best single model | " + " | ".join(f"{singles[k].max():.3f}" for k in rerouted) + " |")


if __name__ == "__main__":
    main()
