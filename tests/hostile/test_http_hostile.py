"""Hostile input against every HTTP route: each case asserts the exact status code and
the JSON error body's ``code`` (never a 500, never a non-JSON answer), and that the
server still serves the same model afterwards. A few hostile-looking inputs that are
valid (unknown ids, empty sessions, control characters in ids) pin their 200 answer.

URLs over 64 KiB never reach the application: ``tests/serving/test_serve_cli.py``
checks that ``seqrec serve`` answers them with the JSON error body too (414)."""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="httpx (needed by the FastAPI test client) is missing")

with warnings.catch_warnings():  # newer Starlette warns about its httpx-based client
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from fastapi.testclient import TestClient

from seqrec.data.idmap import ItemIndex
from seqrec.data.sessions import SessionLog
from seqrec.serving.api import ServeConfig, build_runtime, create_app

KEY = "hostile-key"
AUTH = {"X-API-Key": KEY}
SESSIONS = [["a", "b", "c"], ["b", "c", "d"], ["a", "c", "e"], ["d", "e", "a"], ["e", "b"]]
LIMITS = {"max_k": 50, "max_items": 5, "max_filter_items": 5, "max_session_id": 16}
BODY_LIMIT = 64 * 1024  # the default


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny GRU4Rec directory and a copy of it with a corrupt config.json."""
    from seqrec.models.gru4rec import GRU4Rec

    root = tmp_path_factory.mktemp("hostile-http")
    index = ItemIndex(sorted({x for s in SESSIONS for x in s}))
    log = SessionLog.from_sequences([index.encode(s) for s in SESSIONS])
    model = GRU4Rec({"layers": [4], "n_epochs": 1, "n_sample": 2, "batch_size": 2})
    model.fit(log, item_index=index, progress=False)
    model.save(root / "good")
    shutil.copytree(root / "good", root / "corrupt")
    (root / "corrupt" / "config.json").write_text("[1, 2, 3]")
    return {"good": root / "good", "corrupt": root / "corrupt"}


def digest(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _client(model_dir: Path, **overrides: Any) -> TestClient:
    config = ServeConfig(model=str(model_dir), **overrides)
    return TestClient(create_app(build_runtime(config), config), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def clients(models: dict[str, Path]):
    """``keyed``: API key, small limits; ``open``: no API key; ``down``: a Redis store
    that does not answer."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQREC_HOSTILE_KEY", KEY)
        common = {**LIMITS, "max_body_bytes": BODY_LIMIT}
        with (
            _client(models["good"], api_key_env="SEQREC_HOSTILE_KEY", **common) as keyed,
            _client(models["good"], **common) as open_,
            _client(models["good"], store="redis://127.0.0.1:1/0") as down,
        ):
            yield {"keyed": keyed, "open": open_, "down": down}


@dataclass
class Case:
    id: str
    method: str
    path: str
    status: int
    code: str | None  # None: a 200 answer
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    client: str = "keyed"
    auth: bool = True
    params: Any = None

    def send(self, clients: dict[str, TestClient], models: dict[str, Path]) -> Any:
        headers = {**(AUTH if self.auth else {}), **self.headers}
        body = self.json
        if isinstance(body, dict) and body.get("model") == "CORRUPT":
            body = {"model": str(models["corrupt"])}
        kwargs: dict[str, Any] = {"headers": headers, "params": self.params}
        if self.content is not None:
            kwargs["content"] = self.content
            kwargs["headers"] = {"content-type": "application/json", **headers}
        elif body is not None:
            kwargs["json"] = body
        return clients[self.client].request(self.method, self.path, **kwargs)


EV = "/v1/sessions/s1/events"
RECS = "/v1/sessions/s1/recommendations"
STATELESS = "/v1/recommendations"
RELOAD = "/v1/admin/reload"
DEEP = b"[" * 30_000
LONG_ID = "x" * 300  # over the 256-character item id limit
SIX = ["a", "b", "c", "d", "e", "f"]  # over the 5-item limits

CASES = [
    # ---- POST /v1/sessions/{id}/events ------------------------------------------
    Case("events-malformed-json", "POST", EV, 400, "malformed_json", content=b'{"item": "a",'),
    Case("events-deep-nesting", "POST", EV, 400, "malformed_json", content=DEEP),
    Case("events-invalid-utf8", "POST", EV, 400, "malformed_json", content=b'{"item": "\xff"}'),
    Case(
        "events-huge-integer",
        "POST",
        EV,
        400,
        "malformed_json",
        content=b'{"item": ' + b"9" * 5000 + b"}",
    ),
    Case("events-empty-body", "POST", EV, 422, "invalid_request", content=b""),
    Case("events-null-body", "POST", EV, 422, "invalid_request", content=b"null"),
    Case("events-array-body", "POST", EV, 422, "invalid_request", json=["a"]),
    Case("events-item-null", "POST", EV, 422, "invalid_request", json={"item": None}),
    Case("events-item-true", "POST", EV, 422, "invalid_request", json={"item": True}),
    Case("events-item-false", "POST", EV, 422, "invalid_request", json={"item": False}),
    Case("events-item-float", "POST", EV, 422, "invalid_request", json={"item": 1.5}),
    Case("events-item-object", "POST", EV, 422, "invalid_request", json={"item": {"id": "a"}}),
    Case("events-item-nan", "POST", EV, 422, "invalid_request", content=b'{"item": NaN}'),
    Case("events-missing-item", "POST", EV, 422, "invalid_request", json={"k": 3}),
    Case("events-extra-field", "POST", EV, 422, "invalid_request", json={"item": "a", "x": 1}),
    Case("events-k-zero", "POST", EV, 422, "invalid_k", json={"item": "a", "k": 0}),
    Case("events-k-negative", "POST", EV, 422, "invalid_k", json={"item": "a", "k": -3}),
    Case("events-k-huge", "POST", EV, 422, "k_too_large", json={"item": "a", "k": 10**30}),
    Case("events-k-string", "POST", EV, 422, "invalid_request", json={"item": "a", "k": "3"}),
    Case("events-k-true", "POST", EV, 422, "invalid_request", json={"item": "a", "k": True}),
    Case(
        "events-k-infinite",
        "POST",
        EV,
        422,
        "invalid_request",
        content=b'{"item": "a", "k": 1e400}',
    ),
    Case(
        "events-allow-not-list",
        "POST",
        EV,
        422,
        "invalid_request",
        json={"item": "a", "allow": "b"},
    ),
    Case(
        "events-allow-too-many", "POST", EV, 413, "too_many_items", json={"item": "a", "allow": SIX}
    ),
    Case(
        "events-deny-boolean",
        "POST",
        EV,
        422,
        "invalid_request",
        json={"item": "a", "deny": [False]},
    ),
    Case(
        "events-strict-string",
        "POST",
        EV,
        422,
        "invalid_request",
        json={"item": "a", "strict": "yes"},
    ),
    Case(
        "events-unknown-strict",
        "POST",
        EV,
        422,
        "unknown_item",
        json={"item": "zz", "strict": True},
    ),
    Case("events-item-id-too-long", "POST", EV, 422, "item_id_too_long", json={"item": LONG_ID}),
    Case(
        "events-session-id-too-long",
        "POST",
        f"/v1/sessions/{'s' * 17}/events",
        422,
        "session_id_too_long",
        json={"item": "a"},
    ),
    Case(
        "events-session-id-60kb",
        "POST",
        f"/v1/sessions/{'s' * 60_000}/events",
        422,
        "session_id_too_long",
        json={"item": "a"},
    ),
    Case(
        "events-text-plain",
        "POST",
        EV,
        422,
        "invalid_request",
        content=b'{"item": "a"}',
        headers={"content-type": "text/plain"},
    ),
    Case(
        "events-body-too-large",
        "POST",
        EV,
        413,
        "body_too_large",
        json={"item": "a", "deny": ["d" * BODY_LIMIT]},
    ),
    Case("events-no-key", "POST", EV, 401, "unauthorized", json={"item": "a"}, auth=False),
    Case(
        "events-wrong-key",
        "POST",
        EV,
        401,
        "unauthorized",
        json={"item": "a"},
        auth=False,
        headers={"Authorization": "Bearer nope"},
    ),
    Case("events-wrong-method", "PUT", EV, 405, "method_not_allowed", json={"item": "a"}),
    Case(
        "events-store-down", "POST", EV, 503, "store_unavailable", json={"item": "a"}, client="down"
    ),
    Case("events-unknown-item-ok", "POST", EV, 200, None, json={"item": "zz"}),
    Case(
        "events-control-chars-ok",
        "POST",
        "/v1/sessions/%00%1b%E2%98%83/events",
        200,
        None,
        json={"item": "\x00\x1b[31m"},
    ),
    Case("events-lone-surrogate-ok", "POST", EV, 200, None, content=b'{"item": "\\ud800"}'),
    # ---- GET /v1/sessions/{id}/recommendations -----------------------------------
    Case("recs-k-zero", "GET", RECS, 422, "invalid_k", params={"k": 0}),
    Case("recs-k-negative", "GET", RECS, 422, "invalid_k", params={"k": -1}),
    Case("recs-k-huge", "GET", RECS, 422, "k_too_large", params={"k": 10**30}),
    Case("recs-k-word", "GET", RECS, 422, "invalid_request", params={"k": "ten"}),
    Case("recs-k-repeated", "GET", RECS, 422, "invalid_request", params=[("k", 2), ("k", 3)]),
    Case(
        "recs-exclude-word",
        "GET",
        RECS,
        422,
        "invalid_request",
        params={"exclude_history": "maybe"},
    ),
    Case(
        "recs-allow-too-many",
        "GET",
        RECS,
        413,
        "too_many_items",
        params=[("allow", x) for x in SIX],
    ),
    Case("recs-deny-too-long", "GET", RECS, 422, "item_id_too_long", params={"deny": LONG_ID}),
    Case(
        "recs-unknown-strict",
        "GET",
        RECS,
        422,
        "unknown_item",
        params={"allow": "zz", "strict": "true"},
    ),
    Case(
        "recs-session-id-too-long",
        "GET",
        f"/v1/sessions/{'s' * 17}/recommendations",
        422,
        "session_id_too_long",
    ),
    Case("recs-no-key", "GET", RECS, 401, "unauthorized", auth=False),
    Case("recs-wrong-method", "POST", RECS, 405, "method_not_allowed", json={}),
    Case("recs-store-down", "GET", RECS, 503, "store_unavailable", client="down"),
    Case("recs-empty-session-ok", "GET", "/v1/sessions/never-seen/recommendations", 200, None),
    # ---- POST /v1/recommendations -------------------------------------------------
    Case("items-malformed-json", "POST", STATELESS, 400, "malformed_json", content=b"{items"),
    Case("items-deep-nesting", "POST", STATELESS, 400, "malformed_json", content=DEEP),
    Case(
        "items-invalid-utf8",
        "POST",
        STATELESS,
        400,
        "malformed_json",
        content=b'{"items": ["\xc3"]}',
    ),
    Case("items-missing", "POST", STATELESS, 422, "invalid_request", json={"k": 3}),
    Case("items-not-list", "POST", STATELESS, 422, "invalid_request", json={"items": "a"}),
    Case("items-null", "POST", STATELESS, 422, "invalid_request", json={"items": None}),
    Case("items-boolean", "POST", STATELESS, 422, "invalid_request", json={"items": ["a", True]}),
    Case("items-nested-list", "POST", STATELESS, 422, "invalid_request", json={"items": [["a"]]}),
    Case("items-too-many", "POST", STATELESS, 413, "too_many_items", json={"items": SIX}),
    Case("items-k-zero", "POST", STATELESS, 422, "invalid_k", json={"items": ["a"], "k": 0}),
    Case(
        "items-k-float", "POST", STATELESS, 422, "invalid_request", json={"items": ["a"], "k": 2.5}
    ),
    Case(
        "items-extra-field",
        "POST",
        STATELESS,
        422,
        "invalid_request",
        json={"items": [], "user": 1},
    ),
    Case(
        "items-form-encoded",
        "POST",
        STATELESS,
        422,
        "invalid_request",
        content=b"items=a",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    Case("items-no-key", "POST", STATELESS, 401, "unauthorized", json={"items": []}, auth=False),
    Case("items-empty-ok", "POST", STATELESS, 200, None, json={"items": []}),
    # ---- DELETE /v1/sessions/{id} -------------------------------------------------
    Case(
        "delete-session-id-too-long",
        "DELETE",
        f"/v1/sessions/{'s' * 17}",
        422,
        "session_id_too_long",
    ),
    Case("delete-no-key", "DELETE", "/v1/sessions/s1", 401, "unauthorized", auth=False),
    Case("delete-store-down", "DELETE", "/v1/sessions/s1", 503, "store_unavailable", client="down"),
    Case("delete-unknown-session-ok", "DELETE", "/v1/sessions/%E2%98%83%07", 200, None),
    # ---- GET /v1/model --------------------------------------------------------------
    Case("model-no-key", "GET", "/v1/model", 401, "unauthorized", auth=False),
    Case("model-wrong-method", "PATCH", "/v1/model", 405, "method_not_allowed"),
    # ---- POST /v1/admin/reload ------------------------------------------------------
    Case("reload-no-key", "POST", RELOAD, 401, "unauthorized", auth=False),
    Case("reload-admin-disabled", "POST", RELOAD, 403, "admin_disabled", client="open"),
    Case(
        "reload-corrupt-model", "POST", RELOAD, 422, "model_load_failed", json={"model": "CORRUPT"}
    ),
    Case(
        "reload-missing-dir",
        "POST",
        RELOAD,
        422,
        "model_load_failed",
        json={"model": "/no/such/dir"},
    ),
    Case("reload-nul-in-path", "POST", RELOAD, 422, "model_load_failed", json={"model": "a\x00b"}),
    Case("reload-model-integer", "POST", RELOAD, 422, "invalid_request", json={"model": 5}),
    Case("reload-extra-field", "POST", RELOAD, 422, "invalid_request", json={"path": "/x"}),
    Case("reload-malformed-json", "POST", RELOAD, 400, "malformed_json", content=b'{"model": '),
    Case("reload-deep-nesting", "POST", RELOAD, 400, "malformed_json", content=DEEP),
    Case("reload-wrong-method", "GET", RELOAD, 405, "method_not_allowed"),
    # ---- probes and metrics -----------------------------------------------------------
    Case("healthz-wrong-method", "POST", "/healthz", 405, "method_not_allowed"),
    Case("readyz-store-down", "GET", "/readyz", 503, "not_ready", client="down"),
    Case("readyz-wrong-method", "DELETE", "/readyz", 405, "method_not_allowed"),
    Case("metrics-wrong-method", "PUT", "/metrics", 405, "method_not_allowed"),
    Case("unknown-route", "GET", "/v1/nothing-here", 404, "not_found"),
    Case("unknown-route-no-key", "GET", "/v2/sessions", 404, "not_found", auth=False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_http_input(clients, models, case: Case) -> None:
    files = digest(models["good"])
    before = clients["keyed"].get("/v1/model", headers=AUTH).json()["version"]
    r = case.send(clients, models)
    assert r.status_code == case.status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = json.loads(r.content)
    if case.code is None:
        assert "error" not in body
    else:
        assert set(body) == {"error"} and body["error"]["code"] == case.code, body
        assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    # the server still serves the same model, from untouched files
    assert clients["keyed"].get("/v1/model", headers=AUTH).json()["version"] == before
    assert clients["keyed"].get("/healthz").status_code == 200
    assert digest(models["good"]) == files


def test_enough_cases_on_every_route() -> None:
    routes = {
        "/v1/sessions/{id}/events": [c for c in CASES if c.path.endswith("/events")],
        "/v1/sessions/{id}/recommendations": [
            c
            for c in CASES
            if c.path.endswith("/recommendations") and c.path.startswith("/v1/sessions/")
        ],
        "/v1/recommendations": [c for c in CASES if c.path == STATELESS],
        "DELETE /v1/sessions/{id}": [
            c for c in CASES if c.method == "DELETE" and c.path.count("/") == 3
        ],
        "/v1/model": [c for c in CASES if c.path == "/v1/model"],
        "/v1/admin/reload": [c for c in CASES if c.path == RELOAD],
        "/healthz": [c for c in CASES if c.path == "/healthz"],
        "/readyz": [c for c in CASES if c.path == "/readyz"],
        "/metrics": [c for c in CASES if c.path == "/metrics"],
    }
    assert all(routes.values()), [r for r, cs in routes.items() if not cs]
    assert sum(c.code is not None for c in CASES) >= 35
