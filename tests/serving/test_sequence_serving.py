"""Serving the padded-sequence models (FPMC, SASRec, Caser): no recurrent state, so the
runtime and the HTTP app rescore a session's stored history after every click; the
answer is the model's own score of the whole history (Caser: without a user, i.e. a
zero user vector); unknown items are reported and ignored."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from seqrec.models import load_model
from seqrec.models.caser import Caser
from seqrec.models.fpmc import FPMC
from seqrec.models.sasrec import SASRec
from seqrec.serving.runtime import Runtime

from .conftest import SESSIONS, _fit

SMALL = {"n_epochs": 1, "batch_size": 4}
MODELS = {
    "fpmc": (FPMC, {**SMALL, "factors": 8}),
    "sasrec": (SASRec, {**SMALL, "hidden": 8, "n_blocks": 1, "max_len": 4}),
    "caser": (Caser, {**SMALL, "hidden": 8, "n_h": 2, "n_v": 2, "L": 3, "max_len": 3}),
}
CLICKS = ["a", "c", "e", "c", "h"]
K = 5


@pytest.fixture(scope="module")
def seq_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sequence-serving")
    return {name: _fit(cls, cfg, SESSIONS, root / name) for name, (cls, cfg) in MODELS.items()}


@pytest.fixture(params=sorted(MODELS))
def name(request) -> str:
    return request.param


def model_answer(model_dir: Path, history: list[str], k: int = K) -> tuple[list[str], np.ndarray]:
    """(items, scores) of the model's own top-k of its score() of the whole history."""
    model = load_model(model_dir)
    ids, top = model.recommend([model.item_index_.encode(history)], k)
    return model.item_index_.decode(ids[0]), top[0]


def test_click_by_click_equals_the_model_on_the_whole_history(seq_dirs, name):
    rt = Runtime(seq_dirs[name])
    for i, item in enumerate(CLICKS, 1):
        rec = rt.add_event("s", item, K)
        items, scores = model_answer(seq_dirs[name], CLICKS[:i])
        assert rec.session_length == i
        assert rec.items == items
        np.testing.assert_allclose(rec.scores, scores, rtol=1e-5, atol=1e-6)
    assert rt.recommend_items(CLICKS, K).items == items  # stateless: the same answer


def test_unknown_items_are_reported_and_dropped(seq_dirs, name):
    rt = Runtime(seq_dirs[name])
    rt.add_event("s", "a", K)
    rec = rt.add_event("s", "zzz", K)
    assert rec.unknown_items == ["zzz"] and rec.session_length == 1
    rec = rt.add_event("s", "c", K)
    items, scores = model_answer(seq_dirs[name], ["a", "c"])
    assert rec.session_length == 2 and rec.items == items
    np.testing.assert_allclose(rec.scores, scores, rtol=1e-5, atol=1e-6)


def test_http_app_click_by_click(seq_dirs, name):
    pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="httpx (needed by the FastAPI test client) is missing")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")
        from fastapi.testclient import TestClient

    from seqrec.serving.api import ServeConfig, build_runtime, create_app

    cfg = ServeConfig(model=str(seq_dirs[name]))
    with TestClient(create_app(build_runtime(cfg), cfg)) as client:
        for i, item in enumerate(CLICKS, 1):
            resp = client.post("/v1/sessions/u1/events", json={"item": item, "k": K})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            items, scores = model_answer(seq_dirs[name], CLICKS[:i])
            assert body["items"] == items and body["session_length"] == i
            np.testing.assert_allclose(body["scores"], scores, rtol=1e-5, atol=1e-6)
