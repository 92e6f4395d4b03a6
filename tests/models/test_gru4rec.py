"""GRU4Rec behaviour: options, learning, sparse updates, exact resume, early stopping."""

import numpy as np
import pytest
import torch

import seqrec.training.loop as training
from seqrec.data.idmap import ItemIndex
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.gru4rec import GRU4Rec
from seqrec.training import fit as train_model
from seqrec.training.dropout import train_dropout

SMALL = {
    "layers": [16],
    "batch_size": 8,
    "n_sample": 16,
    "sample_cache": 1000,
    "learning_rate": 0.1,
    "n_epochs": 1,
}


def chain_log(n_sessions: int = 120, n_items: int = 20, seed: int = 0) -> SessionLog:
    """Sessions that walk i -> i+1 (mod n_items): a perfectly learnable pattern."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n_sessions):
        start = int(rng.integers(0, n_items))
        length = int(rng.integers(2, 8))
        seqs.append([(start + j) % n_items for j in range(length)])
    return SessionLog.from_sequences(seqs)


LOG = chain_log()


def fit(cfg: dict, log: SessionLog = LOG, **kw) -> GRU4Rec:
    return train_model(GRU4Rec({**SMALL, **cfg}), log, progress=False, **kw)


OPTIONS = [
    {"cell": "gru"},
    {"cell": "lstm"},
    {"cell": "rnn"},
    {"loss": "cross-entropy", "logq": 1.0},
    {"loss": "bpr-max", "bpreg": 0.5, "elu_param": 1.0},
    {"loss": "top1-max"},
    {"loss": "bpr"},
    {"loss": "top1"},
    {"constrained_embedding": False, "embedding": 0},
    {"constrained_embedding": False, "embedding": 8},
    {"layers": [16, 12], "dropout_p_hidden": 0.3, "dropout_p_embed": 0.2},
    {"optimizer": "adam", "learning_rate": 0.01},
    {"momentum": 0.5},
    {"n_sample": 0},
    {"sample_alpha": 0.0},
    {"shuffle": True},
    {"mask_false_negatives": True},
    {"cell": "lstm", "layers": [8, 8], "constrained_embedding": False, "embedding": 4},
    {"matmul_precision": "bfloat16", "loss": "bpr-max", "elu_param": 0.5, "dropout_p_hidden": 0.2},
]


@pytest.mark.parametrize("cfg", OPTIONS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_every_option_trains_and_steps_match_scores(cfg):
    model = fit(cfg)
    assert np.isfinite(model.history_[0].loss)
    hist = np.array([3, 4, 5])
    state = model.init_state(1)
    for item in hist:
        state, scores = model.step(state, torch.tensor([int(item)]))
    assert torch.allclose(scores, model.score([hist]), atol=1e-5)


def test_learns_a_deterministic_pattern():
    model = fit({"n_epochs": 8, "loss": "cross-entropy", "n_sample": 0})
    ids, _ = model.recommend([np.array([4, 5]), np.array([17])], k=1)
    assert ids[:, 0].tolist() == [6, 18]


def test_only_touched_item_rows_are_updated():
    index = ItemIndex(range(30))  # items 20..29 never occur and n_sample = 0
    model = GRU4Rec({**SMALL, "n_sample": 0, "n_epochs": 2})
    before = GRU4Rec({**SMALL, "n_sample": 0})
    before.begin_fit(LOG, index)
    before.build_net(30, torch.device("cpu"), before.training_keys["seed"])
    model.fit(LOG, item_index=index)
    assert torch.equal(model.net_.Wy.data[20:], before.net_.Wy.data[20:])
    assert torch.equal(model.net_.By.data[20:], before.net_.By.data[20:])
    assert not torch.equal(model.net_.Wy.data[:20], before.net_.Wy.data[:20])


@pytest.mark.parametrize(
    "extra",
    [
        {},  # the default: fast training step, fused optimiser kernels
        {"spare_core": True},  # ... and the background refresh of the sampler cache
        {"fast_step": False},  # the autograd reference step
        {"layers": [16, 8], "loss": "bpr-max", "elu_param": 0.5, "dropout_p_embed": 0.2},
    ],
    ids=["default", "background-sampler", "autograd", "bprmax-2-layers"],
)
def test_resume_after_kill_gives_identical_weights(tmp_path, monkeypatch, caplog, extra):
    extra = dict(extra)
    if extra.pop("spare_core", False):  # as with fewer torch threads than cores
        monkeypatch.setattr("seqrec.training.sampling.spare_core", lambda threads=None: True)
    cfg = {"n_epochs": 3, "dropout_p_hidden": 0.3, "shuffle": True, "momentum": 0.3, **extra}
    cfg["sample_cache"] = 80  # several background cache refreshes per epoch
    with caplog.at_level("DEBUG", logger="seqrec.training.gru4rec_fast"):
        full = fit(cfg)
    step = "autograd" if extra.get("fast_step") is False else "fast"
    assert f"training step: {step}" in caplog.text

    real_save = training.save_checkpoint
    calls = {"n": 0}

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt("killed after epoch 1")

    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, checkpoint_dir=str(tmp_path))
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    torch.manual_seed(12345)  # the resumed run must not depend on the global RNG state
    resumed = fit(cfg, checkpoint_dir=str(tmp_path), resume=True)
    assert len(resumed.history_) == 3
    for name, p in full.net_.state_dict().items():
        assert torch.equal(p, resumed.net_.state_dict()[name]), name


def test_same_seed_same_weights_different_seed_different():
    a, b, c = fit({"seed": 1}), fit({"seed": 1}), fit({"seed": 2})
    assert torch.equal(a.net_.Wy, b.net_.Wy)
    assert not torch.equal(a.net_.Wy, c.net_.Wy)


def test_validation_and_early_stopping():
    valid = chain_log(30, seed=1)
    model = fit({"n_epochs": 30, "patience": 2, "learning_rate": 0.5}, valid=valid)
    assert "recall@20" in model.history_[0].metrics
    assert len(model.history_) < 30


@pytest.mark.parametrize(
    "bad",
    [
        {"layers": []},
        {"dropout_p_hidden": 1.0},
        {"embedding": 8},
        {"learning_rate": 0},
        {"loss": "hinge"},
        {"cell": "transformer"},
        {"n_sample": -1},
        {"momentum": 1.5},
        {"threads": -1},
    ],
)
def test_bad_configs_are_clear_errors(bad):
    with pytest.raises(ConfigError) as exc:
        GRU4Rec(bad)
    assert "\n" not in str(exc.value)


def test_step_rejects_items_outside_catalogue():
    model = fit({})
    with pytest.raises(ConfigError, match="outside the catalogue"):
        model.step(model.init_state(1), torch.tensor([999]))


@pytest.mark.parametrize("cell", ["gru", "rnn", "lstm"])
def test_carry_dropout_carries_the_dropped_state(cell):
    model = GRU4Rec({**SMALL, "cell": cell, "layers": [6, 6], "dropout_p_hidden": 0.5})
    model.begin_fit(LOG, None)
    model.build_net(model.n_items_, torch.device("cpu"), seed=0)
    net = model.net_
    per = 2 if cell == "lstm" else 1
    state = torch.randn(5, net.state_size)
    x = torch.randn(5, 6)
    torch.manual_seed(0)
    new, out = net.recur(state, x, train_dropout)
    h_last = new[:, per * 6 : per * 6 + 6]
    assert torch.equal(h_last, out)  # the dropped-out output is what is carried
    assert (out == 0).any()
    net.carry_dropout = False
    torch.manual_seed(0)
    new2, out2 = net.recur(state, x, train_dropout)
    assert torch.equal(out2, out)
    assert not (new2[:, per * 6 : per * 6 + 6] == 0).any()
    new3, out3 = net.recur(state, x)  # inference: no dropout at all
    assert torch.equal(new3[:, per * 6 : per * 6 + 6], out3)


def test_validation_on_leave_one_out_samples():
    from seqrec.data.samples import Samples

    valid = Samples.from_lists([[1, 2], [7]], [3, 8])
    model = fit({"n_epochs": 2}, valid=valid)
    assert 0.0 <= model.history_[-1].metrics["recall@20"] <= 1.0


def test_readout_api_matches_step_and_cache_follows_weight_changes():
    """scores_from_state(state) == the scores step returned into it; query/item_table
    are the linear read-out; the contiguous Wy^T cache is rebuilt after weights change."""
    model = fit({"layers": [12, 10], "cell": "lstm"})
    state = model.init_state(2)
    for items in ([1, 2], [3, 4], [5, 6]):
        state, scores = model.step(state, torch.tensor(items))
    assert torch.equal(model.scores_from_state(state), scores)
    w, b = model.item_table()
    q = model.query_from_state(state)
    assert q.shape == (2, 10) and w.shape == (model.n_items_, 10)
    assert torch.allclose(q @ w.T + b, scores, atol=1e-5)
    assert torch.equal(
        model.advance(model.init_state(1), torch.tensor([1])),
        model.step(model.init_state(1), torch.tensor([1]))[0],
    )
    before = model.scores_from_state(state)
    with torch.no_grad():
        model.net_.Wy.mul_(2.0)  # an in-place change: the cached copy must not be stale
    after = model.scores_from_state(state)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, q @ model.net_.Wy.T + model.net_.By, atol=1e-5)
    refit = fit({"layers": [12, 10], "cell": "lstm", "n_epochs": 2})
    assert not torch.allclose(refit.scores_from_state(state), after)
