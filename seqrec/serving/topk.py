"""Top-K of a batch of scoring jobs, with each job's own filters.

Each job (:class:`~seqrec.serving.loaded_model.ScoreJob`) carries ``k``, its filters
(``exclude`` its ``history``, ``allow``, ``deny``, all dense ids) and receives its
answer in ``ids`` / ``values`` (best first; fewer than ``k`` when the filters or the
catalogue leave fewer candidates).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from seqrec.serving.ann import InnerProductIndex
    from seqrec.serving.loaded_model import ScoreJob


def _mask_row(row: torch.Tensor, job: ScoreJob) -> None:
    """In place: -inf for the job's history (if excluded), denied and not allowed items.
    (models.base.mask_scores does this for a whole batch with one filter; per row it
    measured 1.8x slower for exclude + deny and 3.6x for an allow-list at 43k items.)"""
    neg = -torch.inf
    if job.exclude and len(job.history):
        row[torch.as_tensor(job.history.astype(np.int64), device=row.device)] = neg
    if job.deny is not None and len(job.deny):
        row[torch.as_tensor(job.deny, device=row.device)] = neg
    if job.allow is not None:
        keep = torch.as_tensor(job.allow, device=row.device)
        kept = row[keep].clone()
        row.fill_(neg)
        row[keep] = kept


def exact_top_k(jobs: Sequence[ScoreJob], scores: torch.Tensor) -> None:
    """Apply each row's filters to ``scores`` (B, n_items), then one batched top-k."""
    if any(j.exclude or j.allow is not None or j.deny is not None for j in jobs):
        scores = scores.float().clone()  # the model's tensor may be shared (pop)
        for r, j in enumerate(jobs):
            _mask_row(scores[r], j)
    k_max = min(max(j.k for j in jobs), scores.shape[1])
    vals, idx = torch.topk(scores, k_max, dim=1)
    vals_np = vals.float().cpu().numpy()
    idx_np = idx.cpu().numpy()
    for r, j in enumerate(jobs):
        v = vals_np[r, : j.k]
        ok = np.isfinite(v)
        j.values = v[ok]
        j.ids = idx_np[r, : j.k][ok]


def _banned(job: ScoreJob) -> set[int]:
    banned: set[int] = set()
    if job.exclude:
        banned.update(int(x) for x in job.history)
    if job.deny is not None:
        banned.update(int(x) for x in job.deny)
    return banned


def ann_top_k(
    index: InnerProductIndex,
    table: tuple[torch.Tensor, torch.Tensor],
    jobs: Sequence[ScoreJob],
    queries: torch.Tensor,
) -> None:
    """Approximate top-k of ``queries`` (B, H) from ``index`` over the item ``table``
    ``(W, b)``; an allow-list is scored exactly (it is small); excluded and denied
    items are dropped from enough extra candidates."""
    w, b = table
    q = queries.float()
    plain = []
    for r, j in enumerate(jobs):
        if j.allow is None:
            plain.append(r)
            continue
        keep = torch.as_tensor(j.allow, dtype=torch.long)
        scores = torch.addmm(b[keep].unsqueeze(0), q[r : r + 1], w[keep].t())[0]
        banned = _banned(j)
        order = torch.argsort(scores, descending=True).numpy()
        ids = keep.numpy()[order]
        vals = scores.numpy()[order]
        ok = np.fromiter((int(i) not in banned for i in ids), bool, len(ids))
        j.ids, j.values = ids[ok][: j.k], vals[ok][: j.k]
    if not plain:
        return
    banned_sets = [_banned(jobs[r]) for r in plain]
    k_max = max(jobs[r].k + len(bs) for r, bs in zip(plain, banned_sets, strict=True))
    vals, ids = index.search(q[plain].cpu().numpy(), k_max)
    for row, (r, banned) in enumerate(zip(plain, banned_sets, strict=True)):
        j = jobs[r]
        ok = np.isfinite(vals[row]) & (ids[row] >= 0)
        if banned:
            ok &= np.fromiter((int(i) not in banned for i in ids[row]), bool, len(ids[row]))
        j.ids, j.values = ids[row][ok][: j.k], vals[row][ok][: j.k]
