"""Serving the neighbourhood and rule models: the runtime, the HTTP app and `seqrec serve`
answer a click-by-click session exactly as the model scores the whole history; unknown
items are reported and ignored; a session without evidence gets the popularity fallback
(docs/DESIGN.md, issue 16)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from seqrec.models import load_model
from seqrec.models.itemknn import ItemKNN
from seqrec.models.rules import AR, SR, Markov
from seqrec.models.sknn import SKNN, VMISKNN, VSKNN
from seqrec.models.stan import STAN
from seqrec.serving.runtime import Runtime

from .conftest import SESSIONS, _fit

MODELS = {
    "sknn": (SKNN, {"k": 5, "sample_size": 20}),
    "v-sknn": (VSKNN, {"k": 5, "sample_size": 20, "idf_weighting": True}),
    "vmis-knn": (VMISKNN, {"k": 5, "sample_size": 20, "m": 4, "match_weighting": "harmonic"}),
    "sr": (SR, {"steps": 3}),
    "ar": (AR, {}),
    "markov": (Markov, {}),
    "stan": (STAN, {"k": 5, "sample_size": 20, "lambda_1": 1.0, "lambda_3": 1.0}),
    "itemknn": (ItemKNN, {"k": 5, "lambda_": 1.0}),
}
CLICKS = ["a", "c", "e", "c", "h"]
K = 5


@pytest.fixture(scope="module")
def knn_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("knn-serving")
    return {name: _fit(cls, cfg, SESSIONS, root / name) for name, (cls, cfg) in MODELS.items()}


@pytest.fixture(params=sorted(MODELS))
def name(request) -> str:
    return request.param


def model_answer(model_dir: Path, history: list[str], k: int = K):
    """(items, scores) of the model's own score() on the whole history: top-k by score."""
    model = load_model(model_dir)
    scores = model.score([model.item_index_.encode(history)])[0].numpy()
    ids, top = model.recommend([model.item_index_.encode(history)], k)
    keep = ids[0] >= 0
    # recommend is the top-k of score (same values, best first)
    np.testing.assert_allclose(top[0][keep], np.sort(scores)[::-1][: keep.sum()], rtol=1e-6)
    return model.item_index_.decode(ids[0][keep]), top[0][keep], scores


def test_click_by_click_equals_the_model_on_the_whole_history(knn_dirs, name):
    rt = Runtime(knn_dirs[name])
    for i, item in enumerate(CLICKS, 1):
        rec = rt.add_event("s", item, K)
        items, scores, _ = model_answer(knn_dirs[name], CLICKS[:i])
        assert rec.session_length == i
        assert rec.items == items
        np.testing.assert_allclose(rec.scores, scores, rtol=1e-5, atol=1e-6)
    stateless = rt.recommend_items(CLICKS, K)
    assert stateless.items == items


def test_unknown_items_are_reported_and_dropped(knn_dirs, name):
    rt = Runtime(knn_dirs[name])
    rt.add_event("s", "a", K)
    rec = rt.add_event("s", "zzz", K)
    assert rec.unknown_items == ["zzz"] and rec.session_length == 1
    rec = rt.add_event("s", "c", K)
    items, scores, _ = model_answer(knn_dirs[name], ["a", "c"])
    assert rec.session_length == 2 and rec.items == items
    np.testing.assert_allclose(rec.scores, scores, rtol=1e-5, atol=1e-6)


def test_a_session_without_evidence_gets_the_popularity_fallback(knn_dirs, name):
    rt = Runtime(knn_dirs[name])
    rec = rt.recommend_items(["nope", "zzz"], K)
    assert rec.unknown_items == ["nope", "zzz"]
    model = load_model(knn_dirs[name])
    support = model.item_support_.numpy()
    want = np.sort(support / (support.max() + 1))[::-1][:K]
    np.testing.assert_allclose(rec.scores, want, rtol=1e-6)
    assert rec.items[0] == "a"  # the most clicked item of the log (7 clicks)


def test_http_app_click_by_click(knn_dirs, name, monkeypatch):
    pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="httpx (needed by the FastAPI test client) is missing")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")
        from fastapi.testclient import TestClient

    from seqrec.serving.api import ServeConfig, build_runtime, create_app

    cfg = ServeConfig(model=str(knn_dirs[name]))
    with TestClient(create_app(build_runtime(cfg), cfg)) as client:
        for i, item in enumerate([*CLICKS, "zzz"], 1):
            resp = client.post("/v1/sessions/u1/events", json={"item": item, "k": K})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            known = [c for c in [*CLICKS, "zzz"][:i] if c != "zzz"]
            items, scores, _ = model_answer(knn_dirs[name], known)
            assert body["items"] == items and body["session_length"] == len(known)
            np.testing.assert_allclose(body["scores"], scores, rtol=1e-5, atol=1e-6)
        assert body["unknown_items"] == ["zzz"]


def test_seqrec_serve_process_vmis_knn(knn_dirs):
    pytest.importorskip("uvicorn", reason="the 'serve' extra (uvicorn) is not installed")
    from .test_serve_cli import http, start, stop

    proc, base = start(["--model", str(knn_dirs["vmis-knn"])])
    try:
        for i, item in enumerate(CLICKS, 1):
            status, body = http("POST", base + "/v1/sessions/u1/events", {"item": item, "k": K})
            assert status == 200, body
            items, scores, _ = model_answer(knn_dirs["vmis-knn"], CLICKS[:i])
            assert body["items"] == items and body["session_length"] == i
            np.testing.assert_allclose(body["scores"], scores, rtol=1e-5, atol=1e-6)
        status, body = http("POST", base + "/v1/recommendations", {"items": ["zzz"], "k": K})
        assert status == 200 and body["unknown_items"] == ["zzz"] and body["items"][0] == "a"
    finally:
        stop(proc)
