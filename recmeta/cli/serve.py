"""`recmeta serve`: the HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer

from recmeta.cli.common import (
    State,
    app,
    fail_cleanly,
)


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
    request_threads: Annotated[
        int,
        typer.Option(
            min=1,
            max=256,
            help="Requests each process works on at once (1 is fastest for the math; more helps "
            "when a remote store is slow to answer).",
        ),
    ] = 1,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
) -> None:
    """Serve recommendations over HTTP (JSON) from the active models, warm between requests.

    GET /recommend/{user}?n=10&model=auto&explain=false, POST /recommend {"interactions":
    [{"item": ..., "value": ...}]} for someone not in the store, GET /similar/{item}, POST
    /interactions (events, counted at once), GET /health, GET /models; interactive docs at
    /docs. Newly trained models are picked up within --reload-every seconds, without dropping
    requests.
    """
    from recmeta.server import Settings
    from recmeta.server import serve as run_server

    if token_for_reads and not token:
        raise typer.BadParameter("--token-for-reads needs --token (or RECMETA_TOKEN)")
    settings = Settings(
        db=State.db,
        token=token,
        token_for_reads=token_for_reads,
        reload_every=reload_every,
        threads=State.threads or 1,
        request_threads=request_threads,
    )
    run_server(settings, host=host, port=port, workers=workers, access_log=access_log)
