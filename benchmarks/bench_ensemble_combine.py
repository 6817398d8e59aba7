"""The ensemble's bias tuning scores each chunk of validation users at five item-bias
weights: the previous code standardised every member's scores again for each weight
(subtract the weighted biases, a row mean, a row standard deviation, a divide, then the
mean of the members); `Standardised` (the current code) takes each member's row moments
once and combines any weight with one scaled sum. Random float32 scores of three members
over Amazon Beauty's catalogue width, one chunk of 1,000 users, the five weights.

OPENBLAS_NUM_THREADS=2 python benchmarks/bench_ensemble_combine.py --repeats 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from recmeta.learners.ensemble import BIAS_WEIGHTS, Standardised


def standardise(scores: np.ndarray) -> np.ndarray:
    """The previous code's z-score of each row (a constant row stays 0)."""
    sd = scores.std(1, keepdims=True)
    return (scores - scores.mean(1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def previous(scores: list[np.ndarray], biases: list[np.ndarray]) -> list[np.ndarray]:
    """Each weight: every member's scores less its weighted biases, standardised, averaged."""
    out = []
    for w in BIAS_WEIGHTS:
        z = [
            standardise(s - (1.0 - w) * b[None, :]) if w != 1.0 else standardise(s)
            for s, b in zip(scores, biases, strict=True)
        ]
        out.append(np.mean(z, axis=0))
    return out


def current(scores: list[np.ndarray], biases: list[np.ndarray]) -> list[np.ndarray]:
    """Each member's moments once, then each weight's combination."""
    shared = Standardised(scores, biases)
    return [shared.combine(np.full(len(scores[0]), 1.0 - w)) for w in BIAS_WEIGHTS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--items", type=int, default=57_289)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    scores = [(rng.normal(size=(a.users, a.items)) * s).astype(np.float32) for s in (1.0, 5.0, 0.2)]
    biases = [(rng.normal(size=a.items) * s).astype(np.float32) for s in (1.0, 2.0, 0.5)]
    times: dict[str, list[float]] = {"previous": [], "current": []}
    results = {}
    for _ in range(a.repeats):
        for name, fn in (("previous", previous), ("current", current)):
            start = time.perf_counter()
            results[name] = fn(scores, biases)
            times[name].append(time.perf_counter() - start)
    gap = max(
        float(np.abs(p - c).max()) for p, c in zip(results["previous"], results["current"], strict=True)
    )
    for name, t in times.items():
        shape = f"{a.users:,} x {a.items:,}, 3 members"
        print(f"{name}: {min(t):.2f}-{max(t):.2f} s for {len(BIAS_WEIGHTS)} weights ({shape})")
    print(f"largest difference of a combined z-score: {gap:.1e}")


if __name__ == "__main__":
    main()
