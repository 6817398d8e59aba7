"""A replay memory: a seeded reservoir sample (Vitter's algorithm R) of a stream of rows."""

from __future__ import annotations

import numpy as np

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

    def offer(self, items: np.ndarray) -> Reservoir:
        """Offer items in stream order."""
        items = np.asarray(items, dtype=object)
        if self.size == 0 or len(items) == 0:
            self.seen += len(items)
            return self
        fill = max(0, min(self.size - len(self.sample), len(items)))
        self.sample = np.concatenate([self.sample, items[:fill]])
        rest = items[fill:]
        if len(rest):
            # item j of the stream (0-based position n) replaces slot r ~ U{0..n} when r < size
            positions = self.seen + fill + np.arange(len(rest))
            draws = np.floor(self.rng.random(len(rest)) * (positions + 1)).astype(np.int64)
            sample = self.sample.copy()
            hits = np.flatnonzero(draws < self.size)  # few: about size * log(n / size) in all
            for j in hits:
                sample[draws[j]] = rest[j]
            self.sample = sample
        self.seen += len(items)
        return self

    def state(self) -> tuple[dict, np.ndarray]:
        return {"size": self.size, "seen": self.seen, "rng": self.rng.bit_generator.state}, self.sample

    @classmethod
    def from_state(cls, state: dict, sample: np.ndarray) -> Reservoir:
        r = cls(state["size"])
        r.seen, r.sample = int(state["seen"]), np.asarray(sample, dtype=object)
        r.rng.bit_generator.state = state["rng"]
        return r
