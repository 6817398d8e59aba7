"""The recmeta command line: each command parses, calls the library, and prints."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.exceptions import TyperException

from recmeta import __version__
from recmeta.errors import RecmetaError

app = typer.Typer(
    help="recmeta: recommendations for users you barely know, by meta-learning.\n\n"
    "Typical run: ingest a log, train, evaluate, recommend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ingest_app = typer.Typer(
    help="Load interaction logs and item/user metadata into the store.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema: migrations.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: a synthetic log, MovieLens downloads.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")

# Into a file or a pipe, tables keep their full width instead of Rich's 80 columns.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class State:
    db: str | None = None
    threads: int | None = None
    debug: bool = False


def fail_cleanly(fn):
    """The one boundary: recmeta's own errors become one red line and exit code 1; any other
    exception one 'internal error' line and exit code 2 (its traceback with --debug). Every
    write runs in a transaction, so a failed command leaves the store as it was."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RecmetaError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, TyperException):  # usage errors: typer prints them
            raise
        except Exception as exc:
            if State.debug:
                raise
            err.print(
                f"[red]internal error:[/red] {type(exc).__name__}: {escape(str(exc))}. Nothing was changed; "
                "rerun with --debug for the traceback and report it.",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        out.print(f"recmeta {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="RECMETA_DB",
            help="Database URL or SQLite file (default: ./recmeta.db). "
            "PostgreSQL: postgresql://user@host/dbname",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the Python traceback of an internal error.")
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            envvar="RECMETA_THREADS",
            min=1,
            help="Threads for the math (torch and BLAS). Default: the machine's cores for train and "
            "evaluate, 1 for a single recommendation.",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    State.db = db
    State.debug = debug
    State.threads = threads
    if threads is not None:
        from recmeta.threads import set_threads

        set_threads(threads)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def engine():
    from recmeta.store import make_engine

    return make_engine(State.db)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def rows_progress(description: str, unit: str = "rows"):
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn(description),
        TextColumn("{task.completed:,} " + unit),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


# ---------------------------------------------------------------- ingest


class LogFormat(str, Enum):
    auto = "auto"
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"
    movielens_100k = "movielens-100k"
    movielens = "movielens"


UserCol = Annotated[str | None, typer.Option(help="User id column.")]
ItemCol = Annotated[str | None, typer.Option(help="Item id column.")]
ValueCol = Annotated[str | None, typer.Option(help="Rating or count column.")]
TimeCol = Annotated[str | None, typer.Option(help="Timestamp column (unix or ISO date).")]
Implicit = Annotated[bool, typer.Option(help="A click/count log: every row is positive.")]
Explicit = Annotated[
    bool,
    typer.Option(help="The value column holds ratings, even when its name or values look like counts."),
]


class TimeUnit(str, Enum):
    s = "s"
    ms = "ms"


class SplitKind(str, Enum):
    random = "random"
    temporal = "temporal"


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


def _report_table(reports, as_json: bool) -> None:
    if as_json:
        print_json([r.as_dict() for r in reports])
        return
    table = Table(
        "source", "rows read", "new", "duplicates", "rejected", "new users", "new items", title="ingest"
    )
    for r in reports:
        table.add_row(
            r.source,
            f"{r.rows_read:,}",
            f"{r.inserted:,}",
            f"{r.duplicates:,}",
            f"{r.rejected:,}",
            f"{r.users_created:,}",
            f"{r.items_created:,}",
        )
    out.print(table)
    for r in reports:
        if r.rejects_path:
            out.print(f"[yellow]{r.rejected:,} row(s) rejected[/yellow]; see {escape(str(r.rejects_path))}")
        if r.seen_before and r.inserted == 0:
            out.print(f"{escape(str(r.source))} was ingested before; nothing new.")
        for note in r.notes:
            out.print(f"[yellow]note:[/yellow] {escape(f'{r.source}: {note}')}")


@ingest_app.command("interactions")
@fail_cleanly
def ingest_interactions(
    path: Annotated[Path, typer.Argument(help="A CSV/TSV/Parquet log, or a MovieLens folder.")],
    fmt: Annotated[
        LogFormat,
        typer.Option(
            "--format", "-f", help="File layout: auto, csv, tsv, parquet, movielens-100k or movielens."
        ),
    ] = LogFormat.auto,
    user_col: UserCol = None,
    item_col: ItemCol = None,
    value_col: ValueCol = None,
    time_col: TimeCol = None,
    implicit: Implicit = False,
    explicit: Explicit = False,
    sep: Annotated[
        str | None, typer.Option(help="Field separator (default: the one the first line holds).")
    ] = None,
    header: Annotated[bool, typer.Option(help="The first line names the columns.")] = True,
    time_unit: Annotated[TimeUnit, typer.Option(help="Unit of numeric timestamps.")] = TimeUnit.s,
    encoding: Annotated[str, typer.Option(help="Text encoding.")] = "utf-8",
    on_error: Annotated[
        OnError,
        typer.Option(
            help="fail: stop at the first bad row and write nothing; "
            "skip: write the valid rows and a rejects file."
        ),
    ] = OnError.fail,
    rejects: Annotated[Path | None, typer.Option(help="Where --on-error skip writes bad rows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Load an interaction log (user, item, value, time). Re-ingesting adds nothing twice."""
    from recmeta.ingest.pipeline import ingest_file, ingest_path

    spec = dict(
        user_col=user_col,
        item_col=item_col,
        value_col=value_col,
        time_col=time_col,
        implicit=implicit,
        explicit=explicit,
        encoding=encoding,
        time_unit=time_unit.value,
        sep=sep,
        header=header,
    )
    eng = engine()
    with rows_progress(f"ingesting {path.name}") as bar:
        task = bar.add_task("ingest", total=None)
        tick = functools.partial(_set_completed, bar, task)
        reports = ingest_file(
            eng,
            lambda s: ingest_path(
                s, path, fmt.value, on_error=on_error.value, rejects_path=rejects, progress=tick, **spec
            ),
        )
    _report_table(reports, as_json)


def _set_completed(bar, task, n: int) -> None:
    bar.update(task, completed=n)


def _ingest_metadata(
    path: Path, for_items: bool, id_col: str, title_col, genres_col, year_col, sep, as_json: bool
) -> None:
    from recmeta.ingest.pipeline import ingest_file, ingest_metadata, read_metadata
    from recmeta.store.models import Item, User

    records = read_metadata(
        path,
        id_col=id_col,
        title_col=title_col,
        genres_col=genres_col,
        year_col=year_col,
        sep=sep,
        for_items=for_items,
    )
    entity = Item if for_items else User
    report = ingest_file(engine(), lambda s: ingest_metadata(s, entity, records, str(path)))
    _report_table([report], as_json)


@ingest_app.command("items")
@fail_cleanly
def ingest_items(
    path: Annotated[Path, typer.Argument(help="CSV/TSV/Parquet with one row per item.")],
    id_col: Annotated[str, typer.Option(help="Item id column.")] = "item",
    title_col: Annotated[str | None, typer.Option(help="Title column.")] = "title",
    genres_col: Annotated[str | None, typer.Option(help="Genres column, '|'-separated.")] = "genres",
    year_col: Annotated[str | None, typer.Option(help="Year column.")] = "year",
    sep: Annotated[str | None, typer.Option(help="Field separator.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Load item metadata (title, genres, year; other columns become features)."""
    from recmeta.ingest.readers import LogSpec, read_raw

    header = list(next(read_raw(LogSpec(path=path, sep=sep), chunk_rows=1)).columns)
    lower = {c.lower() for c in header}
    pick = lambda c: c if c and c.lower() in lower else None  # noqa: E731
    _ingest_metadata(path, True, id_col, pick(title_col), pick(genres_col), pick(year_col), sep, as_json)


@ingest_app.command("users")
@fail_cleanly
def ingest_users(
    path: Annotated[Path, typer.Argument(help="CSV/TSV/Parquet with one row per user.")],
    id_col: Annotated[str, typer.Option(help="User id column.")] = "user",
    sep: Annotated[str | None, typer.Option(help="Field separator.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Load user metadata; every column but the id becomes a feature (age, gender, ...)."""
    _ingest_metadata(path, False, id_col, None, None, None, sep, as_json)


# ---------------------------------------------------------------- db, data, stats


@db_app.command("upgrade")
@fail_cleanly
def db_upgrade() -> None:
    """Bring the database schema to the newest version."""
    from recmeta.store import make_engine
    from recmeta.store.migrate import current_revision, upgrade

    eng = make_engine(State.db, migrate=False)
    upgrade(eng)
    out.print(f"schema at revision {current_revision(eng)}")


@db_app.command("current")
@fail_cleanly
def db_current() -> None:
    """Print the schema revision of the database."""
    from recmeta.store import make_engine
    from recmeta.store.migrate import current_revision, head_revision

    eng = make_engine(State.db, migrate=False)
    out.print(f"revision {current_revision(eng)} (newest: {head_revision()})")


@data_app.command("synth")
@fail_cleanly
def data_synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path("data/synth"),
    users: Annotated[int, typer.Option(help="Number of users.", min=1)] = 1000,
    items: Annotated[int, typer.Option(help="Number of items.", min=1)] = 400,
    groups: Annotated[int, typer.Option(help="Planted taste groups.", min=1)] = 5,
    implicit: Annotated[bool, typer.Option(help="Counts instead of ratings.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.", min=0)] = 0,
    drift: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of users (and of items) whose taste group (genres) moves at a moment of the "
            "log's time span: a log whose preferences drift, for `evaluate --continual`.",
        ),
    ] = 0.0,
    size: Annotated[
        str | None,
        typer.Option(
            help="A preset shape instead of --users/--items: ml-25m (162,541 users, 62,423 items, "
            "21.7M rows with timestamps; written in blocks, about 1 GB of CSV)."
        ),
    ] = None,
) -> None:
    """Write a synthetic log with planted taste groups (interactions, items, users CSV)."""
    from recmeta.datasets import PRESETS, SynthConfig, write_synth

    shape = {"users": users, "items": items}
    if size is not None:
        if size not in PRESETS:
            raise typer.BadParameter(f"unknown size {size!r}; choose {', '.join(PRESETS)}")
        shape = PRESETS[size]
    cfg = SynthConfig(**shape, groups=groups, implicit=implicit, seed=seed, drift=drift)
    with rows_progress("writing the log") as bar:
        task = bar.add_task("rows", total=None)
        paths = write_synth(cfg, out_dir, progress=lambda k: bar.advance(task, k))
    for kind, p in paths.items():
        out.print(f"{kind}: {escape(str(p))}")


@data_app.command("download")
@fail_cleanly
def data_download(
    name: Annotated[str, typer.Argument(help="movielens-100k or movielens-latest-small")],
    dest: Annotated[Path, typer.Option(help="Folder to unpack into.")] = Path("."),
) -> None:
    """Download and unpack a public MovieLens archive."""
    from recmeta.datasets import download

    out.print(f"unpacked into {escape(str(download(name, dest)))}")


@data_app.command("unpack")
@fail_cleanly
def data_unpack(
    archive: Annotated[Path, typer.Argument(help="A MovieLens .zip you downloaded.")],
    dest: Annotated[Path, typer.Option(help="Folder to unpack into.")] = Path("."),
) -> None:
    """Unpack a MovieLens zip fetched by hand."""
    from recmeta.datasets import unpack

    out.print(f"unpacked into {escape(str(unpack(archive, dest)))}")


@app.command()
@fail_cleanly
def stats(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Users, items, interactions, density, value and time ranges, cold users."""
    from datetime import datetime, timezone

    from recmeta.store import session_scope
    from recmeta.store.repository import stats as store_stats

    with session_scope(engine()) as session:
        s = store_stats(session)
    if as_json:
        print_json(s)
        return
    date = lambda t: datetime.fromtimestamp(t, timezone.utc).date().isoformat() if t else "-"  # noqa: E731
    table = Table("", "", title="store", show_header=False)
    table.add_row("users", f"{s['users']:,}")
    table.add_row("items", f"{s['items']:,}")
    table.add_row("interactions", f"{s['interactions']:,}")
    table.add_row("density", f"{s['density']:.4%}")
    table.add_row("kind", "implicit" if s["implicit"] else "explicit")
    table.add_row("values", f"{s['value_min']} .. {s['value_max']}")
    table.add_row("time", f"{date(s['time_min'])} .. {date(s['time_max'])}")
    per = s["interactions_per_user"]
    table.add_row(
        "per user", f"min {per['min']}, median {per['median']:g}, mean {per['mean']:.1f}, max {per['max']}"
    )
    for k, n in s["users_with_at_most"].items():
        table.add_row(f"users with <= {k}", f"{n:,}")
    out.print(table)


# ---------------------------------------------------------------- train, models, evaluate


def _progress_bar():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,  # into a file or a pipe: plain lines instead (plain_progress)
    )


@contextlib.contextmanager
def step_progress(label: str, total: int, transient: bool = False):
    """A bar of `total` steps on a terminal; `step(what, say=True)` advances it and, into a
    file or a pipe, prints a plain line instead (when `say`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=transient, disable=not err.is_terminal) as bar:
        task = bar.add_task(label, total=total)

        def step(what: str, say: bool = True) -> None:
            bar.update(task, advance=1, description=what)
            if say:
                done = bar.tasks[0].completed
                plain_progress(f"{label} {done:.0f}/{total}: {what} ({time.perf_counter() - started:.0f} s)")

        yield step


def plain_progress(text: str) -> None:
    """A progress line on stderr when it is not a terminal (a log file, a pipe, a CI job)."""
    if not err.is_terminal:
        err.print(text, highlight=False, soft_wrap=True, markup=False)


FEW_USERS = 5  # a table cell that averages fewer users than this prints '-'


def _model_list(models: list[str]) -> tuple[str, ...]:
    from recmeta.train import ALL

    if not models:
        return ALL
    return ALL if "all" in models else tuple(models)


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
            help="Most seconds of meta-training for the whole run, shared by the meta-learners "
            "(default 300; 0: no limit). Each stops in time for its last validation to end within its share.",
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
        models=_model_list(model or []),
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
    with _progress_bar() as bar:

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
        _print_routing()
    if results and not any(r.validation for r in results):
        err.print(
            f"[yellow]note:[/yellow] no validation users (none has {VAL_MIN_ROWS}+ interactions): "
            "the models ran every epoch and routing sends everyone to the first meta-learner"
        )


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
def models(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """List registered checkpoints, newest first (active ones marked *)."""
    from recmeta.store import session_scope
    from recmeta.store.repository import describe_models

    with session_scope(engine()) as session:
        rows = describe_models(session)
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


@app.command()
@fail_cleanly
def evaluate(
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
            "--format", "-f", help="Layout of --log: auto, csv, tsv, parquet, movielens-100k or movielens."
        ),
    ] = LogFormat.auto,
    implicit: Implicit = False,
    explicit: Explicit = False,
    user_col: UserCol = None,
    item_col: ItemCol = None,
    value_col: ValueCol = None,
    time_col: TimeCol = None,
    epochs: Annotated[int | None, typer.Option(help="Most meta-training epochs per fit.", min=1)] = None,
    max_time: Annotated[
        float | None,
        typer.Option(
            help="Most seconds of meta-training per seed, shared by the meta-learners as "
            "`recmeta train` shares them (default 300; 0: no limit).",
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
    """Cold-start evaluation under PROTOCOL.md: every model on the same users, splits, seeds.
    With --continual, the continual protocol: what keeping a model current costs and forgets."""

    from recmeta.evaluate import EvalConfig
    from recmeta.learners import META_LEARNERS

    spec = dict(
        implicit=implicit,
        explicit=explicit,
        user_col=user_col,
        item_col=item_col,
        value_col=value_col,
        time_col=time_col,
    )
    params = {m: {"epochs": epochs} for m in META_LEARNERS} if epochs else {}
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
        models=_model_list(model or []),
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
        print_json(
            {
                "config": result.config,
                "seconds": result.seconds,
                "summary": result.summary.to_dict("records"),
                "files": {k: str(v) for k, v in paths.items()},
            }
        )
        return
    out.print(table(result, f"ndcg@{n}"))
    if "mae" in set(result.summary.metric):
        out.print(table(result, "mae"))
    out.print(
        escape(f"{result.seconds:.0f} s; report {paths['json']}, plots {paths['ndcg']} {paths['recall']}")
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
        print_json(
            {
                "config": result.config,
                "seconds": result.seconds,
                "summary": result.summary,
                "files": {k: str(v) for k, v in paths.items()},
            }
        )
        return
    for t in tables(result):
        out.print(t)
    out.print(
        escape(f"{result.seconds:.0f} s; report {paths['json']}, plots {paths['heatmap']} {paths['next']}")
    )


# ---------------------------------------------------------------- recommend


@app.command()
@fail_cleanly
def recommend(
    more: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[ITEM[:VALUE]]...",
            help="More --with interactions: --with 50:5 181:5 172:4",
            show_default=False,
        ),
    ] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="A user id in the store.")] = None,
    with_items: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            help="A new person's interactions, ITEM[:VALUE]; repeatable. '-' reads a JSON list from stdin.",
        ),
    ] = None,
    n: Annotated[int, typer.Option("--top", "-n", help="How many items.", min=1)] = 10,
    model: Annotated[
        str,
        typer.Option(
            help="auto (route by history length), maml, protonet, metalstm, ensemble, als, itemknn, "
            "popular, ease or episodic."
        ),
    ] = "auto",
    explain: Annotated[bool, typer.Option(help="Say why each item is there.")] = False,
    remember: Annotated[
        str | None, typer.Option(help="Store the --with interactions as this new user.")
    ] = None,
    users_file: Annotated[
        Path | None, typer.Option(help="Many users: ids one per line, or CSV/Parquet.")
    ] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="With --users-file: .parquet, .csv or .jsonl.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="With --users-file: score chunks of users in this many processes (the file is "
            "the same as one process writes).",
        ),
    ] = 1,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="An item never to recommend (sold out...); repeatable."),
    ] = None,
    exclude_file: Annotated[
        Path | None, typer.Option(help="Items never to recommend, one id per line.")
    ] = None,
    candidates: Annotated[
        Path | None, typer.Option(help="Rank only these items: a file of item ids, one per line.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Recommend for a user in the store, for a new person from a few interactions, or for a
    file of users. Items the user already has are never recommended.

    Examples: recmeta recommend --user 1;  recmeta recommend --with 50:5 181:5 172:4 --explain
    """
    from recmeta.api import Recmeta
    from recmeta.recommend import check_out_path, iter_users_file, parse_pairs, read_item_list

    banned = frozenset(exclude or ()) | (read_item_list(exclude_file) if exclude_file else frozenset())
    allowed = read_item_list(candidates) if candidates else None

    if more and not with_items:
        raise typer.BadParameter(f"unexpected {more[0]!r}; interactions follow --with")
    with_items = [*(with_items or []), *(more or [])]
    if State.threads is None and users_file is None:  # one request: small matrices, one thread
        from recmeta.threads import set_threads

        set_threads(1)
    rm = Recmeta(engine())
    if users_file is not None:
        if out_path is None:
            raise typer.BadParameter("--users-file needs --out FILE (.parquet, .csv or .jsonl)")
        check_out_path(out_path)
        with rows_progress("recommending", "users") as bar:
            task = bar.add_task("users", total=None)
            done = rm.recommend_users_to(
                iter_users_file(users_file),
                out_path,
                n=n,
                model=model,
                exclude=banned,
                candidates=allowed,
                workers=workers,
                threads=State.threads,
                progress=lambda k: bar.advance(task, k),
            )
        out.print(f"{done['users']:,} users, {done['rows']:,} rows -> {escape(str(out_path))}")
        if done["unknown"]:
            example = done["unknown_example"]
            err.print(
                f"[yellow]note:[/yellow] {done['unknown']:,} unknown user(s) skipped, "
                f"e.g. {escape(repr(example))}"
            )
        return
    options = {"n": n, "model": model, "explain": explain, "exclude": banned, "candidates": allowed}
    if with_items:
        pairs = _stdin_pairs() if with_items == ["-"] else _split_pairs(with_items)
        result = rm.recommendations(items=parse_pairs([str(p) for p in pairs]), remember=remember, **options)
    elif user is not None:
        result = rm.recommendations(user=user, **options)
    else:
        raise typer.BadParameter("give --user ID, --with ITEM[:VALUE] ..., or --users-file FILE")
    if as_json:
        print_json(result.as_dict())
        return
    who = f"user {result.user}" if result.user else "new user"
    titled = any(it.title for it in result.items)  # a catalogue without titles gets no column
    why = ["why"] if explain else []
    t = Table(
        "#", "item", *(["title"] if titled else []), "score", *why, title=f"{who} · route: {result.route}"
    )
    for rank, it in enumerate(result.items, start=1):
        t.add_row(
            str(rank),
            it.item,
            *([it.title or ""] if titled else []),
            _score(it.score),
            *(["; ".join(it.reasons)] if explain else []),
        )
    out.print(t)
    for w in result.warnings:
        err.print(f"[yellow]note:[/yellow] {escape(w)}")


def _score(value: float) -> str:
    """A score for a table: three decimals, or three significant digits where three
    decimals would print 0.000 (EASE's weights under a large penalty are that small)."""
    return f"{value:.3f}" if value == 0 or abs(value) >= 5e-4 else f"{value:.2e}"


def _stdin_pairs() -> list:
    """`--with -`: a JSON list of "ITEM[:VALUE]" strings on standard input."""
    from recmeta.errors import DataError

    try:
        pairs = json.load(sys.stdin)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f'--with -: standard input is not JSON ({exc}); give a list like ["50:5", "181"]'
        ) from None
    if not isinstance(pairs, list):
        raise DataError('--with -: standard input must be a JSON list like ["50:5", "181"]')
    return pairs


@app.command()
@fail_cleanly
def similar(
    item: Annotated[str, typer.Argument(help="An item id in the catalogue.")],
    n: Annotated[int, typer.Option("--top", "-n", help="How many items.", min=1)] = 10,
    model: Annotated[
        str,
        typer.Option(
            help="auto, a meta-learner (its item embeddings), itemknn (co-liked items), ease or "
            "episodic (their item-item weights)."
        ),
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Items like this one: nearest by a meta-learner's item embeddings, or by the item-item
    weights of item kNN or EASE."""
    from recmeta.api import Recmeta
    from recmeta.threads import set_threads

    if State.threads is None:
        set_threads(1)
    result = Recmeta(engine()).similar_items(item, n=n, model=model)
    if as_json:
        print_json(result.as_dict())
        return
    titled = any(it.title for it in result.items)
    t = Table("#", "item", *(["title"] if titled else []), "similarity", title=result.route)
    for rank, it in enumerate(result.items, start=1):
        t.add_row(str(rank), it.item, *([it.title or ""] if titled else []), _score(it.score))
    out.print(t)
    for w in result.warnings:
        err.print(f"[yellow]note:[/yellow] {escape(w)}")


@app.command()
@fail_cleanly
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes, each with its own warm models (about one per core).")
    ] = 1,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="RECMETA_TOKEN",
            help="Require 'Authorization: Bearer TOKEN' for POST /interactions (and for reads "
            "with --token-for-reads).",
        ),
    ] = None,
    token_for_reads: Annotated[
        bool, typer.Option("--token-for-reads", help="Require the token for every endpoint but /health.")
    ] = False,
    reload_every: Annotated[
        float, typer.Option(min=0.1, help="Seconds between checks for newly trained models.")
    ] = 2.0,
    models_dir: Annotated[Path, typer.Option(help="Where `recmeta train` wrote the checkpoints.")] = Path(
        "models"
    ),
    request_threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="Requests each process works on at once (1 is fastest for the math; more helps "
            "when a remote store is slow to answer).",
        ),
    ] = 1,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
) -> None:
    """Serve recommendations over HTTP (JSON) from the active models, warm between requests.

    GET /recommend/{user}?n=10&model=auto&explain=false, POST /recommend {"interactions":
    [{"item": ..., "value": ...}]} for someone not in the store, POST /interactions (events,
    counted at once), GET /health, GET /models; interactive docs at /docs. Newly trained models
    are picked up within --reload-every seconds, without dropping requests.
    """
    from recmeta.server import Settings
    from recmeta.server import serve as run_server

    if token_for_reads and not token:
        raise typer.BadParameter("--token-for-reads needs --token (or RECMETA_TOKEN)")
    settings = Settings(
        db=State.db,
        models_dir=str(models_dir),
        token=token,
        token_for_reads=token_for_reads,
        reload_every=reload_every,
        threads=State.threads or 1,
        request_threads=request_threads,
    )
    run_server(settings, host=host, port=port, workers=workers, access_log=access_log)


def _split_pairs(values: list[str]) -> list[str]:
    """`--with 50:5 181:5` arrives as one list; also accept comma-separated pairs."""
    return [p for v in values for p in v.replace(",", " ").split()]


def command():
    """The click command behind `app`, with help that reads plainly: flags show no type,
    arguments show their name in capitals, choices show as FORMAT-style names (listed in
    the help text) rather than a wrapped list."""
    import typer.main

    cmd = typer.main.get_command(app)

    def tidy(c) -> None:
        for param in c.params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
            elif param.param_type_name == "argument" and param.metavar is None:
                param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
            elif len(str(param.display_type(None) or "")) > 24:  # a long list of choices
                long = [o for o in param.opts if o.startswith("--")]
                param.metavar = (long[0][2:] if long else param.name).upper()
        made = c.get_help_option

        def help_option(ctx, made=made):  # --help is made per call: no type shown either
            option = made(ctx)
            if option is not None:
                option.metavar = ""
            return option

        c.get_help_option = help_option
        for sub in getattr(c, "commands", {}).values():
            tidy(sub)

    tidy(cmd)
    return cmd


def main() -> None:
    command()(prog_name="recmeta")


if __name__ == "__main__":
    main()
