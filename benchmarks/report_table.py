"""Markdown tables from a `recmeta evaluate` report.json (what BENCHMARKS.md quotes).

python benchmarks/report_table.py reports/ml100k/report.json [metric ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from recmeta.evaluate.report import markdown


def main() -> None:
    report = json.loads(Path(sys.argv[1]).read_text())
    summary = pd.DataFrame(report["summary"])
    for metric in sys.argv[2:] or ["ndcg@10"]:
        print(markdown(summary, report["config"]["models"], metric) + "\n")
    fit = {m: sum(v) / len(v) for m, v in report["fit_seconds"].items() if v}
    print("mean fit seconds per seed: " + ", ".join(f"{m} {s:.1f}" for m, s in fit.items()))
    print(f"total: {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
