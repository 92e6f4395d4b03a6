"""Serving the padded-sequence models (FPMC, SASRec, BERT4Rec, Caser, NARM, SR-GNN,
STAMP): they keep no recurrent state, so the runtime re-encodes the session's stored
recent history on every click.
Click by click, the runtime and the HTTP app answer exactly as the model scores the
whole history; a session longer than the model's window is answered from its most
recent items (BERT4Rec: ``max_len - 1`` and the appended MASK; Caser: its last ``L``;
Caser without a known user, i.e. a zero user vector); unknown items are reported and
dropped (issue 17)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from seqrec.models import load_model
from seqrec.models.bert4rec import BERT4Rec
from seqrec.models.caser import Caser
from seqrec.models.fpmc import FPMC
from seqrec.models.narm import NARM
from seqrec.models.sasrec import SASRec
from seqrec.models.srgnn import SRGNN
from seqrec.models.stamp import STAMP
from seqrec.serving.runtime import Runtime

from .conftest import ITEMS, SESSIONS, _fit
from .test_knn_serving import CLICKS, K, model_answer

SMALL = {"hidden": 8, "n_blocks": 1, "max_len": 4, "n_epochs": 1, "batch_size": 4}
MODELS = {
    "sasrec": (SASRec, SMALL),
    "bert4rec": (BERT4Rec, {**SMALL, "n_heads": 2}),
    "fpmc": (FPMC, {"factors": 8, "max_len": 4, "n_epochs": 1, "batch_size": 4}),
    "caser": (
        Caser,
        {"hidden": 8, "n_h": 2, "n_v": 2, "L": 3, "max_len": 3, "n_epochs": 1, "batch_size": 4},
    ),
    "narm": (NARM, {"embedding": 8, "hidden": 8, "max_len": 4, "n_epochs": 1, "batch_size": 4}),
    "srgnn": (SRGNN, {"hidden": 8, "max_len": 5, "n_epochs": 1, "batch_size": 4}),
    "stamp": (STAMP, {"hidden": 8, "max_len": 4, "n_epochs": 1, "batch_size": 4}),
}
# history items the model reads
WINDOW = {"sasrec": 4, "bert4rec": 3, "fpmc": 4, "caser": 3, "narm": 4, "srgnn": 5, "stamp": 4}


@pytest.fixture(scope="module")
def seq_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sequence-serving")
    return {name: _fit(cls, cfg, SESSIONS, root / name) for name, (cls, cfg) in MODELS.items()}


@pytest.fixture(params=sorted(MODELS))
def name(request) -> str:
    return request.param


def test_the_model_is_served_by_rescoring_its_history(seq_dirs, name):
    rt = Runtime(seq_dirs[name])
    info = rt.model_info()
    assert info["name"] == name and not info["recurrent"]


def test_click_by_click_equals_the_model_on_the_whole_history(seq_dirs, name):
    rt = Runtime(seq_dirs[name])
    for i, item in enumerate(CLICKS, 1):
        rec = rt.add_event("s", item, K)
        items, scores, _ = model_answer(seq_dirs[name], CLICKS[:i])
        assert rec.session_length == i and rec.items == items
        np.testing.assert_allclose(rec.scores, scores, rtol=1e-5, atol=1e-6)
    assert rt.recommend_items(CLICKS, K).items == items


def test_a_long_session_is_answered_from_its_most_recent_items(seq_dirs, name):
    clicks = [ITEMS[k % len(ITEMS)] for k in (0, 3, 1, 4, 1, 5, 9, 2, 6, 5, 3)]
    rt = Runtime(seq_dirs[name])
    for item in clicks:
        rec = rt.add_event("s", item, K)
    assert rec.session_length == len(clicks)
    items, scores, _ = model_answer(seq_dirs[name], clicks[-WINDOW[name] :])
    assert rec.items == items
    np.testing.assert_allclose(rec.scores, scores, rtol=1e-5, atol=1e-6)


def test_unknown_items_are_reported_and_dropped(seq_dirs, name):
    rt = Runtime(seq_dirs[name])
    rt.add_event("s", "a", K)
    rec = rt.add_event("s", "zzz", K)
    assert rec.unknown_items == ["zzz"] and rec.session_length == 1
    rec = rt.add_event("s", "c", K)
    items, scores, _ = model_answer(seq_dirs[name], ["a", "c"])
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
            items, scores, _ = model_answer(seq_dirs[name], CLICKS[:i])
            assert body["items"] == items and body["session_length"] == i
            np.testing.assert_allclose(body["scores"], scores, rtol=1e-5, atol=1e-6)
    assert load_model(seq_dirs[name]).name == name
