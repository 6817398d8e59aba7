"""The continual report: a Rich table per model (strategies as rows), report.json, a heat
map of the transfer matrix R per strategy and the next-period ndcg@10 across stages."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from rich.table import Table

from recmeta.evaluate.continual import POPULAR, RECENT, STRATEGIES
from recmeta.evaluate.continual_run import ContinualResult

COLUMNS = (
    ("next_ndcg@10", "next ndcg@10"),
    ("new_user_ndcg@10", "new users"),
    ("next_recall@20", "recall@20"),
    ("acc", "ACC"),
    ("bwt", "BWT"),
    ("forgetting", "forget"),
    ("fwt", "FWT"),
    ("seconds", "fit s"),
    ("cost_ratio", "cost"),
    ("cost_ratio_after_first", "cost after b"),
)


def _cell(row: dict, key: str, several: bool) -> str:
    mean = row.get(key)
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    digits = 1 if key == "seconds" else 2 if key.startswith("cost") else 3
    text = f"{mean:.{digits}f}"
    std = row.get(f"{key}_std")
    if several and std is not None and key not in ("cost_ratio", "cost_ratio_after_first"):
        text += f" ± {std:.{digits}f}"
    return text


def tables(result: ContinualResult) -> list[Table]:
    """One table per model: its strategies, then recent and overall popularity."""
    cfg = result.config
    seeds = list(cfg["seeds"])
    several = len(seeds) > 1
    free = [r for r in result.summary if r["model"] == "none"]
    out = []
    for model in cfg["models"]:
        rows = [r for r in result.summary if r["model"] == model] + free
        t = Table(
            title=f"{model}: continual protocol, {cfg['periods']} periods, stages "
            f"{cfg['first_stage']}-{cfg['last_stage']}, seed{'s' if several else ''} {seeds}",
            caption="next ndcg@10 / new users / recall@20: next period, mean of stage means; "
            "ACC BWT forget FWT: transfer matrix R (ndcg@10 of held-out users); cost: fit seconds "
            "over retrain's (after b: without the first stage)",
        )
        t.add_column("strategy", no_wrap=True)
        for _, head in COLUMNS:
            t.add_column(head, justify="right")
        best = max((r["next_ndcg@10"] or -1.0) for r in rows)
        for r in rows:
            cells = [_cell(r, key, several) for key, _ in COLUMNS]
            if r["next_ndcg@10"] == best:
                cells[0] = f"[bold green]{cells[0]}[/]"
            t.add_row(r["strategy"], *cells)
        out.append(t)
    return out


def write_all(result: ContinualResult, out_dir: Path) -> dict[str, Path]:
    """report.json, continual_R.png and continual_next.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "heatmap": out_dir / "continual_R.png",
        "next": out_dir / "continual_next.png",
    }
    paths["json"].write_text(json.dumps(result.as_dict(), indent=2, default=_json))
    heatmaps(result, paths["heatmap"])
    next_curves(result, paths["next"])
    return paths


def _json(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _matrix(R: dict) -> tuple[list[int], list[int], np.ndarray]:
    stages = sorted(int(t) for t in R)
    periods = sorted({int(i) for row in R.values() for i in row})
    m = np.full((len(stages), len(periods)), np.nan)
    for a, t in enumerate(stages):
        for c, i in enumerate(periods):
            m[a, c] = R[str(t)].get(str(i), np.nan)
    return stages, periods, m


def heatmaps(result: ContinualResult, path: Path) -> None:
    """R[t][i] (mean over seeds) for every model (rows) and strategy (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(result.config["models"])
    strategies = [*STRATEGIES, RECENT]
    by = {(r["model"], r["strategy"]): r for r in result.summary}
    fig, axes = plt.subplots(
        len(models),
        len(strategies),
        figsize=(3.2 * len(strategies), 3.0 * len(models)),
        squeeze=False,
        gridspec_kw={"hspace": 0.45},
    )
    values = [v for r in result.summary for row in r["R"].values() for v in row.values() if not math.isnan(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    image = None
    for a, model in enumerate(models):
        for c, strategy in enumerate(strategies):
            ax = axes[a][c]
            row = by.get((model if strategy != RECENT else "none", strategy))
            if row is None:
                ax.axis("off")
                continue
            stages, periods, m = _matrix(row["R"])
            image = ax.imshow(m, vmin=lo, vmax=hi, cmap="viridis", aspect="auto")
            ax.set_xticks(range(len(periods)), [str(p) for p in periods])
            ax.set_yticks(range(len(stages)), [str(s) for s in stages])
            for y in range(m.shape[0]):
                for x in range(m.shape[1]):
                    if not math.isnan(m[y, x]):
                        dark = m[y, x] > lo + 0.6 * (hi - lo)  # dark text on the light end of the map
                        colour = "black" if dark else "white"
                        ax.text(x, y, f"{m[y, x]:.2f}", ha="center", va="center", fontsize=6, color=colour)
            ax.set_title(f"{model} · {strategy}" if strategy != RECENT else RECENT, fontsize=9)
            if c == 0:
                ax.set_ylabel("stage t (model)")
            if a == len(models) - 1:
                ax.set_xlabel("period i (held-out users)")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="ndcg@10")
    fig.suptitle("Transfer matrix R[t][i]: ndcg@10 of period i's held-out users after stage t")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def next_curves(result: ContinualResult, path: Path) -> None:
    """Next-period ndcg@10 per stage: one panel per model, a line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(result.config["models"])
    by = {(r["model"], r["strategy"]): r for r in result.summary}
    styles = {
        "retrain": ("tab:blue", "o", "-"),
        "finetune": ("tab:orange", "s", "-"),
        "replay": ("tab:green", "^", "-"),
        "window": ("tab:purple", "v", "-"),
        RECENT: ("black", "", "--"),
        POPULAR: ("grey", "", ":"),
    }
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models, strict=True):
        for strategy, (colour, marker, line) in styles.items():
            row = by.get((model if strategy in STRATEGIES else "none", strategy))
            if row is None:
                continue
            stages = sorted(int(s) for s in row["next_ndcg@10_by_stage"])
            ys = [row["next_ndcg@10_by_stage"][str(s)] for s in stages]
            ax.plot(stages, ys, color=colour, marker=marker, linestyle=line, label=strategy)
            ax.set_xticks(stages)
        ax.set_title(model)
        ax.set_xlabel("stage t (scored on period t+1)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("next-period ndcg@10")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
