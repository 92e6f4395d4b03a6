"""Item pairs of a session log and sparse item-to-item matrices (numpy CSR), shared by
the models that score the next item from the last one (``markov``, ``sr``, ``ar``,
``itemknn``): pairs of positions are counted once, vectorised by gap, and a batch of
matrix rows is gathered into a dense block with one scatter, no loop per query.

:func:`popularity_fallback` is the one no-evidence policy of the neighbourhood and rule
models (``markov``, ``sr``, ``ar``, ``itemknn``, ``sknn``, ``v-sknn``, ``vmis-knn``):
a row the model has no evidence for scores the training popularity scaled into [0, 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqrec.data.sessions import SessionLog


def session_of_events(log: SessionLog) -> np.ndarray:
    """(n_events,) index of the session of every event."""
    return np.repeat(np.arange(log.n_sessions, dtype=np.int64), log.lengths)


def position_pairs(
    items: np.ndarray, sess: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of positions ``p < q`` of one session with ``q - p <= max_gap``:
    (items at p, items at q, q - p); ``sess`` is the (sorted) session of each item."""
    a, b, gaps = [], [], []
    for d in range(1, min(max_gap, len(items) - 1) + 1):
        same = sess[:-d] == sess[d:]
        if not same.any():
            break  # no session is longer than d
        a.append(items[:-d][same])
        b.append(items[d:][same])
        gaps.append(np.full(int(same.sum()), d, dtype=np.int64))
    if not a:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return (
        np.concatenate(a).astype(np.int64),
        np.concatenate(b).astype(np.int64),
        np.concatenate(gaps),
    )


def top_k_per_row(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ``k`` largest values of every row (ties: smaller column first)."""
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, rows, side="left")
    keep = (np.arange(len(rows)) - starts) < k
    return rows[keep], cols[keep], vals[keep]


def last_items(histories: Sequence[Sequence[int]] | Sequence[np.ndarray], n: int) -> np.ndarray:
    """(B,) last item of each history; -1 for an empty history or an unknown item."""
    last = np.full(len(histories), -1, dtype=np.int64)
    for i, h in enumerate(histories):
        if len(h):
            v = int(h[-1])
            last[i] = v if 0 <= v < n else -1
    return last


def popularity_fallback(scores: np.ndarray, support: Any) -> np.ndarray:
    """Replace, in place, every all-zero row of ``scores`` (B, n) by the popularity
    ``support / (max(support) + 1)`` (in [0, 1), so a fallback row never outranks a
    score of 1) and return ``scores``.

    An all-zero row is a query the model has no evidence for: an empty history, one of
    unknown items only, or known items without any rule / neighbour. Without a fallback
    every item would tie and the user would get no ranking at all. ``support`` (n,)
    is the training event count per item (an array or a CPU tensor); ``None`` (a model
    file saved without it) leaves the rows at zero.
    """
    if scores.size == 0 or support is None:
        return scores
    empty = ~np.any(scores != 0, axis=1)
    if empty.any():
        support = np.asarray(support, dtype=np.float64)
        top = float(support.max()) if len(support) else 0.0
        scores[empty] = (support / (top + 1.0)).astype(scores.dtype, copy=False)
    return scores


def index_meta(arrays: dict[str, np.ndarray], seconds: float) -> dict[str, float]:
    """What a model records in its ``meta_`` about its index: the size of its arrays in
    MiB (``index_mib``) and the seconds it took to build (``index_build_seconds``)."""
    nbytes = sum(int(a.nbytes) for a in arrays.values())
    return {"index_mib": round(nbytes / 2**20, 3), "index_build_seconds": round(seconds, 3)}


@dataclass(frozen=True)
class ItemMatrix:
    """An (n, n) float32 matrix in CSR arrays: row i holds the scores after item i."""

    indptr: np.ndarray  # (n + 1,) int64
    indices: np.ndarray  # (nnz,) int64 columns
    values: np.ndarray  # (nnz,) float32

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int) -> ItemMatrix:
        """Sum duplicate (row, col) entries (in float64, stored as float32)."""
        keys = rows.astype(np.int64) * n + cols.astype(np.int64)
        uniq, inv = np.unique(keys, return_inverse=True)
        summed = np.bincount(inv, weights=vals, minlength=len(uniq))
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(uniq // n, minlength=n), out=indptr[1:])
        return cls(indptr, uniq % n, summed.astype(np.float32))

    @classmethod
    def checked(
        cls, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, n: int
    ) -> ItemMatrix:
        """Validate loaded arrays (ValueError naming what is wrong)."""
        indptr, indices = np.asarray(indptr, np.int64), np.asarray(indices, np.int64)
        values = np.asarray(values, np.float32)
        if indptr.shape != (n + 1,) or indices.shape != values.shape or indices.ndim != 1:
            raise ValueError(f"CSR arrays do not match {n} items")
        if indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
            raise ValueError("indptr is not a valid CSR row pointer")
        if len(indices) and (indices.min() < 0 or indices.max() >= n):
            raise ValueError("a column index is out of range")
        return cls(indptr, indices, values)

    ARRAYS = ("indptr", "indices", "values")  # names of the saved arrays

    def arrays(self) -> dict[str, np.ndarray]:
        """The CSR arrays by name, for saving (``from_arrays`` reads them back)."""
        return {"indptr": self.indptr, "indices": self.indices, "values": self.values}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n: int) -> ItemMatrix:
        """:meth:`checked` of the arrays saved by :meth:`arrays` (KeyError if one is missing)."""
        return cls.checked(*(arrays[k] for k in cls.ARRAYS), n=n)

    def row_ids(self) -> np.ndarray:
        """(nnz,) row of every stored entry."""
        return np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self.indptr))

    def last_item_scores(self, histories: Sequence[Any], support: Any) -> np.ndarray:
        """(B, n) float32 scores of the rule and item-kNN models: the row of each
        history's last item, :func:`popularity_fallback` where that row is all zeros."""
        return popularity_fallback(self.dense_rows(last_items(histories, self.n)), support)

    def dense_rows(self, rows: np.ndarray) -> np.ndarray:
        """Dense float32 ``(len(rows), n)`` copy of the given rows; a row -1 is zeros."""
        out = np.zeros((len(rows), self.n), dtype=np.float32)
        ok = np.flatnonzero(rows >= 0)
        if len(ok) == 0:
            return out
        starts, ends = self.indptr[rows[ok]], self.indptr[rows[ok] + 1]
        counts = ends - starts
        total = int(counts.sum())
        # the position in indices/values of every entry of every requested row
        src = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(total)
        out[np.repeat(ok, counts), self.indices[src]] = self.values[src]
        return out
