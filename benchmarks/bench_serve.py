"""`recmeta serve` under load: latency, throughput, event consistency and a model switch.

    python benchmarks/bench_serve.py [--store ml100k.db --models-dir models] [--clients 20]
                                     [--seconds 20] [--workers 1]

Without --store it ingests ML-100K into a temporary SQLite store and trains every model with
`recmeta train` (defaults). It then starts a real `recmeta serve` process on a free port of
127.0.0.1 (uvicorn, one intra-op thread per request) and drives it from this process with
`--clients` concurrent keep-alive HTTP/1.1 connections (a small asyncio client, so that the
load generator takes little of the 2 cores it shares with the server). Phases:

1. `GET /recommend/{user}` for random stored users (model=auto): requests/s with every
   client sending as fast as it is answered (a closed loop, where p50 is mostly queueing:
   20 clients at R requests/s wait about 20/R s), then p50 and p99 under bounded loads of
   `--rates` requests/s spread over the same clients;
2. `POST /recommend` for a person with 5 interactions at `--post-rate` requests/s, once per
   meta-learner and the ensemble (the cold route), then with model=auto;
3. consistency: `POST /interactions` then `GET /recommend` for the same user, `--tries`
   times; a try passes when the answer counts the new row and no longer lists the item;
4. a model switch: phase 1's load while `recmeta train --model popular` registers a new
   checkpoint; every request must succeed and the server must switch to the new one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from common import machine
from ml100k import ml100k_dir

RECMETA = [sys.executable, "-m", "recmeta.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(tmp: Path) -> tuple[str, Path]:
    db, models = str(tmp / "ml100k.db"), tmp / "models"
    subprocess.run(
        [*RECMETA, "--db", db, "ingest", "interactions", "--format", "movielens-100k", str(ml100k_dir())],
        check=True,
    )
    subprocess.run([*RECMETA, "--db", db, "train", "--models-dir", str(models)], check=True)
    return db, models


def get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return json.loads(r.read())


async def request(reader, writer, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def drive(port: int, make, clients: int, seconds: float, until=None, rate: float | None = None) -> dict:
    """`clients` keep-alive connections sending `make()` -> (method, path, body) for
    `seconds` (or, given `until`, a coroutine, until it returns). Without `rate` each client
    sends its next request when the last is answered (a closed loop: the server's most
    requests/s). With `rate` (requests/s, all clients together) each client sends on a fixed
    schedule and a request's latency counts from its scheduled time, so that time spent
    queueing behind a slow answer is not left out."""
    lat: list[float] = []
    failed: list[tuple[int, bytes]] = []
    stop = [time.perf_counter() + seconds]
    interval = clients / rate if rate else 0.0

    async def one(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        due = time.perf_counter() + interval * k / clients
        while time.perf_counter() < stop[0]:
            method, path, body = make()
            if rate:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            t0 = due if rate else time.perf_counter()
            status, payload = await request(reader, writer, method, path, body)
            lat.append(time.perf_counter() - t0)
            due += interval
            if status != 200:
                failed.append((status, payload[:200]))
        writer.close()

    async def watch() -> None:
        await until
        stop[0] = time.perf_counter()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(clients)), *([watch()] if until is not None else []))
    wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {
        "requests": len(lat),
        "failed": len(failed),
        "first_failures": [f"{s} {p.decode(errors='replace')}" for s, p in failed[:3]],
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "rps": round(len(lat) / wall, 1),
        "rate": rate,
    }


async def consistency(port: int, users: list[str], tries: int) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = 0
    for k in range(tries):
        user = users[k % len(users)]
        _, before = await request(reader, writer, "GET", f"/recommend/{user}?n=20")
        before = json.loads(before)
        item = before["items"][0]["item"]
        event = {"user": user, "item": item, "value": 5, "timestamp": 1_900_000_000 + k}
        status, _ = await request(reader, writer, "POST", "/interactions", json.dumps(event).encode())
        _, after = await request(reader, writer, "GET", f"/recommend/{user}?n=20")
        after = json.loads(after)
        ok += (
            status == 200
            and after["interactions"] == before["interactions"] + 1
            and item not in {it["item"] for it in after["items"]}
        )
    writer.close()
    return {"tries": tries, "reflected": ok, "share": ok / tries}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", help="a store with trained models (default: ML-100K, trained here)")
    ap.add_argument("--models-dir", default="models")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--tries", type=int, default=200)
    ap.add_argument(
        "--rates", type=float, nargs="+", default=[100, 250], help="bounded GET loads, requests/s"
    )
    ap.add_argument("--post-rate", type=float, default=100, help="bounded POST /recommend load, requests/s")
    ap.add_argument("--json", dest="json_out", help="write the figures here")
    args = ap.parse_args()
    print(machine(), f"load average {os.getloadavg()[0]:.2f}", flush=True)
    tmp = tempfile.TemporaryDirectory(prefix="bench-serve-")
    db, models = (args.store, Path(args.models_dir)) if args.store else prepare(Path(tmp.name))
    port = free_port()
    serve_opts = ["--workers", str(args.workers), "--reload-every", "1"]
    server = subprocess.Popen(
        [*RECMETA, "--db", db, "serve", "--port", str(port), *serve_opts],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                health = get(port, "/health")
                if health["models"]:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("the server did not come up")
        out = run(port, db, models, args)
        out.update(
            machine=machine(),
            load_average_after=os.getloadavg()[0],
            clients=args.clients,
            workers=args.workers,
            seconds=args.seconds,
        )
    finally:
        server.terminate()
        server.wait(30)
        tmp.cleanup()
    print(json.dumps(out, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))


def run(port: int, db: str, models: Path, args) -> dict:
    from recmeta.store import make_engine, session_scope
    from recmeta.store.models import User
    from recmeta.store.repository import catalogue, entities_frame

    engine = make_engine(db)
    with session_scope(engine) as s:
        users = entities_frame(s, User).external_id.astype(str).tolist()
        items = list(catalogue(s))
    rng = random.Random(0)

    def by_user():
        return "GET", f"/recommend/{rng.choice(users)}?n=10", b""

    def cold(model: str):
        def make():
            picks = rng.sample(items[:400], 5)
            body = {"interactions": [{"item": i, "value": rng.choice([3, 4, 5])} for i in picks], "n": 10}
            return "POST", "/recommend", json.dumps({**body, "model": model}).encode()

        return make

    out: dict = {"load_average_before": os.getloadavg()[0]}
    asyncio.run(drive(port, by_user, args.clients, 3))  # warm-up: connections, caches
    out["get_user_max"] = asyncio.run(drive(port, by_user, args.clients, args.seconds))
    print("GET /recommend/{user}, closed loop", out["get_user_max"], flush=True)
    for rate in args.rates:
        out[f"get_user_at_{rate:g}"] = asyncio.run(
            drive(port, by_user, args.clients, args.seconds, rate=rate)
        )
        print(f"GET /recommend/{{user}} at {rate:g}/s", out[f"get_user_at_{rate:g}"], flush=True)
    for model in ("maml", "protonet", "metalstm", "ensemble", "auto"):
        stats = asyncio.run(drive(port, cold(model), args.clients, args.seconds / 2, rate=args.post_rate))
        out[f"post_{model}_at_{args.post_rate:g}"] = stats
        print(f"POST /recommend model={model} at {args.post_rate:g}/s", stats, flush=True)
    out["consistency"] = asyncio.run(consistency(port, users, args.tries))
    print("consistency", out["consistency"], flush=True)
    before = get(port, "/health")["models"]["popular"]
    switched: dict = {}

    async def retrain_and_switch() -> None:
        """`recmeta train --model popular` under load; returns 2 s after the server switched."""
        await asyncio.sleep(2)
        t0 = time.perf_counter()
        cmd = [*RECMETA, "--db", db, "train", "--model", "popular", "--models-dir", str(models)]
        trainer = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL)
        await trainer.wait()
        registered = time.perf_counter()
        while (now := (await asyncio.to_thread(get, port, "/health"))["models"]["popular"]) == before:
            if time.perf_counter() - registered > 30:
                break
            await asyncio.sleep(0.2)
        switched.update(
            popular_before=before,
            popular_after=now,
            switched=now != before,
            train_s=registered - t0,
            switch_after_registered_s=time.perf_counter() - registered,
        )
        await asyncio.sleep(2)

    out["switch"] = asyncio.run(drive(port, by_user, args.clients, 600, until=retrain_and_switch()))
    out["switch"].update(switched)
    print("switch", out["switch"], flush=True)
    return out


if __name__ == "__main__":
    main()
