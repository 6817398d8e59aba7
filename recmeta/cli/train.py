"""`recmeta train` and `recmeta models`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from recmeta.cli.common import (
    FEW_USERS,
    State,
    app,
    check_applies,
    engine,
    err,
    fail_cleanly,
    model_list,
    out,
    plain_progress,
    print_json,
    progress_bar,
)


@app.command()
@fail_cleanly
def train(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "--models",
            "-m",
            help=(
                "maml, protonet, metalstm, ensemble, als, itemknn, popular, ease (an item-item "
                "regression), episodic (item-item weights fitted on support -> query episodes) "
                "or all (default); repeatable. The ensemble reuses the members trained in the "
                "same run."
            ),
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Most meta-training epochs (early stopping may end sooner).", min=1)
    ] = None,
    max_time: Annotated[
        float | None,
        typer.Option(
            help="Seconds for fitting the run's models (default 330; 0: no limit). The baselines fit "
            "first; the meta-learners share what they leave, each stopping in time for its last "
            "validation to end within its share.",
            min=0.0,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (split, initialisation, sampling).", min=0)] = 0,
    models_dir: Annotated[Path, typer.Option(help="Where checkpoints are written.")] = Path("models"),
    resume: Annotated[
        bool,
        typer.Option(
            "--continue",
            help="Start each meta-learner from its active checkpoint and learn only what the store "
            "holds since it (new users, items and rows), with replay; baselines are refitted.",
        ),
    ] = False,
    replay: Annotated[
        int | None,
        typer.Option(
            help="With --continue: rows of earlier data kept in the replay reservoir whose users' "
            "episodes are mixed into every step; 0 is plain fine-tuning (default: the checkpoint's, "
            "2000 for a first training).",
            min=0,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help=(
                "A TOML file of hyperparameters: a \\[maml] table, \\[als], ... or \\[all] for "
                "every meta-learner (e.g. hold_epochs = 0)."
            )
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Meta-learn data-parallel in this many processes (torch.distributed); each takes "
            "a share of every meta-batch and of the cores. Under torchrun, its workers are used.",
            min=1,
        ),
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train models on the store's log; 10% of users are held out for early stopping.

    Each checkpoint is written atomically and registered; `recmeta models` lists them.
    `--continue` keeps a trained model current at a fraction of the cost of retraining.
    """
    from recmeta.config import read_config
    from recmeta.train import TRAIN_BUDGET, VAL_MIN_ROWS, TrainConfig
    from recmeta.train import train as run_train

    cfg = TrainConfig(
        models=model_list(model or []),
        seed=seed,
        epochs=epochs,
        max_time=TRAIN_BUDGET if max_time is None else (max_time or None),
        models_dir=models_dir,
        resume=resume,
        replay=replay,
        params=read_config(config) if config else {},
        workers=workers,
        threads=State.threads,
    )
    with progress_bar() as bar:

        def factory(kind: str):
            task = bar.add_task(kind, total=None, info="")

            def update(d: dict) -> None:
                info = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items())
                bar.update(task, info=info, completed=d.get("epoch", 0))
                plain_progress(f"train {kind}: {info}")

            return update

        results = run_train(engine(), cfg, factory)
    if results is None:
        return  # a torchrun worker other than rank 0: rank 0 reports
    if resume and not results:
        message = "nothing new in the store since the active checkpoints; nothing changed"
        print_json({"changed": False, "message": message}) if as_json else out.print(message)
        return
    curves = _plot_curves(results) if results else None  # written for --json too
    if as_json:
        print_json(
            [
                {
                    "model": r.kind,
                    "path": str(r.path),
                    "seconds": r.seconds,
                    "validation_ndcg@10": r.validation,
                    "parent_id": r.parent,
                    "new_rows": r.new_rows,
                    "steps": r.steps,
                    "history": r.history,
                    "config": {
                        k: v for k, v in r.model.params.items() if k not in ("shapes", "member_configs")
                    },
                }
                for r in results
            ]
        )
        return
    shots = sorted({k for r in results for k in r.validation}, key=lambda k: int(k[1:]))
    t = Table(title="validation ndcg@10 by support size", box=box.SIMPLE_HEAD, padding=0, pad_edge=False)
    t.add_column("model", no_wrap=True)
    for k in shots:
        t.add_column(k.replace("K", "K="), justify="right")
    t.add_column("fit s", justify="right")
    users = results[0].validation_users if results else {}
    few = {k for k in shots if users.get(k, 0) < FEW_USERS}
    for r in results:
        t.add_row(
            r.kind,
            *[f"{r.validation[k]:.3f}" if k in r.validation and k not in few else "-" for k in shots],
            f"{r.seconds:.1f}",
        )
    t.caption = "validation users per size: " + ", ".join(
        f"{k.replace('K', 'K=')} {users.get(k, 0)}" for k in shots
    )
    if few:
        t.caption += f" ('-': fewer than {FEW_USERS} users, too few to read)"
    out.print(t)
    if resume:
        rows = max(r.new_rows for r in results)
        out.print(f"continued from the active checkpoints with {rows:,} new interaction(s)")
    if results:
        out.print(f"checkpoints in {escape(str(results[0].path.parent))}; `recmeta models` lists them")
        if curves is not None:
            out.print(f"learning curves: {escape(str(curves))}")
        _print_routing()
    if results and not any(r.validation for r in results):
        err.print(
            f"[yellow]note:[/yellow] no validation users (none has {VAL_MIN_ROWS}+ interactions): "
            "the models ran every epoch and routing sends everyone to the first meta-learner"
        )


def _plot_curves(results) -> Path | None:
    """The meta-learners' epochs as a PNG beside the run's checkpoints (curves-STAMP.png)."""
    from recmeta.training.curves import curves_path, plot_curves

    return plot_curves({r.kind: r.history for r in results}, curves_path(results[0].path))


def _print_routing() -> None:
    """The active router's bands, as `recommend --model auto` will serve them."""
    from recmeta.routing import describe_bands
    from recmeta.store import session_scope
    from recmeta.store.repository import describe_models

    with session_scope(engine()) as session:
        router = next((r for r in describe_models(session, active_only=True) if r["name"] == "router"), None)
    if router and router["config"]:
        out.print(f"routing (`recommend --model auto`): {describe_bands(router['config'])}")


@app.command()
@fail_cleanly
def models(
    ctx: typer.Context,
    activate: Annotated[
        int | None,
        typer.Option(
            help="Serve checkpoint ID for its name from now on (roll back, or forward again); "
            "a running server switches by itself.",
            metavar="ID",
        ),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune", help="Delete old inactive checkpoints (files and registry rows); active ones stay."
        ),
    ] = False,
    keep: Annotated[
        int,
        typer.Option(help="With --prune: older checkpoints of each name to keep.", min=0),
    ] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --prune: say what would go, delete nothing.")
    ] = False,
    active: Annotated[bool, typer.Option("--active", help="Only the checkpoints that serve now.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List registered checkpoints (active ones marked *); roll back, or free disk.

    Newest first. --activate ID serves an earlier checkpoint again; --prune deletes old
    inactive ones."""
    from recmeta.api import Recmeta

    check_applies(ctx, "--prune", prune, ("keep", "dry_run"), ("activate", "active"))
    check_applies(ctx, "--activate", activate is not None, (), ("active",))
    rm = Recmeta(engine())
    if activate is not None:
        done = rm.activate(activate)
        if as_json:
            print_json(done)
        else:
            out.print(escape(f"#{done['id']} is now the active {done['name']} ({done['path']})"))
        return
    if prune:
        done = rm.prune(keep, dry_run=dry_run)
        if as_json:
            print_json(done)
            return
        verb = "would delete" if dry_run else "deleted"
        out.print(
            f"{verb} {len(done['removed']):,} inactive checkpoint(s), {done['files']:,} file(s), "
            f"{done['bytes'] / 2**20:,.1f} MiB; kept the active ones and {keep} older of each name"
        )
        return
    rows = rm.models(active_only=active)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no models yet; run `recmeta train`")
        return
    t = Table("", "id", "name", "created", "val ndcg@10 (K=1/5/10)", "continues", "path", title="models")
    for r in rows:
        v = r["validation"]
        val = "/".join(f"{v[k]:.3f}" if k in v else "-" for k in ("K1", "K5", "K10")) if v else "-"
        lineage = f"#{r['parent_id']} +{r['new_rows']:,} rows" if r["parent_id"] is not None else ""
        t.add_row("*" if r["active"] else "", str(r["id"]), r["name"], r["created"], val, lineage, r["path"])
    out.print(t)
