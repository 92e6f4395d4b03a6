"""A hybrid model directory served like any model: the runtime rescores a session's
history through every part (re-running GRU4Rec over it), over HTTP too."""

import warnings

import numpy as np
import pytest

from seqrec.models import load_model
from seqrec.models.hybrid import Hybrid
from seqrec.serving.runtime import Runtime

CLICKS = ["a", "c", "e", "c"]


@pytest.fixture(scope="module")
def hybrid_dir(model_dirs, tmp_path_factory):
    parts = [load_model(model_dirs["gru4rec"]), load_model(model_dirs["session-pop"])]
    return Hybrid.combine(parts, weights=[0.6, 0.4]).save(tmp_path_factory.mktemp("h") / "h")


def expected(model_dir, history, k=5):
    model = load_model(model_dir)
    ids, scores = model.recommend([model.item_index_.encode(history)], k)
    return model.item_index_.decode(ids[0][ids[0] >= 0]), scores[0][ids[0] >= 0]


def test_runtime_answers_like_the_hybrids_recommend(hybrid_dir):
    rt = Runtime(hybrid_dir)
    assert rt.model.name == "hybrid" and not rt.model.recurrent
    for i, item in enumerate(CLICKS, 1):
        rec = rt.add_event("s", item, 5)
        items, scores = expected(hybrid_dir, CLICKS[:i])
        assert rec.session_length == i and rec.items == items
        np.testing.assert_allclose(rec.scores, scores, rtol=1e-5, atol=1e-6)
    assert rt.recommend_items(CLICKS, 5).items == items
    rec = rt.session_recommendations("s", 10, exclude_history=True)
    assert not set(rec.items) & set(CLICKS)


def test_the_fingerprint_covers_the_parts(hybrid_dir, model_dirs, tmp_path):
    """Changing a part's weights changes the served model's version."""
    import shutil

    copy = tmp_path / "h"
    shutil.copytree(hybrid_dir, copy)
    before = Runtime(copy).model.version
    shutil.copy(model_dirs["gru4rec-b"] / "weights.safetensors", copy / "part-0")
    shutil.copy(model_dirs["gru4rec-b"] / "config.json", copy / "part-0")
    assert Runtime(copy).model.version != before


def test_http_session_flow(hybrid_dir):
    pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="httpx (needed by the FastAPI test client) is missing")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")
        from fastapi.testclient import TestClient

    from seqrec.serving.api import ServeConfig, build_runtime, create_app

    cfg = ServeConfig(model=str(hybrid_dir))
    with TestClient(create_app(build_runtime(cfg), cfg), raise_server_exceptions=False) as c:
        info = c.get("/v1/model").json()
        assert info["name"] == "hybrid" and info["recurrent"] is False and info["items"] == 10
        for item in CLICKS[:2]:
            r = c.post("/v1/sessions/u1/events", json={"item": item, "k": 3})
            assert r.status_code == 200, r.text
        body = r.json()
        assert body["session_length"] == 2
        assert body["items"] == expected(hybrid_dir, CLICKS[:2], 3)[0]
        stateless = c.post("/v1/recommendations", json={"items": CLICKS[:2], "k": 3}).json()
        assert stateless["items"] == body["items"]
