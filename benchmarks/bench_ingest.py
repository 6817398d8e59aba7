"""Ingest throughput into SQLite and PostgreSQL, peak memory by file size, snapshot time.

    python benchmarks/bench_ingest.py [--rows 1000000] [--big 5000000] [--pg URL] [--jsonl]

--jsonl also ingests the --rows log written as JSON Lines (one object a line), the same rows.

Each measurement runs in a fresh child process, so peak RSS is that ingest's own.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import machine, run_child, write_log

INGEST = """
import json, time
from pathlib import Path
from recmeta.store import make_engine
from recmeta.ingest.pipeline import ingest_file, ingest_log
from recmeta.ingest.readers import LogSpec
engine = make_engine({url!r})
t = time.perf_counter()
r = ingest_file(engine, lambda s: ingest_log(s, LogSpec(path=Path({path!r}))))
dt = time.perf_counter() - t
print(json.dumps({{"rows": r.rows_read, "inserted": r.inserted, "seconds": dt}}))
"""

SNAPSHOT = """
import json, time
from recmeta.store import make_engine
from recmeta import snapshot
engine = make_engine({url!r})
t = time.perf_counter()
d = snapshot.load(engine)
print(json.dumps({{"seconds": time.perf_counter() - t, "nnz": int(d.values.nnz)}}))
"""


def reset_pg(url: str) -> None:
    from sqlalchemy import create_engine, text

    from recmeta.store import resolve_url

    eng = create_engine(resolve_url(url))
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    eng.dispose()


def as_json_lines(csv: Path, path: Path) -> Path:
    """The CSV log's rows as JSON Lines objects with the same keys, written line by line."""
    with open(csv) as src, open(path, "w") as dst:
        keys = src.readline().strip().split(",")
        for line in src:
            dst.write(json.dumps(dict(zip(keys, map(int, line.split(",")), strict=True))) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big", type=int, default=5_000_000)
    ap.add_argument("--pg", default=None, help="PostgreSQL URL (its public schema is emptied)")
    ap.add_argument("--jsonl", action="store_true", help="also the --rows log as JSON Lines")
    args = ap.parse_args()
    results = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for run, rows in enumerate((args.rows, args.big)):  # a store each: --big may equal --rows
            log = write_log(tmp / f"log{rows}.csv", rows)
            url = f"sqlite:///{tmp / f's{run}-{rows}.db'}"
            res, peak = run_child(INGEST.format(url=url, path=str(log)))
            results[f"sqlite_{rows}"] = {**res, "rows_per_s": res["rows"] / res["seconds"], "peak_mib": peak}
            print(json.dumps(results[f"sqlite_{rows}"]), flush=True)
            snap, speak = run_child(SNAPSHOT.format(url=url))
            results[f"snapshot_{rows}"] = {**snap, "peak_mib": speak}
            print(json.dumps(results[f"snapshot_{rows}"]), flush=True)
            if rows == args.rows and args.jsonl:
                jsonl = as_json_lines(log, tmp / f"log{rows}.jsonl")
                url = f"sqlite:///{tmp / f'j{run}-{rows}.db'}"
                res, peak = run_child(INGEST.format(url=url, path=str(jsonl)))
                results[f"sqlite_jsonl_{rows}"] = {
                    **res,
                    "rows_per_s": res["rows"] / res["seconds"],
                    "peak_mib": peak,
                }
                print(json.dumps(results[f"sqlite_jsonl_{rows}"]), flush=True)
                jsonl.unlink()
            if rows == args.rows and args.pg:
                reset_pg(args.pg)
                res, peak = run_child(INGEST.format(url=args.pg, path=str(log)))
                results[f"postgresql_{rows}"] = {
                    **res,
                    "rows_per_s": res["rows"] / res["seconds"],
                    "peak_mib": peak,
                }
                print(json.dumps(results[f"postgresql_{rows}"]), flush=True)
                snap, speak = run_child(SNAPSHOT.format(url=args.pg))
                results[f"snapshot_pg_{rows}"] = {**snap, "peak_mib": speak}
            log.unlink()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
