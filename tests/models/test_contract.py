"""The contract every registered model passes (fit / score / recommend / save / load),
and a test of every capability a model declares (the protocols of models/base.py).

A new model is covered once it is in the registry and sets ``small_config`` (small,
fast settings); no model is named here.
"""

import dataclasses
import inspect
import json

import numpy as np
import pytest
import torch

from seqrec.config import build_config
from seqrec.data.idmap import ItemIndex
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, ModelFileError
from seqrec.models import MODELS, load_model
from seqrec.models.base import (
    FORMAT_VERSIONS,
    LinearReadout,
    Recommender,
    RecurrentScorer,
    Scorer,
    StateAdvancer,
    StateReadout,
)


@pytest.fixture(scope="module")
def log() -> SessionLog:
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(0, 25, size=rng.integers(2, 7))) for _ in range(60)]
    seqs.append(list(range(30)))  # make sure every item 0..29 occurs
    return SessionLog.from_sequences(seqs)


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request, log):
    cls = MODELS[request.param]
    declared = any("small_config" in vars(c) for c in cls.__mro__ if c is not Recommender)
    assert declared, f"set small_config (small, fast settings) on {cls.__name__}"
    model = cls(cls.small_config)
    index = ItemIndex([f"i{k}" for k in range(30)])
    out = model.fit(log, item_index=index)
    assert out is model
    return model


HISTORIES = [
    np.array([1, 2, 3]),
    np.array([5]),
    np.array([], dtype=np.int64),
    np.array([7, 7, 2, 9]),
]


def test_fit_returns_self_and_learns_catalogue(fitted):
    assert fitted.n_items_ == 30
    assert len(fitted.item_index_) == 30


def test_score_shape_and_finite(fitted):
    s = fitted.score(HISTORIES)
    assert tuple(s.shape) == (len(HISTORIES), 30)
    assert torch.isfinite(s).all()


def test_batch_and_single_calls_agree(fitted):
    batch = fitted.score(HISTORIES)
    for i, h in enumerate(HISTORIES):
        single = fitted.score([h])
        assert torch.allclose(batch[i], single[0], atol=1e-5)


def test_recommend_top_k_sorted_and_consistent_with_score(fitted):
    ids, scores = fitted.recommend(HISTORIES, k=5)
    assert ids.shape == (len(HISTORIES), 5) and scores.shape == (len(HISTORIES), 5)
    full = fitted.score(HISTORIES)
    for b in range(len(HISTORIES)):
        assert np.all(np.diff(scores[b]) <= 1e-6)
        assert np.allclose(full[b, ids[b]].numpy(), scores[b], atol=1e-5)
        assert scores[b, -1] >= torch.topk(full[b], 5).values[-1].item() - 1e-5


def test_recommend_exclude_allow_deny(fitted):
    ids, _ = fitted.recommend(HISTORIES, k=10, exclude_history=True)
    for b, h in enumerate(HISTORIES):
        assert not set(ids[b].tolist()) & set(h.tolist())
    ids, _ = fitted.recommend(HISTORIES, k=5, allow=[3, 4])
    assert set(ids[:, :2].ravel().tolist()) <= {3, 4} and (ids[:, 2:] == -1).all()
    ids, _ = fitted.recommend(HISTORIES, k=29, deny=[0])
    assert 0 not in ids
    with pytest.raises(ConfigError):
        fitted.recommend(HISTORIES, k=0)


def test_save_load_identical_scores(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    parts = [f"part-{i}" for i in range(len(getattr(fitted, "parts_", [])))]  # a hybrid's
    users = ["users.json"] if fitted.uses_users else []  # the user index
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "items.json",
        *parts,
        *users,
        "weights.safetensors",
    ]
    for part in parts:
        assert (path / part / "config.json").is_file()  # each part a model directory
    loaded = load_model(path)
    assert type(loaded) is type(fitted)
    assert loaded.item_index_ == fitted.item_index_
    assert loaded.config == fitted.config
    assert loaded.training_keys == fitted.training_keys
    assert torch.equal(loaded.score(HISTORIES), fitted.score(HISTORIES))
    assert torch.equal(loaded.item_support_, fitted.item_support_)


def test_no_pickle_in_model_files(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    for f in path.rglob("*"):  # a hybrid's parts included
        if f.is_file():
            assert b"\x80\x04\x95" not in f.read_bytes()[:64]  # pickle protocol 4 header


def test_corrupt_model_files_give_clear_errors(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    (path / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="corrupt weights"):
        load_model(path)
    (path / "config.json").write_text("{")
    with pytest.raises(ModelFileError, match="corrupt JSON"):
        load_model(path)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nope")


def test_unknown_config_key_is_an_error(fitted):
    with pytest.raises(ConfigError, match="unknown config key"):
        type(fitted)({"no_such_key": 1})
    with pytest.raises(ConfigError):
        build_config(type(fitted).Config, {"no_such_key": 1})


def test_recurrent_step_matches_score(fitted):
    if not isinstance(fitted, RecurrentScorer):
        pytest.skip(f"{fitted.name} is not recurrent (no init_state/step)")
    histories = [h for h in HISTORIES if len(h)]
    for h in histories:
        state = fitted.init_state(1)
        for item in h:
            state, scores = fitted.step(state, torch.tensor([int(item)]))
        assert torch.allclose(scores[0], fitted.score([h])[0], atol=1e-5)
    # batched stepping with state slicing (dim 1 is the batch)
    state = fitted.init_state(2)
    state, s1 = fitted.step(state, torch.tensor([1, 5]))
    state, s2 = fitted.step(state[:, :1], torch.tensor([2]))
    assert torch.allclose(s2[0], fitted.score([np.array([1, 2])])[0], atol=1e-5)
    assert torch.allclose(s1[1], fitted.score([np.array([5])])[0], atol=1e-5)


def _stepped(model, history):
    """The state and scores after stepping through ``history`` one item at a time."""
    state = model.init_state(1)
    for item in history:
        state, scores = model.step(state, torch.tensor([int(item)]))
    return state, scores


def test_user_ids_reach_only_models_that_use_them(fitted, log, tmp_path):
    """``uses_users`` models: ``score(histories, users=...)`` / ``recommend(...,
    users=...)``, one id per history, the user index saved and loaded; every other
    model refuses ids in ``recommend``."""
    ids = ["u0", "u1", "nobody", "u0"]
    if not fitted.uses_users:
        assert "users" not in inspect.signature(type(fitted).score).parameters
        with pytest.raises(ConfigError, match="does not use user ids"):
            fitted.recommend(HISTORIES, k=3, users=ids)
        return
    named = dataclasses.replace(
        log, session_ids=np.array([f"u{s % 20}" for s in range(log.n_sessions)], dtype=object)
    )
    model = type(fitted)(fitted.small_config).fit(named, item_index=fitted.item_index_)
    assert model.user_index_ is not None and "u0" in model.user_index_
    s = model.score(HISTORIES, users=ids)
    assert tuple(s.shape) == (len(HISTORIES), 30) and torch.isfinite(s).all()
    assert torch.equal(model.score(HISTORIES, users=None), model.score(HISTORIES))
    top, vals = model.recommend(HISTORIES, k=5, users=ids)
    assert np.allclose(s.gather(1, torch.as_tensor(top)).numpy(), vals, atol=1e-6)
    with pytest.raises(ConfigError, match="one per history"):
        model.score(HISTORIES, users=ids[:2])
    loaded = load_model(model.save(tmp_path / "m"))
    assert loaded.user_index_ == model.user_index_
    assert torch.equal(loaded.score(HISTORIES, users=ids), s)


def test_every_model_is_a_scorer_with_the_one_fit_signature(fitted):
    assert isinstance(fitted, Scorer)
    params = inspect.signature(type(fitted).fit).parameters
    assert list(params) == ["self", "train", "valid", "item_index"]
    assert params["valid"].default is None
    assert params["item_index"].kind is inspect.Parameter.KEYWORD_ONLY


def test_state_advancer_advances_like_step_and_encodes_like_stepping(fitted):
    if not isinstance(fitted, StateAdvancer):
        pytest.skip(f"{fitted.name} declares no advance / encode_histories")
    assert isinstance(fitted, RecurrentScorer)
    s0 = fitted.init_state(2)
    items = torch.tensor([1, 5])
    assert torch.equal(fitted.advance(s0, items), fitted.step(s0, items)[0])
    histories = [h for h in HISTORIES if len(h)]
    states, _ = fitted.encode_histories(histories)
    for b, h in enumerate(histories):
        state, _ = _stepped(fitted, h)
        torch.testing.assert_close(states[b : b + 1].unsqueeze(0), state, atol=1e-5, rtol=1e-5)


def test_state_readout_gives_the_step_scores(fitted):
    if not isinstance(fitted, StateReadout):
        pytest.skip(f"{fitted.name} declares no scores_from_state")
    assert isinstance(fitted, RecurrentScorer)
    for h in [h for h in HISTORIES if len(h)]:
        state, scores = _stepped(fitted, h)
        torch.testing.assert_close(fitted.scores_from_state(state), scores)


def test_linear_readout_gives_the_step_scores(fitted):
    if not isinstance(fitted, LinearReadout):
        pytest.skip(f"{fitted.name} declares no linear read-out")
    assert isinstance(fitted, RecurrentScorer)
    w, b = fitted.item_table()
    assert w.shape[0] == fitted.n_items_ and b.shape == (fitted.n_items_,)
    for h in [h for h in HISTORIES if len(h)]:
        state, scores = _stepped(fitted, h)
        q = fitted.query_from_state(state)
        assert q.shape == (1, w.shape[1])
        torch.testing.assert_close(fitted.scores_from_state(state), scores)
        torch.testing.assert_close(q @ w.T + b, scores, atol=1e-5, rtol=1e-5)
        if isinstance(fitted, StateAdvancer):
            torch.testing.assert_close(fitted.encode_histories([h])[1], q, atol=1e-5, rtol=1e-5)


def test_neural_training_is_seeded_and_recorded(fitted, log):
    if fitted.family is None:
        pytest.skip(f"{fitted.name} is not trained by seqrec.training")
    before = torch.get_rng_state()
    again = type(fitted)(fitted.small_config).fit(log, item_index=fitted.item_index_)
    assert torch.equal(torch.get_rng_state(), before)  # no global seeding
    assert torch.equal(again.score(HISTORIES), fitted.score(HISTORIES))
    assert len(fitted.meta_["history"]) == fitted.training_keys["n_epochs"]


def test_format_version_1_directories_still_load(fitted, tmp_path):
    """Version 1 saved one flat config (model and training keys together)."""
    path = fitted.save(tmp_path / "m")
    info = json.loads((path / "config.json").read_text())
    assert info["format_version"] == FORMAT_VERSIONS[-1] == 2
    info["config"] = {**info["config"], **info.pop("training")}
    info["format_version"] = 1
    (path / "config.json").write_text(json.dumps(info))
    loaded = load_model(path)
    assert loaded.config == fitted.config
    assert loaded.training_keys == fitted.training_keys
    assert torch.equal(loaded.score(HISTORIES), fitted.score(HISTORIES))


def test_a_newer_format_version_is_a_one_line_error(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    info = json.loads((path / "config.json").read_text())
    newer = FORMAT_VERSIONS[-1] + 1
    info["format_version"] = newer
    (path / "config.json").write_text(json.dumps(info))
    with pytest.raises(ModelFileError, match=f"'format_version' is {newer}") as exc:
        load_model(path)
    assert "\n" not in str(exc.value)


def test_unknown_key_error_lists_the_keys_of_every_owner(fitted):
    with pytest.raises(ConfigError) as exc:
        type(fitted)({"no_such_key": 1})
    msg = str(exc.value)
    for owner in type(fitted).config_owners():
        assert f"{owner}: " in msg
