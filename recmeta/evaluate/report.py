"""The evaluation report: a Rich table, a JSON file with every number, PNG curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from recmeta.evaluate.protocol import ROUTED, EvalResult
from recmeta.learners import META_LEARNERS, REGISTRY
from recmeta.routing import route_bands, rows

FEW_USERS = 5  # a cell that averages fewer users than this (per seed) prints '-'


def grid(
    summary: pd.DataFrame, models: list[str], metric: str, seeds: int = 2
) -> tuple[list[int], list[tuple[str, list]]]:
    """(shots, [(model, [(text, is_best) or None per shot])]) for one metric: mean ± std over
    seeds (the mean alone with one seed), the best model of each column flagged (lowest for
    errors, highest otherwise; the routed row repeats one of the models' figures and is never
    flagged). A cell behind fewer than FEW_USERS users is None: too few to read."""
    s = summary[(summary.metric == metric) & (summary.users >= FEW_USERS)]
    several = seeds > 1
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
                else (
                    f"{cell['mean'].iloc[0]:.3f}" + (f" ± {cell['std'].iloc[0]:.3f}" if several else ""),
                    best_of.get(k) == model,
                )
            )
        if any(cells):
            rows.append((model, cells))
    return shots, rows


def table(result: EvalResult, metric: str = "ndcg@10") -> Table:
    """Models as rows, shots as columns, mean ± std; the best of each column in bold."""
    cfg = result.config
    seeds = list(cfg["seeds"])
    shots, rows = grid(result.summary, cfg["models"], metric, len(seeds))
    spread = f"mean ± std over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
    t = Table(
        title=f"{metric} ({spread}, {cfg['split']} split)",
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
        ", ".join(f"{model} from {rows(start)}" for start, model in route_bands(r)) for r in routes.values()
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


# meta-learners in warm colours with filled markers, baselines in cool colours with open ones
STYLES = {
    "maml": ("#d62728", "o", "-"),
    "protonet": ("#ff7f0e", "s", "-"),
    "metalstm": ("#8c564b", "^", "-"),
    "ensemble": ("#e377c2", "D", "-"),
    "als": ("#1f77b4", "o", ":"),
    "itemknn": ("#17becf", "s", ":"),
    "popular": ("#7f7f7f", "^", ":"),
    "ease": ("#2ca02c", "D", ":"),
    "episodic": ("#9467bd", "P", ":"),
}
BASELINE_KINDS = tuple(k for k in REGISTRY if k not in META_LEARNERS)  # ease and episodic too


def plot(result: EvalResult, metric: str, path: Path) -> Path:
    """Two panels: `metric` against the number of shots (a ±std band only with several seeds;
    `auto` drawn thin and dashed on top so it hides no model), and each model's ratio to the
    best baseline at each number of shots. The legend sits outside the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.summary[result.summary.metric == metric]
    seeds = len(result.config["seeds"])
    fig, (ax, ratio_ax) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=120)
    base = s[s.model.isin(BASELINE_KINDS)].groupby("shots")["mean"].max()
    lower_better = metric in ("mae", "rmse")
    for model in [*result.config["models"], ROUTED]:
        m = s[s.model == model].sort_values("shots")
        if m.empty:
            continue
        colour, marker, line = STYLES.get(model, ("black", "x", "--"))
        filled = model not in BASELINE_KINDS
        style = {
            "color": colour,
            "marker": marker,
            "linestyle": line,
            "markerfacecolor": colour if filled else "white",
        }
        if model == ROUTED:
            style = {"color": "black", "marker": "", "linestyle": "--", "linewidth": 1.0, "zorder": 5}
        ax.plot(m.shots, m["mean"], label=model, **style)
        if seeds > 1 and model != ROUTED:
            ax.fill_between(m.shots, m["mean"] - m["std"], m["mean"] + m["std"], alpha=0.08, color=colour)
        if model not in BASELINE_KINDS and not base.empty:
            ratio = m.set_index("shots")["mean"] / base.reindex(m.shots).to_numpy()
            ratio_ax.plot(ratio.index, ratio.to_numpy(), label=model, **style)
    shots = sorted(s.shots.unique())
    for a in (ax, ratio_ax):
        a.set_xticks(shots)
        a.set_xlabel("support interactions per test user (K)")
        a.grid(alpha=0.3)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} ({result.config['split']} split, {seeds} seed{'s' if seeds > 1 else ''})")
    ratio_ax.axhline(1.0, color="grey", linewidth=0.8)
    ratio_ax.set_ylabel(f"{metric} / best baseline" + (" (lower is better)" if lower_better else ""))
    ratio_ax.set_title("against the best baseline at each K")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
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
