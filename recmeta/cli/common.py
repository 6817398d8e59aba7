"""What every command shares: the Typer apps, the consoles, the error boundary, the store's engine,
progress, and the options that name a log's columns."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.exceptions import TyperException

from recmeta.errors import RecmetaError

app = typer.Typer(
    help="recmeta: recommendations for users you barely know, by meta-learning.\n\n"
    "Typical run: ingest a log, train, evaluate, recommend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
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


def engine(create: bool = False):
    """The store's engine; a SQLite file that does not exist is an error unless `create`."""
    from recmeta.store import make_engine

    return make_engine(State.db, create=create)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@contextlib.contextmanager
def rows_progress(description: str, unit: str = "rows", total: int | None = None, every: float = 10.0):
    """A running count of `unit` on a terminal. Yields `count(k)` (k more done) and
    `count(done=n)` (n done in all); into a file or a pipe, a plain line every `every` seconds
    and one at the end instead."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    started = last = time.perf_counter()
    bar_or_spin = (BarColumn(),) if total else (SpinnerColumn(),)
    columns = (*bar_or_spin, TextColumn(description), TextColumn("{task.completed:,} " + unit))
    with Progress(
        *columns, TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal
    ) as bar:
        task = bar.add_task(description, total=total)

        def count(k: int = 0, *, done: int | None = None) -> None:
            nonlocal last
            if done is None:
                bar.update(task, advance=k)
            else:
                bar.update(task, completed=done)
            now = time.perf_counter()
            if now - last >= every:
                last = now
                of = f" of {total:,}" if total else ""
                plain_progress(
                    f"{description}: {bar.tasks[0].completed:,.0f}{of} {unit} ({now - started:.0f} s)"
                )

        yield count
        if time.perf_counter() - started >= every:
            plain_progress(f"{description}: {bar.tasks[0].completed:,.0f} {unit}, done")


class LogFormat(str, Enum):
    auto = "auto"
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"
    jsonl = "jsonl"
    movielens_100k = "movielens-100k"
    movielens = "movielens"


UserCol = Annotated[str | None, typer.Option(help="User id column.")]
ItemCol = Annotated[str | None, typer.Option(help="Item id column.")]
ValueCol = Annotated[str | None, typer.Option(help="Rating or count column.")]
TimeCol = Annotated[str | None, typer.Option(help="Timestamp column (unix or ISO date).")]
Implicit = Annotated[bool, typer.Option("--implicit", help="A click/count log: every row is positive.")]
EventWeights = Annotated[
    str | None,
    typer.Option(
        "--event-weights",
        help="Weigh a column of event names, e.g. view=1,cart=3,purchase=5: an implicit log whose "
        "rows count as their event's weight (the column: --value-col, or one named event, action, "
        "behavior_type, ...).",
    ),
]
Explicit = Annotated[
    bool,
    typer.Option(
        "--explicit", help="The value column holds ratings, even when its name or values look like counts."
    ),
]


class TimeUnit(str, Enum):
    s = "s"
    ms = "ms"


Sep = Annotated[str | None, typer.Option(help="Field separator (default: the one the first line holds).")]
Header = Annotated[
    bool,
    typer.Option(help="The first line names the columns (--no-header: user, item, value, timestamp)."),
]
Names = Annotated[
    str | None,
    typer.Option(
        help="Column names of a file without a header line, in order, e.g. "
        "user,item,category,event,time (implies --no-header).",
    ),
]
TimeUnitOpt = Annotated[TimeUnit, typer.Option("--time-unit", help="Unit of numeric timestamps.")]
Encoding = Annotated[str, typer.Option(help="Text encoding.")]
LAYOUT = (
    "user_col",
    "item_col",
    "value_col",
    "time_col",
    "implicit",
    "explicit",
    "event_weights",
    "sep",
    "header",
    "names",
    "time_unit",
    "encoding",
)  # the options above, which ingest and evaluate --log pass on as a LogSpec's fields


def layout_spec(ctx: typer.Context) -> dict[str, Any]:
    """The layout options of a command (LAYOUT) as LogSpec fields."""
    return {k: v.value if isinstance(v, Enum) else v for k, v in ctx.params.items() if k in LAYOUT}


class SplitKind(str, Enum):
    random = "random"
    temporal = "temporal"


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


def progress_bar():
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


def model_list(models: list[str]) -> tuple[str, ...]:
    """The models `--model` names (train and evaluate): every model when none or "all" is given."""
    from recmeta.train import ALL

    if not models:
        return ALL
    return ALL if "all" in models else tuple(models)


def _as_typed(param, value) -> str:
    """An option's name as the user typed it: `--no-header` for a flag pair turned off."""
    off = getattr(param, "secondary_opts", None)
    return off[0] if off and value is False else param.opts[0]


def check_applies(
    ctx: typer.Context, flag: str, on: bool, only_with: tuple[str, ...], not_with: tuple[str, ...]
) -> None:
    """Options typed on the command line that the mode chosen by `flag` (`on`) ignores (those
    of `only_with` without the flag, those of `not_with` with it) stop the command with an
    error that names them, instead of silently doing nothing."""
    ignored = not_with if on else only_with
    params = {p.name: p for p in ctx.command.params}
    typed = [n for n in ignored if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE"]
    given = [_as_typed(params[n], ctx.params.get(n)) for n in typed]  # (the source's name: typer
    # bundles a click of its own)
    if given:
        which = " and ".join(given)
        raise RecmetaError(
            f"{which} {'do' if len(given) > 1 else 'does'} nothing {'with' if on else 'without'} "
            f"{flag}; drop {'them' if len(given) > 1 else 'it'}" + ("" if on else f" or add {flag}")
        )
