"""GRU4Rec's fast training step (seqrec.training.gru4rec_fast) against the autograd step.

* ``exact=True`` (manual backward with the kernels autograd uses, loss through autograd
  on the score matrix, ``index_select_backward`` row gradients) must be the autograd
  step bit for bit: losses, weights, optimiser state and carried state after whole
  epochs, idle slots at the end of an epoch included.
* The default fast step changes the rounding of float operations only (closed-form
  cross-entropy and bpr-max, row gradients summed by ``index_add_``): single-step
  gradients agree to ~1e-6 relative, and a whole short fit to ~1e-4 (the differences
  of single roundings, ~1e-7 relative, pass through a few hundred Adagrad steps).
"""

from __future__ import annotations

import logging

import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.gru4rec import GRU4Rec
from seqrec.training import build_task as prepare
from seqrec.training import kernels as fused
from seqrec.training.dropout import train_dropout
from seqrec.training.gru4rec_fast import FastStep, bpr_max_and_grad, cross_entropy_and_grad
from seqrec.training.losses import bpr_max, cross_entropy
from seqrec.training.session_parallel import SessionParallelTask

# 14 sessions over items 0..11 (literal): with batch 4 the last steps of an epoch have
# idle slots, items repeat inside a batch and across targets/inputs
SESSIONS = [
    [0, 1, 2, 3, 4],
    [5, 6],
    [1, 2, 7, 8, 9, 10, 11],
    [3, 3, 4],
    [10, 11, 0],
    [2, 5, 8, 11, 2, 5],
    [7, 6],
    [9, 8, 7, 6, 5, 4, 3, 2],
    [4, 0],
    [11, 10, 9],
    [6, 7, 8, 1, 0],
    [1, 1],
    [8, 3, 9, 3, 10, 3, 11],
    [5, 4, 5, 4],
]
LOG = SessionLog.from_sequences(SESSIONS)

BASE = {
    "layers": [8],
    "batch_size": 4,
    "n_sample": 6,
    "sample_cache": 30,  # a cache refresh every 5 steps
    "learning_rate": 0.1,
    "n_epochs": 2,
    "seed": 3,
}

CASES = {
    "ce": {"loss": "cross-entropy"},
    "ce-logq": {"loss": "cross-entropy", "logq": 1.0, "sample_alpha": 0.3},
    "bprmax-elu-bpreg": {"loss": "bpr-max", "elu_param": 0.5, "bpreg": 1.95},
    "bprmax-no-elu": {"loss": "bpr-max", "bpreg": 0.5},
    "dropout-momentum": {
        "loss": "cross-entropy",
        "logq": 1.0,
        "dropout_p_embed": 0.3,
        "dropout_p_hidden": 0.4,
        "momentum": 0.4,
    },
    "bprmax-dropout-momentum": {
        "loss": "bpr-max",
        "elu_param": 1.0,
        "bpreg": 0.9,
        "dropout_p_embed": 0.5,
        "dropout_p_hidden": 0.3,
        "momentum": 0.15,
    },
    "no-carry-dropout": {"dropout_p_hidden": 0.5, "carry_dropout": False},
    "two-layers": {"layers": [8, 6], "dropout_p_hidden": 0.3, "dropout_p_embed": 0.2},
    "three-layers-momentum": {"layers": [6, 5, 4], "momentum": 0.3, "logq": 1.0},
    "embedding": {"constrained_embedding": False, "embedding": 5, "dropout_p_embed": 0.2},
    "onehot": {"constrained_embedding": False, "embedding": 0, "dropout_p_embed": 0.2},
    "no-sample": {"n_sample": 0},
    "mask-false-negatives": {"mask_false_negatives": True, "loss": "bpr-max"},
    "top1-max": {"loss": "top1-max"},
    "ce-elu": {"loss": "cross-entropy", "elu_param": 1.0},
    "adam": {"optimizer": "adam", "learning_rate": 0.01},
    # a loss without a closed form: autograd on the score matrix, with every loss key
    "infonce-tau-logq": {"loss": "infonce", "temperature": 0.3, "logq": 1.0},
}
# lambdarank's weights come from the ranks of the scores, which float rounding can flip
# between two close scores: not among the CASES that the bfloat16 step is compared on
LAMBDA_CASES = {"lambdarank": {"loss": "lambdarank", "mask_false_negatives": True}}


@pytest.fixture(params=["fused", "torch"])
def kernels(request, monkeypatch):
    """Run with the compiled optimiser kernels and with the pure-torch updates."""
    if request.param == "torch":
        monkeypatch.setenv(fused.ENV_SWITCH, "0")
    fused._reset()
    yield request.param
    fused._reset()


def build_task(cfg: dict) -> tuple[GRU4Rec, SessionParallelTask]:
    model = GRU4Rec({**BASE, **cfg})
    return model, prepare(model, LOG)


def make_task(cfg: dict, step: str) -> tuple[GRU4Rec, SessionParallelTask]:
    """step: 'autograd' | 'exact' | 'fast' | 'no-shadows' (bfloat16 operands converted
    every step instead of read from the optimiser's shadows)."""
    model, task = build_task({**cfg, "fast_step": step != "autograd"})
    if step == "autograd":
        assert task.fast_step is None
    else:
        assert isinstance(task.fast_step, FastStep)
        if step == "exact":
            task.fast_step = FastStep(task, exact=True)
        elif step == "no-shadows":
            task.fast_step = FastStep(task, shadows=False)
    return model, task


def train(cfg: dict, step: str, epochs: int = 2):
    """Whole epochs; returns (losses, weights, optimiser state, carried state, events)."""
    model, task = make_task(cfg, step)  # dropout noise: the task's generator (seed 3)
    losses, events = [], 0
    for epoch in range(epochs):
        for batch in task.batches(epoch):
            loss, n = task.train_step(batch)
            losses.append(loss.item())
            events += n
    weights = {k: v.clone() for k, v in model.net_.state_dict().items()}
    opt = {k: v.clone() for k, v in task.opt.state_dict().items()}
    return losses, weights, opt, task.state.clone(), events


def test_the_literal_log_exercises_idle_slots():
    _, task = make_task({}, "fast")
    fulls = [full for *_, full in task.batches(0)]
    assert not all(fulls) and fulls[0]  # the epoch ends with partially idle steps


@pytest.mark.parametrize("case", [*CASES, *LAMBDA_CASES])
def test_exact_manual_backward_is_the_autograd_step_bit_for_bit(case, kernels):
    cfg = {**CASES, **LAMBDA_CASES}[case]
    ref = train(cfg, "autograd")
    got = train(cfg, "exact")
    assert got[0] == ref[0]  # every step's loss
    assert got[4] == ref[4]
    for name, w in ref[1].items():
        assert torch.equal(got[1][name], w), name
    for name, s in ref[2].items():
        assert torch.equal(got[2][name], s), name
    assert torch.equal(got[3], ref[3])  # carried state


@pytest.mark.parametrize("case", [*CASES, *LAMBDA_CASES])
def test_fast_step_matches_autograd_step_to_rounding(case, kernels):
    # both with the compiled kernels (cross-entropy / BPR-max rows, prefetching gathers,
    # fused updates) and with their torch fallbacks
    cfg = {**CASES, **LAMBDA_CASES}[case]
    ref = train(cfg, "autograd")
    got = train(cfg, "fast")
    assert got[4] == ref[4]
    # rounding-only differences (see the module docstring): losses per step and the
    # weights after two epochs (26 steps) agree to ~1e-6; 1e-4 leaves a wide margin
    torch.testing.assert_close(torch.tensor(got[0]), torch.tensor(ref[0]), rtol=1e-4, atol=1e-5)
    for name, w in ref[1].items():
        torch.testing.assert_close(got[1][name], w, rtol=1e-4, atol=1e-5, msg=name)
    for name, s in ref[2].items():
        torch.testing.assert_close(got[2][name], s, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(got[3], ref[3], rtol=1e-4, atol=1e-5)


def _scores(B: int, C: int, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, generator=g) * scale


@pytest.mark.parametrize("scale", [0.1, 1.0, 8.0])
@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (16, 40)])
def test_cross_entropy_closed_form_matches_the_loss_and_autograd(scale, shape):
    s = _scores(*shape, scale, seed=shape[1])
    leaf = s.clone().requires_grad_()
    ref = cross_entropy(leaf)
    ref.backward()
    loss, g = cross_entropy_and_grad(s)
    # float32 rounding of softmax vs logsumexp: relative ~1e-7, absolute ~1e-7 * |s|
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(g / shape[0], leaf.grad, rtol=1e-5, atol=1e-6)


def test_cross_entropy_with_logq_folded_into_the_bias():
    torch.manual_seed(0)
    B, C, H = 5, 12, 4
    out, w, b = torch.randn(B, H), torch.randn(C, H), torch.randn(C)
    log_q = torch.log(torch.rand(C) * 0.01 + 1e-4)
    leaf_s = torch.addmm(b, out, w.t()).requires_grad_()
    ref = cross_entropy(leaf_s, log_q=log_q, logq=1.0)
    ref.backward()
    loss, g = cross_entropy_and_grad(torch.addmm(b - log_q, out, w.t()))
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g / B, leaf_s.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("elu", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("bpreg", [0.0, 1.95])
@pytest.mark.parametrize("scale", [0.5, 3.0, 8.0])
def test_bpr_max_closed_form_matches_the_loss_and_autograd(elu, bpreg, scale):
    B, C = 12, 30
    s = _scores(B, C, scale, seed=int(scale * 10))
    leaf = s.clone().requires_grad_()
    r = torch.nn.functional.elu(leaf, alpha=elu) if elu > 0 else leaf
    ref = bpr_max(r, bpreg=bpreg)
    ref.backward()
    loss, g = bpr_max_and_grad(s, bpreg, elu)
    # closed form vs autograd through log_softmax/logsigmoid/logsumexp: both float32,
    # different operation order; agreement ~1e-6 relative to the largest gradient
    gmax = leaf.grad.abs().max().item()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g / B, leaf.grad, rtol=1e-4, atol=2e-6 * max(gmax, 1.0))


def test_bpr_max_closed_form_two_candidates():
    s = torch.tensor([[0.3, -1.2], [2.0, 0.5]])
    leaf = s.clone().requires_grad_()
    ref = bpr_max(leaf, bpreg=1.0)
    ref.backward()
    loss, g = bpr_max_and_grad(s, 1.0)
    torch.testing.assert_close(loss, ref.detach())
    torch.testing.assert_close(g / 2, leaf.grad)


def test_fast_step_is_the_default_and_falls_back_for_other_cells(caplog):
    with caplog.at_level(logging.DEBUG, logger="seqrec.training.gru4rec_fast"):
        _, task = make_task({}, "fast")
        assert isinstance(task.fast_step, FastStep)
        assert "training step: fast" in caplog.text
        caplog.clear()
        for cell in ("lstm", "rnn"):
            _, task = build_task({"cell": cell})
            assert task.fast_step is None
            assert f"autograd (cell '{cell}'" in caplog.text
        caplog.clear()
        _, task = build_task({"fast_step": False})
        assert task.fast_step is None
        assert "autograd (fast_step = false)" in caplog.text


def test_fast_step_config_key_is_validated():
    assert GRU4Rec({}).training_keys["fast_step"] is True
    assert GRU4Rec({"fast_step": False}).training_keys["fast_step"] is False
    with pytest.raises(ConfigError, match="fast_step"):
        GRU4Rec({"fast_step": "yes"})


@pytest.mark.parametrize("fast", [True, False])
def test_fit_with_either_step_learns_the_same(fast):
    a = GRU4Rec({**BASE, "n_epochs": 3, "fast_step": fast}).fit(LOG)
    b = GRU4Rec({**BASE, "n_epochs": 3, "fast_step": not fast}).fit(LOG)
    for h1, h2 in zip(a.history_, b.history_, strict=True):
        assert h1.loss == pytest.approx(h2.loss, rel=1e-4)
    torch.testing.assert_close(a.net_.Wy, b.net_.Wy, rtol=1e-4, atol=1e-5)


def test_train_dropout_noise_is_seeded_by_torch():
    x = torch.randn(64, 32)
    torch.manual_seed(0)
    o1, n1 = train_dropout(x, 0.3)
    _, n2 = train_dropout(x, 0.3)
    torch.manual_seed(0)
    o3, n3 = train_dropout(x, 0.3)
    assert torch.equal(n1, n3) and torch.equal(o1, o3)  # reproducible from the seed
    assert not torch.equal(n1, n2)  # every call draws new noise
    assert torch.equal(o1, x * n1)
    assert set(n1.unique().tolist()) <= {0.0, float(1.0 / torch.tensor(0.7))}


def test_train_dropout_without_kernels_draws_the_counter_based_noise(monkeypatch):
    """The torch fallback draws the kernels' noise (one seed from torch's generator, the
    counter hash), not ``F.dropout``'s: the same seed trains the same model either way
    (bit-for-bit comparison with the kernel: tests/test_fused.py)."""
    monkeypatch.setenv(fused.ENV_SWITCH, "0")
    fused._reset()
    try:
        x = torch.randn(64, 32)
        torch.manual_seed(1)
        out, noise = train_dropout(x, 0.3)
        torch.manual_seed(1)
        seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        assert torch.equal(noise, fused._dropout_noise_torch(torch.empty(64, 32), seed, 0.7))
        assert torch.equal(out, x * noise)
    finally:
        fused._reset()
