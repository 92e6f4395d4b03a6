"""Session-based nearest neighbours: ``sknn``, ``v-sknn`` and ``vmis-knn``.

One shared index, built once in ``fit`` as flat (CSR) numpy arrays:

* sessions are renumbered by recency (their last timestamp, or their order in the log
  when the log has no times; ties keep log order), so a larger session id is a more
  recent session;
* ``session -> items``: the distinct items of every training session (CSR);
* ``item -> sessions``: for every item the ids of the most recent sessions containing
  it, most recent first, at most ``cap`` of them (``sample_size`` for SKNN / V-SKNN,
  ``m`` for VMIS-kNN);
* ``idf``: ``log(n_sessions / df(i))`` with ``df(i)`` the number of training sessions
  containing item ``i`` (0 for an item no session contains).

Per query the work is bounded by the capped posting lists: candidates are the
``sample_size`` most recent sessions among the lists of the query's items, their overlap
with the query is summed from those same lists, the ``k`` most similar are kept (ties:
the more recent first) and every item of a neighbour gets the neighbour's similarity.

For SKNN and V-SKNN capping the lists at ``sample_size`` loses nothing: a session among
the ``sample_size`` most recent sessions sharing any item with the query is also among
the ``sample_size`` most recent sessions containing each item it shares, so the
candidates and their overlaps are those of the uncapped lists. VMIS-kNN caps at ``m``
(Kersbergen et al. 2022), which bounds the work whatever ``sample_size`` is and equals
V-SKNN when ``m >= sample_size``.

Histories: unknown items (-1) are dropped before anything else (V-SKNN's positions
count the known items only). A history with no neighbour (empty, only unknown items, or
known items that occur in no training session) has no evidence: its row is the training
popularity scaled into [0, 1) (``count / (max count + 1)``,
``seqrec.data.pairs.popularity_fallback``), so it still ranks the catalogue, as in the
rule models and item-kNN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from seqrec.data.idmap import ItemIndex
from seqrec.data.pairs import popularity_fallback
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import Histories, Recommender

Weighting = Literal["linear", "log", "quadratic", "harmonic"]

_INDEX_KEYS = ("sess_offsets", "sess_items", "item_offsets", "item_sessions", "idf")


def _check_positive(cfg: Any, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")


@dataclass(frozen=True)
class SKNNConfig:
    k: int = 100  # neighbours kept per query
    sample_size: int = 500  # most recent sessions sharing an item considered per query

    def validate(self) -> None:
        _check_positive(self, "k", "sample_size")


@dataclass(frozen=True)
class VSKNNConfig:
    k: int = 100
    sample_size: int = 500
    weighting: Weighting = "linear"  # position decay of the current session's items
    idf_weighting: bool = False  # multiply each scored item's score by its idf

    def validate(self) -> None:
        _check_positive(self, "k", "sample_size")


@dataclass(frozen=True)
class VMISConfig:
    k: int = 100
    sample_size: int = 500
    m: int = 500  # most recent sessions kept per item in the index
    weighting: Weighting = "linear"
    idf_weighting: bool = False

    def validate(self) -> None:
        _check_positive(self, "k", "sample_size", "m")


def position_weights(n: int, weighting: str) -> np.ndarray:
    """Decay weights of positions ``p = 1..n`` of a session of length ``n`` (the last
    item, ``p = n``, weighs 1). With ``d = n - p`` the steps back from the last item:

    * linear:    ``p / n``
    * quadratic: ``(p / n) ** 2``
    * log:       ``1 / log2(d + 2)``  (1, 0.631, 0.5, 0.431, ...)
    * harmonic:  ``1 / (d + 1)``      (1, 1/2, 1/3, ...)
    """
    p = np.arange(1, n + 1, dtype=np.float64)
    return _decay(p, np.full(n, float(n)), weighting)


def _decay(p: np.ndarray, n: np.ndarray, weighting: str) -> np.ndarray:
    """:func:`position_weights` of positions ``p`` in sessions of lengths ``n`` (arrays)."""
    d = n - p
    if weighting == "linear":
        return p / n
    if weighting == "quadratic":
        return (p / n) ** 2
    if weighting == "log":
        return 1.0 / np.log2(d + 2.0)
    if weighting == "harmonic":
        return 1.0 / (d + 1.0)
    raise ConfigError(f"unknown weighting {weighting!r}")


def _gather(
    offsets: np.ndarray, values: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The concatenated CSR rows ``rows`` of (offsets, values) and each value's row position."""
    starts = offsets[rows]
    lens = offsets[rows + 1] - starts
    total = int(lens.sum())
    which = np.repeat(np.arange(len(rows)), lens)
    within = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    return values[np.repeat(starts, lens) + within], which


def build_index(train: SessionLog, n_items: int, cap: int) -> dict[str, np.ndarray]:
    """The shared index arrays (see the module docstring)."""
    lengths = train.lengths
    keep = np.flatnonzero(lengths > 0)
    if train.times is not None:
        last_time = train.times[train.offsets[1:][keep] - 1]
        order = keep[np.argsort(last_time, kind="stable")]
    else:
        order = keep
    n_sess = len(order)
    new_id = np.empty(train.n_sessions, dtype=np.int64)
    new_id[order] = np.arange(n_sess)
    event_sess = new_id[np.repeat(np.arange(train.n_sessions), lengths)]
    pairs = np.unique(event_sess * n_items + train.items.astype(np.int64))  # by session, item
    sess = pairs // n_items
    items = pairs % n_items
    sess_offsets = np.zeros(n_sess + 1, dtype=np.int64)
    np.cumsum(np.bincount(sess, minlength=n_sess), out=sess_offsets[1:])
    # item -> sessions, most recent (largest id) first, capped
    by_item = np.lexsort((-sess, items))
    it, se = items[by_item], sess[by_item]
    df = np.bincount(it, minlength=n_items)
    starts = np.concatenate(([0], np.cumsum(df)[:-1]))
    rank = np.arange(len(it)) - np.repeat(starts, df)
    kept = rank < cap
    item_offsets = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.minimum(df, cap), out=item_offsets[1:])
    idf = np.zeros(n_items, dtype=np.float64)
    seen = df > 0
    idf[seen] = np.log(n_sess / df[seen])
    return {
        "sess_offsets": sess_offsets,
        "sess_items": items.astype(np.int64),
        "item_offsets": item_offsets,
        "item_sessions": se[kept].astype(np.int64),
        "idf": idf,
    }


class _SessionKNN(Recommender):
    """The shared index, persistence and the per-query neighbour search."""

    name = "session-knn-base"
    Config = SKNNConfig
    small_config: ClassVar[dict[str, Any]] = {"k": 5, "sample_size": 20}

    def _cap(self) -> int:
        return int(self.config.sample_size)

    def fit(
        self,
        train: SessionLog,
        valid: SessionLog | Samples | None = None,
        *,
        item_index: ItemIndex | None = None,
    ) -> _SessionKNN:
        self.begin_fit(train, item_index)
        self._set_index(build_index(train, self.n_items_, self._cap()))
        return self

    def _set_index(self, index: dict[str, np.ndarray]) -> None:
        self.index_ = index
        self.sess_len_ = np.diff(index["sess_offsets"]).astype(np.float64)

    # ------------------------------------------------------------- queries
    def _positions_weight(self, pos: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Weight of the known item at 1-based position ``pos`` of ``n`` (1 for SKNN)."""
        return np.ones(len(pos))

    def _similarity(self, overlap: np.ndarray, cand: np.ndarray, n_query: np.ndarray) -> np.ndarray:
        return overlap

    def _item_factor(self) -> np.ndarray | None:
        return None

    def _query_pairs(self, histories: Histories) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct (row, item) pairs of the known items of a batch and their weights
        (a repeated item keeps its largest, i.e. most recent, position weight)."""
        hs = [np.asarray(h, dtype=np.int64).reshape(-1) for h in histories]
        lens = np.array([len(h) for h in hs], dtype=np.int64)
        flat = np.concatenate(hs) if hs else np.zeros(0, dtype=np.int64)
        rows = np.repeat(np.arange(len(hs)), lens)
        known = flat >= 0
        rows, flat = rows[known], flat[known]
        n_known = np.bincount(rows, minlength=len(hs))
        first = np.cumsum(n_known) - n_known
        pos = np.arange(len(flat)) - first[rows] + 1.0
        pw = self._positions_weight(pos, n_known[rows].astype(np.float64))
        keys, inv = np.unique(rows * self.n_items_ + flat, return_inverse=True)
        w = np.zeros(len(keys))
        np.maximum.at(w, inv, pw)
        return keys // self.n_items_, keys % self.n_items_, w

    def _neighbours_batch(
        self, histories: Histories
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, session id, similarity) of every query's neighbours, by row, then most
        similar first (ties: more recent first). Session ids are recency ranks."""
        ix = self.index_
        rows, q, w = self._query_pairs(histories)
        ids, which = _gather(ix["item_offsets"], ix["item_sessions"], q)
        n_sess = len(ix["sess_offsets"]) - 1
        keys, inv = np.unique(rows[which] * n_sess + ids, return_inverse=True)
        overlap = np.bincount(inv, weights=w[which], minlength=len(keys))
        r, cand = keys // n_sess, keys % n_sess
        # the sample_size most recent candidates of each row (keys sorted by row, session)
        per_row = np.bincount(r, minlength=len(histories))
        last = np.cumsum(per_row) - 1
        recent = last[r] - np.arange(len(r)) < self.config.sample_size
        r, cand, overlap = r[recent], cand[recent], overlap[recent]
        n_query = np.bincount(rows, minlength=len(histories)).astype(np.float64)
        sim = self._similarity(overlap, cand, n_query[r])
        order = np.lexsort((-cand, -sim, r))
        r, cand, sim = r[order], cand[order], sim[order]
        counts = np.bincount(r, minlength=len(histories))
        rank = np.arange(len(r)) - (np.cumsum(counts) - counts)[r]
        top = rank < self.config.k
        return r[top], cand[top], sim[top]

    def neighbours(self, history: Any) -> tuple[np.ndarray, np.ndarray]:
        """Ids (recency-ordered session ids of the index) and similarities of the
        neighbours of one history, most similar first (ties: more recent first)."""
        _, cand, sim = self._neighbours_batch([history])
        return cand, sim

    def score(self, histories: Histories) -> torch.Tensor:
        """One vectorised pass over the batch: no Python loop over queries or items."""
        self._check_fitted()
        b, n = len(histories), self.n_items_
        ix = self.index_
        r, nb, sim = self._neighbours_batch(histories)
        items, which = _gather(ix["sess_offsets"], ix["sess_items"], nb)
        flat = np.bincount(r[which] * n + items, weights=sim[which], minlength=b * n)
        out = flat.astype(np.float64, copy=False).reshape(b, n)  # int64 when no neighbour
        factor = self._item_factor()
        if factor is not None:
            out *= factor
        out = out.astype(np.float32)
        return torch.from_numpy(popularity_fallback(out, self.item_support_))

    # --------------------------------------------------------- persistence
    def _weights(self) -> dict[str, torch.Tensor]:
        ix = self.index_
        return {key: torch.from_numpy(np.ascontiguousarray(ix[key])) for key in _INDEX_KEYS}

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        missing = [k for k in _INDEX_KEYS if k not in weights]
        if missing:
            raise ValueError(f"missing index arrays: {', '.join(missing)}")
        index = {k: weights[k].numpy() for k in _INDEX_KEYS}
        n = self.n_items_
        if index["item_offsets"].shape != (n + 1,) or index["idf"].shape != (n,):
            raise ValueError(f"index arrays do not match a catalogue of {n} items")
        so, io = index["sess_offsets"], index["item_offsets"]
        if so[-1] != len(index["sess_items"]) or io[-1] != len(index["item_sessions"]):
            raise ValueError("index offsets do not match their value arrays")
        self._set_index(index)


class SKNN(_SessionKNN):
    """SKNN (Jannach & Ludewig 2017): neighbour sessions by cosine over item sets.

    ``sim(s, n) = |s & n| / sqrt(|s| * |n|)`` over binary item sets;
    ``score(i) = sum of sim(s, n)`` over the ``k`` neighbours ``n`` containing ``i``."""

    name = "sknn"
    Config = SKNNConfig

    def _similarity(self, overlap: np.ndarray, cand: np.ndarray, n_query: np.ndarray) -> np.ndarray:
        return overlap / np.sqrt(n_query * self.sess_len_[cand])


class VSKNN(_SessionKNN):
    """V-SKNN (Ludewig & Jannach 2018): SKNN with position-decayed session items.

    The current session's items are weighted by position (:func:`position_weights`;
    a repeated item keeps its most recent weight);
    ``sim(s, n) = sum of w(i)`` over the items ``i`` of ``s`` in ``n`` (a weighted dot
    product with the binary neighbour vector); ``score(i) = sum of sim(s, n)`` over the
    ``k`` neighbours containing ``i``, times ``idf(i)`` with ``idf_weighting``."""

    name = "v-sknn"
    Config = VSKNNConfig
    small_config: ClassVar[dict[str, Any]] = {"k": 5, "sample_size": 20, "idf_weighting": True}

    def _positions_weight(self, pos: np.ndarray, n: np.ndarray) -> np.ndarray:
        return _decay(pos, n, self.config.weighting)

    def _item_factor(self) -> np.ndarray | None:
        return self.index_["idf"] if self.config.idf_weighting else None


class VMISKNN(VSKNN):
    """VMIS-kNN (Kersbergen et al. 2022): V-SKNN from the m most recent sessions per item.

    The index keeps only the ``m`` most recent sessions per item, so a query reads at
    most ``m`` sessions per item of the current session."""

    name = "vmis-knn"
    Config = VMISConfig
    small_config: ClassVar[dict[str, Any]] = {"k": 5, "sample_size": 20, "m": 10}

    def _cap(self) -> int:
        return int(self.config.m)
