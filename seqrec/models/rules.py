"""Rule models of Ludewig & Jannach (UMUAI 2018): first-order ``markov``, sequential
rules ``sr`` and association rules ``ar``; all score the next item from the last one.

Each model is an item-to-item matrix ``R`` (rows: the last item, columns: the next)
built once from pairs of positions in the training sessions and kept as CSR arrays
(``indptr``, ``indices``, ``values``); a batch is scored by gathering the rows of its
last items into a dense ``(B, n_items)`` tensor with one scatter. An empty history, or
one whose last item is unknown (-1) or has no rules, scores all zeros (no popularity
fallback: the model says it knows nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from seqrec.data.idmap import ItemIndex
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import Histories, Recommender

Weighting = Literal["div", "same", "linear", "quadratic", "log"]


# ---------------------------------------------------------------- shared helpers
def session_of_events(log: SessionLog) -> np.ndarray:
    """(n_events,) index of the session of every event."""
    return np.repeat(np.arange(log.n_sessions, dtype=np.int64), log.lengths)


def gap_weight(d: np.ndarray | int, steps: int, how: str) -> np.ndarray:
    """Weight of a rule between positions ``d`` >= 1 apart (``d`` <= ``steps``)."""
    d = np.asarray(d, dtype=np.float64)
    if how == "div":
        return 1.0 / d
    if how == "same":
        return np.ones_like(d)
    if how == "linear":
        return 1.0 - (d - 1.0) / steps
    if how == "quadratic":
        return 1.0 / (d * d)
    if how == "log":
        return 1.0 / np.log2(d + 1.0)
    raise ConfigError(f"unknown weighting {how!r}")


def position_pairs(
    items: np.ndarray, sess: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of positions ``p < q`` of one session with ``q - p <= max_gap``:
    (items at p, items at q, q - p), vectorised by gap."""
    a, b, gaps = [], [], []
    n = len(items)
    for d in range(1, min(max_gap, n - 1) + 1):
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


def to_csr(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum duplicate (row, col) entries into CSR arrays of an (n, n) matrix."""
    keys = rows.astype(np.int64) * n + cols.astype(np.int64)
    uniq, inv = np.unique(keys, return_inverse=True)
    summed = np.bincount(inv, weights=vals, minlength=len(uniq))
    r = uniq // n
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return indptr, (uniq % n).astype(np.int64), summed


def csr_rows_dense(
    indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, rows: np.ndarray, n: int
) -> torch.Tensor:
    """Dense ``(len(rows), n)`` copy of the given CSR rows; a row -1 is all zeros."""
    out = torch.zeros(len(rows), n, dtype=torch.float32)
    ok = np.flatnonzero(rows >= 0)
    if len(ok) == 0:
        return out
    ptr = indptr.numpy()
    starts, ends = ptr[rows[ok]], ptr[rows[ok] + 1]
    counts = ends - starts
    total = int(counts.sum())
    if total == 0:
        return out
    # positions into indices/values of every entry of every requested row, no loop
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    src = torch.as_tensor(np.repeat(starts, counts) + within)
    dst_row = torch.as_tensor(np.repeat(ok, counts))
    out.index_put_((dst_row, indices[src]), values[src], accumulate=True)
    return out


def last_items(histories: Histories, n_items: int) -> np.ndarray:
    """(B,) last item of each history; -1 for an empty history or an unknown item."""
    last = np.full(len(histories), -1, dtype=np.int64)
    for i, h in enumerate(histories):
        if len(h):
            v = int(h[-1])
            last[i] = v if 0 <= v < n_items else -1
    return last


class CSRItemModel(Recommender):
    """Base of the item-to-item models: CSR matrix ``R``; scores = row of the last item."""

    small_config: ClassVar[dict[str, Any]] = {}

    def build(self, train: SessionLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def fit(
        self,
        train: SessionLog,
        valid: SessionLog | Samples | None = None,
        *,
        item_index: ItemIndex | None = None,
    ) -> CSRItemModel:
        self.begin_fit(train, item_index)
        indptr, indices, values = self.build(train)
        self._store(indptr, indices, values)
        return self

    def _store(self, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> None:
        self.indptr_ = torch.as_tensor(np.asarray(indptr, dtype=np.int64))
        self.indices_ = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        self.values_ = torch.as_tensor(np.asarray(values, dtype=np.float32))

    def score(self, histories: Histories) -> torch.Tensor:
        self._check_fitted()
        rows = last_items(histories, self.n_items_)
        return csr_rows_dense(self.indptr_, self.indices_, self.values_, rows, self.n_items_)

    def _weights(self) -> dict[str, torch.Tensor]:
        return {"indptr": self.indptr_, "indices": self.indices_, "values": self.values_}

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        indptr, indices, values = weights["indptr"], weights["indices"], weights["values"]
        n = self.n_items_
        if tuple(indptr.shape) != (n + 1,) or indices.shape != values.shape:
            raise ValueError(f"{self.name}: CSR arrays do not match {n} items")
        ptr = indptr.long()
        if ptr[0] != 0 or ptr[-1] != len(indices) or bool((ptr[1:] < ptr[:-1]).any()):
            raise ValueError(f"{self.name}: indptr is not a valid CSR row pointer")
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n):
            raise ValueError(f"{self.name}: item index out of range")
        self._store(ptr.numpy(), indices.long().numpy(), values.float().numpy())


# ---------------------------------------------------------------- the models
@dataclass(frozen=True)
class MarkovConfig:
    # "probability": P(next = j | last = i) = count(i -> j) / count(i -> anything);
    # "count": the raw transition counts (same ranking, unnormalised scores)
    normalise: Literal["probability", "count"] = "probability"


class Markov(CSRItemModel):
    """First-order Markov chain: transitions between consecutive clicks."""

    name = "markov"
    Config = MarkovConfig

    def build(self, train: SessionLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b, _ = position_pairs(train.items, session_of_events(train), 1)
        vals = np.ones(len(a), dtype=np.float64)
        if self.config.normalise == "probability":
            out = np.bincount(a, minlength=self.n_items_).astype(np.float64)
            vals = vals / out[a]
        return to_csr(a, b, vals, self.n_items_)


@dataclass(frozen=True)
class SRConfig:
    steps: int = 10  # rules between positions at most `steps` apart
    weighting: Weighting = "div"  # weight of a rule by its gap d: div = 1/d (the paper)
    # divide the rules of item i by the number of rules it could take part in: the sum
    # over its occurrences of (session length - 1), as in the paper's score formulas
    normalise: bool = True

    def validate(self) -> None:
        if self.steps < 1:
            raise ConfigError("sr: steps must be >= 1")


def _rule_normaliser(train: SessionLog, n_items: int) -> np.ndarray:
    """Per item: sum over its occurrences of (length of its session - 1)."""
    per_event = np.repeat(train.lengths - 1, train.lengths).astype(np.float64)
    return np.bincount(train.items, weights=per_event, minlength=n_items)


class SR(CSRItemModel):
    """Sequential rules: a -> b when b follows a within ``steps`` clicks, weighted by
    the gap; scores are the rules of the last item."""

    name = "sr"
    Config = SRConfig
    small_config: ClassVar[dict[str, Any]] = {"steps": 3}

    def build(self, train: SessionLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg = self.config
        a, b, d = position_pairs(train.items, session_of_events(train), cfg.steps)
        vals = gap_weight(d, cfg.steps, cfg.weighting)
        if cfg.normalise:
            vals = vals / _rule_normaliser(train, self.n_items_)[a]
        return to_csr(a, b, vals, self.n_items_)


@dataclass(frozen=True)
class ARConfig:
    normalise: bool = True  # as SR: divide by the rules item i could take part in


class AR(CSRItemModel):
    """Association rules: a <-> b for every two positions of the same session, in
    either order; scores are the rules of the last item."""

    name = "ar"
    Config = ARConfig

    def build(self, train: SessionLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        longest = int(train.lengths.max())
        a, b, _ = position_pairs(train.items, session_of_events(train), longest)
        rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
        vals = np.ones(len(rows), dtype=np.float64)
        if self.config.normalise:
            vals = vals / _rule_normaliser(train, self.n_items_)[rows]
        return to_csr(rows, cols, vals, self.n_items_)
