"""`recmeta serve`: the Python API over HTTP (FastAPI on uvicorn), warm between requests.

The server holds no recommendation logic: every endpoint calls one `Recmeta` method. The
work runs on request threads (never on the event loop; `--request-threads`, default 1, per
process) with one intra-op thread each unless `--threads` says otherwise; `--workers N` runs
N processes. A background task calls `Recmeta.refresh` every few
seconds: a newly registered checkpoint is loaded and warmed beside the old one, then swapped
in, so requests in flight finish on the old one and none fails.

Errors are JSON `{"error": message}`: 404 unknown user or item, 422 bad values, 401 a
missing or wrong token, 503 no model trained or the store unreachable, 500 anything else (its
traceback goes to the server's log, never to the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hmac
import json
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from recmeta.api import Recmeta
from recmeta.errors import (
    CheckpointError,
    DataError,
    RecmetaError,
    StoreError,
    UnknownCheckpointError,
    UnknownItemError,
    UnknownUserError,
    env_number,
    parse_failure,
)
from recmeta.ingest.ids import clipped
from recmeta.store import make_engine

log = logging.getLogger("recmeta.serve")

STATUS = {
    UnknownCheckpointError: 404,
    UnknownUserError: 404,
    UnknownItemError: 404,
    DataError: 422,
    CheckpointError: 503,
    StoreError: 503,
}
MAX_N = 1000  # the longest list one request may ask for


@dataclass(frozen=True)
class Settings:
    """How a server runs; `from_env` reads them in each worker process."""

    db: str | None = None
    token: str | None = None
    token_for_reads: bool = False
    reload_every: float = 2.0  # seconds between checks for new checkpoints
    threads: int = 1  # intra-op threads per request: one request's matrices are small
    request_threads: int = 1  # requests worked on at once per process (more for a slow store)

    def to_env(self) -> dict[str, str]:
        env = {
            "RECMETA_THREADS": str(self.threads),
            "RECMETA_REQUEST_THREADS": str(self.request_threads),
            "RECMETA_TOKEN_FOR_READS": "1" if self.token_for_reads else "",
            "RECMETA_RELOAD_EVERY": str(self.reload_every),
        }
        if self.db:
            env["RECMETA_DB"] = self.db
        if self.token:
            env["RECMETA_TOKEN"] = self.token
        return env

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            db=os.environ.get("RECMETA_DB"),
            token=os.environ.get("RECMETA_TOKEN") or None,
            token_for_reads=bool(os.environ.get("RECMETA_TOKEN_FOR_READS")),
            reload_every=env_number("RECMETA_RELOAD_EVERY", 2.0, 0, whole=False),
            threads=int(env_number("RECMETA_THREADS", 1, 1)),
            request_threads=int(env_number("RECMETA_REQUEST_THREADS", 1, 1)),
        )


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, allow_nan=False), status_code=status, media_type="application/json")


def error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


class Unauthorized(Exception):
    pass


def create_app(rm: Recmeta, settings: Settings) -> FastAPI:
    """The ASGI app serving `rm`."""
    # Requests' work runs on a few threads of its own, not on the event loop and not on one
    # thread per request: torch releases the GIL at every operation, and twenty threads
    # fighting for it answer several times slower than one that works through them in turn.
    pool = ThreadPoolExecutor(settings.request_threads, thread_name_prefix="recmeta-request")

    async def work(fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args, **kwargs))

    async def require_token(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), settings.token.encode()
        ):
            raise Unauthorized

    async def require_for_reads(request: Request) -> None:
        if settings.token_for_reads:
            await require_token(request)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        try:
            await run_in_threadpool(rm.refresh, preload=True)
        except RecmetaError as exc:  # no models yet: serve 503 until `recmeta train` registers some
            log.warning("%s", exc)
        gc.freeze()  # what is loaded now lives as long as the server: no collection walks it again
        task = asyncio.create_task(reload_loop())
        yield
        task.cancel()
        pool.shutdown(wait=False, cancel_futures=True)

    async def reload_loop() -> None:
        while True:
            await asyncio.sleep(settings.reload_every)
            try:
                if await run_in_threadpool(rm.refresh, preload=True):
                    log.info("switched to models %s", rm.health()["models"])
                    gc.collect()  # the old models go, the new ones are kept out of later collections
                    gc.freeze()
            except Exception as exc:  # a bad new checkpoint: keep serving the old ones
                log.warning("could not load the newly registered models, still serving the old ones: %s", exc)

    app = FastAPI(
        title="recmeta",
        summary="Cold-start recommendations by meta-learning",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )

    @app.exception_handler(RecmetaError)
    async def recmeta_error(_request: Request, exc: RecmetaError) -> Response:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 422)
        return error(status, str(exc))

    @app.exception_handler(Unauthorized)
    async def unauthorized(_request: Request, _exc: Unauthorized) -> Response:
        return error(401, "a valid token is required: send the header 'Authorization: Bearer TOKEN'")

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return error(422, "; ".join(problems[:5]))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> Response:
        log.error("internal error", exc_info=exc)
        return error(500, "internal error; the server's log has the details")

    @app.get("/recommend/{user}", openapi_extra={"parameters": QUERY_DOCS})
    async def recommend_user(user: str, request: Request) -> Response:
        """Top `n` for a stored user: the same list, route and reasons as `recmeta recommend`.
        Query: n (1-1000, default 10), model (auto), explain (false)."""
        await require_for_reads(request)
        n, model, explain = recommend_query(request.query_params)  # read here: FastAPI's
        # parameter machinery costs more than the model on this hot path
        result = await work(rm.recommendations, user=user, n=n, model=model, explain=explain)
        return json_response(result.as_dict())

    @app.get("/similar/{item}", openapi_extra={"parameters": QUERY_DOCS[:2]})
    async def similar(item: str, request: Request) -> Response:
        """Items like `item` (a product page's "more like this"), as `recmeta similar`.
        Query: n (1-1000, default 10), model (auto)."""
        await require_for_reads(request)
        n, model, _ = recommend_query(request.query_params, ("n", "model"))
        return json_response((await work(rm.similar_items, item, n=n, model=model)).as_dict())

    @app.post("/recommend", dependencies=[Depends(require_for_reads)])
    async def recommend_history(request: Request) -> Response:
        """Top `n` for someone known only by `interactions` ([{item, value?}]); nothing is
        written. Also takes n, model, explain, exclude and candidates."""
        body = await json_body(request)
        return json_response((await work(history_request, body)).as_dict())

    def history_request(body: Any):
        if not isinstance(body, dict):
            raise DataError('send a JSON object: {"interactions": [{"item": ..., "value": ...}], "n": 10}')
        unknown = set(body) - {"interactions", "n", "model", "explain", "exclude", "candidates"}
        if unknown:
            raise DataError(
                f"unknown field(s) {sorted(unknown)}; give interactions, n, model, explain, "
                "exclude, candidates"
            )
        pairs = body.get("interactions")
        if not isinstance(pairs, list):
            raise DataError("interactions must be a list of {item, value?} objects (it may be empty)")
        items = []
        for k, p in enumerate(pairs, 1):
            if not isinstance(p, dict) or "item" not in p or set(p) - {"item", "value"}:
                raise DataError(f"interaction {k}: give an object {{item, value?}}")
            items.append((scalar(p["item"], f"interaction {k}: item"), number(p.get("value"), k)))
        n = body.get("n", 10)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
            raise DataError(f"n must be a whole number from 1 to {MAX_N}")
        return rm.recommendations(
            items=dict(items),  # a repeated item counts once, with its last value
            n=n,
            model=str(body.get("model", "auto")),
            explain=bool(body.get("explain", False)),
            exclude=[scalar(i, "exclude") for i in id_list(body.get("exclude", []), "exclude")],
            candidates=None
            if body.get("candidates") is None
            else [scalar(i, "candidates") for i in id_list(body["candidates"], "candidates")],
        )

    @app.post("/interactions", dependencies=[Depends(require_token)])
    async def add_interactions(request: Request) -> Response:
        """Append one event {user, item, value?, timestamp?}, a list of them, or {"events":
        [...]}, through ingest's validation (all or nothing); answers with what was written."""
        body = await json_body(request)
        events = body.get("events") if isinstance(body, dict) and "events" in body else body
        events = events if isinstance(events, list) else [events]
        return json_response(await work(rm.add_interactions, events))

    @app.get("/health")
    async def health() -> Response:
        """The store answers and which models are loaded (name -> registry id)."""
        try:
            state = await work(rm.health)
        except RecmetaError as exc:
            return json_response({"store": "unreachable", "error": str(exc)}, 503)
        return json_response({**state, "status": "ok" if state["models"] else "no models"})

    @app.get("/models", dependencies=[Depends(require_for_reads)])
    async def models(active: bool = False) -> Response:
        """Registered checkpoints, newest first (as `recmeta models --json`)."""
        return json_response(await work(rm.models, active_only=active))

    @app.post("/models/{model_id}/activate", dependencies=[Depends(require_token)])
    async def activate(model_id: str) -> Response:
        """Serve registered checkpoint `model_id` for its name (a rollback), as `recmeta models
        --activate`; this server and its siblings switch at their next check."""
        return json_response(await work(rm.activate, model_id))

    return app


QUERY_DOCS = [
    {
        "name": "n",
        "in": "query",
        "schema": {"type": "integer", "default": 10, "minimum": 1, "maximum": MAX_N},
    },
    {"name": "model", "in": "query", "schema": {"type": "string", "default": "auto"}},
    {"name": "explain", "in": "query", "schema": {"type": "boolean", "default": False}},
]
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def recommend_query(params, names: tuple[str, ...] = ("n", "model", "explain")) -> tuple[int, str, bool]:
    """n, model and explain from a query string, each checked; parameters beyond `names` are
    an error."""
    unknown = set(params) - set(names)
    if unknown:
        raise DataError(f"unknown query parameter(s) {sorted(unknown)}; give {', '.join(names)}")
    raw = params.get("n", "10")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_N:
        raise DataError(f"n={clipped(raw)}: give a whole number from 1 to {MAX_N}")
    explain = params.get("explain", "false").lower()
    if explain not in TRUE + FALSE:
        raise DataError(f"explain={explain!r}: give true or false")
    return int(raw), params.get("model", "auto"), explain in TRUE


async def json_body(request: Request) -> Any:
    """The request's JSON, whatever its Content-Type says (curl -d sends a form type)."""
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > MAX_BODY:
            raise DataError(f"the body is over {MAX_BODY:,} bytes; load large logs with `recmeta ingest`")
        parts.append(part)
    raw = b"".join(parts)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataError(f"the body is not JSON: {parse_failure(exc)}") from None


MAX_BODY = 8 << 20  # bytes per request: more is a file for `recmeta ingest`


def scalar(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{what}: an id is a string or a whole number")
    return str(value)


def number(value: Any, k: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"interaction {k}: value must be a number")
    if not math.isfinite(value):  # JSON's 1e999 reads as inf
        raise DataError(f"interaction {k}: value must be a finite number")
    return float(value)


def id_list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise DataError(f"{what} must be a list of item ids")
    return value


def app_from_env() -> FastAPI:
    """The app for one uvicorn worker process, configured by `Settings.to_env`."""
    from recmeta.threads import set_threads

    settings = Settings.from_env()
    set_threads(settings.threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")  # as uvicorn's
    return create_app(Recmeta(settings.db, check_every=None), settings)


def check_listen(host: str, port: int) -> None:
    """`host`:`port` can be listened on now (a port in use, or a host that is not this
    machine's, said before the models load and in recmeta's words, not uvicorn's)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            sock.bind(infos[0][4])
    except OSError as exc:
        raise DataError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port, stop what "
            "listens there, or give a --host of this machine"
        ) from None


def serve(
    settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, access_log: bool = False
) -> None:
    """Run uvicorn with `workers` processes, each holding its own warm models."""
    import uvicorn

    from recmeta.threads import check_parallel

    check_parallel("--workers", workers)
    make_engine(settings.db, create=False)  # a store that cannot be opened fails here, once
    check_listen(host, port)
    os.environ.update(settings.to_env())
    uvicorn.run(
        "recmeta.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
    )
