"""Serving BPR-MF, a model that scores known users: the session id is the user id. A
session named after a training user is scored with that user's vector, any other session
(and every stateless request) from its history by fold-in, exactly as the model's own
``recommend``; one batch may mix both."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from seqrec.data.idmap import ItemIndex
from seqrec.data.sessions import SessionLog
from seqrec.models import load_model
from seqrec.models.bprmf import BPRMF
from seqrec.serving.loaded_model import SCORE, LoadedModel, ScoreJob
from seqrec.serving.options import RuntimeOptions
from seqrec.serving.runtime import Runtime

from .conftest import SESSIONS

CLICKS = ["a", "c", "e"]
K = 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    index = ItemIndex(sorted({x for s in SESSIONS for x in s}))
    log = SessionLog.from_sequences([index.encode(s) for s in SESSIONS])
    ids = np.array([f"user{u}" for u in range(len(SESSIONS))], dtype=object)
    model = BPRMF({"factors": 4, "n_epochs": 3, "batch_size": 8}).fit(
        dataclasses.replace(log, session_ids=ids), item_index=index
    )
    return model.save(tmp_path_factory.mktemp("bprmf") / "m")


def model_answer(model_dir: Path, history: list[str], user: str | None):
    model = load_model(model_dir)
    ids, scores = model.recommend(
        [model.item_index_.encode(history)], K, users=None if user is None else [user]
    )
    return model.item_index_.decode(ids[0]), scores[0]


@pytest.mark.parametrize("session", ["user5", "someone-new"])
def test_a_session_is_scored_as_the_user_it_names(model_dir, session):
    rt = Runtime(model_dir)
    for i, item in enumerate(CLICKS, 1):
        rec = rt.add_event(session, item, K)
        items, scores = model_answer(model_dir, CLICKS[:i], session)
        assert rec.items == items and rec.session_length == i
        np.testing.assert_allclose(rec.scores, scores, rtol=1e-5, atol=1e-6)
    stateless = rt.recommend_items(CLICKS, K)
    items, scores = model_answer(model_dir, CLICKS, None)
    assert stateless.items == items
    if session == "someone-new":  # unknown user: the same fold-in as no user
        assert rec.items == items
    else:  # the trained vector differs from the fold-in of three clicks
        assert not np.allclose(rec.scores, stateless.scores)


def test_one_batch_mixes_named_and_anonymous_jobs(model_dir):
    lm = LoadedModel(model_dir, RuntimeOptions())
    history = lm.index.encode(CLICKS)
    jobs = [ScoreJob(SCORE, K, history=history, user=u) for u in ("user2", None, "x", "user2")]
    lm.compute(jobs)
    for job, user in zip(jobs, ("user2", None, "x", "user2"), strict=True):
        items, scores = model_answer(model_dir, CLICKS, user)
        assert lm.index.decode(job.ids) == items
        np.testing.assert_allclose(job.values, scores, rtol=1e-5, atol=1e-6)


def test_http_app_passes_the_session_id(model_dir):
    pytest.importorskip("fastapi", reason="the 'serve' extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="httpx (needed by the FastAPI test client) is missing")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")
        from fastapi.testclient import TestClient

    from seqrec.serving.api import ServeConfig, build_runtime, create_app

    cfg = ServeConfig(model=str(model_dir))
    with TestClient(create_app(build_runtime(cfg), cfg)) as client:
        resp = client.post("/v1/sessions/user7/events", json={"item": "b", "k": K})
        assert resp.status_code == 200, resp.text
        items, scores = model_answer(model_dir, ["b"], "user7")
        assert resp.json()["items"] == items
        np.testing.assert_allclose(resp.json()["scores"], scores, rtol=1e-5, atol=1e-6)
