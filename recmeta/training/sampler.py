"""Episodes: which users a meta-training step takes, and with how many support rows.

A `Source` is a set of tasks (users) over one `Sequences`. A step takes the next `share`
users of every source; an epoch is one pass over the first source (the others cycle).
Plain training has one source; `train --continue` with replay has two (the users with new
rows, and users of a reservoir sample of earlier rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recmeta.errors import DataError
from recmeta.tasks import Batch, Sequences, make_batch


def support_sizes(rng: np.random.Generator, n: int, most: int, how: str) -> np.ndarray:
    """Support sizes of a meta-batch: uniform over 0..most, or log-uniform (more small ones)."""
    if how == "log":
        return np.floor(np.exp(rng.uniform(0, np.log(most + 2), n))).astype(np.int64) - 1
    if how != "uniform":
        raise ValueError(f"support_sampling must be 'log' or 'uniform', not {how!r}")
    return rng.integers(0, most + 1, n)


@dataclass
class Source:
    """Tasks to draw from: users of `seq` with two or more rows, `share` of them per step."""

    seq: Sequences
    users: np.ndarray
    share: int
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # this pass
    pos: int = 0  # next position in `order`

    @classmethod
    def of(cls, seq: Sequences, users: np.ndarray, share: int) -> Source:
        users = np.asarray(users, dtype=np.int64)
        return cls(seq, users[seq.lengths(users) >= 2], max(int(share), 1))


class EpisodeSampler:
    """Meta-batches from one or more sources, every random draw from one generator."""

    def __init__(
        self,
        sources: list[Source],
        n_items: int,
        threshold: float,
        max_support: int,
        how: str,
        rng: np.random.Generator,
        dense: bool = True,
    ) -> None:
        if not sources or len(sources[0].users) == 0:
            raise DataError(
                "no training user has two or more interactions: there is nothing to learn from; "
                "ingest more rows"
            )
        self.sources, self.n_items, self.threshold = sources, n_items, threshold
        self.max_support, self.how, self.rng = max_support, how, rng
        self.dense = dense  # False: positives as pairs, for steps over sampled candidates

    @property
    def steps_per_epoch(self) -> int:
        first = self.sources[0]
        return -(-len(first.users) // first.share)

    def start_epoch(self) -> None:
        first = self.sources[0]
        first.order, first.pos = self.rng.permutation(first.users), 0
        for s in self.sources[1:]:
            if len(s.order) == 0 and len(s.users):
                s.order, s.pos = self.rng.permutation(s.users), 0

    def done(self) -> bool:
        return self.sources[0].pos >= len(self.sources[0].order)

    def next_batches(self) -> list[Batch]:
        """One batch per source that has users (the first always has)."""
        out = []
        for i, s in enumerate(self.sources):
            if len(s.users) == 0:
                continue
            if i == 0:
                chunk = s.order[s.pos : s.pos + s.share]
                s.pos += len(chunk)
            else:
                chunk = self._cycle(s)
            out.append(self._batch(s.seq, chunk))
        return out

    def _cycle(self, s: Source) -> np.ndarray:
        taken: list[np.ndarray] = []
        need = min(s.share, len(s.users))
        while need > 0:
            if s.pos >= len(s.order):
                s.order, s.pos = self.rng.permutation(s.users), 0
            part = s.order[s.pos : s.pos + need]
            s.pos += len(part)
            need -= len(part)
            taken.append(part)
        return np.concatenate(taken)

    def _batch(self, seq: Sequences, users: np.ndarray) -> Batch:
        n = seq.lengths(users)
        k = np.minimum(support_sizes(self.rng, len(users), self.max_support, self.how), n - 1)
        if seq.timed:  # the support is the first k rows in time (PROTOCOL.md)
            return make_batch(seq, users, k, self.n_items, self.threshold, rng=self.rng, dense=self.dense)
        # no time order: each episode draws its own support and query from the user's rows
        mine = seq.reshuffled(users, self.rng)
        at = np.arange(len(users))
        batch = make_batch(mine, at, k, self.n_items, self.threshold, rng=self.rng, dense=self.dense)
        batch.users = users
        return batch

    # ----------------------------------------------------------- resume
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON, arrays) that restore the generator and every source's position."""
        arrays = {f"order{i}": s.order for i, s in enumerate(self.sources)}
        return {"rng": self.rng.bit_generator.state, "pos": [s.pos for s in self.sources]}, arrays

    def restore(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        self.rng.bit_generator.state = state["rng"]
        for i, s in enumerate(self.sources):
            s.order, s.pos = np.asarray(arrays[f"order{i}"], np.int64), int(state["pos"][i])
