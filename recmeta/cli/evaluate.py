"""`recmeta evaluate`: the cold-start protocol, or the continual one with --continual."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from recmeta.cli.common import (
    LAYOUT,
    Encoding,
    EventWeights,
    Explicit,
    Header,
    Implicit,
    ItemCol,
    LogFormat,
    Names,
    Sep,
    SplitKind,
    TimeCol,
    TimeUnit,
    TimeUnitOpt,
    UserCol,
    ValueCol,
    app,
    check_applies,
    engine,
    err,
    fail_cleanly,
    layout_spec,
    model_list,
    out,
    print_json,
    step_progress,
)


@app.command()
@fail_cleanly
def evaluate(
    ctx: typer.Context,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "--models",
            "-m",
            help="Models to compare; repeatable (default: all nine).",
        ),
    ] = None,
    shots: Annotated[
        list[int] | None,
        typer.Option("--shots", help="Support sizes K; repeatable (default: 0 1 3 5 10 20).", min=0),
    ] = None,
    seeds: Annotated[
        list[int] | None, typer.Option("--seeds", help="Seeds; repeatable (default: 0 1 2).", min=0)
    ] = None,
    split: Annotated[
        SplitKind, typer.Option(help="temporal: the newest users are the test users.")
    ] = SplitKind.random,
    n: Annotated[
        int, typer.Option("--cutoff", "-n", help="Cutoff N of ndcg@N, recall@N, hr@N, mrr@N.", min=1)
    ] = 10,
    min_interactions: Annotated[
        int, typer.Option(help="Users with fewer rows are never evaluated.", min=1)
    ] = 20,
    log_path: Annotated[
        Path | None, typer.Option("--log", help="Evaluate a log file in a temporary store instead of --db.")
    ] = None,
    fmt: Annotated[
        LogFormat,
        typer.Option(
            "--format",
            "-f",
            help="Layout of --log: auto (by extension), csv, tsv, parquet, jsonl, movielens-100k, movielens.",
        ),
    ] = LogFormat.auto,
    implicit: Implicit = False,
    explicit: Explicit = False,
    event_weights: EventWeights = None,
    user_col: UserCol = None,
    item_col: ItemCol = None,
    value_col: ValueCol = None,
    time_col: TimeCol = None,
    sep: Sep = None,
    header: Header = True,
    names: Names = None,
    time_unit: TimeUnitOpt = TimeUnit.s,
    encoding: Encoding = "utf-8",
    epochs: Annotated[int | None, typer.Option(help="Most meta-training epochs per fit.", min=1)] = None,
    max_time: Annotated[
        float | None,
        typer.Option(
            help="Seconds for fitting the models of each seed, as `recmeta train` spends them "
            "(default 330; 0: no limit): the baselines first, the meta-learners share the rest.",
            min=0.0,
        ),
    ] = None,
    continual: Annotated[
        bool,
        typer.Option(
            "--continual",
            help="The continual protocol instead (PROTOCOL.md): the log cut into periods by time; "
            "retrain, finetune, replay and window compared on the next period, on forgetting and on cost.",
        ),
    ] = False,
    periods: Annotated[int, typer.Option(help="With --continual: periods of equal row count.", min=3)] = 10,
    first_stage: Annotated[
        int, typer.Option(help="With --continual: the stage every strategy starts from.", min=0)
    ] = 3,
    last_stage: Annotated[
        int | None,
        typer.Option(
            help="With --continual: the last stage (default periods - 2; tuning stops before --first-stage)."
        ),
    ] = None,
    replay: Annotated[
        int, typer.Option(help="With --continual: rows in the replay strategy's reservoir.", min=0)
    ] = 2000,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.json and the PNG plots.")] = Path(
        "reports"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Cold-start evaluation under PROTOCOL.md (or the continual protocol with --continual).

    Every model on the same users, splits and seeds. With --continual: what keeping a model
    current costs and forgets."""

    from recmeta.evaluate import EvalConfig
    from recmeta.learners import META_LEARNERS
    from recmeta.paths import writable_folder

    cold = ("shots", "split", "n", "min_interactions", "max_time")
    check_applies(ctx, "--continual", continual, ("periods", "first_stage", "last_stage", "replay"), cold)
    check_applies(ctx, "--log", log_path is not None, ("fmt", *LAYOUT), ())  # the store's rows are ingested
    spec = layout_spec(ctx)
    params = {m: {"epochs": epochs} for m in META_LEARNERS} if epochs else {}
    writable_folder(out_dir, f"--out {out_dir}", make=True)  # before the run, not at its end
    if continual:
        _evaluate_continual(
            model,
            seeds,
            periods,
            first_stage,
            last_stage,
            replay,
            params,
            log_path,
            fmt,
            spec,
            out_dir,
            as_json,
        )
        return
    from recmeta.evaluate.report import table, write_all
    from recmeta.evaluate.run import evaluate_log, evaluate_store
    from recmeta.training.budget import TRAIN_BUDGET

    cfg = EvalConfig(
        models=model_list(model or []),
        shots=tuple(shots or (0, 1, 3, 5, 10, 20)),
        seeds=tuple(seeds or (0, 1, 2)),
        split=SplitKind(split).value,
        n=n,
        min_interactions=min_interactions,
        params=params,
        max_time=TRAIN_BUDGET if max_time is None else (max_time or None),
    )
    steps = len(cfg.seeds) * len(cfg.models) * (1 + len(cfg.shots))
    with step_progress("evaluate", steps, transient=True) as step:

        def tick(d: dict) -> None:
            fitting = d["stage"] == "fit"
            step(
                f"seed {d['seed']} {d['model']} " + ("fitting" if fitting else f"K={d['shots']}"), say=fitting
            )

        if log_path is not None:
            result = evaluate_log(log_path, cfg, tick, fmt=fmt.value, **spec)
        else:
            result = evaluate_store(engine(), cfg, tick)
    paths = write_all(result, out_dir)
    if as_json:
        _print_json(result, result.summary.to_dict("records"), paths)
        return
    out.print(table(result, f"ndcg@{n}"))
    if "mae" in set(result.summary.metric):
        out.print(table(result, "mae"))
    out.print(
        escape(f"{result.seconds:.0f} s; report {paths['json']}, plots {paths['ndcg']} {paths['recall']}")
    )
    empty = sorted(set(cfg.shots) - {int(k) for k in result.summary.shots})
    if empty:
        err.print(
            f"[yellow]note:[/yellow] no user has a positive row left after K = {', '.join(map(str, empty))} "
            f"support rows (users with at least {min_interactions} rows are evaluated): no column for it"
        )


def _evaluate_continual(
    model, seeds, periods, first_stage, last_stage, replay, params, log_path, fmt, spec, out_dir, as_json
) -> None:
    from recmeta.evaluate.continual import ContinualConfig
    from recmeta.evaluate.continual_report import tables, write_all
    from recmeta.evaluate.run import continual_log, continual_store
    from recmeta.learners import META_LEARNERS
    from recmeta.learners.ensemble import MEMBERS

    cfg = ContinualConfig(
        models=tuple(model) if model and "all" not in model else META_LEARNERS,
        periods=periods,
        first_stage=first_stage,
        last_stage=last_stage,
        seeds=tuple(seeds or (0, 1, 2)),
        replay=replay,
        params=params,
    )
    members = [m for m in MEMBERS if m in cfg.models or "ensemble" in cfg.models]
    steps = len(cfg.seeds) * len(members) * (cfg.last - cfg.first_stage + 1)
    with step_progress("continual", steps) as step:

        def tick(d: dict) -> None:
            step(f"seed {d['seed']} stage {d['stage']} {d['model']}")

        if log_path is not None:
            result = continual_log(log_path, cfg, tick, fmt=fmt.value, **spec)
        else:
            result = continual_store(engine(), cfg, tick)
    paths = write_all(result, out_dir)
    if as_json:
        _print_json(result, result.summary, paths)
        return
    for t in tables(result):
        out.print(t)
    out.print(
        escape(f"{result.seconds:.0f} s; report {paths['json']}, plots {paths['heatmap']} {paths['next']}")
    )


def _print_json(result, summary, paths: dict) -> None:
    """A run's configuration, seconds, summary and files, for a script."""
    print_json(
        {
            "config": result.config,
            "seconds": result.seconds,
            "summary": summary,
            "files": {k: str(v) for k, v in paths.items()},
        }
    )
