"""`recmeta serve` through a real uvicorn process on a free local port: every endpoint's
success and error cases, the token rule, event-then-recommend consistency, a model switch
under load, and README's HTTP examples."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recmeta.cli import app

runner = CliRunner()
README = Path(__file__).resolve().parents[1] / "README.md"
TOKEN = "s3cret-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body=None, token: str | None = None, raw: bytes | None = None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, body=None, **kw):
        return self.call("POST", path, body, **kw)


@contextmanager
def server(db: str, *args: str) -> Iterator[Client]:
    port = free_port()
    cmd = [sys.executable, "-m", "recmeta.cli", "--db", db, "serve", "--port", str(port)]
    cmd += ["--reload-every", "0.3", *args]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ | {"CI": ""}
    )
    client = Client(port)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, _ = client.get("/health")
                if status in (200, 503):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start: {proc.stdout.read().decode()}")
            time.sleep(0.2)
        yield client
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            log = proc.communicate(timeout=20)[0].decode()
        except subprocess.TimeoutExpired:
            proc.kill()
            log = proc.communicate()[0].decode()
        assert "Traceback" not in log, log


def invoke(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("serve")
    db = str(root / "r.db")
    invoke("data", "synth", "--out", str(root / "s"), "--users", "150", "--items", "50")
    invoke("--db", db, "ingest", "interactions", str(root / "s" / "interactions.csv"))
    invoke("--db", db, "train", "--epochs", "1", "--models-dir", str(root / "m"))
    return db, root / "m"


@pytest.fixture(scope="module")
def client(store) -> Iterator[Client]:
    with server(store[0], "--token", TOKEN) as c:
        yield c


def test_health_and_models(client):
    status, health = client.get("/health")
    assert status == 200 and health["status"] == "ok" and health["store"] == "ok"
    assert {"maml", "protonet", "metalstm", "ensemble", "als", "router"} <= set(health["models"])
    status, models = client.get("/models?active=true")
    assert status == 200 and {m["name"] for m in models} == set(health["models"])


def test_similar_items_equal_the_cli(client, store):
    db, _ = store
    status, body = client.get("/similar/3?n=4&model=itemknn")
    cli = json.loads(invoke("--db", db, "similar", "3", "-n", "4", "-m", "itemknn", "--json"))
    assert status == 200 and [it["item"] for it in body["items"]] == [it["item"] for it in cli["items"]]
    assert len(body["items"]) == 4 and "3" not in [it["item"] for it in body["items"]]
    assert client.get("/similar/no-such-item")[0] == 404
    status, out = client.get("/similar/3?explain=true")
    assert status == 422 and out["error"] == "unknown query parameter(s) ['explain']; give n, model"


def test_recommend_for_a_user_equals_the_cli(client, store):
    db, _ = store
    status, body = client.get("/recommend/7?n=5&explain=true")
    assert status == 200 and len(body["items"]) == 5
    cli = json.loads(invoke("--db", db, "recommend", "--user", "7", "-n", "5", "--explain", "--json"))
    assert [it["item"] for it in body["items"]] == [it["item"] for it in cli["items"]]
    assert body["route"] == cli["route"] and body["model"] == cli["model"]
    assert [it["reasons"] for it in body["items"]] == [it["reasons"] for it in cli["items"]]
    for name in ("maml", "protonet", "metalstm", "popular"):
        status, body = client.get(f"/recommend/7?n=3&model={name}")
        assert status == 200 and body["model"] == name and len(body["items"]) == 3


def test_recommend_for_someone_new_writes_nothing(client, store):
    db, _ = store
    before = json.loads(invoke("--db", db, "stats", "--json"))["users"]
    body = {"interactions": [{"item": "3", "value": 5}, {"item": 12}], "n": 4, "exclude": ["20"]}
    status, out = client.post("/recommend", body)
    assert status == 200 and out["interactions"] == 2 and len(out["items"]) == 4
    assert not {"3", "12", "20"} & {it["item"] for it in out["items"]}
    cli = json.loads(
        invoke("--db", db, "recommend", "--with", "3:5", "12", "-n", "4", "--exclude", "20", "--json")
    )
    assert [it["item"] for it in out["items"]] == [it["item"] for it in cli["items"]]
    assert json.loads(invoke("--db", db, "stats", "--json"))["users"] == before
    status, out = client.post("/recommend", {"interactions": [], "n": 3})
    assert status == 200 and out["route"].startswith("prior")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("GET", "/recommend/nobody", None, 404, "not in the store"),
        ("POST", "/recommend", {"interactions": [{"item": "no-such-item"}]}, 404, "not in the catalogue"),
        ("GET", "/recommend/7?n=0", None, 422, "n='0'"),
        ("GET", "/recommend/7?explain=maybe", None, 422, "explain"),
        ("GET", "/recommend/7?count=3", None, 422, "unknown query"),
        ("GET", "/recommend/7?n=abc", None, 422, "n"),
        ("GET", "/recommend/7?model=best", None, 422, "unknown model"),
        ("POST", "/recommend", {"interactions": [{"item": "3", "value": "five"}]}, 422, "number"),
        ("POST", "/recommend", {"interactions": [{"item": "3", "value": 1e9}]}, 422, "values in this store"),
        ("POST", "/recommend", {"interactions": [{"item": ["3"]}]}, 422, "id"),
        ("POST", "/recommend", {"interactions": "3"}, 422, "list"),
        ("POST", "/recommend", {"interactions": [], "n": 10**6}, 422, "n must be"),
        ("POST", "/recommend", {"interactions": [], "colour": "red"}, 422, "unknown field"),
        ("POST", "/recommend", [1, 2], 422, "JSON object"),
        ("GET", "/no/such/path", None, 404, "Not Found"),
    ],
)
def test_errors_are_json_with_the_right_status(client, method, path, body, status, words):
    got, out = client.call(method, path, body)
    assert got == status and set(out) == {"error"} and words in out["error"]
    assert "Traceback" not in out["error"]


def test_a_body_that_is_not_json_is_a_422(client):
    status, out = client.call("POST", "/recommend", raw=b"{not json")
    assert status == 422 and "not JSON" in out["error"]
    status, out = client.call("POST", "/recommend", raw=b'{"interactions": [{"item": "3", "value": NaN}]}')
    assert status == 422 and "finite" in out["error"]
    status, out = client.call("POST", "/recommend", raw=b'{"interactions": [{"item": "3", "value": 1e999}]}')
    assert status == 422 and out["error"] == "interaction 1: value must be a finite number"
    deep = b"[" * 100_000 + b"]" * 100_000  # 200 kB, under the size limit: the parser's recursion
    status, out = client.call("POST", "/recommend", raw=deep)
    assert status == 422 and "nested too deeply" in out["error"]


def test_writes_need_the_token_and_reads_do_not(client):
    event = {"user": "tok-user", "item": "3", "value": 4}
    assert client.post("/interactions", event)[0] == 401
    assert client.post("/interactions", event, token="wrong")[0] == 401
    status, out = client.post("/interactions", event, token=TOKEN)
    assert status == 200 and out["inserted"] == 1 and out["users_created"] == 1
    assert client.get("/recommend/tok-user")[0] == 200


def test_a_bad_event_writes_nothing(client, store):
    db, _ = store
    before = json.loads(invoke("--db", db, "stats", "--json"))["interactions"]
    events = [{"user": "7", "item": "4", "value": 4}, {"user": "7", "item": "5", "value": "x"}]
    status, out = client.post("/interactions", events, token=TOKEN)
    assert status == 422 and "event:2" in out["error"] and "Nothing was written" in out["error"]
    status, out = client.post("/interactions", {"user": "7", "item": "4"}, token=TOKEN)
    assert status == 422 and "missing value" in out["error"]  # a ratings store needs the value
    status, out = client.post("/interactions", {"user": "7", "item": "4", "value": 3, "when": 1}, token=TOKEN)
    assert status == 422 and "unknown field" in out["error"]
    assert json.loads(invoke("--db", db, "stats", "--json"))["interactions"] == before


def test_an_event_counts_in_the_next_recommendation_every_time(client):
    status, before = client.get("/recommend/9?n=50&model=maml")
    assert status == 200
    shown = [it["item"] for it in before["items"]]
    rows = before["interactions"]
    for k, item in enumerate(shown[:8], 1):
        stamp = 2_000_000_000 + k
        status, out = client.post(
            "/interactions", {"user": "9", "item": item, "value": 5, "timestamp": stamp}, token=TOKEN
        )
        assert status == 200 and out["inserted"] == 1
        status, after = client.get("/recommend/9?n=50&model=maml")
        assert after["interactions"] == rows + k
        assert item not in {it["item"] for it in after["items"]}  # held now, so not recommended


def test_a_store_without_models_answers_503_until_one_is_trained(tmp_path):
    db = str(tmp_path / "e.db")
    invoke("data", "synth", "--out", str(tmp_path / "s"), "--users", "60", "--items", "30")
    invoke("--db", db, "ingest", "interactions", str(tmp_path / "s" / "interactions.csv"))
    with server(db, "--token", TOKEN, "--token-for-reads") as c:
        status, health = c.get("/health")  # health stays open
        assert status == 200 and health["status"] == "no models"
        assert c.get("/recommend/3")[0] == 401
        status, out = c.get("/recommend/3", token=TOKEN)
        assert status == 503 and "recmeta train" in out["error"]
        invoke("--db", db, "train", "--model", "popular", "--models-dir", str(tmp_path / "m"))
        deadline = time.monotonic() + 30
        while c.get("/recommend/3", token=TOKEN)[0] != 200:
            assert time.monotonic() < deadline, "the new model was not picked up"
            time.sleep(0.2)


def test_a_new_checkpoint_is_picked_up_under_load_without_a_failed_request(client, store):
    db, models = store
    old = client.get("/health")[1]["models"]["popular"]
    failures: list = []
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            for path in ("/recommend/7?n=5", "/recommend/11?n=5&model=popular"):
                status, out = client.get(path)
                if status != 200:
                    failures.append((status, out))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        invoke("--db", db, "train", "--model", "popular", "--models-dir", str(models))
        deadline = time.monotonic() + 30
        while client.get("/health")[1]["models"]["popular"] == old:
            assert time.monotonic() < deadline, "the new checkpoint was not picked up"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        done.set()
        for w in workers:
            w.join()
    assert failures == []
    # a rollback over HTTP: the token, then the old checkpoint serves again
    assert client.post(f"/models/{old}/activate")[0] == 401
    assert client.post("/models/99999/activate", token=TOKEN)[0] == 404
    assert client.post(f"/models/{'9' * 30}/activate", token=TOKEN)[0] == 404
    assert client.post("/models/latest/activate", token=TOKEN)[0] == 422
    status, out = client.post(f"/models/{old}/activate", token=TOKEN)
    assert status == 200 and out["id"] == old and out["name"] == "popular"
    deadline = time.monotonic() + 30
    while client.get("/health")[1]["models"]["popular"] != old:
        assert time.monotonic() < deadline, "the rollback was not picked up"
        time.sleep(0.2)
    # the partial train re-routed with every active model, not with popularity alone
    router = next(m for m in client.get("/models?active=true")[1] if m["name"] == "router")
    assert {"maml", "protonet", "metalstm", "als", "popular"} <= set(router["config"]["validation"])


def readme_http_examples() -> list[list[str]]:
    text = README.read_text()
    start = text.index("## HTTP API")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S).group(1)
    return [shlex.split(line) for line in block.splitlines() if line.startswith("curl ")]


def test_the_readme_http_examples_work(client):
    examples = readme_http_examples()
    assert len(examples) >= 4
    for argv in examples:
        url = next(a for a in argv if a.startswith("http://"))
        path = "/" + url.split("/", 3)[3]
        data = argv[argv.index("-d") + 1].encode() if "-d" in argv else None
        method = "POST" if data is not None else "GET"
        token = TOKEN if any("Authorization" in a for a in argv) else None
        status, out = client.call(method, path, token=token, raw=data)
        assert status == 200, (argv, out)


def test_serving_a_postgresql_store(pg_url, tmp_path):
    invoke("data", "synth", "--out", str(tmp_path / "s"), "--users", "60", "--items", "30")
    invoke("--db", pg_url, "ingest", "interactions", str(tmp_path / "s" / "interactions.csv"))
    invoke(
        "--db",
        pg_url,
        "train",
        "--model",
        "popular",
        "--model",
        "itemknn",
        "--models-dir",
        str(tmp_path / "m"),
    )
    with server(pg_url, "--token", TOKEN) as c:
        status, before = c.get("/recommend/3?n=30&model=itemknn")
        assert status == 200 and before["interactions"] > 0
        item = before["items"][0]["item"]
        event = {"user": "3", "item": item, "value": 5, "timestamp": 2_000_000_000}
        assert c.post("/interactions", event, token=TOKEN)[1]["inserted"] == 1
        status, after = c.get("/recommend/3?n=30&model=itemknn")
        assert after["interactions"] == before["interactions"] + 1 and item not in {
            it["item"] for it in after["items"]
        }
        assert c.get("/recommend/nobody")[0] == 404
