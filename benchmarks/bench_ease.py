"""EASE's closed form on a real Gram matrix: recmeta's in-place Cholesky inverse against the
general inverse that EASE's reference code (and recmeta before) takes.

    python benchmarks/bench_ease.py amazon.db [--items 10000] [--regularization 316] [--repeats 3]

The Gram matrix X'X is built, as `EASE.fit` builds it, over the `--items` items with the
most positive rows of the store's users (float32). Each way then computes B = I - P /
diag(P), P = (X'X + lambda I)^-1, with a zero diagonal, `--repeats` times (alternating,
so that a noisy moment falls on both); the table gives seconds (best and worst), the peak
of memory allocated beside the Gram matrix (numpy's allocations, traced), and the largest
difference between the two B. The peaks come from one more, traced run of each.

- *general*: what Steck's published code does, on a copy of X'X: lambda added to the
  diagonal in place, `numpy.linalg.inv` (LAPACK gesv against the identity), then the
  division into a new matrix.
- *cholesky*: `recmeta.learners.baselines.ease.ease_weights`: LAPACK potrf and potri in place
  on one copy, the lower triangle mirrored and the division done in place (each tuning
  fit, which keeps X'X for the next penalty).
- *in place*: the same on X'X itself, which becomes B (`EASE.fit`'s last fit, after which
  X'X is not needed; here on a copy made before the clock and the trace start).
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

from recmeta import snapshot
from recmeta.learners.baselines import ease_weights, liked_matrix
from recmeta.store import make_engine
from recmeta.tasks import positive_threshold


def general(gram: np.ndarray, regularization: float) -> np.ndarray:
    """Steck's published code, on a copy of X'X (which both ways keep for the next penalty):
    the penalty added to the diagonal in place, P = inv, B = P / -diag(P), zero diagonal."""
    g = gram.copy()
    g[np.diag_indices_from(g)] += regularization
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b


def consuming(original: np.ndarray):
    """`ease_weights` consuming the X'X it is given (a copy of `original`, which the general
    inverse's fallback would rebuild it from)."""

    def in_place(gram: np.ndarray, regularization: float) -> np.ndarray:
        return ease_weights(gram, regularization, rebuild=original.copy)

    in_place.consumes = True  # type: ignore[attr-defined]
    return in_place


def timed(way, gram: np.ndarray, regularization: float) -> tuple[float, np.ndarray]:
    """(seconds, B); a way that consumes X'X gets a copy made before the clock starts."""
    gram = gram.copy() if getattr(way, "consumes", False) else gram
    t0 = time.perf_counter()
    b = way(gram, regularization)
    return time.perf_counter() - t0, b


def peak_mib(way, gram: np.ndarray, regularization: float) -> float:
    """The peak of memory numpy allocated while `way` ran (a separate, traced run: tracing
    slows it)."""
    gram = gram.copy() if getattr(way, "consumes", False) else gram
    tracemalloc.start()
    way(gram, regularization)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--regularization", type=float, default=316.0)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    data = snapshot.load(make_engine(f"sqlite:///{a.db}"))
    liked = liked_matrix(data, positive_threshold(data))
    counts = np.asarray(liked.sum(0)).ravel()
    keep = np.sort(np.argsort(-counts, kind="stable")[: a.items])
    x = liked[:, keep].astype(np.float32)
    gram = (x.T @ x).toarray()
    print(
        f"{len(keep):,} items x {liked.shape[0]:,} users; threads: "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    ways = {"general": general, "cholesky": ease_weights, "in place": consuming(gram)}
    seconds: dict[str, list[float]] = {w: [] for w in ways}
    result: dict[str, np.ndarray] = {}
    for r in range(a.repeats):
        for name, way in ways.items():
            s, result[name] = timed(way, gram, a.regularization)
            seconds[name].append(s)
            print(f"  repeat {r + 1}: {name} {s:.1f} s", flush=True)
    peaks = {name: peak_mib(way, gram, a.regularization) for name, way in ways.items()}
    diff = max(float(np.abs(result["general"] - result[w]).max()) for w in ("cholesky", "in place"))
    scale = float(np.abs(result["general"]).max())
    print("\n| way | seconds (best - worst) | peak MiB beside X'X |")
    print("|---|---:|---:|")
    for name in ways:
        print(f"| {name} | {min(seconds[name]):.1f} - {max(seconds[name]):.1f} | {peaks[name]:,.0f} |")
    ratio = [g / c for g, c in zip(seconds["general"], seconds["cholesky"], strict=True)]
    print(
        f"\ncholesky is {min(ratio):.1f}-{max(ratio):.1f}x as fast (pairwise); largest |B| "
        f"difference {diff:.1e} (largest |B| {scale:.2f}); load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
