"""The learning curves of a training run as a PNG: what `recmeta train` printed epoch by
epoch, one line per meta-learner."""

from __future__ import annotations

import math
from pathlib import Path


def curves_path(checkpoint: Path) -> Path:
    """Where the run that wrote `checkpoint` (KIND-STAMP.safetensors) draws its curves:
    curves-STAMP.png beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent / f"curves-{checkpoint.stem.split('-', 1)[-1]}.png"


def plot_curves(histories: dict[str, list[dict[str, float]]], path: Path) -> Path | None:
    """Two panels against the epoch: validation ndcg@10 (the kept epoch marked) and the
    training loss. Written atomically; None when no learner ran an epoch."""
    runs = {kind: rows for kind, rows in histories.items() if rows}
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (val_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    for kind, rows in runs.items():
        epochs = [r["epoch"] for r in rows]
        val = [r.get("val_ndcg@10", math.nan) for r in rows]
        (line,) = val_ax.plot(epochs, val, marker="o", markersize=3, label=kind)
        kept = rows[-1].get("best", math.nan)  # the trainer's kept score: mark where it was reached
        at = next((e for e, v in zip(epochs, val, strict=True) if v == kept), None)
        if at is not None:
            val_ax.plot(at, kept, marker="*", markersize=12, color=line.get_color())
        loss_ax.plot(epochs, [r.get("loss", math.nan) for r in rows], marker="o", markersize=3, label=kind)
    val_ax.set(xlabel="epoch", ylabel="validation ndcg@10", title="validation (* the epoch kept)")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="meta-training loss")
    for ax in (val_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    loss_ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
