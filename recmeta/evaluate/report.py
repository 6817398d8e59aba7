"""The evaluation report: a Rich table, a JSON file with every number, PNG curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.table import Table

from recmeta.evaluate.protocol import EvalResult


def table(result: EvalResult, metric: str = "ndcg@10") -> Table:
    """Models as rows, shots as columns, mean ± std; the best of each column in bold."""
    s = result.summary[result.summary.metric == metric]
    shots = sorted(s.shots.unique())
    cfg = result.config
    t = Table(
        title=f"{metric} (mean ± std over seeds {list(cfg['seeds'])}, {cfg['split']} split)",
        caption=_caption(result),
    )
    t.add_column("model")
    for k in shots:
        t.add_column(f"K={k}", justify="right")
    best = s.loc[
        s.groupby("shots")["mean"].idxmax()
        if metric not in ("mae", "rmse")
        else s.groupby("shots")["mean"].idxmin()
    ]
    best_of = dict(zip(best.shots, best.model, strict=True))
    for model in cfg["models"]:
        row = [model]
        for k in shots:
            cell = s[(s.model == model) & (s.shots == k)]
            if cell.empty:
                row.append("-")
                continue
            text = f"{cell['mean'].iloc[0]:.3f} ± {cell['std'].iloc[0]:.3f}"
            row.append(f"[bold green]{text}[/]" if best_of.get(k) == model else text)
        t.add_row(*row)
    return t


def _caption(result: EvalResult) -> str:
    s = result.summary
    if s.empty:
        return ""
    cells = s.groupby("shots")[["users", "skipped"]].max()
    parts = [
        f"K={k}: {int(r.users)} users" + (f" ({int(r.skipped)} skipped)" if r.skipped else "")
        for k, r in cells.iterrows()
    ]
    return "users per cell (per seed): " + ", ".join(parts)


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
    for model in result.config["models"]:
        m = s[s.model == model].sort_values("shots")
        if m.empty:
            continue
        (line,) = ax.plot(m.shots, m["mean"], marker="o", label=model)
        ax.fill_between(
            m.shots, m["mean"] - m["std"], m["mean"] + m["std"], alpha=0.15, color=line.get_color()
        )
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
