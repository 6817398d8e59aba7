"""The recmeta command line: each command parses, calls the library, and prints. Commands live
in the modules of this package, grouped as the help lists them; this module holds the root
options and the entry point."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from recmeta import __version__
from recmeta.cli.common import State, app, out

# the commands, registered in the order the help lists them
# isort: off
from recmeta.cli import ingest, store, train, evaluate, recommend, serve  # noqa: F401
# isort: on


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
        from recmeta.errors import DataError
        from recmeta.threads import set_threads

        try:
            set_threads(threads)
        except DataError as exc:  # before any command runs: a usage error, as min=1 is
            raise typer.BadParameter(
                str(exc).removeprefix(f"--threads {threads:,}: "), param_hint="--threads"
            ) from None
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


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
                param.metavar = param.name.upper()  # several: click adds the "..."
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
