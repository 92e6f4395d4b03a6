"""The LambdaRank-style and InfoNCE losses: a row worked by hand, the tie and mask
conventions, gradient signs, the configuration keys, and SASRec / GRU4Rec trained with
each (the naive loop references are in test_losses.py and test_seq_losses.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.gru4rec import GRU4Rec
from seqrec.models.sasrec import SASRec
from seqrec.trainconfig import LossConfig, split_training
from seqrec.training.losses import (
    LOSSES,
    TARGET_LOSSES,
    infonce_target,
    lambdarank_target,
    softmax_cross_entropy,
)
from seqrec.training.sequence_task import SequenceOptions


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: one thread is fastest on a busy box
    yield
    torch.set_num_threads(previous)


def gain(rank: int) -> float:
    return 1.0 / math.log2(1.0 + rank)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_lambdarank_rows_worked_by_hand() -> None:
    # row 0: target column 0 (score 1); negatives 2, 0.5, 2. Current ranking: columns 1
    # and 3 tie at 2 (column order: 1 first), then the target, then column 2, so
    # rank_t = 3, rank_1 = 1, rank_3 = 2, rank_2 = 4.
    # row 1: every score 0, target column 2: the target ranks after its three ties (4),
    # the negatives 1, 2, 3 in column order.
    scores = torch.tensor([[1.0, 2.0, 0.5, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([0, 2])
    row0 = (
        abs(gain(3) - gain(1)) * softplus(2.0 - 1.0)
        + abs(gain(3) - gain(4)) * softplus(0.5 - 1.0)
        + abs(gain(3) - gain(2)) * softplus(2.0 - 1.0)
    ) / 3
    row1 = sum(abs(gain(4) - gain(r)) for r in (1, 2, 3)) * softplus(0.0) / 3
    got = lambdarank_target(scores, target)
    assert got.item() == pytest.approx((row0 + row1) / 2, rel=1e-12)
    # the swap weights are 0 only between equal ranks, which never happen: a row of
    # ties still has a gradient (it can leave the tie)
    a = scores.clone().requires_grad_()
    lambdarank_target(a, target).backward()
    assert a.grad[1, 2] < 0 and (a.grad[1, [0, 1, 3]] > 0).all()


def test_lambdarank_gradient_is_the_ndcg_weighted_ranknet_gradient() -> None:
    """d loss / d r_j = |dNDCG_j| * sigmoid(r_j - r_t) / |J| for a negative j, minus
    their sum for the target: the weights are constants of the step."""
    scores = torch.tensor([[0.0, 5.0, 0.1, -3.0]], dtype=torch.float64, requires_grad=True)
    lambdarank_target(scores, torch.tensor([0])).backward()
    # ranks: column 1 (1), column 2 (2), the target (3), column 3 (4)
    w = {1: abs(gain(3) - gain(1)), 2: abs(gain(3) - gain(2)), 3: abs(gain(3) - gain(4))}
    assert w[1] > w[2]  # the negative far above the target has more NDCG at stake

    def sigmoid(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x))

    g = scores.grad[0]
    for j, r in ((1, 5.0), (2, 0.1), (3, -3.0)):
        assert g[j].item() == pytest.approx(w[j] * sigmoid(r - 0.0) / 3, rel=1e-12)
    assert g[0].item() == pytest.approx(-(g[1] + g[2] + g[3]).item(), rel=1e-12)


@pytest.mark.parametrize("name", ["lambdarank", "infonce"])
def test_a_masked_column_is_as_if_it_were_not_there(name: str) -> None:
    """Masking a candidate equals deleting its column: it takes no place in the
    ranking, adds no term and gets no gradient; a masked target column stays the
    positive."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 6, generator=g, dtype=torch.float64)
    scores[0, 3] = 10.0  # a masked high scorer would take rank 1 if it counted
    target = torch.tensor([1, 0, 5, 2])
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[:, 3] = True
    mask[2, 5] = True  # the target's own column: ignored
    fn = TARGET_LOSSES[name]
    a = scores.clone().requires_grad_()
    got = fn(a, target, mask=mask, temperature=0.7)
    got.backward()
    keep = [0, 1, 2, 4, 5]
    b = scores[:, keep].clone().requires_grad_()
    want = fn(b, torch.tensor([1, 0, 4, 2]), temperature=0.7)
    want.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    assert torch.all(a.grad[:, 3] == 0)
    torch.testing.assert_close(a.grad[:, keep], b.grad)


@pytest.mark.parametrize("name", ["lambdarank", "infonce"])
def test_gradients_are_finite_and_push_the_target_up(name: str) -> None:
    scores = torch.tensor(
        [[60.0, -60.0, 59.0, -60.0], [-60.0, 60.0, 0.0, 30.0], [0.3, 0.2, 0.1, 0.0]],
        requires_grad=True,
    )
    target = torch.tensor([0, 2, 3])
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[2, 1] = True
    loss = TARGET_LOSSES[name](scores, target, mask=mask, temperature=0.1)
    loss.backward()
    grad = scores.grad
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    rows = torch.arange(3)
    assert (grad[rows, target] < 0).all()  # raising the target lowers the loss
    neg = torch.ones(3, 4, dtype=torch.bool)
    neg[rows, target] = False
    neg &= ~mask
    assert (grad[neg] >= 0).all() and (grad[2, [0, 2]] > 0).all()
    assert grad[2, 1] == 0  # masked
    # a gradient step lowers the loss
    with torch.no_grad():
        lower = TARGET_LOSSES[name](scores - 1e-3 * grad, target, mask=mask, temperature=0.1)
    assert lower < loss


def test_infonce_is_cross_entropy_over_tempered_scores() -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(5, 7, generator=g, dtype=torch.float64)
    target = torch.tensor([0, 3, -1, 6, 2])
    assert infonce_target(scores, target).item() == pytest.approx(
        softmax_cross_entropy(scores, target).item(), rel=1e-14
    )
    got = infonce_target(scores, target, temperature=0.2)
    want = softmax_cross_entropy(scores / 0.2, target)
    assert got.item() == pytest.approx(want.item(), rel=1e-14)
    # a lower temperature concentrates the gradient on the hardest negative
    hard = []
    for tau in (1.0, 0.1):
        a = scores.clone().requires_grad_()
        infonce_target(a, target, temperature=tau).backward()
        row = a.grad[0, 1:]
        hard.append((row.max() / row.sum()).item())
    assert hard[1] > hard[0]
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ConfigError, match="temperature"):
            infonce_target(scores, target, temperature=bad)


def test_diagonal_forms_are_the_target_forms() -> None:
    """GRU4Rec's losses (positive on the diagonal) are the target losses with target
    column i for row i."""
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(4, 9, generator=g, dtype=torch.float64)
    mask = torch.rand(4, 9, generator=g) < 0.3
    log_q = torch.randn(9, generator=g, dtype=torch.float64)
    diag = torch.arange(4)
    kw = {"mask": mask, "log_q": log_q, "logq": 0.5, "temperature": 0.4}
    for name in ("lambdarank", "infonce"):
        assert LOSSES[name](scores, **kw).item() == pytest.approx(
            TARGET_LOSSES[name](scores, diag, **kw).item(), rel=1e-14
        )


def test_temperature_key_is_validated_and_routed() -> None:
    assert LossConfig().temperature == 1.0
    for bad in (0.0, -0.5, math.inf):
        with pytest.raises(ConfigError, match="temperature"):
            split_training({"loss": "infonce", "temperature": bad})
        with pytest.raises(ConfigError, match="temperature"):
            SequenceOptions(loss="infonce", temperature=bad)
    _, loss, _ = split_training({"loss": "infonce", "temperature": 0.05}, "session-parallel")
    assert loss.loss == "infonce" and loss.temperature == 0.05
    _, loss, _ = split_training({"loss": "lambdarank"}, "session-parallel")
    assert loss.loss == "lambdarank"
    assert SASRec(loss="infonce", temperature=0.3).training_keys["temperature"] == 0.3
    with pytest.raises(ConfigError, match="temperature"):
        GRU4Rec(loss="infonce", temperature=0.0)


# ------------------------------------------------------------------ trained models
N = 20


def chain(n_sessions: int = 300) -> SessionLog:
    """Item k is always followed by k + 1 (mod N)."""
    rng = np.random.default_rng(0)
    starts, lengths = rng.integers(0, N, n_sessions), rng.integers(3, 9, n_sessions)
    seqs = [list((s + np.arange(n)) % N) for s, n in zip(starts, lengths, strict=True)]
    return SessionLog.from_sequences(seqs)


def chain_accuracy(model) -> float:
    prefixes = [[k, (k + 1) % N] for k in range(N)] + [[k] for k in range(N)]
    want = torch.tensor([(p[-1] + 1) % N for p in prefixes])
    return float((model.score(prefixes).argmax(1) == want).float().mean())


@pytest.mark.parametrize(
    "keys",
    [
        {"loss": "lambdarank", "negatives": "uniform", "n_sample": 8},
        {"loss": "lambdarank", "negatives": "full"},
        {"loss": "infonce", "temperature": 0.5},  # full catalogue
        {
            "loss": "infonce",
            "temperature": 0.5,
            "negatives": "popularity",
            "n_sample": 8,
            "logq": 1.0,
        },
    ],
)
def test_sasrec_learns_the_chain_with_each_loss(keys: dict) -> None:
    base = {"hidden": 16, "n_blocks": 1, "dropout": 0.1, "max_len": 8, "n_epochs": 12,
            "learning_rate": 0.01, "batch_size": 32}  # fmt: skip
    model = SASRec({**base, **keys}).fit(chain())
    history = model.meta_["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert chain_accuracy(model) >= 0.9


@pytest.mark.parametrize("fast_step", [True, False])
@pytest.mark.parametrize(
    "keys", [{"loss": "lambdarank"}, {"loss": "infonce", "temperature": 0.5, "logq": 1.0}]
)
def test_gru4rec_trains_with_each_loss(keys: dict, fast_step: bool) -> None:
    cfg = {"layers": [16], "batch_size": 8, "n_sample": 16, "sample_cache": 1000,
           "learning_rate": 0.1, "n_epochs": 6, "fast_step": fast_step}  # fmt: skip
    model = GRU4Rec({**cfg, **keys}).fit(chain(120))
    losses = [h.loss for h in model.history_]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
