"""The store as matrices: a users x items CSR, id maps both ways, times and feature arrays.

The interactions go from the SQL cursor, a block at a time, straight into CSR-shaped
arrays (no frame of the whole log). Repeated events of one (user, item) pair fold into one
entry: the latest value (explicit logs) or the summed count (implicit logs), at the time of
the first event.

pandas and scipy are imported by the functions that build matrices, not with the module:
`recmeta recommend` imports this module but builds no snapshot, and must start in well
under 3 s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine

from recmeta.store import repository as repo
from recmeta.store import session_scope
from recmeta.store.models import MAX_VALUE, Item, User

if TYPE_CHECKING:
    import pandas as pd
    import scipy.sparse as sp
    from sqlalchemy.orm import Session

MAX_CATEGORIES = 32  # one-hot levels kept per categorical feature; the rest share 'other'
MAX_GENRES = 100  # genres kept as columns, the most frequent: a catalogue's thousands would each be one


@dataclass
class Interactions:
    """An immutable view of the log: row u of `values` is dense user u, column i dense item i."""

    user_ids: np.ndarray  # dense index -> external id (str)
    item_ids: np.ndarray
    values: sp.csr_matrix  # float32
    times: sp.csr_matrix  # int64, same sparsity as `values`
    item_features: np.ndarray  # (n_items, n_item_features) float32
    user_features: np.ndarray  # (n_users, n_user_features) float32
    item_feature_names: list[str] = field(default_factory=list)
    user_feature_names: list[str] = field(default_factory=list)
    titles: list[str | None] = field(default_factory=list)
    implicit: bool = False
    watermark: dict = field(default_factory=dict)
    item_feature_spec: dict = field(default_factory=dict)  # encodes items added later alike
    user_feature_spec: list = field(default_factory=list)  # and users, for `train --continue`

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    def user_rows(self, u: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(items, values, times) of dense user u ordered by (timestamp, item)."""
        lo, hi = self.values.indptr[u], self.values.indptr[u + 1]
        items = self.values.indices[lo:hi]
        vals = self.values.data[lo:hi]
        ts = self.times.data[lo:hi]
        order = np.lexsort((items, ts))
        return items[order], vals[order], ts[order]

    def counts_per_user(self) -> np.ndarray:
        return np.diff(self.values.indptr)


def dense_rows(log: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Dense (user, item) positions of the log's rows; users and items are in row-id order."""
    import pandas as pd

    u_pos = pd.Series(np.arange(len(users)), index=np.sort(users["id"].to_numpy()))
    i_pos = pd.Series(np.arange(len(items)), index=np.sort(items["id"].to_numpy()))
    return (
        u_pos.reindex(log["user_id"].to_numpy()).to_numpy(),
        i_pos.reindex(log["item_id"].to_numpy()).to_numpy(),
    )


FOLD_BLOCK = 1 << 20  # rows folded at once: the working memory beyond the arrays themselves
READ_BLOCK = 500_000  # rows fetched from the store at once


@dataclass
class Rows:
    """Every row of a log laid out like a CSR (grouped by dense user, log order within a
    user), before repeats of a (user, item) pair are folded: 16 bytes a row (24 with ids)."""

    indptr: np.ndarray  # (n_users + 1,) int64
    items: np.ndarray  # int32
    values: np.ndarray  # float32
    times: np.ndarray  # int64
    ids: np.ndarray | None = None  # the store's row ids, where asked for

    @classmethod
    def of(cls, u: np.ndarray, i: np.ndarray, v: np.ndarray, t: np.ndarray, n_users: int) -> Rows:
        """Rows (u, i, v, t) in any order, grouped by user (stable: log order kept)."""
        order = np.argsort(np.asarray(u, np.int64), kind="stable")
        indptr = np.zeros(n_users + 1, np.int64)
        np.cumsum(np.bincount(np.asarray(u, np.int64), minlength=n_users), out=indptr[1:])
        return cls(
            indptr,
            np.asarray(i, np.int32)[order],
            np.asarray(v, np.float32)[order],
            np.asarray(t, np.int64)[order],
        )

    def users(self) -> np.ndarray:
        """The dense user of every row."""
        return np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))

    def where(self, keep: np.ndarray) -> Rows:
        """A copy holding the rows where `keep` is true."""
        indptr = np.zeros_like(self.indptr)
        np.cumsum(np.bincount(self.users()[keep], minlength=len(self.indptr) - 1), out=indptr[1:])
        ids = None if self.ids is None else self.ids[keep]
        return Rows(indptr, self.items[keep], self.values[keep], self.times[keep], ids)

    def fold(self, n_items: int, implicit: bool) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(values, times) CSRs: repeats of a (user, item) pair fold into the summed count
        (implicit) or the latest value (explicit), at the first event's time. Folds
        FOLD_BLOCK rows at a time into the front of its own arrays, which it consumes."""
        import scipy.sparse as sp

        n_users = len(self.indptr) - 1
        indptr = np.zeros(n_users + 1, np.int64)
        written, a = 0, 0
        while a < n_users:
            b = max(a + 1, int(np.searchsorted(self.indptr, self.indptr[a] + FOLD_BLOCK, "right")) - 1)
            b = min(b, n_users)
            lo, hi = self.indptr[a], self.indptr[b]
            if hi == lo:  # users without rows
                indptr[a + 1 : b + 1], a = written, b
                continue
            local = np.repeat(np.arange(b - a, dtype=np.int64), np.diff(self.indptr[a : b + 1]))
            key = local * n_items + self.items[lo:hi]
            times = self.times[lo:hi]
            order = np.lexsort((times, key))  # stable: equal times keep log order
            key = key[order]
            starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
            v = self.values[lo:hi][order]
            if implicit:
                v = np.add.reduceat(v, starts).astype(np.float32)
            else:
                v = v[np.r_[starts[1:], len(key)] - 1]
            n = len(starts)
            self.times[written : written + n] = times[order][starts]
            self.values[written : written + n] = v
            pairs = key[starts]
            self.items[written : written + n] = pairs % n_items
            counts = np.bincount(pairs // n_items, minlength=b - a)
            indptr[a + 1 : b + 1] = written + np.cumsum(counts)
            written, a = written + n, b
        # a log without repeats keeps its arrays; otherwise the folded front is copied out
        values, items, times = (
            arr if written == len(arr) else arr[:written].copy()
            for arr in (self.values, self.items, self.times)
        )
        self.values = self.items = self.times = np.empty(0)  # consumed
        if indptr[-1] < np.iinfo(np.int32).max:
            indptr = indptr.astype(np.int32)
        shape = (n_users, n_items)
        return (
            sp.csr_matrix((values, items, indptr), shape=shape),
            sp.csr_matrix((times, items.copy(), indptr.copy()), shape=shape),
        )


def matrices(
    u: np.ndarray, i: np.ndarray, v: np.ndarray, t: np.ndarray, shape: tuple[int, int], implicit: bool
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(values, times) CSRs of rows (u, i, v, t) in any order (see `Rows.fold`)."""
    return Rows.of(u, i, v, t, shape[0]).fold(shape[1], implicit)


def read_rows(
    session: Session, user_row_ids: np.ndarray, item_row_ids: np.ndarray, upto: int, *, with_ids: bool = False
) -> Rows:
    """The store's interactions up to row `upto` as `Rows` of dense users and items (the
    sorted row ids of the users and items tables): the rows per user are counted in SQL,
    then every block the cursor yields is placed straight into its users' slots, so memory
    is the arrays plus one block."""
    from recmeta.errors import StoreError

    u_ids, counts = repo.user_row_counts(session, upto)
    n_users = len(user_row_ids)
    indptr = np.zeros(n_users + 1, np.int64)
    indptr[1:][np.searchsorted(user_row_ids, u_ids)] = counts
    np.cumsum(indptr, out=indptr)
    n = int(indptr[-1])
    rows = Rows(
        indptr,
        np.empty(n, np.int32),
        np.empty(n, np.float32),
        np.empty(n, np.int64),
        np.empty(n, np.int64) if with_ids else None,
    )
    fill = indptr[:-1].copy()  # each user's next free slot
    for cols in repo.interaction_blocks(session, READ_BLOCK, with_ids=with_ids, upto=upto):
        u = np.searchsorted(user_row_ids, cols[0])
        order = np.argsort(u, kind="stable")
        us = u[order]
        first = np.r_[True, us[1:] != us[:-1]]
        rank = np.arange(len(us)) - np.maximum.accumulate(np.where(first, np.arange(len(us)), 0))
        slot = fill[us] + rank
        if len(slot) and slot.max() >= n:
            raise StoreError("the interactions changed while they were read; run the command again")
        rows.items[slot] = np.searchsorted(item_row_ids, cols[1][order])
        rows.values[slot] = cols[2][order]
        rows.times[slot] = cols[3][order]
        if with_ids:
            rows.ids[slot] = cols[4][order]
        fill += np.bincount(u, minlength=n_users)
    if not np.array_equal(fill, indptr[1:]):
        raise StoreError("the interactions changed while they were read; run the command again")
    _check_values(rows.values)
    return rows


def _check_values(values: np.ndarray) -> None:
    """Values enter the models' math only when finite and within ±MAX_VALUE, as ingest
    writes them; a store written by other means may hold others."""
    from recmeta.errors import DataError

    bad = ~(np.abs(values) <= MAX_VALUE)  # NaN fails the comparison
    if bad.any():
        raise DataError(
            f"the store holds {int(bad.sum()):,} interaction value(s) that are not finite numbers "
            f"within ±{MAX_VALUE:g} (such as {float(values[bad][0])!r}); no model can learn from "
            "them: delete or correct those rows of the interactions table, or ingest the log again "
            "into a new store"
        )


def _assemble(
    values: sp.csr_matrix,
    times: sp.csr_matrix,
    users: pd.DataFrame,
    items: pd.DataFrame,
    implicit: bool,
    watermark: dict | None,
    spec: dict | None,
) -> Interactions:
    """An `Interactions` of the CSRs and the users and items tables (sorted by row id)."""
    import pandas as pd

    spec = spec or {}
    item_feats, item_names, item_spec = item_feature_matrix(items, spec.get("item"))
    user_feats, user_names, user_spec = featurize(
        users.get("features", pd.Series([None] * len(users))), spec.get("user")
    )
    return Interactions(
        user_ids=users["external_id"].astype(str).to_numpy(),
        item_ids=items["external_id"].astype(str).to_numpy(),
        values=values,
        times=times,
        item_features=item_feats,
        user_features=user_feats,
        item_feature_names=item_names,
        user_feature_names=user_names,
        titles=[t if isinstance(t, str) else None for t in items.get("title", [None] * len(items))],
        implicit=implicit,
        watermark=watermark or {},
        item_feature_spec=item_spec,
        user_feature_spec=user_spec,
    )


def from_frames(
    log: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    *,
    implicit: bool,
    watermark: dict | None = None,
    spec: dict | None = None,
) -> Interactions:
    """Build an `Interactions` from an interaction frame (user_id, item_id, value, timestamp)
    and the users and items tables (id, external_id, [title, genres, year], features).
    `spec` ({"item": ..., "user": ...}, from a checkpoint) encodes features as they were
    encoded when that model was trained."""
    users = users.sort_values("id").reset_index(drop=True)
    items = items.sort_values("id").reset_index(drop=True)
    rows, cols = dense_rows(log, users, items)
    values, times = matrices(
        rows, cols, log["value"].to_numpy(), log["timestamp"].to_numpy(), (len(users), len(items)), implicit
    )
    return _assemble(values, times, users, items, implicit, watermark, spec)


def load(engine: Engine, *, spec: dict | None = None) -> Interactions:
    """Load the whole store: the users and items tables, then the interactions read in
    blocks straight into the CSR arrays (no frame of the log)."""
    return _load(engine, None, spec)[0]


def load_rows(engine: Engine) -> tuple[Interactions, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The store and every interaction row as it was ingested (no folding of repeats):
    dense user, dense item, value and timestamp arrays (grouped by user)."""
    with session_scope(engine) as session:
        mark, users, items, implicit = _tables(session)
        rows = read_rows(session, users["id"].to_numpy(), items["id"].to_numpy(), mark["max_interaction_id"])
    raw = (rows.users(), rows.items.copy(), rows.values.copy(), rows.times.copy())
    values, times = rows.fold(len(items), implicit)
    return (_assemble(values, times, users, items, implicit, mark, None), *raw)


def load_since(
    engine: Engine, after_id: int, *, spec: dict | None = None
) -> tuple[Interactions, Interactions, Interactions]:
    """(the whole store, its rows up to interaction row `after_id`, the rows after it):
    three views of the same users and items, the last being what a checkpoint whose
    watermark is `after_id` has not seen."""
    data, old, new = _load(engine, after_id, spec)
    return data, old, new  # type: ignore[return-value]  (both views exist when after_id is given)


def _tables(session: Session) -> tuple[dict, pd.DataFrame, pd.DataFrame, bool]:
    """The watermark, the users and items tables (sorted by row id) and whether the log is implicit."""
    mark = repo.watermark(session)
    users = repo.entities_frame(session, User).sort_values("id").reset_index(drop=True)
    items = repo.entities_frame(session, Item).sort_values("id").reset_index(drop=True)
    return mark, users, items, repo.log_is_implicit(session)


def _load(
    engine: Engine, after_id: int | None, spec: dict | None
) -> tuple[Interactions, Interactions | None, Interactions | None]:
    since = after_id is not None
    with session_scope(engine) as session:
        mark, users, items, implicit = _tables(session)
        upto = mark["max_interaction_id"]
        rows = read_rows(session, users["id"].to_numpy(), items["id"].to_numpy(), upto, with_ids=since)
    n_items = len(items)
    views = []
    if since:
        for keep in (rows.ids <= after_id, rows.ids > after_id):
            views.append(rows.where(keep).fold(n_items, implicit))
    data = _assemble(*rows.fold(n_items, implicit), users, items, implicit, mark, spec)
    if not since:
        return data, None, None
    (old_v, old_t), (new_v, new_t) = views
    return data, replace(data, values=old_v, times=old_t), replace(data, values=new_v, times=new_t)


def item_feature_matrix(items: pd.DataFrame, spec: dict | None = None) -> tuple[np.ndarray, list[str], dict]:
    """Genres multi-hot, standardised year, and the generic `features` of each item.

    Without `spec` the encoding is fitted on `items` (genre vocabulary, year mean and spread,
    feature levels) and returned as a JSON-able spec; with it, items added later are encoded
    exactly as the training catalogue was.
    """
    import pandas as pd

    fitting = spec is None
    genres = items["genres"] if "genres" in items else pd.Series([None] * len(items), dtype=object)
    years = (
        pd.to_numeric(items["year"], errors="coerce")
        if "year" in items
        else pd.Series(np.nan, index=items.index)
    )
    if fitting:
        counts = Counter(g.strip() for v in genres.dropna() for g in str(v).split("|") if g.strip())
        vocab = sorted(sorted(counts, key=lambda g: (-counts[g], g))[:MAX_GENRES])
        spec = {"genres": vocab, "year": _moments(years) if years.notna().any() else None}
    parts: list[np.ndarray] = []
    names: list[str] = []
    if spec["genres"]:
        column = {g: j for j, g in enumerate(spec["genres"])}
        hot = np.zeros((len(items), len(column)), np.float32)
        for i, v in enumerate(genres):
            if isinstance(v, str):
                hot[i, [column[g] for g in {g.strip() for g in v.split("|")} if g in column]] = 1.0
        parts.append(hot)
        names += [f"genre:{g}" for g in spec["genres"]]
    if spec["year"] is not None:
        year, known = _standardise(years, spec["year"])
        parts += [year[:, None], (~known)[:, None].astype(np.float32)]
        names += ["year", "year:missing"]
    extra, extra_names, spec["extra"] = featurize(
        items.get("features", pd.Series([None] * len(items))), None if fitting else spec["extra"]
    )
    parts.append(extra)
    names += extra_names
    return np.concatenate(parts, axis=1).astype(np.float32), names, spec


def featurize(
    features: pd.Series, spec: list[dict] | None = None
) -> tuple[np.ndarray, list[str], list[dict]]:
    """JSON feature dicts -> numbers: numeric keys standardised, text keys one-hot (the most
    frequent MAX_CATEGORIES levels). Returns the matrix, column names and the fitted spec;
    pass the spec back to encode new rows the same way."""
    import pandas as pd

    n = len(features)
    table = pd.DataFrame([f if isinstance(f, dict) else {} for f in features], index=range(n))
    if spec is None:
        spec = []
        for col in sorted(table.columns):
            series = table[col]
            numeric = pd.to_numeric(series, errors="coerce")
            if numeric.notna().sum() >= max(1, 0.9 * series.notna().sum()):
                kept = finite(series)
                spec.append(
                    {
                        "col": str(col),
                        "kind": "num",
                        "moments": _moments(kept),
                        "missing": bool(kept.isna().any()),
                    }
                )
            else:
                levels = sorted(series.astype("string").value_counts().index[:MAX_CATEGORIES])
                spec.append({"col": str(col), "kind": "cat", "levels": [str(v) for v in levels]})
    parts: list[np.ndarray] = []
    names: list[str] = []
    for f in spec:
        series = table[f["col"]] if f["col"] in table else pd.Series([None] * n, dtype=object)
        if f["kind"] == "num":
            values, known = _standardise(finite(series), f["moments"])
            parts.append(values[:, None])
            names.append(f["col"])
            if f["missing"]:
                parts.append((~known)[:, None].astype(np.float32))
                names.append(f"{f['col']}:missing")
        else:
            text = series.astype("string")
            for level in f["levels"]:
                parts.append((text == level).fillna(False).to_numpy(np.float32)[:, None])
                names.append(f"{f['col']}={level}")
    matrix = np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((n, 0), np.float32)
    return matrix, names, spec


def finite(series: pd.Series) -> pd.Series:
    """A feature column's numbers, NaN (missing) where a value is no finite number within
    ±MAX_VALUE: a store written by other means than ingest may hold inf."""
    import pandas as pd

    numeric = pd.to_numeric(series, errors="coerce")
    return numeric.where(numeric.abs() <= MAX_VALUE)


def _moments(values: pd.Series) -> list[float]:
    v = values.to_numpy(np.float64)
    return [float(np.nanmean(v)), float(np.nanstd(v))]


def _standardise(values: pd.Series, moments: list[float]) -> tuple[np.ndarray, np.ndarray]:
    known = values.notna().to_numpy()
    mu, sd = moments
    v = (values.to_numpy(np.float64) - mu) / (sd if sd > 0 else 1.0)
    return np.where(known, v, 0.0).astype(np.float32), known


def restrict(data: Interactions, users: np.ndarray) -> Interactions:
    """The same catalogue and users, keeping only the rows of `users` (others become empty)."""
    import scipy.sparse as sp

    keep = np.zeros(data.n_users, dtype=np.float32)
    keep[np.asarray(users, dtype=np.int64)] = 1.0
    rows = np.repeat(np.arange(data.n_users), np.diff(data.values.indptr))
    kept = keep[rows] > 0
    values = sp.csr_matrix(
        (
            data.values.data[kept],
            data.values.indices[kept],
            np.concatenate([[0], np.cumsum(keep * np.diff(data.values.indptr))]).astype(np.int64),
        ),
        shape=data.values.shape,
    )
    times = sp.csr_matrix(
        (data.times.data[kept], data.times.indices[kept], values.indptr), shape=data.times.shape
    )
    return replace(data, values=values, times=times)
