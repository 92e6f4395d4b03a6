"""Target-column losses (padded-sequence models) against naive per-row loop references,
values and gradients, with masks and ignored (padding) rows."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.errors import ConfigError
from seqrec.training.losses import (
    TARGET_LOSSES,
    bce,
    full_softmax_cross_entropy,
    gbce,
    gbce_beta,
    get_target_loss,
    pos_neg_scores,
    sampled_softmax,
    softmax_cross_entropy,
)

# ------------------------------------------------------------------ naive references
# One row at a time with scalar torch ops (so autograd gives reference gradients too).


def _negs(c: int, t: int, mask_row: list[bool] | None) -> list[int]:
    return [j for j in range(c) if j != t and not (mask_row is not None and mask_row[j])]


def _sig(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


def _gain(rank: int) -> float:
    return 1.0 / math.log2(1.0 + rank)


def ref_loss(
    name, scores, target, mask=None, log_q=None, logq=0.0, bpreg=1.0, t=0.0, n_items=0, tau=1.0
):
    n, c = scores.shape
    total = scores.new_zeros(())
    kept = 0
    for i in range(n):
        tc = int(target[i])
        if tc < 0:
            continue
        kept += 1
        row = scores[i]
        m = mask[i].tolist() if mask is not None else None
        neg = _negs(c, tc, m)
        if name in ("cross-entropy", "infonce"):
            lq = None if log_q is None else (log_q if log_q.dim() == 1 else log_q[i])
            div = tau if name == "infonce" else 1.0
            adj = [row[j] / div - (logq * lq[j] if lq is not None else 0.0) for j in range(c)]
            z = sum(torch.exp(adj[j]) for j in [tc, *neg])
            total = total + torch.log(z) - adj[tc]
            continue
        if name in ("bce", "gbce"):
            beta = 1.0
            if name == "gbce":
                alpha = (c - 1) / (n_items - 1)
                beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
            loss = -torch.log(_sig(row[tc]) ** beta)
            for j in neg:
                loss = loss - torch.log(1 - _sig(row[j]))
            total = total + loss
            continue
        if not neg:
            continue
        if name in ("bpr-max", "top1-max"):
            z = sum(torch.exp(row[j]) for j in neg)
            s = {j: torch.exp(row[j]) / z for j in neg}
            if name == "bpr-max":
                acc = sum(s[j] * _sig(row[tc] - row[j]) for j in neg)
                loss = -torch.log(acc + 1e-24) + bpreg * sum(s[j] * row[j] ** 2 for j in neg)
            else:
                loss = sum(s[j] * (_sig(row[j] - row[tc]) + _sig(row[j] ** 2)) for j in neg)
        elif name == "bpr":
            loss = sum(-torch.log(_sig(row[tc] - row[j])) for j in neg) / len(neg)
        elif name == "lambdarank":
            v = row.tolist()  # ranks of the current scores: constants (no gradient)
            r_t = 1 + sum(1 for k in neg if v[k] >= v[tc])  # the target after its ties
            loss = 0.0
            for j in neg:
                above = sum(1 for k in neg if v[k] > v[j] or (v[k] == v[j] and k < j))
                r_j = 1 + above + (1 if v[tc] > v[j] else 0)
                w = abs(_gain(r_t) - _gain(r_j))
                loss = loss + w * torch.log(1 + torch.exp(-(row[tc] - row[j])))
            loss = loss / len(neg)
        else:  # top1
            loss = sum(_sig(row[j] - row[tc]) + _sig(row[j] ** 2) for j in neg) / len(neg)
        total = total + loss
    return total / max(kept, 1)


def _case(seed: int, n: int = 6, c: int = 5, masked: bool = True, ignore: bool = True):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, c, generator=g, dtype=torch.float64)
    target = torch.randint(0, c, (n,), generator=g)
    if ignore:
        target[1] = -1  # a padding row
    mask = torch.rand(n, c, generator=g) < 0.3 if masked else None
    if masked:
        mask[2] = True  # a row left without any negative (its target column stays positive)
    return scores, target, mask


@pytest.mark.parametrize("name", sorted(TARGET_LOSSES))
@pytest.mark.parametrize("masked", [False, True])
def test_loss_matches_loop_reference_value_and_gradient(name: str, masked: bool) -> None:
    for seed in range(3):
        scores, target, mask = _case(seed, masked=masked)
        kw = {"bpreg": 0.7, "gbce_t": 0.6, "n_items": 40, "temperature": 0.5}
        a = scores.clone().requires_grad_()
        got = get_target_loss(name)(a, target, mask=mask, **kw)
        got.backward()
        b = scores.clone().requires_grad_()
        want = ref_loss(name, b, target, mask, bpreg=0.7, t=0.6, n_items=40, tau=0.5)
        want.backward()
        assert got.item() == pytest.approx(want.item(), rel=1e-9, abs=1e-12)
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-7, atol=1e-10)
        assert torch.all(a.grad[1] == 0)  # the ignored row gets no gradient


@pytest.mark.parametrize("shape", ["shared", "per-row"])
def test_sampled_softmax_logq_matches_reference(shape: str) -> None:
    scores, target, mask = _case(5)
    g = torch.Generator().manual_seed(9)
    log_q = torch.log(torch.rand(5 if shape == "shared" else (6, 5), generator=g).double())
    a = scores.clone().requires_grad_()
    got = sampled_softmax(a, target, log_q, mask=mask, logq=0.8)
    got.backward()
    b = scores.clone().requires_grad_()
    want = ref_loss("cross-entropy", b, target, mask, log_q=log_q, logq=0.8)
    want.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-9)
    torch.testing.assert_close(a.grad, b.grad)
    # InfoNCE: the same correction after dividing the scores by the temperature
    a = scores.clone().requires_grad_()
    got = get_target_loss("infonce")(a, target, mask=mask, log_q=log_q, logq=0.8, temperature=0.3)
    got.backward()
    b = scores.clone().requires_grad_()
    want = ref_loss("infonce", b, target, mask, log_q=log_q, logq=0.8, tau=0.3)
    want.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-9)
    torch.testing.assert_close(a.grad, b.grad)


def test_full_cross_entropy_is_torch_cross_entropy_without_ignored_rows() -> None:
    scores, target, _ = _case(2, n=8, c=11, masked=False, ignore=False)
    got = softmax_cross_entropy(scores, target)
    assert got.item() == pytest.approx(torch.nn.functional.cross_entropy(scores, target).item())
    target[3] = -1  # ignored rows: the mean over the kept ones
    got = softmax_cross_entropy(scores, target)
    want = torch.nn.functional.cross_entropy(scores, target, ignore_index=-1)
    assert got.item() == pytest.approx(want.item())


def test_pos_neg_form_equals_target_form() -> None:
    g = torch.Generator().manual_seed(3)
    pos, neg = torch.randn(5, generator=g), torch.randn(5, 4, generator=g)
    scores, target = pos_neg_scores(pos, neg)
    assert scores.shape == (5, 5) and torch.all(target == 0)
    assert torch.equal(scores[:, 0], pos) and torch.equal(scores[:, 1:], neg)
    # BCE with one negative: SASRec's -log s(pos) - log(1 - s(neg))
    s1, t1 = pos_neg_scores(pos, neg[:, :1])
    want = (-torch.log(torch.sigmoid(pos)) - torch.log(1 - torch.sigmoid(neg[:, 0]))).mean()
    assert bce(s1, t1).item() == pytest.approx(want.item(), rel=1e-6)


def test_gbce_beta_formula_and_limits() -> None:
    # alpha = k / (n_items - 1); beta = alpha * (t * (1 - 1/alpha) + 1/alpha)
    alpha = 4 / 99
    assert gbce_beta(4, 100, 0.0) == pytest.approx(1.0)
    assert gbce_beta(4, 100, 1.0) == pytest.approx(alpha)
    assert gbce_beta(4, 100, 0.5) == pytest.approx(alpha * (0.5 * (1 - 1 / alpha) + 1 / alpha))
    assert gbce_beta(99, 100, 0.7) == pytest.approx(1.0)  # the whole catalogue: plain BCE
    scores, target, mask = _case(4)
    assert gbce(scores, target, mask=mask, gbce_t=0.0, n_items=50).item() == pytest.approx(
        bce(scores, target, mask=mask).item()
    )
    with pytest.raises(ConfigError, match="gbce_t"):
        gbce_beta(4, 100, 1.5)
    with pytest.raises(ValueError, match="n_items"):
        gbce(scores, target, n_items=0)


def test_all_rows_ignored_gives_zero_with_gradient() -> None:
    scores = torch.randn(3, 4, requires_grad=True)
    target = torch.full((3,), -1)
    for name, fn in TARGET_LOSSES.items():
        loss = fn(scores, target, n_items=10)
        assert loss.item() == 0.0, name
        loss.backward()
    assert scores.grad is not None and torch.all(scores.grad == 0)


def test_bad_shapes_and_names() -> None:
    scores = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="target"):
        softmax_cross_entropy(scores, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="< C"):
        softmax_cross_entropy(scores, torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="mask"):
        softmax_cross_entropy(scores, torch.zeros(3, dtype=torch.long), mask=torch.zeros(3, 4))
    with pytest.raises(ConfigError, match="unknown loss 'nope'"):
        get_target_loss("nope")
    assert math.isfinite(TARGET_LOSSES["bpr-max"](scores, torch.zeros(3, dtype=torch.long)).item())


# ------------------------------------------------ full softmax, chunk by chunk


def _naive_full_xent(hidden, table, bias, target):
    """Mean over rows of logsumexp_i(h . W_i + b_i) - (h . W_t + b_t), one row at a time."""
    rows = []
    for h, t in zip(hidden, target, strict=True):
        s = table @ h + (bias if bias is not None else 0.0)  # (C,)
        rows.append(torch.logsumexp(s, 0) - s[t])
    return torch.stack(rows).mean()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("store", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 7, 23, 100])  # 1 item, ragged, exact, one chunk
def test_chunked_full_softmax_equals_the_naive_loss_and_gradients(bias, store, chunk) -> None:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    table = torch.randn(23, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(23, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    target = torch.tensor([0, 22, 5, 5, 9, 22])  # repeated targets: index_add accumulates
    params = [hidden, table] + ([b] if bias else [])
    want = _naive_full_xent(hidden, table, b, target)
    want_grads = torch.autograd.grad(want, params)
    got = full_softmax_cross_entropy(hidden, table, b, target, chunk=chunk, store=store)
    got_grads = torch.autograd.grad(got * 3.0, params)  # an upstream gradient of 3
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    for w, gg in zip(want_grads, got_grads, strict=True):
        torch.testing.assert_close(gg, 3.0 * w, rtol=1e-10, atol=1e-12)
    # and it is the unchunked cross-entropy of the scores
    scores = hidden @ table.t() + (b if bias else 0.0)
    assert softmax_cross_entropy(scores, target).item() == pytest.approx(got.item(), rel=1e-12)


def test_chunked_full_softmax_is_stable_for_large_scores() -> None:
    hidden = torch.tensor([[100.0], [-100.0]], requires_grad=True)
    table = torch.tensor([[10.0], [9.0], [-10.0]], requires_grad=True)
    target = torch.tensor([1, 2])
    loss = full_softmax_cross_entropy(hidden, table, None, target, chunk=2, store=True)
    # row 0: scores (1000, 900, -1000) -> loss 100; row 1: (-1000, -900, 1000) -> 0
    assert loss.item() == pytest.approx(50.0, rel=1e-6)
    loss.backward()
    assert torch.all(torch.isfinite(hidden.grad)) and torch.all(torch.isfinite(table.grad))


def test_chunked_full_softmax_rejects_bad_shapes() -> None:
    h, w = torch.zeros(3, 2), torch.zeros(5, 2)
    with pytest.raises(ValueError, match="hidden must be"):
        full_softmax_cross_entropy(h, torch.zeros(5, 3), None, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="target"):
        full_softmax_cross_entropy(h, w, None, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="bias"):
        full_softmax_cross_entropy(h, w, torch.zeros(4), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("store", [False, True])
def test_bfloat16_products_stay_close_to_the_float32_loss_and_gradients(store) -> None:
    """matmul_dtype=bfloat16: operands rounded to 8 significant bits, sums and
    exponentials in float32: the loss and gradients agree with float32's to ~1e-2."""
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(64, 16, generator=g, requires_grad=True)
    table = (0.3 * torch.randn(500, 16, generator=g)).requires_grad_()
    b = (0.1 * torch.randn(500, generator=g)).requires_grad_()
    target = torch.randint(0, 500, (64,), generator=g)
    params = [hidden, table, b]
    want = full_softmax_cross_entropy(hidden, table, b, target, chunk=128, store=store)
    want_grads = torch.autograd.grad(want, params)
    got = full_softmax_cross_entropy(
        hidden, table, b, target, chunk=128, store=store, matmul_dtype=torch.bfloat16
    )
    got_grads = torch.autograd.grad(got, params)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want.item(), rel=1e-2)
    assert got.item() != want.item()  # the products did run in bfloat16
    for w, gg in zip(want_grads, got_grads, strict=True):
        assert gg.dtype == torch.float32
        assert ((gg - w).norm() / w.norm()).item() < 2e-2


def test_a_matmul_dtype_equal_to_the_inputs_is_the_plain_loss() -> None:
    g = torch.Generator().manual_seed(2)
    hidden, table = torch.randn(5, 3, generator=g), torch.randn(9, 3, generator=g)
    target = torch.tensor([0, 1, 2, 3, 8])
    plain = full_softmax_cross_entropy(hidden, table, None, target)
    same = full_softmax_cross_entropy(hidden, table, None, target, matmul_dtype=torch.float32)
    assert same.item() == plain.item()
