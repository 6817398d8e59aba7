"""`recmeta recommend` and `recmeta similar`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from recmeta.cli.common import (
    State,
    app,
    check_applies,
    engine,
    err,
    fail_cleanly,
    out,
    print_json,
    rows_progress,
)


@app.command()
@fail_cleanly
def recommend(
    ctx: typer.Context,
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
            "--model",
            "-m",
            help="auto (route by history length), maml, protonet, metalstm, ensemble, als, itemknn, "
            "popular, ease or episodic.",
        ),
    ] = "auto",
    explain: Annotated[bool, typer.Option("--explain", help="Say why each item is there.")] = False,
    remember: Annotated[
        str | None, typer.Option(help="Store the --with interactions as this new user.")
    ] = None,
    users_file: Annotated[
        Path | None, typer.Option(help="Many users: ids one per line, or CSV/Parquet.")
    ] = None,
    all_users: Annotated[
        bool, typer.Option("--all-users", help="Every user in the store, as --users-file takes a file's.")
    ] = False,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="With --users-file or --all-users: .parquet, .csv or .jsonl.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="With --users-file or --all-users: score chunks of users in this many processes "
            "(the file is the same as one process writes).",
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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print as JSON (for many users: the counts and the file).")
    ] = False,
) -> None:
    """Recommend for a stored user, a new person's first interactions, or many users at once.

    Items the user already has are never recommended.

    Examples: recmeta recommend --user 1;  recmeta recommend --with 50:5 181:5 172:4 --explain
    """
    from recmeta.api import Recmeta
    from recmeta.recommend import check_out_path, iter_users_file, parse_pairs, read_item_list

    one = ("user", "with_items", "explain", "remember")  # what one list takes
    if all_users and users_file is not None:
        raise typer.BadParameter("give --users-file FILE or --all-users, not both")
    many = "--all-users" if all_users else "--users-file"
    check_applies(ctx, many, users_file is not None or all_users, ("out_path", "workers"), one)
    check_applies(ctx, "--with", bool(with_items), ("remember",), ("user",))
    banned = frozenset(exclude or ()) | (read_item_list(exclude_file) if exclude_file else frozenset())
    allowed = read_item_list(candidates) if candidates else None

    if more and not with_items:
        raise typer.BadParameter(f"unexpected {more[0]!r}; interactions follow --with")
    with_items = [*(with_items or []), *(more or [])]
    if State.threads is None and users_file is None and not all_users:  # one request: one thread
        from recmeta.threads import set_threads

        set_threads(1)
    rm = Recmeta(engine())
    if users_file is not None or all_users:
        if out_path is None:
            raise typer.BadParameter(f"{many} needs --out FILE (.parquet, .csv or .jsonl)")
        check_out_path(out_path)
        with rows_progress("recommending", "users", rm.user_count() if all_users else None) as count:
            done = rm.recommend_users_to(
                rm.user_ids() if all_users else iter_users_file(users_file),
                out_path,
                n=n,
                model=model,
                exclude=banned,
                candidates=allowed,
                workers=workers,
                threads=State.threads,
                progress=count,
            )
        if as_json:
            print_json({**done, "out": str(out_path)})
            return
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
    out.print(f"{who} · route: {escape(result.route)}")
    t = Table("#", "item", *(["title"] if titled else []), "score", *why)
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
    from recmeta.errors import DataError, parse_failure

    try:
        pairs = json.load(sys.stdin)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(
            f'--with -: standard input is not JSON ({parse_failure(exc)}); give a list like ["50:5", "181"]'
        ) from None
    if not isinstance(pairs, list) or any(
        isinstance(p, bool) or not isinstance(p, (str, int)) for p in pairs
    ):
        raise DataError('--with -: standard input must be a JSON list of strings like ["50:5", "181"]')
    return pairs


@app.command()
@fail_cleanly
def similar(
    item: Annotated[str, typer.Argument(help="An item id in the catalogue.")],
    n: Annotated[int, typer.Option("--top", "-n", help="How many items.", min=1)] = 10,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="auto, a meta-learner (its item embeddings), itemknn (co-liked items), ease or "
            "episodic (their item-item weights).",
        ),
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Items like this one, by a model's item embeddings or item-item weights.

    Nearest by a meta-learner's item embeddings, or by the item-item weights of item kNN or
    EASE."""
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


def _split_pairs(values: list[str]) -> list[str]:
    """`--with 50:5 181:5` arrives as one list; also accept comma-separated pairs."""
    return [p for v in values for p in v.replace(",", " ").split()]
