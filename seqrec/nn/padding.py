"""The padded-sequence id convention shared by models and the training batches.

A padded batch is ``(B, T)`` int64, each row a history **right-aligned** (the most
recent item in column ``T - 1``), **left-truncated** to its last items and left-padded
with :data:`PAD`. Cloze models mark the positions to predict with :data:`MASK`. Both
are negative, so they never collide with dense item ids ``0..n_items-1``; a model that
embeds its inputs maps them to rows of its own table with :func:`embedding_ids`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["MASK", "PAD", "embedding_ids", "pad_histories"]

PAD = -1  # padding in inputs; "no target here" in targets
MASK = -2  # a masked input position (cloze training; appended at inference)


def pad_histories(
    histories: Sequence[Sequence[int] | np.ndarray], max_len: int, *, append_mask: bool = False
) -> np.ndarray:
    """(B, max_len) int64 inference batch: each history right-aligned, left-truncated to
    its most recent items, left-padded with PAD. ``append_mask``: a MASK follows every
    history (cloze models predict there; it takes one of the ``max_len`` columns)."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    out = np.full((len(histories), max_len), PAD, dtype=np.int64)
    keep = max_len - 1 if append_mask else max_len
    end = max_len - 1 if append_mask else max_len
    if append_mask:
        out[:, -1] = MASK
    for b, h in enumerate(histories):  # one row at a time: B is an inference batch
        arr = np.asarray(h, dtype=np.int64).reshape(-1)
        arr = arr[len(arr) - keep :] if keep < len(arr) else arr
        if len(arr):
            out[b, end - len(arr) : end] = arr
    return out


def embedding_ids(seqs: torch.Tensor, n_items: int) -> torch.Tensor:
    """Rows of an ``(n_items + 2)``-row embedding table: items keep their id, PAD maps
    to ``n_items``, MASK to ``n_items + 1``."""
    return torch.where(seqs >= 0, seqs, n_items - 1 - seqs)
