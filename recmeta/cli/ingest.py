"""`recmeta ingest interactions | items | users`: load logs and metadata into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

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
    OnError,
    Sep,
    State,
    TimeCol,
    TimeUnit,
    TimeUnitOpt,
    UserCol,
    ValueCol,
    check_applies,
    engine,
    fail_cleanly,
    ingest_app,
    layout_spec,
    out,
    print_json,
    rows_progress,
)


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
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="CSV/TSV/Parquet/JSON Lines logs of one layout (all written or none), or a MovieLens folder."
        ),
    ],
    fmt: Annotated[
        LogFormat,
        typer.Option(
            "--format",
            "-f",
            help="File layout: auto (by extension), csv, tsv, parquet, jsonl, movielens-100k or movielens.",
        ),
    ] = LogFormat.auto,
    user_col: UserCol = None,
    item_col: ItemCol = None,
    value_col: ValueCol = None,
    time_col: TimeCol = None,
    implicit: Implicit = False,
    explicit: Explicit = False,
    event_weights: EventWeights = None,
    sep: Sep = None,
    header: Header = True,
    names: Names = None,
    time_unit: TimeUnitOpt = TimeUnit.s,
    encoding: Encoding = "utf-8",
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
    from recmeta.ingest.movielens import FORMATS
    from recmeta.ingest.pipeline import ingest_file, ingest_paths
    from recmeta.store import new_store_undone

    fixed = (*LAYOUT, "on_error", "rejects")  # a MovieLens folder has a layout of its own
    check_applies(ctx, f"--format {fmt.value}", fmt.value in FORMATS, (), fixed)
    check_applies(ctx, "--on-error skip", on_error is OnError.skip, ("rejects",), ())
    spec = layout_spec(ctx)
    shown = paths[0].name if len(paths) == 1 else f"{len(paths)} logs"
    with new_store_undone(State.db), rows_progress(f"ingesting {shown}") as count:
        tick = lambda n: count(done=n)  # noqa: E731
        reports = ingest_file(
            engine(create=True),
            lambda s: ingest_paths(
                s, paths, fmt.value, on_error=on_error.value, rejects_path=rejects, progress=tick, **spec
            ),
        )
    _report_table(reports, as_json)


def _ingest_metadata(
    path: Path, for_items: bool, id_col: str | None, title_col, genres_col, year_col, sep, as_json: bool
) -> None:
    from recmeta.ingest.pipeline import ingest_file, ingest_metadata, read_metadata
    from recmeta.store import new_store_undone
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
    with new_store_undone(State.db):
        report = ingest_file(engine(create=True), lambda s: ingest_metadata(s, entity, records, str(path)))
    _report_table([report], as_json)


@ingest_app.command("items")
@fail_cleanly
def ingest_items(
    path: Annotated[Path, typer.Argument(help="CSV/TSV/Parquet/JSON Lines with one row per item.")],
    id_col: Annotated[str | None, typer.Option(help="Item id column (default: item, item_id, ...).")] = None,
    title_col: Annotated[str | None, typer.Option(help="Title column (default: title, name, ...).")] = None,
    genres_col: Annotated[
        str | None, typer.Option(help="Genres column, '|'-separated (default: genres, category, ...).")
    ] = None,
    year_col: Annotated[str | None, typer.Option(help="Year column (default: year, release_year).")] = None,
    sep: Annotated[str | None, typer.Option(help="Field separator.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Load item metadata (title, genres, year; other columns become features)."""
    _ingest_metadata(path, True, id_col, title_col, genres_col, year_col, sep, as_json)


@ingest_app.command("users")
@fail_cleanly
def ingest_users(
    path: Annotated[Path, typer.Argument(help="CSV/TSV/Parquet/JSON Lines with one row per user.")],
    id_col: Annotated[str | None, typer.Option(help="User id column (default: user, user_id, ...).")] = None,
    sep: Annotated[str | None, typer.Option(help="Field separator.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Load user metadata; every column but the id becomes a feature (age, gender, ...)."""
    _ingest_metadata(path, False, id_col, None, None, None, sep, as_json)
