"""A replay memory: a seeded reservoir sample (Vitter's algorithm R) of a stream of rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BLOCK = 1 << 20  # stream rows drawn for at once
DEFAULT_SIZE = 2000  # rows kept for replay (BENCHMARKS.md, continual section: chosen on validation users)


class Reservoir:
    """Keeps a uniform sample of at most `size` of the items (ids of any kind) offered so far.

    After n items were offered, each is in the sample with probability min(1, size / n),
    whatever the order they came in. The state (sample, count seen, generator) is JSON and
    an int64 array, so it travels in a checkpoint.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"replay size must be 0 or more, not {size}")
        self.size = int(size)
        self.seen = 0
        self.sample = np.zeros(0, dtype=object)
        self.rng = np.random.default_rng(seed)

    def offer(self, items: np.ndarray, label: Callable[[np.ndarray], np.ndarray] | None = None) -> Reservoir:
        """Offer items in stream order; `label` turns the few kept into what the sample holds
        (so a stream of 20M row owners need not become 20M strings). Draws are made in
        blocks: memory is a block's, whatever the stream's length."""
        items = np.asarray(items)
        n = len(items)

        def keep(a: np.ndarray) -> np.ndarray:
            return np.asarray(label(a) if label else a, dtype=object)

        if self.size == 0 or n == 0:
            self.seen += n
            return self
        fill = max(0, min(self.size - len(self.sample), n))
        sample = np.concatenate([self.sample, keep(items[:fill])])
        for start in range(fill, n, BLOCK):
            block = items[start : start + BLOCK]
            # item j of the stream (0-based position p) replaces slot r ~ U{0..p} when r < size
            positions = self.seen + start + np.arange(len(block))
            draws = np.floor(self.rng.random(len(block)) * (positions + 1)).astype(np.int64)
            hits = np.flatnonzero(draws < self.size)  # few: about size * log(n / size) in all
            if len(hits):
                kept = keep(block[hits])
                for slot, value in zip(draws[hits], kept, strict=True):
                    sample[slot] = value
        self.sample = sample
        self.seen += n
        return self

    def state(self) -> tuple[dict, np.ndarray]:
        return {"size": self.size, "seen": self.seen, "rng": self.rng.bit_generator.state}, self.sample

    @classmethod
    def from_state(cls, state: dict, sample: np.ndarray) -> Reservoir:
        r = cls(state["size"])
        r.seen, r.sample = int(state["seen"]), np.asarray(sample, dtype=object)
        r.rng.bit_generator.state = state["rng"]
        return r
