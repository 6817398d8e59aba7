"""PROTOCOL.md's continual protocol, its data side: the log ordered and cut into periods by
time, held-out users per period, the users scored on a period (supports, the new-user
rule), each stage's trained rows and catalogue, and full-catalogue scoring. The
strategies and their figures are in `continual_run`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from recmeta import snapshot
from recmeta.errors import DataError, distinct
from recmeta.learners import META_LEARNERS
from recmeta.metrics import ranking_metrics, top_n
from recmeta.snapshot import Interactions
from recmeta.tasks import history_batch, positive_threshold
from recmeta.training.replay import DEFAULT_SIZE

STRATEGIES = ("retrain", "finetune", "replay", "window")
RECENT = "recent-popular"  # popularity of the stage's own period: the bar to clear
POPULAR = "popular"  # popularity of every trained row: the drift control
WINDOW = 3  # periods a window strategy learns from
NEW_USER_SUPPORT = 5  # a new user's support: the first min(5, n - 1) rows of the period
HOLDOUT = 0.2  # share of a period's active users held out
VAL_SHARE = 0.1  # users whose trained rows serve early stopping
Progress = Callable[[dict[str, Any]], None]


@dataclass
class ContinualConfig:
    models: tuple[str, ...] = META_LEARNERS
    periods: int = 10
    first_stage: int = 3
    last_stage: int | None = None  # default periods - 2; tuning runs stop at first_stage - 1
    seeds: tuple[int, ...] = (0, 1, 2)
    replay: int = DEFAULT_SIZE
    threshold: float | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a model or seed given twice is run once
        self.models, self.seeds = distinct(self.models), distinct(self.seeds)

    @property
    def last(self) -> int:
        return self.periods - 2 if self.last_stage is None else self.last_stage


@dataclass
class Log:
    """Every row in protocol order (timestamp, user, item; ids as the log spells them),
    as dense indices of `data`, with its period."""

    data: Interactions
    user: np.ndarray
    item: np.ndarray
    value: np.ndarray
    time: np.ndarray
    period: np.ndarray
    positive: np.ndarray

    @property
    def n_periods(self) -> int:
        return int(self.period.max()) + 1 if len(self.period) else 0


def cut_periods(times: np.ndarray, periods: int) -> np.ndarray:
    """Period of each row of a time-ordered log: cut k after row round(k N / P), moved past
    rows that share the timestamp of the row before the cut."""
    n = len(times)
    cuts = []
    for k in range(1, periods):
        c = round(k * n / periods)
        while 0 < c < n and times[c] == times[c - 1]:
            c += 1
        cuts.append(c)
    return np.searchsorted(np.array(cuts, dtype=np.int64), np.arange(n), side="right")


def build_log(
    data: Interactions,
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    times: np.ndarray,
    periods: int,
    threshold: float | None = None,
) -> Log:
    """Order the rows (dense `users`, `items` of `data`) and cut them into periods."""
    if len(times) == 0:
        raise DataError("the store holds no interactions; run `recmeta ingest` first")
    if np.all(times == times[0]):
        raise DataError(
            "the log has no timestamps (or one for every row): the continual protocol cuts the "
            "log into periods by time and cannot run on it"
        )
    if periods < 3:
        raise DataError(f"--periods must be 3 or more, not {periods}")
    if periods > len(times):  # before the cut, whose loop runs once a period
        raise DataError(f"--periods {periods:,}: more periods than the log's {len(times):,} rows")
    order = np.lexsort((data.item_ids[items], data.user_ids[users], times))
    users, items, values, times = users[order], items[order], values[order], times[order]
    thr = positive_threshold(data, threshold)
    return Log(data, users, items, values, times, cut_periods(times, periods), values >= thr)


def held_out_users(log: Log, seed: int) -> list[np.ndarray]:
    """H_i for every period: round(0.2 |A_i|) of A_i, the users with a positive row in
    period i (ordered by their id as the log spells it), drawn by a generator seeded with
    (seed, i)."""
    out = []
    for i in range(log.n_periods):
        active = np.unique(log.user[(log.period == i) & log.positive])
        active = active[np.argsort(log.data.user_ids[active], kind="stable")]
        n = round(HOLDOUT * len(active))
        out.append(np.sort(np.random.default_rng([seed, i]).choice(active, n, replace=False)))
    return out


@dataclass
class Group:
    """Users scored on one period's rows: supports (dense item ids of `data`), relevant
    items, and which are new users; users with no positive query row are already dropped
    (`skipped` counts them)."""

    users: np.ndarray
    supports: list[np.ndarray]  # row indices into the log, time ordered
    relevant: list[np.ndarray]
    new: np.ndarray
    skipped: int


def make_group(log: Log, users: np.ndarray, p: int) -> Group:
    """Support: every earlier row of the user (held-out rows included); a user with none is
    new: support = the first min(5, n - 1) of their period-p rows, query = the rest."""
    kept_users, supports, relevant, new, skipped = [], [], [], [], 0
    rows_of = _rows_by_user(log, users)
    for u in users:
        rows = rows_of.get(int(u), np.zeros(0, np.int64))
        before, now = rows[log.period[rows] < p], rows[log.period[rows] == p]
        is_new = len(before) == 0
        if is_new:
            k = min(NEW_USER_SUPPORT, len(now) - 1)
            before, now = now[:k], now[k:]
        rel = np.unique(log.item[now[log.positive[now]]])
        if len(rel) == 0:
            skipped += 1
            continue
        kept_users.append(u)
        supports.append(before)
        relevant.append(rel)
        new.append(is_new)
    return Group(np.array(kept_users, np.int64), supports, relevant, np.array(new, bool), skipped)


def _rows_by_user(log: Log, users: np.ndarray) -> dict[int, np.ndarray]:
    pick = np.flatnonzero(np.isin(log.user, users))
    order = np.argsort(log.user[pick], kind="stable")  # stays time ordered within a user
    rows = pick[order]
    bounds = np.flatnonzero(np.diff(log.user[rows])) + 1
    return {int(log.user[r[0]]): r for r in np.split(rows, bounds) if len(r)}


# ---------------------------------------------------------------------- a stage's data


class Stages:
    """Views of the log for one seed: trained rows, catalogues and training data by stage."""

    def __init__(self, log: Log, seed: int, threshold: float) -> None:
        self.log, self.seed, self.threshold = log, seed, threshold
        self.held = held_out_users(log, seed)
        held_row = np.zeros(len(log.user), bool)
        for i, h in enumerate(self.held):
            held_row |= (log.period == i) & np.isin(log.user, h)
        self.trained = ~held_row
        n_users = log.data.n_users
        self.val_user = np.random.default_rng([seed, 7919]).random(n_users) < VAL_SHARE
        self.train_users = np.flatnonzero(~self.val_user)
        self.val_row = self.val_user[log.user]

    def catalogue(self, t: int) -> np.ndarray:
        """Items with a trained row in periods 0..t, in order of first appearance (so each
        stage's catalogue extends the one before)."""
        rows = np.flatnonzero(self.trained & (self.log.period <= t))
        items, first = np.unique(self.log.item[rows], return_index=True)
        return items[np.argsort(first, kind="stable")]

    def view(self, rows: np.ndarray, catalogue: np.ndarray) -> Interactions:
        """The log's `rows` (a mask) as `Interactions` over `catalogue` and every user."""
        log, data = self.log, self.log.data
        pos = np.full(data.n_items, -1, np.int64)
        pos[catalogue] = np.arange(len(catalogue))
        values, times = snapshot.matrices(
            log.user[rows],
            pos[log.item[rows]],
            log.value[rows],
            log.time[rows],
            (data.n_users, len(catalogue)),
            data.implicit,
        )
        return replace(
            data,
            item_ids=data.item_ids[catalogue],
            values=values,
            times=times,
            item_features=data.item_features[catalogue],
            titles=[data.titles[c] for c in catalogue] if data.titles else [],
        )

    def periods(self, lo: int, hi: int) -> np.ndarray:
        """Mask of the trained rows of periods lo..hi."""
        return self.trained & (self.log.period >= lo) & (self.log.period <= hi)

    def popularity(self, rows: np.ndarray, catalogue: np.ndarray) -> np.ndarray:
        """Positive counts of `rows` over `catalogue`."""
        pos = np.full(self.log.data.n_items, -1, np.int64)
        pos[catalogue] = np.arange(len(catalogue))
        liked = rows & self.log.positive
        return np.bincount(pos[self.log.item[liked]], minlength=len(catalogue)).astype(np.float64)


# ---------------------------------------------------------------------- scoring


def score_group(
    stages: Stages,
    group: Group,
    catalogue: np.ndarray,
    popularity: np.ndarray,
    model=None,
    scores: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-user ndcg@10 and recall@20 of one model (or of fixed `scores` over the catalogue)
    on a group; users with no positive support row are ranked by `popularity`. Candidates:
    the catalogue minus the support; relevant: every positive query item."""
    log = stages.log
    n_users = len(group.users)
    if n_users == 0:
        return {"ndcg@10": np.zeros(0), "recall@20": np.zeros(0), "new": np.zeros(0, bool)}
    pos = np.full(log.data.n_items, -1, np.int64)
    pos[catalogue] = np.arange(len(catalogue))
    items, values, times, has_pos = [], [], [], np.zeros(n_users, bool)
    for r, rows in enumerate(group.supports):
        known = rows[pos[log.item[rows]] >= 0]
        items.append(pos[log.item[known]])
        values.append(log.value[known])
        times.append(log.time[known])
        has_pos[r] = bool(log.positive[rows].any())
    if model is not None:
        batch = history_batch(items, values, times)
        out = model.score(batch, log.data.user_features[group.users]).astype(np.float64)
    else:
        out = np.broadcast_to(scores, (n_users, len(catalogue))).astype(np.float64)
    out = np.where(has_pos[:, None], out, popularity[None, :])
    for r, it in enumerate(items):
        out[r, it] = -np.inf
    top = catalogue[top_n(out, 20)]
    relevant = np.zeros((n_users, log.data.n_items), bool)
    for r, rel in enumerate(group.relevant):
        relevant[r, rel] = True
    return {
        "ndcg@10": ranking_metrics(top, relevant, 10)["ndcg@10"],
        "recall@20": ranking_metrics(top, relevant, 20)["recall@20"],
        "new": group.new,
    }
