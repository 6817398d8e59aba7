"""The strategies of the continual protocol run over the stages of one seed (retrain,
finetune, replay and window for every meta-learner and their ensemble; recent and overall
popularity), and the figures PROTOCOL.md asks of them: next-period accuracy, the transfer
matrix R with ACC, BWT, forgetting and FWT, and cost.

Every strategy fits through `recmeta.training` exactly as `recmeta train` and
`recmeta train --continue` do: a stable 10 % of users (a seeded draw) are the validation
users whose trained rows pick epochs, and never enter a gradient.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from recmeta.errors import DataError, check_whole
from recmeta.evaluate.continual import (
    POPULAR,
    RECENT,
    STRATEGIES,
    WINDOW,
    ContinualConfig,
    Group,
    Log,
    Progress,
    Stages,
    make_group,
    score_group,
)
from recmeta.learners import META_LEARNERS, create
from recmeta.learners.ensemble import MEMBERS, Ensemble
from recmeta.tasks import positive_threshold
from recmeta.training import Reservoir, fit_detailed
from recmeta.training.continual import grow, item_index, update

# ---------------------------------------------------------------------- one seed


@dataclass
class Track:
    """One (model, strategy) over the stages of one seed."""

    model: str
    strategy: str
    next: dict[int, dict[str, float]] = field(default_factory=dict)  # stage -> figures
    R: dict[int, dict[int, float]] = field(default_factory=dict)  # stage -> period -> ndcg@10
    seconds: dict[int, float] = field(default_factory=dict)
    examples: dict[int, int] = field(default_factory=dict)
    steps: dict[int, int] = field(default_factory=dict)


def run_seed(log: Log, cfg: ContinualConfig, seed: int, progress: Progress | None = None) -> list[Track]:
    """Every strategy of every model over stages first_stage..last, for one seed."""
    st = Stages(log, seed, positive_threshold(log.data, cfg.threshold))
    b, last = cfg.first_stage, cfg.last
    members = [m for m in MEMBERS if m in cfg.models or "ensemble" in cfg.models]
    groups_next = {p: make_group(log, _next_users(log, st, p), p) for p in range(b + 1, last + 2)}
    groups_held = {p: make_group(log, st.held[p], p) for p in range(b, last + 2)}
    tracks = {(m, s): Track(m, s) for m in [*members, "ensemble"] for s in STRATEGIES}
    tracks.update({("-", s): Track("-", s) for s in (RECENT, POPULAR)})
    models: dict[str, dict[str, Any]] = {s: {} for s in STRATEGIES}  # strategy -> member -> model
    optim: dict[str, dict[str, dict]] = {s: {} for s in STRATEGIES}
    reservoir = Reservoir(cfg.replay, seed=seed)
    for t in range(b, last + 1):
        cat = st.catalogue(t)
        upkeep = 0.0
        if t == b:  # the replay memory starts with the first model's rows ...
            r0 = time.perf_counter()
            reservoir.offer(_stream(st, st.periods(0, b)))
            upkeep = time.perf_counter() - r0
        for kind in members:
            if progress:
                progress({"seed": seed, "stage": t, "model": kind})
            if t == b:  # one fit from scratch, billed to every strategy
                done, seconds = _from_scratch(st, cfg, kind, st.periods(0, b), cat, seed)
                for s in STRATEGIES:
                    models[s][kind] = done.model if s == "retrain" else copy.deepcopy(done.model)
                    optim[s][kind] = dict(done.optimizer)
                    _bill(tracks, kind, s, t, seconds + (upkeep if s == "replay" else 0.0), done.outcome)
                continue
            for s, lo in (("retrain", 0), ("window", max(0, t - WINDOW + 1))):
                done, seconds = _from_scratch(st, cfg, kind, st.periods(lo, t), cat, seed)
                models[s][kind] = done.model
                _bill(tracks, kind, s, t, seconds, done.outcome)
            for s in ("finetune", "replay"):
                t0 = time.perf_counter()
                model = models[s][kind]
                index = item_index(log.data.item_ids[cat[: model.n_items]], log.data.item_ids[cat])
                opt = grow(model, optim[s][kind], index, st.view(st.periods(t, t), cat))
                replay = None
                if s == "replay":
                    replay = np.intersect1d(np.unique(reservoir.sample.astype(np.int64)), st.train_users)
                _, outcome, optim[s][kind] = update(
                    model,
                    st.view(st.periods(t, t) & ~st.val_row, cat),
                    st.view(st.periods(0, t - 1) & ~st.val_row, cat),
                    st.view(st.periods(0, t) & st.val_row, cat),
                    train_users=st.train_users,
                    replay=replay,
                    optimizer=opt,
                    seed=seed,
                )
                extra = upkeep if s == "replay" else 0.0
                _bill(tracks, kind, s, t, time.perf_counter() - t0 + extra, outcome)
        if t > b:  # ... and takes each stage's rows after the stage learned them
            r0 = time.perf_counter()
            reservoir.offer(_stream(st, st.periods(t, t)))
            for kind in members:
                tracks[kind, "replay"].seconds[t] += time.perf_counter() - r0
        for track in [tracks["ensemble", s] for s in STRATEGIES]:  # the members' sums
            track.seconds[t] = sum(tracks[m, track.strategy].seconds[t] for m in MEMBERS if m in members)
            track.examples[t] = sum(tracks[m, track.strategy].examples[t] for m in MEMBERS if m in members)
            track.steps[t] = sum(tracks[m, track.strategy].steps[t] for m in MEMBERS if m in members)
        _evaluate_stage(st, t, b, cat, models, tracks, groups_next, groups_held, members)
    return [tr for (m, s), tr in tracks.items() if m in cfg.models or m == "-"]


def _from_scratch(st: Stages, cfg: ContinualConfig, kind: str, rows: np.ndarray, cat: np.ndarray, seed: int):
    """A model of `kind` fitted from nothing on the trained `rows` (validation users' rows
    pick the epoch); returns it and the seconds it took, data building included."""
    t0 = time.perf_counter()
    train, validation = st.view(rows & ~st.val_row, cat), st.view(rows & st.val_row, cat)
    model = create(kind, **{"threshold": st.threshold, **cfg.params.get(kind, {})})
    done = fit_detailed(model, train, validation, seed=seed)
    return done, time.perf_counter() - t0


def _evaluate_stage(st, t, b, cat, models, tracks, groups_next, groups_held, members) -> None:
    """Next-period figures and row t of R for every strategy at stage t."""
    t0 = time.perf_counter()
    pop_all = st.popularity(st.periods(0, t), cat)
    recent = st.popularity(st.periods(t, t), cat)
    popularity_seconds = time.perf_counter() - t0
    scorers: dict[tuple[str, str], dict[str, Any]] = {}
    for s in STRATEGIES:
        for kind in members:
            scorers[kind, s] = {"model": models[s][kind]}
        if len(members) == len(MEMBERS):
            scorers["ensemble", s] = {"model": Ensemble(members=list(MEMBERS)).assemble(models[s])}
    for name, counts, lo in ((RECENT, recent, t), (POPULAR, pop_all, 0)):
        scorers["-", name] = {"scores": counts}
        track = tracks["-", name]
        track.seconds[t], track.examples[t], track.steps[t] = (
            popularity_seconds,
            int(st.periods(lo, t).sum()),
            0,
        )
    for key, how in scorers.items():
        track = tracks[key]
        nxt = score_group(st, groups_next[t + 1], cat, pop_all, **how)
        track.next[t] = _next_figures(nxt, groups_next[t + 1])
        track.R[t] = {
            i: _mean(score_group(st, groups_held[i], cat, pop_all, **how)["ndcg@10"]) for i in range(b, t + 2)
        }


def _next_users(log: Log, st: Stages, p: int) -> np.ndarray:
    active = np.unique(log.user[(log.period == p) & log.positive])
    return np.setdiff1d(active, st.held[p])


def _stream(st: Stages, rows: np.ndarray) -> np.ndarray:
    """The dense user of every trained training-user row in `rows`, in time order."""
    return st.log.user[rows & ~st.val_row]


def _bill(tracks, kind: str, strategy: str, t: int, seconds: float, outcome) -> None:
    track = tracks[kind, strategy]
    track.seconds[t] = seconds
    track.examples[t] = outcome.tasks if outcome else 0
    track.steps[t] = outcome.steps if outcome else 0


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _next_figures(scored: dict[str, np.ndarray], group: Group) -> dict[str, float]:
    new = scored["new"]
    return {
        "ndcg@10": _mean(scored["ndcg@10"]),
        "recall@20": _mean(scored["recall@20"]),
        "new_user_ndcg@10": _mean(scored["ndcg@10"][new]),
        "new_user_recall@20": _mean(scored["recall@20"][new]),
        "users": len(new),
        "new_users": int(new.sum()),
        "skipped": group.skipped,
    }


# ---------------------------------------------------------------------- figures and the run

FIELDS = (
    "next_ndcg@10",
    "new_user_ndcg@10",
    "next_recall@20",
    "new_user_recall@20",
    "acc",
    "bwt",
    "fwt",
    "forgetting",
    "seconds",
    "cost_ratio",
    "cost_ratio_after_first",
    "examples",
    "steps",
)


def transfer(R: dict[int, dict[int, float]], recent: dict[int, dict[int, float]], b: int, T: int) -> dict:
    """ACC, BWT, forgetting and FWT from the transfer matrix R[t][i] (PROTOCOL.md), with
    `recent` the recent-popularity matrix that FWT is measured against."""
    nan = float("nan")

    def mean(values: list[float]) -> float:
        values = [v for v in values if not np.isnan(v)]
        return float(np.mean(values)) if values else nan

    return {
        "acc": mean([R[T][i] for i in range(b, T + 2)]),
        "bwt": mean([R[T][i] - R[i][i] for i in range(b, T)]),
        "forgetting": mean([max(R[j][i] for j in range(i, T)) - R[T][i] for i in range(b, T)]),
        "fwt": mean([R[i - 1][i] - recent[i - 1][i] for i in range(b + 1, T + 2)]),
    }


def track_record(track: Track, retrain: Track | None, recent: Track, seed: int, b: int, T: int) -> dict:
    """One report row: the figures of one (model, strategy, seed)."""
    stages = sorted(track.next)

    def over_stages(key: str) -> float:
        values = [track.next[t][key] for t in stages if not np.isnan(track.next[t][key])]
        return float(np.mean(values)) if values else float("nan")

    seconds = sum(track.seconds.values())
    after = sum(v for t, v in track.seconds.items() if t != b)
    ratio = after_ratio = None
    if retrain is not None:
        ratio = seconds / max(sum(retrain.seconds.values()), 1e-9)
        after_ratio = after / max(sum(v for t, v in retrain.seconds.items() if t != b), 1e-9)
    return {
        "model": track.model,
        "strategy": track.strategy,
        "seed": seed,
        "next_ndcg@10": over_stages("ndcg@10"),
        "new_user_ndcg@10": over_stages("new_user_ndcg@10"),
        "next_recall@20": over_stages("recall@20"),
        "new_user_recall@20": over_stages("new_user_recall@20"),
        **transfer(track.R, recent.R, b, T),
        "seconds": seconds,
        "cost_ratio": ratio,
        "cost_ratio_after_first": after_ratio,
        "examples": int(sum(track.examples.values())),
        "steps": int(sum(track.steps.values())),
        "stages": [
            {
                "stage": t,
                **track.next[t],
                "seconds": track.seconds.get(t, 0.0),
                "examples": track.examples.get(t, 0),
                "steps": track.steps.get(t, 0),
            }
            for t in stages
        ],
        "R": {str(t): {str(i): v for i, v in row.items()} for t, row in track.R.items()},
    }


def summarise(records: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds of every field, and the mean R."""
    out = []
    keys = list(dict.fromkeys((r["model"], r["strategy"]) for r in records))
    for model, strategy in keys:
        rows = [r for r in records if r["model"] == model and r["strategy"] == strategy]
        row: dict[str, Any] = {"model": model, "strategy": strategy, "seeds": len(rows)}
        for f in FIELDS:
            values = [r[f] for r in rows if r[f] is not None and not np.isnan(r[f])]
            row[f] = float(np.mean(values)) if values else None
            row[f"{f}_std"] = float(np.std(values)) if values else None
        row["R"] = {
            t: {i: float(np.nanmean([r["R"][t][i] for r in rows])) for i in cols}
            for t, cols in rows[0]["R"].items()
        }
        row["next_ndcg@10_by_stage"] = {
            str(s["stage"]): float(
                np.nanmean([x["ndcg@10"] for r in rows for x in r["stages"] if x["stage"] == s["stage"]])
            )
            for s in rows[0]["stages"]
        }
        out.append(row)
    return out


@dataclass
class ContinualResult:
    config: dict[str, Any]
    strategies: list[dict]
    summary: list[dict]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


MIN_PERIOD_ROWS = 50  # rows a period needs: fewer leave a fine-tuning stage nothing to learn from


def evaluate_continual(log: Log, cfg: ContinualConfig, progress: Progress | None = None) -> ContinualResult:
    """Run the continual protocol over every seed."""
    unknown = [m for m in cfg.models if m not in META_LEARNERS]
    if unknown:
        raise DataError(
            f"--continual compares strategies of the meta-learners ({', '.join(META_LEARNERS)}), not "
            f"{', '.join(unknown)}; recent and overall popularity are always reported"
        )
    check_whole("seeds", list(cfg.seeds), 0)
    rows = len(log.period)
    if rows < MIN_PERIOD_ROWS * log.n_periods:
        raise DataError(
            f"--periods {log.n_periods} cuts the log's {rows:,} rows into periods of about "
            f"{rows // log.n_periods:,}; each needs {MIN_PERIOD_ROWS} or more to learn from: pass "
            f"--periods {max(rows // MIN_PERIOD_ROWS, 3)} or fewer"
            + (" (or ingest more rows)" if rows < 3 * MIN_PERIOD_ROWS else "")
        )
    b, T = cfg.first_stage, cfg.last
    if not 0 <= b <= T <= log.n_periods - 2:
        raise DataError(
            f"stages run from --first-stage {b} to {T}: both must lie in 0..{log.n_periods - 2} "
            f"for {log.n_periods} periods (the last stage is scored on the period after it); pass "
            f"--first-stage and --last-stage within it, or more --periods"
        )
    start = time.perf_counter()
    records = []
    for seed in cfg.seeds:
        tracks = run_seed(log, cfg, seed, progress)
        by = {(tr.model, tr.strategy): tr for tr in tracks}
        recent = by["-", RECENT]
        for tr in tracks:
            retrain = by.get((tr.model, "retrain")) if tr.model != "-" else None
            records.append(track_record(tr, retrain, recent, seed, b, T))
    for r in records:
        if r["model"] == "-":
            r["model"] = "none"
    return ContinualResult(
        config={
            **asdict(cfg),
            "last_stage": T,
            "dataset": {
                "users": log.data.n_users,
                "items": log.data.n_items,
                "interactions": len(log.user),
                "implicit": log.data.implicit,
                "period_rows": np.bincount(log.period).tolist(),
            },
            "protocol": "PROTOCOL.md, continual protocol",
        },
        strategies=records,
        summary=summarise(records),
        seconds=time.perf_counter() - start,
    )
