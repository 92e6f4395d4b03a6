"""Ranking losses for GRU4Rec-style training with in-batch and shared sampled negatives.

Every loss takes a logits matrix ``scores`` of shape (B, C) with C >= B: row ``i`` is
session slot ``i``; column ``j < B`` is the target item of slot ``j`` (the mini-batch's
own targets are the negatives of the other rows), columns ``B..C-1`` are extra shared
negatives. The positive of row ``i`` is column ``i`` (the diagonal); every other column
of the row is a negative unless ``mask[i, j]`` is True (e.g. a false negative whose item
equals the row's target). The diagonal is never masked. Each loss returns the mean over
the B rows of its per-row loss; a row left without any negative contributes 0.

All losses share one keyword-only signature so a trainer can call any of them as
``loss_fn(scores, log_q=..., logq=..., bpreg=..., mask=..., temperature=...)``; keywords
a loss does not use are ignored. Formulas follow Hidasi et al. (ICLR 2016) and Hidasi &
Karatzoglou (CIKM 2018); ``lambdarank`` and ``infonce`` are the target-column losses of
the second part of this module (:func:`lambdarank_target`, :func:`infonce_target`) with
the diagonal as the target column.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from seqrec.errors import ConfigError

__all__ = [
    "LOSSES",
    "LossFn",
    "bpr",
    "bpr_max",
    "cross_entropy",
    "get_loss",
    "infonce",
    "lambdarank",
    "top1",
    "top1_max",
]

BPR_MAX_EPS = 1e-24
_LOG_EPS = math.log(BPR_MAX_EPS)


class LossFn(Protocol):
    """Uniform call signature of every loss in :data:`LOSSES`."""

    def __call__(
        self,
        scores: Tensor,
        *,
        log_q: Tensor | None = None,
        logq: float = 0.0,
        bpreg: float = 1.0,
        mask: Tensor | None = None,
        temperature: float = 1.0,
    ) -> Tensor: ...


def _check(scores: Tensor, mask: Tensor | None) -> None:
    if scores.dim() != 2 or scores.shape[1] < scores.shape[0]:
        raise ValueError(f"scores must have shape (B, C) with C >= B, got {tuple(scores.shape)}")
    if mask is not None and (mask.shape != scores.shape or mask.dtype != torch.bool):
        raise ValueError(
            f"mask must be a bool tensor of shape {tuple(scores.shape)}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )


def _eye(scores: Tensor) -> Tensor:
    b, c = scores.shape
    return torch.eye(b, c, dtype=torch.bool, device=scores.device)  # (B, C)


def _excluded(scores: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Candidates that are not negatives of their row, and which rows have any negative.

    Returns ``excl`` (B, C) bool: True on the diagonal and on masked entries. Rows without
    any negative are returned fully unmasked (``excl`` False everywhere) so that the
    computations stay finite; ``has_neg`` (B,) then marks them so their loss is zeroed.
    ``has_neg`` is None on the unmasked fast path (C > 1), where every row has one.
    """
    eye = _eye(scores)  # (B, C)
    excl = eye if mask is None else mask | eye  # (B, C)
    if mask is None and scores.shape[1] > 1:
        return excl, None
    has_neg = ~excl.all(dim=1)  # (B,)
    return excl & has_neg[:, None], has_neg


def _finish(per_row: Tensor, has_neg: Tensor | None) -> Tensor:
    if has_neg is not None:
        per_row = per_row * has_neg.to(per_row.dtype)  # (B,)
    return per_row.mean()


def cross_entropy(
    scores: Tensor,
    *,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    mask: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """Softmax cross-entropy of the diagonal over all C candidates.

    With ``logq != 0`` and ``log_q`` (C,) given (log sampling probability of each
    candidate), ``logq * log_q[j]`` is subtracted from column ``j`` before the softmax
    (logQ correction of the sampling bias). ``bpreg`` is ignored.
    """
    _check(scores, mask)
    logits = scores  # (B, C)
    if log_q is not None and logq != 0.0:
        if log_q.shape != (scores.shape[1],):
            raise ValueError(
                f"log_q must have shape ({scores.shape[1]},), got {tuple(log_q.shape)}"
            )
        logits = scores - logq * log_q.to(scores.dtype)[None, :]  # (B, C)
    if mask is not None:
        logits = logits.masked_fill(mask & ~_eye(scores), -math.inf)  # (B, C)
    pos = logits.diagonal()  # (B,)
    return (torch.logsumexp(logits, dim=1) - pos).mean()


def bpr_max(
    scores: Tensor,
    *,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    mask: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """BPR-max: ``-log(sum_j s_j sigmoid(r_i - r_j) + eps) + bpreg * sum_j s_j r_j^2``.

    ``s_j`` is the softmax of the negative scores of the row (eps = 1e-24). The log of the
    sum is computed as a logsumexp of ``log s_j + logsigmoid(r_i - r_j)``.
    """
    _check(scores, mask)
    excl, has_neg = _excluded(scores, mask)
    log_s = torch.log_softmax(scores.masked_fill(excl, -math.inf), dim=1)  # (B, C)
    pos = scores.diagonal()[:, None]  # (B, 1)
    lse = torch.logsumexp(log_s + F.logsigmoid(pos - scores), dim=1)  # (B,)
    per_row = -torch.logaddexp(lse, lse.new_tensor(_LOG_EPS))  # (B,)
    if bpreg != 0.0:
        per_row = per_row + bpreg * (log_s.exp() * scores.square()).sum(dim=1)
    return _finish(per_row, has_neg)


def top1_max(
    scores: Tensor,
    *,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    mask: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """TOP1-max: ``sum_j s_j (sigmoid(r_j - r_i) + sigmoid(r_j^2))``, s = softmax of negatives."""
    _check(scores, mask)
    excl, has_neg = _excluded(scores, mask)
    s = torch.softmax(scores.masked_fill(excl, -math.inf), dim=1)  # (B, C)
    pos = scores.diagonal()[:, None]  # (B, 1)
    term = torch.sigmoid(scores - pos) + torch.sigmoid(scores.square())  # (B, C)
    return _finish((s * term).sum(dim=1), has_neg)


def _mean_over_negatives(terms: Tensor, excl: Tensor, has_neg: Tensor | None) -> Tensor:
    """Per-row mean of ``terms`` (B, C) over the non-excluded entries, then mean over rows."""
    n_neg = (~excl).sum(dim=1).clamp(min=1).to(terms.dtype)  # (B,)
    per_row = terms.masked_fill(excl, 0.0).sum(dim=1) / n_neg  # (B,)
    return _finish(per_row, has_neg)


def bpr(
    scores: Tensor,
    *,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    mask: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """BPR: mean over the row's negatives of ``-logsigmoid(r_i - r_j)``."""
    _check(scores, mask)
    excl, has_neg = _excluded(scores, mask)
    terms = F.softplus(scores - scores.diagonal()[:, None])  # (B, C) = -logsigmoid(r_i - r_j)
    return _mean_over_negatives(terms, excl, has_neg)


def top1(
    scores: Tensor,
    *,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    mask: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """TOP1: mean over the row's negatives of ``sigmoid(r_j - r_i) + sigmoid(r_j^2)``."""
    _check(scores, mask)
    excl, has_neg = _excluded(scores, mask)
    pos = scores.diagonal()[:, None]  # (B, 1)
    terms = torch.sigmoid(scores - pos) + torch.sigmoid(scores.square())  # (B, C)
    return _mean_over_negatives(terms, excl, has_neg)


def lambdarank(
    scores: Tensor,
    *,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    mask: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """LambdaRank-style loss with the diagonal as the positive: :func:`lambdarank_target`
    with target column ``i`` for row ``i`` (``log_q``, ``logq``, ``bpreg`` and
    ``temperature`` are ignored)."""
    _check(scores, mask)
    target = torch.arange(scores.shape[0], device=scores.device)  # (B,) the diagonal
    return lambdarank_target(scores, target, mask=mask)


def infonce(
    scores: Tensor,
    *,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    mask: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """InfoNCE with temperature ``tau`` and the diagonal as the positive:
    :func:`cross_entropy` of ``scores / tau`` (logQ correction, if any, applied after the
    division; see :func:`infonce_target`)."""
    _check(scores, mask)
    _check_temperature(temperature)
    return cross_entropy(scores / temperature, log_q=log_q, logq=logq, mask=mask)


LOSSES: dict[str, LossFn] = {
    "cross-entropy": cross_entropy,
    "bpr-max": bpr_max,
    "top1-max": top1_max,
    "bpr": bpr,
    "top1": top1,
    "lambdarank": lambdarank,
    "infonce": infonce,
}


def get_loss(name: str) -> LossFn:
    """The loss registered under ``name``; raises :class:`ConfigError` for unknown names."""
    try:
        return LOSSES[name]
    except KeyError:
        valid = ", ".join(LOSSES)
        raise ConfigError(f"unknown loss {name!r}; valid losses: {valid}") from None


# ============================================================ losses over general scores
# Padded-sequence models score each target position against a candidate set of their
# own: the whole catalogue, per-position sampled negatives, shared negatives or the
# batch's targets. These losses take
#
#   scores (N, C): row n scores C candidates;
#   target (N,) int64: the column of row n's positive, or < 0 for a row to ignore
#       (padding, unmasked positions); ignored rows neither add to the loss nor count;
#   mask (N, C) bool, optional: True = the candidate is not a negative of the row
#       (e.g. a sampled negative that equals the positive). The target column is never
#       a negative, whatever the mask says.
#
# Each returns the mean over the kept rows (0 without any, still differentiable); a kept
# row left without any negative contributes 0 to the pairwise losses but is counted.
# Two-tensor form (pos (N,), neg (N, K)): ``pos_neg_scores(pos, neg)`` gives the
# equivalent (scores, target). All share one keyword-only signature
# (:class:`TargetLossFn`), keywords a loss does not use are ignored.


class TargetLossFn(Protocol):
    """Uniform call signature of every loss in :data:`TARGET_LOSSES`."""

    def __call__(
        self,
        scores: Tensor,
        target: Tensor,
        *,
        mask: Tensor | None = None,
        log_q: Tensor | None = None,
        logq: float = 0.0,
        bpreg: float = 1.0,
        gbce_t: float = 0.0,
        n_items: int = 0,
        temperature: float = 1.0,
    ) -> Tensor: ...


def pos_neg_scores(pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor]:
    """(pos (N,), neg (N, K)) -> (scores (N, 1 + K) with the positive in column 0,
    target (N,) zeros)."""
    if pos.dim() != 1 or neg.dim() != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(
            f"pos must be (N,) and neg (N, K), got {tuple(pos.shape)} and {tuple(neg.shape)}"
        )
    scores = torch.cat([pos[:, None], neg], dim=1)  # (N, 1 + K)
    return scores, torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)


def _check_rows(scores: Tensor, target: Tensor, mask: Tensor | None) -> None:
    """Shapes and dtypes of a target loss's arguments (ValueError otherwise)."""
    if scores.dim() != 2:
        raise ValueError(f"scores must have shape (N, C), got {tuple(scores.shape)}")
    n, c = scores.shape
    if target.shape != (n,) or target.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"target must be an integer tensor of shape ({n},), "
            f"got {target.dtype} {tuple(target.shape)}"
        )
    if mask is not None and (mask.shape != scores.shape or mask.dtype != torch.bool):
        raise ValueError(
            f"mask must be a bool tensor of shape {tuple(scores.shape)}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    if n and int(target.max()) >= c:
        raise ValueError(f"target columns must be < C = {c}")


class _Rows:
    """What every target loss needs: kept rows, the positive's column and score, the
    excluded (non-negative) entries and the rows that have a negative."""

    def __init__(self, scores: Tensor, target: Tensor, mask: Tensor | None) -> None:
        _check_rows(scores, target, mask)
        c = scores.shape[1]
        self.keep = target >= 0  # (N,)
        col = target.clamp(min=0).long()  # (N,)
        is_pos = torch.arange(c, device=scores.device)[None, :] == col[:, None]  # (N, C)
        excl = is_pos if mask is None else mask | is_pos  # (N, C)
        self.has_neg = ~excl.all(dim=1)  # (N,)
        self.not_neg = excl  # (N, C)
        # rows without a negative: unmasked so the softmaxes stay finite, zeroed later
        self.excl = excl & self.has_neg[:, None]  # (N, C)
        self.is_pos = is_pos
        self.pos = scores.gather(1, col[:, None])  # (N, 1)

    def mean(self, per_row: Tensor, needs_negative: bool = True) -> Tensor:
        use = self.keep & self.has_neg if needs_negative else self.keep  # (N,)
        total = torch.where(use, per_row, torch.zeros_like(per_row)).sum()
        return total / self.keep.sum().clamp(min=1).to(per_row.dtype)

    def neg_mean(self, terms: Tensor) -> Tensor:
        """Per-row mean of ``terms`` (N, C) over the row's negatives."""
        n_neg = (~self.excl).sum(dim=1).clamp(min=1).to(terms.dtype)  # (N,)
        return terms.masked_fill(self.excl, 0.0).sum(dim=1) / n_neg  # (N,)

    def neg_sum(self, terms: Tensor) -> Tensor:
        """Per-row sum of ``terms`` (N, C) over the row's negatives (0 without any)."""
        return terms.masked_fill(self.not_neg, 0.0).sum(dim=1)  # (N,)


def softmax_cross_entropy(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    gbce_t: float = 0.0,
    n_items: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    """Softmax cross-entropy of the target column over the row's candidates:
    ``logsumexp_j r_j - r_target`` over the target and the unmasked columns.

    Over the full catalogue (C = n_items) this is the full softmax. With ``log_q`` given
    and ``logq != 0`` it is the sampled softmax with logQ correction
    (:func:`sampled_softmax`).
    """
    _check_rows(scores, target, mask)
    logits = scores  # (N, C)
    if log_q is not None and logq != 0.0:
        if log_q.shape not in ((scores.shape[1],), tuple(scores.shape)):
            raise ValueError(
                f"log_q must have shape (C,) or (N, C) = {tuple(scores.shape)}, "
                f"got {tuple(log_q.shape)}"
            )
        lq = log_q.to(scores.dtype)
        logits = scores - logq * (lq[None, :] if lq.dim() == 1 else lq)  # (N, C)
    col = target.clamp(min=0).long()  # (N,)
    if mask is not None:  # masked candidates leave the softmax; the target never does
        logits = logits.masked_fill(mask.scatter(1, col[:, None], False), -math.inf)
    # torch's fused log-softmax + NLL: one pass forward and backward over (N, C)
    per_row = F.cross_entropy(logits, col, reduction="none")  # (N,)
    keep = target >= 0  # (N,) rows with target -1 are ignored
    total = torch.where(keep, per_row, torch.zeros_like(per_row)).sum()
    return total / keep.sum().clamp(min=1).to(per_row.dtype)


STORE_SCORES = 1 << 26  # chunked cross-entropy: keep the scores for backward up to this many


class _ChunkedSoftmaxXent(torch.autograd.Function):
    """Mean full-softmax cross-entropy of ``hidden @ table.T + bias``, ``chunk`` items at
    a time: the forward pass makes the scores of each chunk and folds them into a
    running log-sum-exp; the backward pass turns each chunk's scores into its part of
    ``(softmax - onehot) / N`` and multiplies it straight into the gradients of
    ``hidden``, ``table`` and ``bias``. With ``store`` the forward pass keeps every
    chunk's ``exp(scores - m)`` (``m`` its row maxima; one ``(N, C)`` matrix in pieces)
    and the backward pass only rescales it by ``exp(m - lse)``; else the backward pass
    makes the scores again. ``lp`` (a dtype, e.g. bfloat16): the three catalogue-wide
    products take ``hidden``, ``table`` and the softmax rounded to it and return it
    (promoted to float32 before the exponentials, the sums and the gradients)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: Tensor,
        table: Tensor,
        bias: Tensor | None,
        target: Tensor,
        chunk: int,
        store: bool,
        lp: torch.dtype | None,
    ) -> Tensor:
        n, c = hidden.shape[0], table.shape[0]
        # the products' operands: float32, or rounded to lp once per call
        h_op, t_op = (hidden, table) if lp is None else (hidden.to(lp), table.to(lp))
        lse = torch.full((n,), -math.inf, dtype=hidden.dtype, device=hidden.device)  # (N,)
        kept: list[tuple[Tensor, Tensor]] = []  # store: (exp(scores - m), m) of every chunk
        for s in range(0, c, chunk):
            logits = _chunk_scores(h_op, t_op, bias, s, chunk)  # (N, <= chunk) float32
            if store:
                m = logits.amax(dim=1, keepdim=True)  # (N, 1)
                e = logits.sub_(m).exp_()  # in place: exp(scores - m)
                lse = torch.logaddexp(lse, m[:, 0] + e.sum(1).log())
                kept.append((e, m))
            else:
                lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=1))
        # the target's score from the same (rounded) operands as the chunks'
        pos = (h_op.to(hidden.dtype) * t_op[target].to(hidden.dtype)).sum(1)  # (N,)
        if bias is not None:
            pos = pos + bias[target]
        ctx.save_for_backward(h_op, t_op, bias, target, lse)
        ctx.chunk, ctx.kept, ctx.dtype = chunk, kept, hidden.dtype  # kept: consumed by backward
        return (lse - pos).sum() / max(n, 1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        h_op, t_op, bias, target, lse = ctx.saved_tensors
        n, c, chunk, kept, dtype = h_op.shape[0], t_op.shape[0], ctx.chunk, ctx.kept, ctx.dtype
        ctx.kept = None
        lp = h_op.dtype if h_op.dtype != dtype else None
        scale = grad / max(n, 1)  # d mean / d row loss
        g_hidden = torch.zeros(h_op.shape, dtype=dtype, device=h_op.device)  # (N, d)
        g_table = torch.empty(t_op.shape, dtype=dtype, device=t_op.device)  # (C, d)
        g_bias = torch.empty_like(bias) if bias is not None else None
        for i, s in enumerate(range(0, c, chunk)):
            if kept:  # softmax = exp(scores - m) * exp(m - lse)
                e, m = kept[i]
                p = e.mul_((m - lse[:, None]).exp_().mul_(scale))  # (N, <= chunk): softmax / N
            else:
                p = _chunk_scores(h_op, t_op, bias, s, chunk).sub_(lse[:, None]).exp_()
                p.mul_(scale)  # (N, <= chunk): softmax / N
            if g_bias is not None:
                torch.sum(p, dim=0, out=g_bias[s : s + chunk])
            t_chunk = t_op[s : s + chunk]
            if lp is None:
                g_hidden.addmm_(p, t_chunk)
                torch.mm(p.t(), h_op, out=g_table[s : s + chunk])
            else:
                p_op = p.to(lp)
                g_hidden.add_(p_op @ t_chunk)
                g_table[s : s + chunk] = p_op.t() @ h_op
        # minus the one-hot of the targets
        g_hidden.sub_(t_op[target].to(dtype) * scale)
        g_table.index_add_(0, target, h_op.to(dtype) * -scale)
        if g_bias is not None:
            g_bias.index_add_(0, target, (-scale).expand(n).to(g_bias.dtype))
        return g_hidden, g_table, g_bias, None, None, None, None


def _chunk_scores(hidden: Tensor, table: Tensor, bias: Tensor | None, s: int, chunk: int) -> Tensor:
    """(N, <= chunk) float32 scores of items ``s .. s + chunk - 1`` (operands of a lower
    precision give their product's result promoted to float32)."""
    if hidden.dtype != torch.float32 and hidden.dtype != torch.float64:
        scores = (hidden @ table[s : s + chunk].t()).float()
        return scores if bias is None else scores.add_(bias[s : s + chunk])
    if bias is None:
        return hidden @ table[s : s + chunk].t()
    return torch.addmm(bias[s : s + chunk], hidden, table[s : s + chunk].t())


def full_softmax_cross_entropy(
    hidden: Tensor,
    table: Tensor,
    bias: Tensor | None,
    target: Tensor,
    *,
    chunk: int = 0,
    store: bool | None = None,
    matmul_dtype: torch.dtype | None = None,
) -> Tensor:
    """Mean over the ``N`` rows of the softmax cross-entropy over the whole catalogue of
    the scores ``hidden @ table.T + bias``: ``hidden`` (N, d), ``table`` (C, d), ``bias``
    (C,) or None, ``target`` (N,) item ids in ``0..C-1``.

    The same value and gradients as ``softmax_cross_entropy(hidden @ table.T + bias,
    target)`` up to float rounding, computed ``chunk`` items at a time (0: about 2 MiB of
    scores per chunk): no ``(N, C)`` score, softmax or gradient matrix is allocated
    whole, and every chunk is scored, exponentiated and multiplied back while it is in
    cache. ``store``: keep the chunks' scores for the backward pass (one ``(N, C)``
    matrix in pieces; None: when ``N * C <= STORE_SCORES``) instead of making them
    again (one more ``N x C x d`` product, no ``N x C`` memory). On a CPU with NARM's
    shapes (N = 512, C = 43k, d = 50) a step of the loss is about 2x faster than the
    unchunked one.

    ``matmul_dtype`` (None: float32): e.g. ``torch.bfloat16``: the three catalogue-wide
    products (scores, gradient of ``hidden``, gradient of ``table``) take operands
    rounded to it and return it; the exponentials, sums and gradients stay float32 (the
    loss and gradients differ from float32's by the rounding: ~3 significant digits).
    About 3x the product rate on CPUs with AVX512-BF16 or AMX and on GPUs (STAMP on
    Diginetica: a step of this loss 93 -> ~35 ms, 2 threads).
    """
    if hidden.dim() != 2 or table.dim() != 2 or hidden.shape[1] != table.shape[1]:
        raise ValueError(
            f"hidden must be (N, d) and table (C, d), got {tuple(hidden.shape)} "
            f"and {tuple(table.shape)}"
        )
    if target.shape != (hidden.shape[0],):
        raise ValueError(f"target must have shape ({hidden.shape[0]},), got {tuple(target.shape)}")
    if bias is not None and bias.shape != (table.shape[0],):
        raise ValueError(f"bias must have shape ({table.shape[0]},), got {tuple(bias.shape)}")
    n = hidden.shape[0]
    if chunk <= 0:
        chunk = max(256, (1 << 19) // max(n, 1))
    if store is None:
        store = n * table.shape[0] <= STORE_SCORES
    if matmul_dtype == hidden.dtype:
        matmul_dtype = None
    return _ChunkedSoftmaxXent.apply(hidden, table, bias, target.long(), chunk, store, matmul_dtype)


def sampled_softmax(
    scores: Tensor,
    target: Tensor,
    log_q: Tensor,
    *,
    mask: Tensor | None = None,
    logq: float = 1.0,
) -> Tensor:
    """Sampled softmax with logQ correction: the cross-entropy of the target column
    after subtracting ``logq * log_q`` from every candidate's score, the positive's
    included (Bengio & Senecal 2008; Jean et al. 2015; Yi et al. RecSys 2019).

    ``log_q``: log-probability with which each candidate was sampled, (C,) for shared
    negatives or (N, C) per row. ``mask``: accidental hits (sampled negatives equal to
    the positive) to drop.
    """
    return softmax_cross_entropy(scores, target, mask=mask, log_q=log_q, logq=logq)


def bpr_max_target(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    gbce_t: float = 0.0,
    n_items: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    """BPR-max (Hidasi & Karatzoglou, CIKM 2018) with a target column:
    ``-log(sum_j s_j sigmoid(r_t - r_j) + eps) + bpreg * sum_j s_j r_j^2``, ``s`` the
    softmax over the row's negatives (eps = 1e-24)."""
    rows = _Rows(scores, target, mask)
    log_s = torch.log_softmax(scores.masked_fill(rows.excl, -math.inf), dim=1)  # (N, C)
    lse = torch.logsumexp(log_s + F.logsigmoid(rows.pos - scores), dim=1)  # (N,)
    per_row = -torch.logaddexp(lse, lse.new_tensor(_LOG_EPS))  # (N,)
    if bpreg != 0.0:
        per_row = per_row + bpreg * (log_s.exp() * scores.square()).sum(dim=1)
    return rows.mean(per_row)


def top1_max_target(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    gbce_t: float = 0.0,
    n_items: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    """TOP1-max: ``sum_j s_j (sigmoid(r_j - r_t) + sigmoid(r_j^2))``, s = softmax of the
    row's negatives."""
    rows = _Rows(scores, target, mask)
    s = torch.softmax(scores.masked_fill(rows.excl, -math.inf), dim=1)  # (N, C)
    term = torch.sigmoid(scores - rows.pos) + torch.sigmoid(scores.square())  # (N, C)
    return rows.mean((s * term).sum(dim=1))


def bpr_target(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    gbce_t: float = 0.0,
    n_items: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    """BPR (Rendle et al. UAI 2009): mean over the row's negatives of
    ``-log sigmoid(r_t - r_j)``."""
    rows = _Rows(scores, target, mask)
    return rows.mean(rows.neg_mean(F.softplus(scores - rows.pos)))


def top1_target(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    gbce_t: float = 0.0,
    n_items: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    """TOP1: mean over the row's negatives of ``sigmoid(r_j - r_t) + sigmoid(r_j^2)``."""
    rows = _Rows(scores, target, mask)
    terms = torch.sigmoid(scores - rows.pos) + torch.sigmoid(scores.square())  # (N, C)
    return rows.mean(rows.neg_mean(terms))


def gbce_beta(n_negatives: int, n_items: int, t: float) -> float:
    """gBCE's exponent ``beta = alpha * (t * (1 - 1/alpha) + 1/alpha)`` with the
    sampling rate ``alpha = n_negatives / (n_items - 1)`` (Petrov & Macdonald 2023).
    ``t = 0`` gives 1 (plain BCE); ``t = 1`` gives ``alpha``."""
    if n_items < 2:
        raise ValueError(f"gBCE needs n_items >= 2, got {n_items}")
    if not 0.0 <= t <= 1.0:
        raise ConfigError(f"gbce_t must be in [0, 1], got {t}")
    if not 0 < n_negatives <= n_items - 1:
        raise ValueError(f"gBCE needs 1 <= negatives <= n_items - 1, got {n_negatives}")
    alpha = n_negatives / (n_items - 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def bce(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    gbce_t: float = 0.0,
    n_items: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    """Binary cross-entropy: ``-log sigmoid(r_t) - sum_j log(1 - sigmoid(r_j))`` over the
    row's negatives (one negative: SASRec's loss, Kang & McAuley ICDM 2018)."""
    rows = _Rows(scores, target, mask)
    per_row = F.softplus(-rows.pos.squeeze(1)) + rows.neg_sum(F.softplus(scores))  # (N,)
    return rows.mean(per_row, needs_negative=False)


def gbce(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    gbce_t: float = 0.0,
    n_items: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    """Generalised BCE (gBCE) of gSASRec: Petrov & Macdonald, "gSASRec: Reducing
    Overconfidence in Sequential Recommendation Trained with Negative Sampling",
    RecSys 2023.

    ``-log(sigmoid(r_t) ** beta) - sum_j log(1 - sigmoid(r_j))`` with
    ``beta = alpha * (t * (1 - 1/alpha) + 1/alpha)``, ``alpha = k / (n_items - 1)`` the
    negative sampling rate, ``k = C - 1`` the negatives per row (:func:`gbce_beta`) and
    ``t = gbce_t`` in [0, 1] (0: BCE; 1: beta = alpha, fully calibrated). Raising the
    positive's probability to ``beta`` counters the overconfidence that training with
    few sampled negatives causes.
    """
    rows = _Rows(scores, target, mask)
    beta = gbce_beta(scores.shape[1] - 1, n_items, gbce_t)
    per_row = beta * F.softplus(-rows.pos.squeeze(1)) + rows.neg_sum(F.softplus(scores))
    return rows.mean(per_row, needs_negative=False)


def _gain(rank: Tensor) -> Tensor:
    """DCG gain of the one relevant item at 1-based ``rank``: ``1 / log2(1 + rank)``."""
    return 1.0 / torch.log2(1.0 + rank)


def _lambda_ranks(scores: Tensor, rows: _Rows) -> tuple[Tensor, Tensor]:
    """Detached 1-based ranks of the candidates in each row's current ranking.

    The row's candidates are its target and its negatives (masked columns take no
    place). Returns ``r_neg`` (N, C): the rank of each negative (other columns: 1,
    unused) and ``r_pos`` (N, 1): the target's. Ties are broken against the target
    (ranked after every negative scoring the same, the conservative policy of
    evaluation) and between negatives by column order, so every candidate has a
    distinct rank.
    """
    with torch.no_grad():
        s = scores.detach()  # (N, C)
        is_neg = ~rows.not_neg  # (N, C)
        order = torch.sort(s, dim=1, descending=True, stable=True).indices  # (N, C)
        # rank among the negatives: running count of negatives along the sorted row
        among = torch.cumsum(is_neg.gather(1, order).to(torch.int64), dim=1)  # (N, C)
        among = torch.empty_like(among).scatter_(1, order, among)  # back to columns
        pos = rows.pos.detach()  # (N, 1)
        r_neg = among + (pos > s).to(torch.int64)  # the target above it: one more
        r_pos = 1 + ((s >= pos) & is_neg).sum(dim=1, keepdim=True)  # (N, 1)
    return r_neg.clamp(min=1).to(s.dtype), r_pos.to(s.dtype)


def lambdarank_target(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    gbce_t: float = 0.0,
    n_items: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    """Listwise LambdaRank-style loss (Burges et al., "Learning to Rank with Nonsmooth
    Cost Functions", NIPS 2006): RankNet's pairwise logistic loss of every (target,
    negative) pair, weighted by how much NDCG swapping the pair would change.

    For a row with target ``t`` and negatives ``J`` (its unmasked columns but ``t``)::

        loss_row = 1/|J| * sum_{j in J} |dNDCG_j| * log(1 + exp(-(r_t - r_j)))
        |dNDCG_j| = |1 / log2(1 + rank_t) - 1 / log2(1 + rank_j)|

    ``rank`` is the 1-based position of a candidate when the row's candidates (``t`` and
    ``J``) are sorted by their current scores; ranks are computed without gradient, so
    the weights are constants of the step, as LambdaRank's lambdas are. With one
    relevant item the ideal DCG is 1 and NDCG = ``1 / log2(1 + rank_t)``; swapping ``t``
    with ``j`` moves it to ``1 / log2(1 + rank_j)``, hence the weight. Pairs between two
    negatives have equal relevance and weigh 0. Ties are broken against the target
    (it ranks after the negatives that score the same) and between negatives by column.

    Normalisation: the per-row sum is divided by the number of negatives ``|J|`` (the
    mean over the row's pairs, as :func:`bpr_target`), so the loss's scale does not grow
    with the number of sampled negatives; a row left without negatives contributes 0;
    the result is the mean over the kept rows. With ``negatives = "full"`` the
    candidates are the whole catalogue (a sort of the (N, n_items) scores per step).
    """
    rows = _Rows(scores, target, mask)
    r_neg, r_pos = _lambda_ranks(scores, rows)
    weight = (_gain(r_pos) - _gain(r_neg)).abs().masked_fill(rows.not_neg, 0.0)  # (N, C)
    terms = weight * F.softplus(scores - rows.pos)  # (N, C) = w * log(1 + exp(r_j - r_t))
    return rows.mean(rows.neg_mean(terms))


def _check_temperature(temperature: float) -> None:
    if not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")


def infonce_target(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Tensor | None = None,
    log_q: Tensor | None = None,
    logq: float = 0.0,
    bpreg: float = 1.0,
    gbce_t: float = 0.0,
    n_items: int = 0,
    temperature: float = 1.0,
) -> Tensor:
    """Contrastive InfoNCE (van den Oord et al. 2018) with temperature ``tau``:

        loss_row = -log( exp(r_t / tau) / sum_{c in {t} + J} exp(r_c / tau) )

    over the target ``t`` and the row's negatives ``J`` (masked columns ignored), i.e.
    the softmax cross-entropy of ``scores / tau`` (:func:`softmax_cross_entropy`; ``tau =
    1`` is exactly the cross-entropy). A small ``tau`` sharpens the softmax, so the
    hardest negatives dominate the gradient. With ``log_q`` given and ``logq > 0`` the
    logQ correction is subtracted after the division, ``r_c / tau - logq * log Q(c)``:
    it corrects the sampling of the candidates, whatever scale the logits have.
    """
    _check_temperature(temperature)
    return softmax_cross_entropy(scores / temperature, target, mask=mask, log_q=log_q, logq=logq)


TARGET_LOSSES: dict[str, TargetLossFn] = {
    "cross-entropy": softmax_cross_entropy,
    "bpr-max": bpr_max_target,
    "top1-max": top1_max_target,
    "bpr": bpr_target,
    "top1": top1_target,
    "bce": bce,
    "gbce": gbce,
    "lambdarank": lambdarank_target,
    "infonce": infonce_target,
}


def get_target_loss(name: str) -> TargetLossFn:
    """The target-column loss registered under ``name``; :class:`ConfigError` otherwise."""
    try:
        return TARGET_LOSSES[name]
    except KeyError:
        valid = ", ".join(TARGET_LOSSES)
        raise ConfigError(f"unknown loss {name!r}; valid losses: {valid}") from None


__all__ += [
    "TARGET_LOSSES",
    "TargetLossFn",
    "bce",
    "bpr_max_target",
    "bpr_target",
    "full_softmax_cross_entropy",
    "gbce",
    "gbce_beta",
    "get_target_loss",
    "infonce_target",
    "lambdarank_target",
    "pos_neg_scores",
    "sampled_softmax",
    "softmax_cross_entropy",
    "top1_max_target",
    "top1_target",
]
