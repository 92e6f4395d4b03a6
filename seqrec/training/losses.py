"""Ranking losses for GRU4Rec-style training with in-batch and shared sampled negatives.

Every loss takes a logits matrix ``scores`` of shape (B, C) with C >= B: row ``i`` is
session slot ``i``; column ``j < B`` is the target item of slot ``j`` (the mini-batch's
own targets are the negatives of the other rows), columns ``B..C-1`` are extra shared
negatives. The positive of row ``i`` is column ``i`` (the diagonal); every other column
of the row is a negative unless ``mask[i, j]`` is True (e.g. a false negative whose item
equals the row's target). The diagonal is never masked. Each loss returns the mean over
the B rows of its per-row loss; a row left without any negative contributes 0.

All losses share one keyword-only signature so a trainer can call any of them as
``loss_fn(scores, log_q=..., logq=..., bpreg=..., mask=...)``; keywords a loss does not
use are ignored. Formulas follow Hidasi et al. (ICLR 2016) and Hidasi & Karatzoglou
(CIKM 2018).
"""

from __future__ import annotations

import math
from typing import Protocol

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
) -> Tensor:
    """TOP1: mean over the row's negatives of ``sigmoid(r_j - r_i) + sigmoid(r_j^2)``."""
    _check(scores, mask)
    excl, has_neg = _excluded(scores, mask)
    pos = scores.diagonal()[:, None]  # (B, 1)
    terms = torch.sigmoid(scores - pos) + torch.sigmoid(scores.square())  # (B, C)
    return _mean_over_negatives(terms, excl, has_neg)


LOSSES: dict[str, LossFn] = {
    "cross-entropy": cross_entropy,
    "bpr-max": bpr_max,
    "top1-max": top1_max,
    "bpr": bpr,
    "top1": top1,
}


def get_loss(name: str) -> LossFn:
    """The loss registered under ``name``; raises :class:`ConfigError` for unknown names."""
    try:
        return LOSSES[name]
    except KeyError:
        valid = ", ".join(LOSSES)
        raise ConfigError(f"unknown loss {name!r}; valid losses: {valid}") from None
