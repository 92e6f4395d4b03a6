"""The contract every registered model passes (fit / score / recommend / save / load).

A new model only needs an entry in CONFIGS (small, fast settings) to be covered.
"""

import numpy as np
import pytest
import torch

from seqrec.config import build_config
from seqrec.data.idmap import ItemIndex
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, ModelFileError
from seqrec.models import MODELS, load_model
from seqrec.models.base import is_recurrent

CONFIGS = {
    "pop": {},
    "session-pop": {},
    "gru4rec": {
        "layers": [16],
        "n_epochs": 2,
        "batch_size": 4,
        "n_sample": 8,
        "sample_cache": 100,
        "learning_rate": 0.1,
    },
}


@pytest.fixture(scope="module")
def log() -> SessionLog:
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(0, 25, size=rng.integers(2, 7))) for _ in range(60)]
    seqs.append(list(range(30)))  # make sure every item 0..29 occurs
    return SessionLog.from_sequences(seqs)


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request, log):
    name = request.param
    assert name in CONFIGS, f"add a small config for model {name!r} to CONFIGS"
    model = MODELS[name](CONFIGS[name])
    index = ItemIndex([f"i{k}" for k in range(30)])
    kwargs = {"progress": False} if name == "gru4rec" else {}
    return model.fit(log, item_index=index, **kwargs)


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
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "items.json",
        "weights.safetensors",
    ]
    loaded = load_model(path)
    assert type(loaded) is type(fitted)
    assert loaded.item_index_ == fitted.item_index_
    assert loaded.config == fitted.config
    assert torch.equal(loaded.score(HISTORIES), fitted.score(HISTORIES))
    assert torch.equal(loaded.item_support_, fitted.item_support_)


def test_no_pickle_in_model_files(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    for f in path.iterdir():
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
    if not is_recurrent(fitted):
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
