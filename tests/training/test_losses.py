"""Losses against naive loop references on small literal tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqrec.errors import ConfigError
from seqrec.training.losses import LOSSES, bpr_max, cross_entropy, get_loss

# ---------------------------------------------------------------- naive references


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _negatives(scores: list[list[float]], mask: list[list[bool]] | None, i: int) -> list[int]:
    c = len(scores[0])
    return [j for j in range(c) if j != i and not (mask is not None and mask[i][j])]


def _softmax_weights(row: list[float], cols: list[int]) -> dict[int, float]:
    m = max(row[j] for j in cols)
    e = {j: math.exp(row[j] - m) for j in cols}
    z = sum(e.values())
    return {j: v / z for j, v in e.items()}


def ref_cross_entropy(scores, mask=None, log_q=None, logq=0.0):
    total = 0.0
    for i, row in enumerate(scores):
        adj = [row[j] - (logq * log_q[j] if log_q is not None else 0.0) for j in range(len(row))]
        cols = [i, *_negatives(scores, mask, i)]
        m = max(adj[j] for j in cols)
        lse = m + math.log(sum(math.exp(adj[j] - m) for j in cols))
        total += lse - adj[i]
    return total / len(scores)


def ref_bpr_max(scores, mask=None, bpreg=1.0, first_term_only=False):
    total = 0.0
    for i, row in enumerate(scores):
        neg = _negatives(scores, mask, i)
        if not neg:
            continue
        s = _softmax_weights(row, neg)
        acc = sum(s[j] * _sig(row[i] - row[j]) for j in neg)
        loss = -math.log(acc + 1e-24)
        if not first_term_only:
            loss += bpreg * sum(s[j] * row[j] ** 2 for j in neg)
        total += loss
    return total / len(scores)


def ref_top1_max(scores, mask=None):
    total = 0.0
    for i, row in enumerate(scores):
        neg = _negatives(scores, mask, i)
        if not neg:
            continue
        s = _softmax_weights(row, neg)
        total += sum(s[j] * (_sig(row[j] - row[i]) + _sig(row[j] ** 2)) for j in neg)
    return total / len(scores)


def ref_bpr(scores, mask=None):
    total = 0.0
    for i, row in enumerate(scores):
        neg = _negatives(scores, mask, i)
        if neg:
            total += sum(-math.log(_sig(row[i] - row[j])) for j in neg) / len(neg)
    return total / len(scores)


def ref_top1(scores, mask=None):
    total = 0.0
    for i, row in enumerate(scores):
        neg = _negatives(scores, mask, i)
        if neg:
            total += sum(_sig(row[j] - row[i]) + _sig(row[j] ** 2) for j in neg) / len(neg)
    return total / len(scores)


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _gain(rank: int) -> float:
    return 1.0 / math.log2(1.0 + rank)


def ref_lambda_ranks(row: list[float], t: int, neg: list[int]) -> tuple[int, dict[int, int]]:
    """1-based ranks of the target ``t`` and of each negative among ``t`` and ``neg``:
    ties put the target after the negatives, and negatives in column order."""
    r_pos = 1 + sum(1 for k in neg if row[k] >= row[t])
    ranks = {}
    for j in neg:
        above = sum(1 for k in neg if row[k] > row[j] or (row[k] == row[j] and k < j))
        ranks[j] = 1 + above + (1 if row[t] > row[j] else 0)
    return r_pos, ranks


def ref_lambdarank(scores, mask=None):
    total = 0.0
    for i, row in enumerate(scores):
        neg = _negatives(scores, mask, i)
        if not neg:
            continue
        r_pos, ranks = ref_lambda_ranks(row, i, neg)
        pairs = [abs(_gain(r_pos) - _gain(ranks[j])) * _softplus(row[j] - row[i]) for j in neg]
        total += sum(pairs) / len(neg)
    return total / len(scores)


def ref_infonce(scores, mask=None, log_q=None, logq=0.0, tau=1.0):
    return ref_cross_entropy([[x / tau for x in row] for row in scores], mask, log_q, logq)


REFS = {
    "cross-entropy": ref_cross_entropy,
    "lambdarank": ref_lambdarank,
    "infonce": ref_infonce,
    "bpr-max": ref_bpr_max,
    "top1-max": ref_top1_max,
    "bpr": ref_bpr,
    "top1": ref_top1,
}

# ---------------------------------------------------------------- literal inputs

SQUARE = [  # C == B == 3
    [1.0, -0.5, 2.0],
    [0.3, 0.7, -1.2],
    [-2.0, 0.1, 0.4],
]
WIDE = [  # B = 2, C = 5
    [0.5, 1.5, -0.3, 0.0, 2.2],
    [-1.0, 0.25, 0.8, -0.6, 1.1],
]
EXTREME = [  # B = 3, C = 4, saturating scores
    [50.0, -50.0, 49.0, -50.0],
    [-50.0, -50.0, 50.0, 30.0],
    [20.0, 50.0, -50.0, -49.5],
]
SINGLE = [[0.7, -0.2, 3.0]]  # B = 1, C = 3
CASES = {"square": SQUARE, "wide": WIDE, "extreme": EXTREME, "single": SINGLE}

MASK_WIDE = [
    [False, True, False, False, True],
    [False, False, False, True, False],
]
MASK_SQUARE_ALL = [  # row 1 loses all its negatives
    [False, False, True],
    [True, False, True],
    [False, False, False],
]


def _call(name: str, scores: torch.Tensor, **kw) -> torch.Tensor:
    return get_loss(name)(scores, **kw)


def _check_grad(loss: torch.Tensor, scores: torch.Tensor) -> None:
    (grad,) = torch.autograd.grad(loss, scores)
    assert torch.isfinite(grad).all(), grad


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(name: str, case: str, dtype: torch.dtype) -> None:
    data = CASES[case]
    scores = torch.tensor(data, dtype=dtype, requires_grad=True)
    loss = _call(name, scores, bpreg=0.5 if name == "bpr-max" else 1.0)
    kw = {"bpreg": 0.5} if name == "bpr-max" else {}
    expected = REFS[name](data, **kw)
    assert loss.shape == ()
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert loss.item() == pytest.approx(expected, rel=tol, abs=tol)
    _check_grad(loss, scores)


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize(
    ("case", "mask"), [("wide", MASK_WIDE), ("square", MASK_SQUARE_ALL), ("extreme", None)]
)
def test_mask_matches_reference(name: str, case: str, mask) -> None:
    data = CASES[case]
    if mask is None:  # mask the column that holds the other rows' huge score
        mask = [[j == 1 and i != 1 for j in range(4)] for i in range(3)]
    scores = torch.tensor(data, dtype=torch.float64, requires_grad=True)
    loss = _call(name, scores, mask=torch.tensor(mask))
    assert loss.item() == pytest.approx(REFS[name](data, mask=mask), rel=1e-9, abs=1e-12)
    _check_grad(loss, scores)


@pytest.mark.parametrize("name", list(LOSSES))
def test_mask_on_diagonal_is_ignored(name: str) -> None:
    scores = torch.tensor(WIDE, dtype=torch.float64)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 0] = mask[1, 1] = True
    assert _call(name, scores, mask=mask).item() == pytest.approx(_call(name, scores).item())


@pytest.mark.parametrize("name", list(LOSSES))
def test_all_false_mask_equals_no_mask(name: str) -> None:
    scores = torch.tensor(EXTREME)
    masked = _call(name, scores, mask=torch.zeros(3, 4, dtype=torch.bool))
    assert masked.item() == pytest.approx(_call(name, scores).item(), rel=1e-6)


@pytest.mark.parametrize("name", list(LOSSES))
def test_no_negatives_gives_zero(name: str) -> None:
    scores = torch.tensor([[1.5]], requires_grad=True)  # B = C = 1
    loss = _call(name, scores)
    assert loss.item() == 0.0
    _check_grad(loss, scores)


def test_cross_entropy_logq_matches_reference() -> None:
    log_q = [-1.0, -3.5, -0.2, -7.0, -2.0]
    scores = torch.tensor(WIDE, dtype=torch.float64, requires_grad=True)
    for logq in (0.5, 1.0):
        loss = cross_entropy(scores, log_q=torch.tensor(log_q), logq=logq)
        assert loss.item() == pytest.approx(ref_cross_entropy(WIDE, log_q=log_q, logq=logq))
        _check_grad(loss, scores)
    masked = cross_entropy(
        scores, log_q=torch.tensor(log_q), logq=1.0, mask=torch.tensor(MASK_WIDE)
    )
    expected = ref_cross_entropy(WIDE, mask=MASK_WIDE, log_q=log_q, logq=1.0)
    assert masked.item() == pytest.approx(expected)


def test_cross_entropy_logq_zero_equals_torch() -> None:
    for data in (SQUARE, WIDE, EXTREME):
        scores = torch.tensor(data)
        b = scores.shape[0]
        expected = F.cross_entropy(scores, torch.arange(b))
        log_q = torch.full((scores.shape[1],), -2.0)
        assert cross_entropy(scores).item() == pytest.approx(expected.item(), rel=1e-6)
        assert cross_entropy(scores, log_q=log_q, logq=0.0).item() == pytest.approx(
            expected.item(), rel=1e-6
        )


def test_bpr_max_without_reg_is_first_term() -> None:
    for data in (SQUARE, WIDE, EXTREME):
        scores = torch.tensor(data, dtype=torch.float64)
        expected = ref_bpr_max(data, first_term_only=True)
        assert bpr_max(scores, bpreg=0.0).item() == pytest.approx(expected, rel=1e-9)


def test_extreme_scores_stay_finite_and_saturate() -> None:
    # the positive far below every negative: bpr-max's first term saturates at -log(eps)
    scores = torch.tensor([[-50.0, 50.0, 50.0], [50.0, -50.0, 50.0]], requires_grad=True)
    for name in LOSSES:
        loss = _call(name, scores, bpreg=0.0)
        assert torch.isfinite(loss), name
        _check_grad(loss, scores)
    first = bpr_max(scores, bpreg=0.0).item()
    assert first == pytest.approx(-math.log(_sig(-100.0) + 1e-24), rel=1e-4)


def test_uniform_signature_and_registry() -> None:
    scores = torch.randn(4, 9, generator=torch.Generator().manual_seed(0))
    log_q = torch.randn(9)
    for fn in LOSSES.values():
        out = fn(scores, log_q=log_q, logq=1.0, bpreg=0.5, mask=None)
        assert out.shape == () and torch.isfinite(out)
    assert get_loss("bpr-max") is bpr_max


def test_get_loss_unknown_name() -> None:
    with pytest.raises(ConfigError) as err:
        get_loss("softmax")
    msg = str(err.value)
    assert "\n" not in msg and "softmax" in msg
    assert all(name in msg for name in LOSSES)


def test_bad_shapes_rejected() -> None:
    with pytest.raises(ValueError):
        cross_entropy(torch.zeros(3, 2))
    with pytest.raises(ValueError):
        bpr_max(torch.zeros(2, 3), mask=torch.zeros(2, 3))


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck(name: str, masked: bool) -> None:
    scores = torch.tensor(WIDE, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor(MASK_WIDE) if masked else None
    log_q = torch.tensor([-1.0, -3.5, -0.2, -7.0, -2.0], dtype=torch.float64)
    fn = get_loss(name)
    assert torch.autograd.gradcheck(
        lambda s: fn(s, log_q=log_q, logq=0.7, bpreg=0.3, mask=mask), (scores,)
    )


def test_infonce_temperature_and_logq_match_reference() -> None:
    """InfoNCE = cross-entropy of scores / tau, the logQ correction after the division."""
    log_q = [-1.0, -3.5, -0.2, -7.0, -2.0]
    fn = get_loss("infonce")
    for tau in (0.25, 1.0, 3.0):
        for mask in (None, MASK_WIDE):
            scores = torch.tensor(WIDE, dtype=torch.float64, requires_grad=True)
            m = None if mask is None else torch.tensor(mask)
            lq = torch.tensor(log_q, dtype=torch.float64)
            loss = fn(scores, log_q=lq, logq=0.7, mask=m, temperature=tau)
            want = ref_infonce(WIDE, mask=mask, log_q=log_q, logq=0.7, tau=tau)
            assert loss.item() == pytest.approx(want, rel=1e-10)
            _check_grad(loss, scores)
    plain = torch.tensor(SQUARE)
    assert fn(plain).item() == pytest.approx(cross_entropy(plain).item(), rel=1e-7)
    with pytest.raises(ConfigError, match="temperature"):
        fn(plain, temperature=0.0)
