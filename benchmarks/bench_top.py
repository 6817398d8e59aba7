"""Each row's 100 largest entries of a dense float32 matrix (what EASE and the episodic
weights keep of each item's row): numpy's argpartition (the previous `top_per_row`)
against torch's topk (the current one), a block of 1,024 rows at a time, on random
matrices of 2,500 and 10,000 columns (the tuning's and the fit's sizes).

OPENBLAS_NUM_THREADS=2 python benchmarks/bench_top.py --repeats 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from recmeta.learners.baselines import top_per_row

TOP = 100


def argpartition_top(a: np.ndarray, top: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The previous `top_per_row`: numpy's argpartition on each block of rows."""
    cols = np.empty((len(a), top), dtype=np.int64)
    for start in range(0, len(a), block):
        cols[start : start + block] = np.argpartition(-a[start : start + block], top - 1, axis=1)[:, :top]
    return cols, np.take_along_axis(a, cols, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    print(f"torch threads {torch.get_num_threads()}")
    rng = np.random.default_rng(0)
    for n in (2_500, 10_000):
        m = rng.standard_normal((n, n), dtype=np.float32)
        for name, f in (("numpy argpartition", argpartition_top), ("torch topk", top_per_row)):
            times = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                f(m, TOP)
                times.append(time.perf_counter() - t0)
            print(f"{n:>6} columns  {name:<18} {min(times):.3f}-{max(times):.3f} s", flush=True)
        _, v1 = argpartition_top(m, TOP)
        _, v2 = top_per_row(m, TOP)
        print(f"{n:>6} columns  same values kept: {np.array_equal(np.sort(v1, 1), np.sort(v2, 1))}")


if __name__ == "__main__":
    main()
