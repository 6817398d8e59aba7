"""`recmeta db`, `recmeta data` and `recmeta stats`: the schema, datasets, the store's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from recmeta.cli.common import (
    State,
    app,
    check_applies,
    data_app,
    db_app,
    engine,
    fail_cleanly,
    out,
    print_json,
    rows_progress,
)


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

    eng = make_engine(State.db, migrate=False, create=False)
    out.print(f"revision {current_revision(eng)} (newest: {head_revision()})")


@data_app.command("synth")
@fail_cleanly
def data_synth(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path("data/synth"),
    users: Annotated[int, typer.Option(help="Number of users.", min=1)] = 1000,
    items: Annotated[int, typer.Option(help="Number of items.", min=1)] = 400,
    groups: Annotated[int, typer.Option(help="Planted taste groups.", min=1)] = 5,
    implicit: Annotated[bool, typer.Option("--implicit", help="Counts instead of ratings.")] = False,
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

    check_applies(ctx, "--size", size is not None, (), ("users", "items"))  # the preset's shape
    shape = {"users": users, "items": items}
    if size is not None:
        if size not in PRESETS:
            raise typer.BadParameter(f"unknown size {size!r}; choose {', '.join(PRESETS)}")
        shape = PRESETS[size]
    cfg = SynthConfig(**shape, groups=groups, implicit=implicit, seed=seed, drift=drift)
    with rows_progress("writing the log") as count:
        paths = write_synth(cfg, out_dir, progress=count)
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
    table.add_row("values", "-" if s["value_min"] is None else f"{s['value_min']} .. {s['value_max']}")
    table.add_row("time", f"{date(s['time_min'])} .. {date(s['time_max'])}")
    per = s["interactions_per_user"]
    table.add_row(
        "per user", f"min {per['min']}, median {per['median']:g}, mean {per['mean']:.1f}, max {per['max']}"
    )
    for k, n in s["users_with_at_most"].items():
        table.add_row(f"users with <= {k}", f"{n:,}")
    out.print(table)
