"""PROTOCOL.md: user splits, time-ordered support and query, full-catalogue ranking, metrics,
macro averages per seed, mean and standard deviation over seeds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recmeta import snapshot
from recmeta.errors import DataError, check_whole, distinct
from recmeta.learners import BASELINES, META_LEARNERS, Recommender, check_models, create, fit_order
from recmeta.learners.base import unseen_scores
from recmeta.metrics import graded_ndcg, ranking_metrics, rating_errors, top_n
from recmeta.routing import means, paired_noise, routing, served_by, validation_ndcgs
from recmeta.snapshot import Interactions
from recmeta.tasks import Batch, Sequences, make_batch, positive_threshold, split_users
from recmeta.training import fit
from recmeta.training.budget import TRAIN_BUDGET, Budget, check_max_time

SCORE_CHUNK = 512  # users scored at once
RATING_METRICS = ("mae", "rmse", "qndcg@3")
MAX_CUTOFF = 100_000  # N of ndcg@N: the longest list scored (`evaluate --cutoff`)
ROUTED = "auto"  # the row of what `recmeta recommend --model auto` would serve


@dataclass
class EvalConfig:
    models: tuple[str, ...] = (*META_LEARNERS, *BASELINES)
    shots: tuple[int, ...] = (0, 1, 3, 5, 10, 20)
    seeds: tuple[int, ...] = (0, 1, 2)
    split: str = "random"
    n: int = 10
    min_interactions: int = 20
    threshold: float | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_time: float | None = TRAIN_BUDGET  # seconds of fitting per seed, spent as `train` spends them

    def __post_init__(self) -> None:  # a name, size or seed given twice is evaluated once
        self.models, self.shots, self.seeds = (distinct(v) for v in (self.models, self.shots, self.seeds))


@dataclass
class EvalResult:
    config: dict[str, Any]
    summary: pd.DataFrame  # model, shots, metric, mean, std, users (per seed), skipped
    records: pd.DataFrame  # one row per (seed, model, shots, user)
    fit_seconds: dict[str, list[float]]
    seconds: float

    def metric_table(self, metric: str) -> pd.DataFrame:
        """models x shots of (mean, std) for one metric."""
        s = self.summary[self.summary.metric == metric]
        return s.pivot(index="model", columns="shots", values=["mean", "std"])


Progress = Callable[[dict[str, Any]], None]


def evaluate(data: Interactions, cfg: EvalConfig, progress: Progress | None = None) -> EvalResult:
    """Run the protocol over every seed, model and number of shots. With several models, the
    row "auto" is the routed system: per seed, the router that `recmeta train` would store
    is chosen on the validation users, and each test user gets the list of the model that
    it routes their number of support rows to."""
    check_config(cfg)
    start = time.perf_counter()
    threshold = positive_threshold(data, cfg.threshold)
    records, fit_seconds, routes, fitted = [], {m: [] for m in cfg.models}, {}, {}
    for seed in cfg.seeds:
        seq = Sequences.from_data(data, seed=seed)  # a log without timestamps: a seeded shuffle
        split = split_users(data, seed=seed, how=cfg.split, min_interactions=cfg.min_interactions)
        if len(split.test) == 0:
            eligible = int((data.counts_per_user() >= cfg.min_interactions).sum())
            raise DataError(
                f"{eligible} user(s) have at least {cfg.min_interactions} interactions: too few for "
                "10 % test users; lower --min-interactions (PROTOCOL.md uses 20) or add data"
            )
        train = snapshot.restrict(data, split.train)
        validation = snapshot.restrict(data, split.validation)
        batches = {
            k: make_batch(seq, split.test, k, data.n_items, threshold, max_query=None) for k in cfg.shots
        }
        cells, models = {}, {}
        budget = Budget(cfg.models, cfg.max_time)
        for kind in fit_order(cfg.models):
            if progress:
                progress({"seed": seed, "model": kind, "stage": "fit"})
            share = budget.share(kind)
            params = {
                "threshold": cfg.threshold,
                **({"max_time": share} if share else {}),
                **cfg.params.get(kind, {}),
            }
            model = create(kind, fitted=models, **params)
            t0 = time.perf_counter()
            models[kind] = fit(model, train, validation, seed=seed)
            fitted.setdefault(seed, {})[kind] = fitted_config(models[kind])
            fit_seconds[kind].append(time.perf_counter() - t0)
            for k, batch in batches.items():
                if progress:
                    progress({"seed": seed, "model": kind, "stage": "score", "shots": k})
                if k == 0 and model.needs_support:
                    continue
                cell = score_cell(model, batch, data, n=cfg.n)
                cells[kind, k] = cell.assign(seed=seed, model=kind, shots=k)
        if len(cfg.models) > 1:  # validated together: the ensemble reuses its members' scores
            found = validation_ndcgs(list(models.values()), validation, threshold)
            per_user = dict(zip(models, found, strict=True))
            route = routing({m: means(v) for m, v in per_user.items()}, paired_noise(per_user))
            routes[seed] = route  # bands, and the validation ndcg@10 they were chosen on
            for k in cfg.shots:
                cell = cells.get((served_by(route, k), k))
                if cell is not None:  # ranking only: recommend predicts no ratings
                    ranked = cell.drop(columns=list(RATING_METRICS), errors="ignore")
                    cells[ROUTED, k] = ranked.assign(model=ROUTED)
        records.extend(cells.values())
    recs = pd.concat(records, ignore_index=True) if records else pd.DataFrame()
    return EvalResult(
        config={
            **asdict(cfg),
            "threshold_used": threshold,
            "routes": routes,
            "fitted": fitted,
            "dataset": {
                "users": data.n_users,
                "items": data.n_items,
                "interactions": int(data.values.nnz),
                "implicit": data.implicit,
            },
        },
        summary=summarise(recs),
        records=recs,
        fit_seconds=fit_seconds,
        seconds=time.perf_counter() - start,
    )


def check_config(cfg: EvalConfig) -> None:
    """Every setting of `cfg` that enters the protocol, checked before anything is fitted."""
    check_models(cfg.models, cfg.params)
    check_max_time(cfg.max_time)
    check_whole("shots", list(cfg.shots), 0)
    check_whole("seeds", list(cfg.seeds), 0)
    check_whole("min_interactions", cfg.min_interactions, 1)
    check_whole("n", cfg.n, 1)
    if cfg.n > MAX_CUTOFF:
        raise DataError(f"the cutoff N of ndcg@N is at most {MAX_CUTOFF:,}, not {cfg.n:,}")


def fitted_config(model: Recommender) -> dict[str, Any]:
    """What a fit settled on, for report.json: a baseline's tuned parameters (ALS factors,
    regularization, alpha), a meta-learner's hyper-parameters and best epoch."""
    keep = {k: v for k, v in model.params.items() if k not in ("shapes", "member_configs")}
    if hasattr(model, "best_epoch_"):
        keep["best_epoch"] = model.best_epoch_
    return json.loads(json.dumps(keep, default=str))


def score_cell(model: Recommender, batch: Batch, data: Interactions, n: int) -> pd.DataFrame:
    """Per-user metrics of one model at one number of shots; users whose query holds no
    positive row are kept with `skipped=True` and no metric."""
    has_pos = batch.query_pos.sum(1) > 0
    frames = []
    for lo in range(0, len(batch.users), SCORE_CHUNK):
        part = batch.rows(slice(lo, lo + SCORE_CHUNK))
        frames.append(_score_chunk(model, part, data, n))
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "user", data.user_ids[batch.users])
    out["skipped"] = ~has_pos
    out.loc[~has_pos, [c for c in out.columns if "@" in c or c in ("mae", "rmse")]] = np.nan
    return out


def _score_chunk(model: Recommender, batch: Batch, data: Interactions, n: int) -> pd.DataFrame:
    visible = batch.support_only()  # the model never sees query rows
    top = top_n(unseen_scores(model, batch), n)
    out = ranking_metrics(top, batch.query_pos > 0, n)
    if not data.implicit and model.predicts_ratings:
        pred = model.predict(visible, batch.query_items)
        out.update(rating_errors(model.rating(pred), batch.query_values, batch.query_mask))
        # the query ranks by the predictions themselves: stars would tie
        out["qndcg@3"] = graded_ndcg(pred, batch.query_values, batch.query_mask, 3)
    out["support"] = batch.support_mask.sum(1)
    out["top"] = [" ".join(map(str, data.item_ids[t])) for t in top]
    return pd.DataFrame(out)


METRIC_ORDER = ("ndcg", "recall", "hr", "mrr", "mae", "rmse", "qndcg@3")


def summarise(records: pd.DataFrame) -> pd.DataFrame:
    """Macro average per (model, shots, seed), then mean and std over seeds; `users` and
    `skipped` are the per-seed counts behind each cell (mean over seeds)."""
    columns = ["model", "shots", "metric", "mean", "std", "users", "skipped"]
    if records.empty:
        return pd.DataFrame(columns=columns)
    keys = ["model", "shots", "seed"]
    metrics = [c for c in records.columns if "@" in c or c in ("mae", "rmse")]
    per_seed = records[~records.skipped].groupby(keys)[metrics].mean()
    counts = records.assign(used=~records.skipped).groupby(keys)[["used", "skipped"]].sum()
    counts = counts.groupby(level=[0, 1]).mean()
    long = per_seed.reset_index().melt(id_vars=keys, var_name="metric").dropna()
    out = (
        long.groupby(["model", "shots", "metric"])["value"]
        .agg(mean="mean", std=lambda v: float(np.std(v)))
        .reset_index()
    )
    out["users"] = [round(counts.loc[(m, k), "used"]) for m, k in zip(out.model, out.shots, strict=True)]
    out["skipped"] = [round(counts.loc[(m, k), "skipped"]) for m, k in zip(out.model, out.shots, strict=True)]
    return out[columns]
