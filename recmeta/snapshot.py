"""The store as matrices: a users x items CSR, id maps both ways, times and feature arrays.

Built in one pass from SQL into pandas/scipy. Repeated events of one (user, item) pair
fold into one entry: the latest value (explicit logs) or the summed count (implicit logs),
at the time of the first event.

pandas and scipy are imported by the functions that build matrices, not with the module:
`recmeta recommend` imports this module but builds no snapshot, and must start in well
under 3 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine

from recmeta.store import repository as repo
from recmeta.store import session_scope
from recmeta.store.models import Item, User

if TYPE_CHECKING:
    import pandas as pd
    import scipy.sparse as sp

MAX_CATEGORIES = 32  # one-hot levels kept per categorical feature; the rest share 'other'


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


def matrices(
    u: np.ndarray, i: np.ndarray, v: np.ndarray, t: np.ndarray, shape: tuple[int, int], implicit: bool
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(values, times) CSRs of rows (u, i, v, t); repeats of a (user, item) pair fold into
    the summed count (implicit) or the latest value (explicit), at the first event's time.

    Built straight from one sort of (user, item, time) in numpy: no frame, no COO, so the
    working memory is a few arrays of the log's length (it was several frames of it)."""
    import scipy.sparse as sp

    n_users, n_items = shape
    key = np.asarray(u, np.int64) * n_items + np.asarray(i, np.int64)
    order = np.lexsort((np.asarray(t, np.int64), key))  # stable: equal times keep log order
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.empty(0, np.int64)
    ends = np.r_[starts[1:], len(key)] - 1 if len(key) else starts
    v = np.asarray(v, np.float32)[order]
    values = np.add.reduceat(v, starts).astype(np.float32) if implicit and len(v) else v[ends]
    del v
    times = np.asarray(t, np.int64)[order][starts]
    del order
    pairs = key[starts]
    del key
    rows = pairs // n_items
    indices = (pairs % n_items).astype(np.int32)
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    return (
        sp.csr_matrix((values, indices, indptr), shape=shape),
        sp.csr_matrix((times, indices.copy(), indptr.copy()), shape=shape),
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
    import pandas as pd

    users = users.sort_values("id").reset_index(drop=True)
    items = items.sort_values("id").reset_index(drop=True)
    rows, cols = dense_rows(log, users, items)
    values, times = matrices(
        rows, cols, log["value"].to_numpy(), log["timestamp"].to_numpy(), (len(users), len(items)), implicit
    )
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


def load(engine: Engine, *, spec: dict | None = None) -> Interactions:
    """Load the whole store in one pass (three SELECTs, no per-row queries)."""
    return _load(engine, None, spec)[0]


def load_rows(engine: Engine) -> tuple[Interactions, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The store and every interaction row as it was ingested (no folding of repeats):
    dense user, dense item, value and timestamp arrays."""
    with session_scope(engine) as session:
        log = repo.interactions_frame(session)
        users = repo.entities_frame(session, User)
        items = repo.entities_frame(session, Item)
        implicit = repo.log_is_implicit(session)
        mark = repo.watermark(session)
    data = from_frames(log, users, items, implicit=implicit, watermark=mark)
    rows, cols = dense_rows(log, users, items)
    return data, rows, cols, log["value"].to_numpy(np.float32), log["timestamp"].to_numpy(np.int64)


def load_since(
    engine: Engine, after_id: int, *, spec: dict | None = None
) -> tuple[Interactions, Interactions, Interactions]:
    """(the whole store, its rows up to interaction row `after_id`, the rows after it):
    three views of the same users and items, the last being what a checkpoint whose
    watermark is `after_id` has not seen."""
    data, old, new = _load(engine, after_id, spec)
    return data, old, new  # type: ignore[return-value]  (both views exist when after_id is given)


def _load(
    engine: Engine, after_id: int | None, spec: dict | None
) -> tuple[Interactions, Interactions | None, Interactions | None]:
    with session_scope(engine) as session:
        mark = repo.watermark(session)
        log = repo.interactions_frame(session, with_ids=after_id is not None, upto=mark["max_interaction_id"])
        users = repo.entities_frame(session, User)
        items = repo.entities_frame(session, Item)
        implicit = repo.log_is_implicit(session)
    data = from_frames(log, users, items, implicit=implicit, watermark=mark, spec=spec)
    if after_id is None:
        return data, None, None
    rows, cols = dense_rows(log, users, items)
    views = []
    for keep in (log["id"].to_numpy() <= after_id, log["id"].to_numpy() > after_id):
        values, times = matrices(
            rows[keep],
            cols[keep],
            log["value"].to_numpy()[keep],
            log["timestamp"].to_numpy()[keep],
            data.values.shape,
            implicit,
        )
        views.append(replace(data, values=values, times=times))
    return data, views[0], views[1]


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
        vocab = sorted({g.strip() for v in genres.dropna() for g in str(v).split("|") if g.strip()})
        spec = {"genres": vocab, "year": _moments(years) if years.notna().any() else None}
    parts: list[np.ndarray] = []
    names: list[str] = []
    if spec["genres"]:
        sets = [set(str(v).split("|")) if isinstance(v, str) else set() for v in genres]
        parts.append(
            np.array([[g in row for g in spec["genres"]] for row in sets], np.float32).reshape(len(items), -1)
        )
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
                spec.append(
                    {
                        "col": str(col),
                        "kind": "num",
                        "moments": _moments(numeric),
                        "missing": bool(numeric.isna().any()),
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
            values, known = _standardise(pd.to_numeric(series, errors="coerce"), f["moments"])
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
