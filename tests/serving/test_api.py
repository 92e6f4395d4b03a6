"""The HTTP API: endpoints, options, every kind of bad input (4xx JSON, never 500),
API key, metrics, docs and hot reload."""

import json
import warnings

import pytest

pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="httpx (needed by the FastAPI test client) is missing")

with warnings.catch_warnings():  # newer Starlette warns about its httpx-based client
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from fastapi.testclient import TestClient

from seqrec.serving.api import ServeConfig, build_runtime, create_app

from .conftest import corrupt_copy

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"content-type": "application/json"}


def make_client(model_dir, monkeypatch, **overrides):
    monkeypatch.setenv("SEQREC_TEST_KEY", KEY)
    cfg = ServeConfig(model=str(model_dir), **overrides)
    app = create_app(build_runtime(cfg), cfg)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(model_dirs, monkeypatch):
    with make_client(
        model_dirs["gru4rec"],
        monkeypatch,
        max_k=100,
        max_items=10,
        max_session_id=32,
        max_body_bytes=2000,
    ) as c:
        yield c


@pytest.fixture
def keyed(model_dirs, monkeypatch):
    with make_client(model_dirs["gru4rec"], monkeypatch, api_key_env="SEQREC_TEST_KEY") as c:
        yield c


def err(resp, status, code):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()["error"]
    assert body["code"] == code, body
    assert body["message"]
    return body["message"]


def test_health_ready_model(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    info = client.get("/v1/model").json()
    assert info["name"] == "gru4rec" and info["items"] == 10
    assert info["version"] and info["trained_at"] and info["store"]["kind"] == "memory"


def test_session_flow(client):
    r = client.post("/v1/sessions/u1/events", json={"item": "a", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 3 and len(body["scores"]) == 3
    assert body["session_length"] == 1 and body["unknown_items"] == []
    r = client.post("/v1/sessions/u1/events", json={"item": "c", "k": 3})
    assert r.json()["session_length"] == 2
    got = client.get("/v1/sessions/u1/recommendations", params={"k": 3}).json()
    assert got["items"] == r.json()["items"]
    stateless = client.post("/v1/recommendations", json={"items": ["a", "c"], "k": 3}).json()
    assert stateless["items"] == got["items"] and "session_length" not in stateless
    assert client.delete("/v1/sessions/u1").json() == {"session_id": "u1", "deleted": True}
    assert client.delete("/v1/sessions/u1").json()["deleted"] is False
    assert client.get("/v1/sessions/u1/recommendations").json()["session_length"] == 0


def test_options(client):
    client.post("/v1/sessions/u/events", json={"item": "a"})
    r = client.post(
        "/v1/sessions/u/events",
        json={"item": 5, "k": 10, "exclude_history": True, "deny": ["b"]},
    )  # a numeric id is the same as its string; 5 is unknown here
    body = r.json()
    assert body["unknown_items"] == ["5"] and "a" not in body["items"] and "b" not in body["items"]
    r = client.get(
        "/v1/sessions/u/recommendations", params=[("allow", "c"), ("allow", "d"), ("k", "5")]
    )
    assert sorted(r.json()["items"]) == ["c", "d"]
    r = client.post("/v1/recommendations", json={"items": ["a"], "allow": ["a", "x"]})
    assert r.json()["items"] == ["a"] and r.json()["unknown_filter_items"] == ["x"]


# ----------------------------------------------------------------------- bad input
def test_unknown_item_reported_or_rejected(client):
    r = client.post("/v1/sessions/u/events", json={"item": "nope"})
    assert r.status_code == 200 and r.json()["unknown_items"] == ["nope"]
    assert r.json()["session_length"] == 0
    msg = err(
        client.post("/v1/sessions/u/events", json={"item": "nope", "strict": True}),
        422,
        "unknown_item",
    )
    assert "nope" in msg
    r = client.post("/v1/recommendations", json={"items": ["a", "nope"], "strict": True})
    err(r, 422, "unknown_item")


def test_malformed_json(client):
    r = client.post(
        "/v1/sessions/u/events",
        content=b'{"item": "a",',
        headers={"content-type": "application/json"},
    )
    assert "not valid JSON" in err(r, 400, "malformed_json")


@pytest.mark.parametrize(
    "body, code, needle",
    [
        ({"item": "a", "k": 0}, "invalid_k", "positive"),
        ({"item": "a", "k": -1}, "invalid_k", "positive"),
        ({"item": "a", "k": 101}, "k_too_large", "limit of 100"),
        ({"item": "a", "k": "ten"}, "invalid_request", "k"),
        ({"k": 5}, "invalid_request", "item"),
        ({"item": "a", "colour": "red"}, "invalid_request", "colour"),
        ({"item": ["a"]}, "invalid_request", "item"),
        ({"item": "a", "allow": "b"}, "invalid_request", "allow"),
    ],
)
def test_invalid_fields(client, body, code, needle):
    r = client.post("/v1/sessions/u/events", json=body)
    assert needle in err(r, 422, code)


def test_size_limits(client):
    r = client.post("/v1/recommendations", json={"items": ["a"] * 11})
    assert "limit is 10" in err(r, 413, "too_many_items")
    r = client.post(f"/v1/sessions/{'s' * 33}/events", json={"item": "a"})
    assert "limit is 32" in err(r, 422, "session_id_too_long")
    err(client.get(f"/v1/sessions/{'s' * 33}/recommendations"), 422, "session_id_too_long")
    err(client.delete(f"/v1/sessions/{'s' * 33}"), 422, "session_id_too_long")
    err(client.get("/v1/sessions/u/recommendations", params={"k": 0}), 422, "invalid_k")


def test_body_byte_limit(client):
    big = json.dumps({"items": ["a"] * 500}).encode()  # > 2000 bytes
    r = client.post(
        "/v1/recommendations", content=big, headers={"content-type": "application/json"}
    )
    assert "2000" in err(r, 413, "body_too_large")

    def chunks():  # no content-length: the streamed size is counted
        for _ in range(10):
            yield b" " * 500

    r = client.post(
        "/v1/recommendations", content=chunks(), headers={"content-type": "application/json"}
    )
    err(r, 413, "body_too_large")


def test_wrong_content_type_and_routes(client):
    r = client.post(
        "/v1/sessions/u/events", content=b'{"item": "a"}', headers={"content-type": "text/plain"}
    )
    assert "Content-Type: application/json" in err(r, 422, "invalid_request")
    err(client.get("/v1/nothing"), 404, "not_found")
    err(client.put("/v1/sessions/u/events", json={}), 405, "method_not_allowed")


def test_api_key(keyed):
    err(keyed.post("/v1/sessions/u/events", json={"item": "a"}), 401, "unauthorized")
    r = keyed.post("/v1/sessions/u/events", json={"item": "a"}, headers={"X-API-Key": "wrong"})
    assert "wrong API key" in err(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert keyed.post("/v1/sessions/u/events", json={"item": "a"}, headers=AUTH).status_code == 200
    r = keyed.get("/v1/model", headers={"X-API-Key": KEY})
    assert r.status_code == 200
    assert keyed.get("/healthz").status_code == 200  # probes stay open
    assert keyed.get("/metrics").status_code == 200


def test_api_key_variable_must_be_set(model_dirs, monkeypatch):
    from seqrec.errors import ConfigError

    monkeypatch.delenv("SEQREC_UNSET_KEY", raising=False)
    cfg = ServeConfig(model=str(model_dirs["gru4rec"]), api_key_env="SEQREC_UNSET_KEY")
    with pytest.raises(ConfigError, match="SEQREC_UNSET_KEY"):
        create_app(build_runtime(cfg), cfg)


# ----------------------------------------------------------------------- reload
def test_admin_reload(keyed, model_dirs):
    keyed.post("/v1/sessions/u/events", json={"item": "a"}, headers=AUTH)
    before = keyed.get("/v1/model", headers=AUTH).json()["version"]
    err(keyed.post("/v1/admin/reload", headers={"X-API-Key": "no"}), 401, "unauthorized")
    r = keyed.post("/v1/admin/reload", json={"model": "/does/not/exist"}, headers=AUTH)
    assert "still serving" in err(r, 422, "model_load_failed")
    assert keyed.get("/v1/model", headers=AUTH).json()["version"] == before
    r = keyed.post("/v1/admin/reload", json={"model": str(model_dirs["gru4rec-b"])}, headers=AUTH)
    assert r.status_code == 200, r.text
    after = r.json()["model"]["version"]
    assert after != before
    info = keyed.get("/v1/model", headers=AUTH).json()
    assert info["version"] == after and info["reloads"] == 1
    r = keyed.post("/v1/sessions/u/events", json={"item": "b"}, headers=AUTH).json()
    assert r["model_version"] == after and r["session_length"] == 2
    r = keyed.post("/v1/admin/reload", headers=AUTH)  # no body: the same directory again
    assert r.status_code == 200


def test_admin_reload_needs_a_configured_key(client):
    err(client.post("/v1/admin/reload"), 403, "admin_disabled")


# ----------------------------------------------------------------------- metrics, docs
def test_metrics(client):
    client.post("/v1/sessions/u/events", json={"item": "a"})
    client.post("/v1/sessions/u/events", json={"item": "a", "k": 0})
    client.get("/v1/nowhere")
    text = client.get("/metrics").text
    route = 'route="/v1/sessions/{session_id}/events"'
    assert f'seqrec_http_requests_total{{method="POST",{route},status="200"}} 1.0' in text
    assert f'seqrec_http_requests_total{{method="POST",{route},status="422"}} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert (
        f'seqrec_http_request_duration_seconds_bucket{{le="0.005",method="POST",{route}}}' in text
    )
    assert "seqrec_batch_size_count 2.0" in text  # two POSTs answered (one rejected)
    assert "seqrec_store_sessions 1.0" in text and "seqrec_model_items 10.0" in text


def test_docs(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/v1/sessions/{session_id}/events", "/v1/recommendations", "/v1/admin/reload"):
        assert p in paths


def test_redis_backed_app(model_dirs, redis_url, monkeypatch):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    with make_client(model_dirs["session-pop"], monkeypatch, store=redis_url) as c:
        assert c.get("/readyz").status_code == 200
        for n, item in enumerate(["a", "b", "a"], 1):
            assert (
                c.post("/v1/sessions/r/events", json={"item": item}).json()["session_length"] == n
            )
        assert c.get("/v1/sessions/r/recommendations", params={"k": 2}).json()["items"] == [
            "a",
            "b",
        ]
        assert c.get("/v1/model").json()["store"]["keys_in_db"] == 1


def test_store_down_is_503(model_dirs, monkeypatch):
    with make_client(model_dirs["gru4rec"], monkeypatch, store="redis://127.0.0.1:1/0") as c:
        err(c.get("/readyz"), 503, "not_ready")
        err(c.post("/v1/sessions/u/events", json={"item": "a"}), 503, "store_unavailable")


# ----------------------------------------------------------------------- fast path
FAST_CASES = [
    # (body, taken by the fast path)
    ({"item": "a"}, True),
    ({"item": "b", "k": 4, "exclude_history": True}, True),
    ({"item": 7, "k": 3, "allow": ["a", "c", 9], "deny": None, "strict": False}, True),
    ({"item": "zzz", "k": 2}, True),
    ({"item": "zzz", "strict": True}, True),
    ({"item": "c", "k": 0}, True),
    ({"item": "c", "k": 10_000}, True),
    ({"item": "c", "deny": ["c"] * 3}, True),
    ({"item": "d", "k": "3"}, False),  # FastAPI coerces "3"
    ({"item": "d", "k": 3.0}, False),
    ({"item": True}, False),
    ({"item": "d", "colour": 1}, False),
    ({"k": 3}, False),
    ({"item": "e", "allow": "a"}, False),
    ({"item": "e", "strict": "yes"}, False),
    (["a"], False),
]


def test_fast_path_answers_like_fastapi(model_dirs, monkeypatch):
    from seqrec.serving.api import EventFastPath

    for body, fast in FAST_CASES:
        assert (EventFastPath.parse("s", json.dumps(body).encode()) is not None) == fast, body
    answers = []
    for fast_path in (True, False):
        with make_client(model_dirs["gru4rec"], monkeypatch, fast_path=fast_path) as c:
            got = []
            for body, _ in FAST_CASES:
                r = c.post("/v1/sessions/s/events", json=body)
                got.append((r.status_code, r.headers["content-type"], r.json()))
            r = c.post("/v1/sessions/s/events", content=b'{"item": "a"', headers=JSON)
            got.append((r.status_code, r.json()["error"]["code"]))
            r = c.post("/v1/sessions/s/events", content=b'{"item": "a"}')  # no content type
            got.append((r.status_code, r.json()["error"]["code"]))
            got.append(c.get("/v1/sessions/s/recommendations").json())
            text = c.get("/metrics").text
            route = 'route="/v1/sessions/{session_id}/events"'
            n_ok = sum(1 for g in got[: len(FAST_CASES)] if g[0] == 200)
            got.append(f'{{method="POST",{route},status="200"}} {n_ok:.1f}' in text)
        answers.append(got)
    assert answers[0] == answers[1]
    assert answers[0][-1] is True  # both paths are counted under the route template


# ----------------------------------------------------------------------- hostile input
EVENTS = "/v1/sessions/s1/events"


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "fastapi"])
@pytest.mark.parametrize("path", [EVENTS, "/v1/recommendations", "/v1/admin/reload"])
def test_deeply_nested_json_is_malformed_json(model_dirs, monkeypatch, path, fast_path):
    """30,000 nested '[' (json.loads raises RecursionError): 400, not 500."""
    with make_client(
        model_dirs["gru4rec"], monkeypatch, fast_path=fast_path, api_key_env="SEQREC_TEST_KEY"
    ) as c:
        r = c.post(path, content=b"[" * 30_000, headers={**JSON, **AUTH})
        assert "nested too deeply" in err(r, 400, "malformed_json")


@pytest.mark.parametrize("path", [EVENTS, "/v1/recommendations"])
def test_invalid_utf8_is_malformed_json(client, path):
    r = client.post(path, content=b'{"item": "\xff", "items": ["\xff"]}', headers=JSON)
    assert "not UTF-8" in err(r, 400, "malformed_json")


@pytest.mark.parametrize(
    "path, body",
    [
        (EVENTS, {"item": True}),
        (EVENTS, {"item": False}),
        (EVENTS, {"item": "a", "allow": [True]}),
        (EVENTS, {"item": "a", "deny": ["b", False]}),
        (EVENTS, {"item": "a", "k": True}),
        (EVENTS, {"item": 1.5}),
        ("/v1/recommendations", {"items": [True]}),
        ("/v1/recommendations", {"items": ["a", False]}),
        ("/v1/recommendations", {"items": ["a"], "allow": [True]}),
        ("/v1/recommendations", {"items": ["a"], "k": False}),
    ],
)
def test_booleans_are_never_item_ids_or_counts(client, path, body):
    err(client.post(path, json=body), 422, "invalid_request")


def test_integral_numbers_are_integers(client):
    """2.0 is an integer in JSON (Schema): accepted as k and as item id "2"."""
    r = client.post(EVENTS, content=b'{"item": 2.0, "k": 3.0}', headers=JSON)
    assert r.status_code == 200 and r.json()["unknown_items"] == ["2"]
    assert len(r.json()["items"]) == 3


def test_lone_surrogate_in_an_item_id_is_answered(client):
    r = client.post(EVENTS, content=b'{"item": "\\ud800"}', headers=JSON)
    assert r.status_code == 200 and r.json()["unknown_items"] == ["\ud800"]


def test_repeated_scalar_query_parameter(client):
    r = client.get("/v1/sessions/u/recommendations", params=[("k", "3"), ("k", "4")])
    assert "repeated" in err(r, 422, "invalid_request")


@pytest.mark.parametrize("case", ["config is a JSON list", "n_items is not a number"])
def test_reload_of_a_corrupt_model_is_422(keyed, model_dirs, tmp_path, case):
    bad = corrupt_copy(model_dirs["gru4rec"], tmp_path / "bad", case)
    before = keyed.get("/v1/model", headers=AUTH).json()["version"]
    r = keyed.post("/v1/admin/reload", json={"model": str(bad)}, headers=AUTH)
    assert "still serving the previous model" in err(r, 422, "model_load_failed")
    assert keyed.get("/v1/model", headers=AUTH).json()["version"] == before
    r = keyed.post(EVENTS, json={"item": "a"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["model_version"] == before


def test_model_info_has_no_absolute_path(client, model_dirs):
    info = client.get("/v1/model").json()
    assert info["directory"] == model_dirs["gru4rec"].name and "path" not in info
    assert str(model_dirs["gru4rec"].parent) not in json.dumps(info)


def test_openapi_documents_limits_and_error_bodies(client):
    doc = client.get("/openapi.json").json()
    event = doc["components"]["schemas"]["EventIn"]["properties"]
    assert event["k"]["minimum"] == 1 and event["k"]["maximum"] == 100
    assert event["item"]["anyOf"][0] == {"type": "string", "maxLength": 256}
    assert doc["components"]["schemas"]["ItemsIn"]["properties"]["items"]["maxItems"] == 10
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if param["name"] == "session_id":
                    assert param["schema"]["maxLength"] == 32
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorOut"), (method, path, status)


# ----------------------------------------------------------------------- settings
def test_serve_config_is_validated_and_handed_to_workers(model_dirs, monkeypatch):
    from seqrec.errors import ConfigError
    from seqrec.serving.http.config import ENV_CONFIG

    for bad in ({"port": 65536}, {"port": -1}, {"threads": 0}, {"workers": 0}):
        with pytest.raises(ConfigError):
            ServeConfig(model="m", **bad)
    cfg = ServeConfig(model=str(model_dirs["pop"]), threads=3, offload=True, max_k=7)
    monkeypatch.setenv(ENV_CONFIG, cfg.to_json())
    assert ServeConfig.from_env() == cfg


@pytest.mark.parametrize("offload", [None, True, False])
def test_offload_is_a_setting(model_dirs, monkeypatch, offload):
    monkeypatch.setenv("SEQREC_SERVE_OFFLOAD", "1")  # no longer read: the setting decides
    with make_client(model_dirs["gru4rec"], monkeypatch, offload=offload) as c:
        r = c.post(EVENTS, json={"item": "a", "k": 2})
        assert r.status_code == 200 and len(r.json()["items"]) == 2
        # auto (None) = off for the in-memory store, whatever the environment says
        assert c.app.state.service.offload is bool(offload)


def test_serve_options_reach_the_config(model_dirs, monkeypatch):
    """`seqrec serve` builds one ServeConfig from its options (no environment)."""
    import seqrec.serving.http.server as server
    from seqrec.cli import main

    seen = {}
    monkeypatch.setattr(server, "serve", lambda config: seen.setdefault("c", config) and 0)
    monkeypatch.setattr("seqrec.serving.api.serve", server.serve)
    argv = ["serve", "--model", str(model_dirs["pop"]), "--port", "0", "--threads", "2"]
    assert main([*argv, "--offload", "on", "--host", "::1", "--log-level", "debug"]) == 0
    c = seen["c"]
    assert (c.port, c.threads, c.offload, c.host, c.log_level) == (0, 2, True, "::1", "debug")
