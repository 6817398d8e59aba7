"""Users as tasks: the protocol's user splits, time-ordered support/query, padded meta-batches.

Every array here is numpy; the learners turn them into tensors. Nothing here touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recmeta.errors import DataError
from recmeta.snapshot import Interactions


def positive_threshold(data: Interactions, threshold: float | None = None) -> float:
    """Values at or above this are positive. Implicit logs: every row. Explicit logs default to
    min + 0.75 * (max - min): 4 on a 1-5 scale, as PROTOCOL.md says."""
    if threshold is not None:
        return float(threshold)
    if data.implicit or data.values.nnz == 0:
        return float("-inf")
    lo, hi = float(data.values.data.min()), float(data.values.data.max())
    return lo + 0.75 * (hi - lo)


@dataclass(frozen=True)
class Split:
    """Dense user indices of the three groups (PROTOCOL.md 'Who is evaluated')."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    seed: int
    how: str


def split_users(
    data: Interactions,
    *,
    seed: int = 0,
    how: str = "random",
    min_interactions: int = 20,
    fractions: tuple[float, float] = (0.1, 0.1),
) -> Split:
    """Eligible users (>= min_interactions rows) split 80/10/10 by a seeded shuffle, or by
    first interaction (`how="temporal"`: newest as test, next newest as validation).
    Every user not in validation or test trains."""
    counts = data.counts_per_user()
    eligible = np.flatnonzero(counts >= min_interactions)
    n_val = round(fractions[0] * len(eligible))
    n_test = round(fractions[1] * len(eligible))
    if how == "random":
        order = np.random.default_rng(seed).permutation(eligible)
    elif how == "temporal":
        first = np.full(data.n_users, np.iinfo(np.int64).max)
        times = data.times
        for u in eligible:
            first[u] = times.data[times.indptr[u] : times.indptr[u + 1]].min()
        order = eligible[np.lexsort((eligible, first[eligible]))][::-1]  # newest first
    else:
        raise DataError(f"split must be 'random' or 'temporal', not {how!r}")
    test = np.sort(order[:n_test])
    val = np.sort(order[n_test : n_test + n_val])
    held = np.zeros(data.n_users, bool)
    held[test] = held[val] = True
    return Split(train=np.flatnonzero(~held), validation=val, test=test, seed=seed, how=how)


@dataclass
class Sequences:
    """Each user's rows ordered by (timestamp, item), as one flat CSR-like layout."""

    indptr: np.ndarray
    items: np.ndarray
    values: np.ndarray
    times: np.ndarray
    timed: bool = True  # False: a log without timestamps, in a seeded shuffle

    @classmethod
    def from_data(cls, data: Interactions, seed: int = 0) -> Sequences:
        """Rows by (timestamp, item) within each user. A log without timestamps (every row at
        one time) has no order to respect: its rows follow one permutation of all rows by a
        generator seeded with 10000 + `seed`, then a stable sort by user (PROTOCOL.md), never
        item-id order, which would leak how the file was made into supports and queries."""
        v, t = data.values, data.times
        rows = np.repeat(np.arange(data.n_users), np.diff(v.indptr))
        timed = bool(len(t.data) == 0 or t.data.min() != t.data.max())
        if timed:
            order = np.lexsort((v.indices, t.data, rows))
        else:
            perm = np.random.default_rng(10_000 + seed).permutation(len(rows))
            order = perm[np.argsort(rows[perm], kind="stable")]
        return cls(
            indptr=v.indptr.astype(np.int64),
            items=v.indices[order].astype(np.int64),
            values=v.data[order].astype(np.float32),
            times=t.data[order].astype(np.int64),
            timed=timed,
        )

    def reshuffled(self, users: np.ndarray, rng: np.random.Generator) -> Sequences:
        """The rows of `users` alone (user j of the result is `users[j]`), each user's in a
        fresh random order: in a log without timestamps any of a user's rows may form a
        support, so each training episode can draw its own."""
        n = self.lengths(users)
        indptr = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
        owner = np.repeat(np.arange(len(users)), n)
        idx = np.arange(indptr[-1]) - indptr[owner] + self.indptr[users][owner]
        idx = idx[np.lexsort((rng.random(len(idx)), owner))]
        return Sequences(indptr, self.items[idx], self.values[idx], self.times[idx], timed=False)

    def lengths(self, users: np.ndarray) -> np.ndarray:
        return self.indptr[users + 1] - self.indptr[users]


@dataclass
class Batch:
    """A padded meta-batch: supports (B, S) and, for training, query targets.

    `support_mask` marks real rows; `query_pos` is a (B, n_items) multi-hot of the positive
    query items; `query_items/query_values/query_mask` hold query rows (for rating losses).
    """

    users: np.ndarray
    support_items: np.ndarray
    support_values: np.ndarray
    support_times: np.ndarray
    support_mask: np.ndarray
    query_pos: np.ndarray | None = None
    query_pairs: tuple[np.ndarray, np.ndarray] | None = None  # (row, item) positives, when sparse
    query_items: np.ndarray | None = None
    query_values: np.ndarray | None = None
    query_mask: np.ndarray | None = None

    def support_only(self) -> Batch:
        """The same users with their supports alone: what a model may see of them."""
        return Batch(
            users=self.users,
            support_items=self.support_items,
            support_values=self.support_values,
            support_times=self.support_times,
            support_mask=self.support_mask,
        )

    def on_items(self, items: np.ndarray) -> Batch:
        """The same batch with item indices into `items` (which must hold every support and
        query item): a training step over sampled candidates instead of the catalogue."""
        pos = np.full(
            self.query_pos.shape[1] if self.query_pos is not None else items.max() + 1, -1, np.int64
        )
        pos[items] = np.arange(len(items))
        q_items = None if self.query_items is None else np.where(self.query_mask, pos[self.query_items], 0)
        if self.query_pairs is not None:
            query_pos = np.zeros((len(self.users), len(items)), np.float32)
            query_pos[self.query_pairs[0], pos[self.query_pairs[1]]] = 1.0
        else:
            query_pos = None if self.query_pos is None else self.query_pos[:, items]
        return Batch(
            users=self.users,
            support_items=np.where(self.support_mask, pos[self.support_items], 0),
            support_values=self.support_values,
            support_times=self.support_times,
            support_mask=self.support_mask,
            query_pos=query_pos,
            query_items=q_items,
            query_values=self.query_values,
            query_mask=self.query_mask,
        )

    def items_used(self) -> np.ndarray:
        """Every item of the batch's supports and queries, sorted, once each."""
        return np.unique(np.concatenate(self.item_parts()))

    def item_parts(self) -> list[np.ndarray]:
        """The items of the supports, the rating rows and the positives (repeats and all)."""
        parts = [self.support_items[self.support_mask]]
        if self.query_items is not None:
            parts.append(self.query_items[self.query_mask])
        if self.query_pairs is not None:
            parts.append(self.query_pairs[1])
        elif self.query_pos is not None:
            parts.append(np.flatnonzero(self.query_pos.any(0)))
        return parts

    def positives(self, width: int) -> np.ndarray:
        """(B, width) bool: the positive query items, from `query_pos` or `query_pairs`."""
        if self.query_pairs is None:
            return self.query_pos[:, :width] > 0
        out = np.zeros((len(self.users), width), bool)
        out[self.query_pairs] = True
        return out

    def rows(self, sel: np.ndarray | slice) -> Batch:
        """The batch restricted to the users `sel` (a slice, indices or a boolean mask)."""
        pick = lambda a: None if a is None else a[sel]  # noqa: E731
        pairs = None
        if self.query_pairs is not None:
            new = np.full(len(self.users), -1, np.int64)
            kept = np.arange(len(self.users))[sel]
            new[kept] = np.arange(len(kept))
            row, item = self.query_pairs
            mine = new[row] >= 0
            pairs = (new[row[mine]], item[mine])
        return Batch(
            query_pairs=pairs,
            users=self.users[sel],
            support_items=self.support_items[sel],
            support_values=self.support_values[sel],
            support_times=self.support_times[sel],
            support_mask=self.support_mask[sel],
            query_pos=pick(self.query_pos),
            query_items=pick(self.query_items),
            query_values=pick(self.query_values),
            query_mask=pick(self.query_mask),
        )


def _gather(
    seq: Sequences, users: np.ndarray, start: np.ndarray, length: np.ndarray, width: int
) -> tuple[np.ndarray, ...]:
    """Rows [start, start+length) of each user, padded to `width`."""
    width = max(int(width), 1)
    offs = np.arange(width)
    mask = offs[None, :] < length[:, None]
    idx = seq.indptr[users][:, None] + start[:, None] + offs[None, :]
    idx = np.where(mask, idx, 0)
    return (
        np.where(mask, seq.items[idx], 0),
        np.where(mask, seq.values[idx], 0.0),
        np.where(mask, seq.times[idx], 0),
        mask,
    )


def make_batch(
    seq: Sequences,
    users: np.ndarray,
    k: np.ndarray | int,
    n_items: int,
    threshold: float,
    *,
    with_query: bool = True,
    max_query: int | None = 128,
    rng: np.random.Generator | None = None,
    dense: bool = True,
) -> Batch:
    """Support = the first k rows of each user; query = every later row (PROTOCOL.md).

    `query_pos` covers every positive query row (or, with `dense=False`, `query_pairs`
    lists them, for `on_items` to lay out over sampled candidates); the rating rows are
    capped at `max_query` (a random subset when a generator is given, else the first ones).
    """
    users = np.asarray(users, dtype=np.int64)
    n = seq.lengths(users)
    k = np.minimum(np.broadcast_to(np.asarray(k, dtype=np.int64), users.shape), n)
    zeros = np.zeros_like(k)
    s_items, s_vals, s_times, s_mask = _gather(seq, users, zeros, k, k.max(initial=0))
    batch = Batch(
        users=users, support_items=s_items, support_values=s_vals, support_times=s_times, support_mask=s_mask
    )
    if not with_query:
        return batch
    q_len = n - k
    q_items, q_vals, _, q_mask = _gather(seq, users, k, q_len, q_len.max(initial=0))
    liked = q_mask & (q_vals >= threshold)
    rows = np.repeat(np.arange(len(users)), liked.sum(1))
    if dense:
        pos = np.zeros((len(users), n_items), np.float32)
        pos[rows, q_items[liked]] = 1.0
    else:
        pos, batch.query_pairs = None, (rows, q_items[liked])
    if max_query is not None and q_items.shape[1] > max_query:
        keys = rng.random(q_items.shape) if rng is not None else np.arange(q_items.shape[1])[None]
        keys = np.where(q_mask, keys, np.inf)
        keep = np.argsort(keys, axis=1)[:, :max_query]
        q_items = np.take_along_axis(q_items, keep, 1)
        q_vals = np.take_along_axis(q_vals, keep, 1)
        q_mask = np.take_along_axis(q_mask, keep, 1)
    batch.query_pos, batch.query_items, batch.query_values, batch.query_mask = (pos, q_items, q_vals, q_mask)
    return batch


def history_batch(
    items: list[np.ndarray],
    values: list[np.ndarray],
    times: list[np.ndarray],
    users: np.ndarray | None = None,
) -> Batch:
    """A support-only batch from explicit per-user histories (for recommending)."""
    width = max([len(i) for i in items] + [1])
    b = len(items)
    out_i = np.zeros((b, width), np.int64)
    out_v = np.zeros((b, width), np.float32)
    out_t = np.zeros((b, width), np.int64)
    mask = np.zeros((b, width), bool)
    for r, (it, va, ti) in enumerate(zip(items, values, times, strict=True)):
        out_i[r, : len(it)], out_v[r, : len(it)], out_t[r, : len(it)] = it, va, ti
        mask[r, : len(it)] = True
    users = users if users is not None else np.full(b, -1, np.int64)
    return Batch(
        users=users, support_items=out_i, support_values=out_v, support_times=out_t, support_mask=mask
    )
