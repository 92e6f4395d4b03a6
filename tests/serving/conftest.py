"""Fixtures of the serving tests: tiny models trained here on a literal log, and a
real ``redis-server`` on a free local port (tests that need it skip without it)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seqrec.data.idmap import ItemIndex
from seqrec.data.sessions import SessionLog
from seqrec.models.gru4rec import GRU4Rec
from seqrec.models.pop import Pop, SessionPop

# A tiny click log: external item ids, one list per session, in time order.
SESSIONS = [
    ["a", "b", "c"],
    ["b", "c", "d"],
    ["a", "c", "e", "f"],
    ["d", "e"],
    ["f", "a", "b"],
    ["c", "d", "e", "f", "g"],
    ["g", "h"],
    ["h", "a", "b"],
    ["e", "f", "g", "h"],
    ["b", "d", "f", "h"],
    ["a", "a", "c"],
    ["i", "j", "a"],
    ["j", "i"],
]
ITEMS = sorted({x for s in SESSIONS for x in s})  # a..j
G4R = {"layers": [8], "n_epochs": 1, "n_sample": 8, "batch_size": 4, "sample_cache": 100}


# the same log over another catalogue (ids renamed): its sessions cannot be migrated
OTHER_SESSIONS = [[f"x{x}" for x in s] for s in SESSIONS]


def _fit(cls: type, config: dict, sessions: list[list[str]], out: Path) -> Path:
    index = ItemIndex(sorted({x for s in sessions for x in s}))
    log = SessionLog.from_sequences([index.encode(s) for s in sessions])
    model = cls(config)
    model.fit(log, item_index=index)
    model.save(out)
    return out


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model directories: ``gru4rec`` ([8]), ``gru4rec-b`` (another GRU4Rec, [6], same
    catalogue), ``gru4rec-other`` (other catalogue), ``session-pop`` and ``pop``."""
    root = tmp_path_factory.mktemp("serving-models")
    return {
        "gru4rec": _fit(GRU4Rec, G4R, SESSIONS, root / "gru4rec"),
        "gru4rec-b": _fit(GRU4Rec, {**G4R, "layers": [6], "seed": 7}, SESSIONS, root / "g4r-b"),
        "gru4rec-other": _fit(GRU4Rec, G4R, OTHER_SESSIONS, root / "g4r-other"),
        "session-pop": _fit(SessionPop, {}, SESSIONS, root / "session-pop"),
        "pop": _fit(Pop, {}, SESSIONS, root / "pop"),
    }


CORRUPTIONS = {
    "config is a JSON list": ("config.json", b"[1, 2, 3]"),
    "config is not JSON": ("config.json", b"{corrupt"),
    "config is not UTF-8": ("config.json", b"\xff\xfe\x00"),
    "n_items is not a number": ("config.json", None),
    "weights are garbage": ("weights.safetensors", b"garbage"),
    "items.json is an object": ("items.json", b"{}"),
}


def corrupt_copy(src: Path, dst: Path, case: str) -> Path:
    """A copy of model directory ``src`` at ``dst`` with one file corrupted."""
    shutil.copytree(src, dst)
    name, data = CORRUPTIONS[case]
    if data is None:  # n_items of the wrong type
        config = json.loads((dst / "config.json").read_text())
        data = json.dumps({**config, "n_items": "many"}).encode()
    (dst / name).write_bytes(data)
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a throw-away redis-server on a free local port (skips if not installed)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip(
            "redis-server is not installed (Debian: apt-get install -y redis-server; "
            ".ci/system-deps does it for `make test`)"
        )
    pytest.importorskip("redis", reason="the 'redis' Python package is not installed")
    import redis

    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip(f"redis-server did not start on port {port}")
            time.sleep(0.02)
    client.close()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def redis_store(redis_url: str):
    """A RedisStore on a freshly flushed database."""
    import redis

    from seqrec.serving.stores import RedisStore

    redis.Redis.from_url(redis_url).flushdb()
    store = RedisStore(redis_url, ttl=60)
    yield store
    store.close()


class LiveServer:
    """An app served by uvicorn on 127.0.0.1 in a background thread (a real socket,
    real HTTP parsing, seqrec's protocol class), for tests that need a real server."""

    def __init__(self, app) -> None:
        import threading

        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            http="seqrec.serving.http.protocol:JsonErrorProtocol",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
