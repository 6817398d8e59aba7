"""The evaluation report: a Rich table, a JSON file with every number, PNG curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from recmeta.evaluate.protocol import ROUTED, EvalResult


def grid(summary: pd.DataFrame, models: list[str], metric: str) -> tuple[list[int], list[tuple[str, list]]]:
    """(shots, [(model, [(text, is_best) or None per shot])]) for one metric: mean ± std over
    seeds, the best model of each column flagged (lowest for errors, highest otherwise; the
    routed row repeats one of the models' figures and is never flagged)."""
    s = summary[summary.metric == metric]
    shots = [int(k) for k in sorted(s.shots.unique())]
    models = [*models, ROUTED] if ROUTED in set(s.model) and ROUTED not in models else models
    own = s[s.model != ROUTED]
    pick = own.groupby("shots")["mean"]
    best = own.loc[pick.idxmin() if metric in ("mae", "rmse") else pick.idxmax()]
    best_of = dict(zip(best.shots, best.model, strict=True))
    rows = []
    for model in models:
        cells = []
        for k in shots:
            cell = s[(s.model == model) & (s.shots == k)]
            cells.append(
                None
                if cell.empty
                else (f"{cell['mean'].iloc[0]:.3f} ± {cell['std'].iloc[0]:.3f}", best_of.get(k) == model)
            )
        if any(cells):
            rows.append((model, cells))
    return shots, rows


def table(result: EvalResult, metric: str = "ndcg@10") -> Table:
    """Models as rows, shots as columns, mean ± std; the best of each column in bold."""
    cfg = result.config
    shots, rows = grid(result.summary, cfg["models"], metric)
    t = Table(
        title=f"{metric} (mean ± std over seeds {list(cfg['seeds'])}, {cfg['split']} split)",
        caption=_caption(result.summary) + _routes(result.config),
    )
    t.add_column("model")
    for k in shots:
        t.add_column(f"K={k}", justify="right")
    for model, cells in rows:
        t.add_row(model, *["-" if c is None else f"[bold green]{c[0]}[/]" if c[1] else c[0] for c in cells])
    return t


def markdown(summary: pd.DataFrame, models: list[str], metric: str) -> str:
    """The same table in Markdown (best in bold), with the users behind each column."""
    shots, rows = grid(summary, models, metric)
    lines = [f"| {metric} | " + " | ".join(f"K={k}" for k in shots) + " |", "|---|" + "---:|" * len(shots)]
    for model, cells in rows:
        lines.append(
            f"| {model} | "
            + " | ".join("-" if c is None else f"**{c[0]}**" if c[1] else c[0] for c in cells)
            + " |"
        )
    counts = summary[summary.metric == metric].groupby("shots")[["users", "skipped"]].max()
    lines.append(
        "| users (skipped) | "
        + " | ".join(f"{int(r.users)} ({int(r.skipped)})" for _, r in counts.iterrows())
        + " |"
    )
    return "\n".join(lines)


def _caption(s: pd.DataFrame) -> str:
    if s.empty:
        return ""
    cells = s.groupby("shots")[["users", "skipped"]].max()
    parts = [
        f"K={k}: {int(r.users)} users" + (f" ({int(r.skipped)} skipped)" if r.skipped else "")
        for k, r in cells.iterrows()
    ]
    return "users per cell (per seed): " + ", ".join(parts)


def _routes(cfg: dict) -> str:
    routes = cfg.get("routes") or {}
    if not routes:
        return ""
    said = {
        f"{r['cold']}" + (f", {r['warm']} from {r['threshold']} rows" if r["threshold"] is not None else "")
        for r in routes.values()
    }
    return f"\n{ROUTED}: what `recommend --model auto` serves, routed on validation users: " + "; ".join(
        sorted(said)
    )


def write_json(result: EvalResult, path: Path) -> Path:
    """Every number: the configuration, the summary, fit times and the per-user records."""
    payload = {
        "config": result.config,
        "seconds": result.seconds,
        "fit_seconds": result.fit_seconds,
        "summary": result.summary.to_dict("records"),
        "records": result.records.replace({np.nan: None}).to_dict("records"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=_plain))
    return path


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(type(obj).__name__)


def plot(result: EvalResult, metric: str, path: Path) -> Path:
    """`metric` against the number of shots, one line per model with a ±std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.summary[result.summary.metric == metric]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for model in [*result.config["models"], ROUTED]:
        m = s[s.model == model].sort_values("shots")
        if m.empty:
            continue
        style = {"color": "black", "linestyle": "--", "marker": "x"} if model == ROUTED else {"marker": "o"}
        (line,) = ax.plot(m.shots, m["mean"], label=model, **style)
        ax.fill_between(
            m.shots, m["mean"] - m["std"], m["mean"] + m["std"], alpha=0.15, color=line.get_color()
        )
    ax.set_xticks(sorted(s.shots.unique()))
    ax.set_xlabel("support interactions per test user (K)")
    ax.set_ylabel(metric)
    ax.set_title(
        f"{metric} against shots ({result.config['split']} split, {len(result.config['seeds'])} seeds)"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_all(result: EvalResult, out_dir: Path) -> dict[str, Path]:
    """report.json, ndcg.png and recall.png in `out_dir`."""
    n = result.config["n"]
    return {
        "json": write_json(result, out_dir / "report.json"),
        "ndcg": plot(result, f"ndcg@{n}", out_dir / "ndcg.png"),
        "recall": plot(result, f"recall@{n}", out_dir / "recall.png"),
    }
