"""STAN (Garg et al., SIGIR 2019): Sequence and Time Aware Neighbourhood.

SKNN's neighbourhood with three exponential decays. Current session ``s`` (its known
items, unknown ``-1`` dropped first), ``l(s)`` its length (known events, repeats
counted), ``p(i, s)`` the 1-based position of item ``i`` in ``s`` (the most recent
item has ``p = l(s)``; a repeated item keeps its most recent position):

1. item recency in ``s``: ``w1(i) = exp((p(i, s) - l(s)) / lambda_1)``;
   ``sim1(s, n) = sum of w1(i) over the items i of s in n / sqrt(l(s) * l(n))``, ``n``
   a binary vector over its distinct items. ``l(x)`` is the paper's length of a session,
   its number of events (repeats counted) for ``s`` and ``n`` alike; for sessions without
   repeated items this is the cosine of the two vectors. ``l(s)`` is a per-query
   constant, so it changes no neighbour and no ranking.
2. neighbour recency: ``w2(n) = exp(-(t(s) - t(n)) / lambda_2)``, ``t`` the time of a
   session's last event; ``sim2 = sim1 * w2``. Candidates are the ``sample_size`` most
   recent training sessions sharing an item with ``s``; the ``k`` with the largest
   ``sim2`` are the neighbours (ties: the more recent first), as in SKNN.
3. position in the neighbour: ``w3(i | s, n) = exp(-|p(i, n) - p(r, n)| / lambda_3)``,
   ``r`` the most recent item of ``s`` that occurs in ``n``, positions in ``n``'s event
   sequence; an item repeated inside ``n`` takes its most recent position (the same
   convention as factor 1), for ``i`` and ``r`` alike.

``score(i | s) = sum over the neighbours n containing i of sim2(s, n) * w3(i | s, n)``.
The sum runs over every item of the neighbours, items of ``s`` included (``r`` itself
gets ``w3 = 1``); ``recommend(..., exclude_history=True)`` drops them when a use case
wants only new items.

Time. A history carries no time, and ``t(s)`` only scales a query: with ``t_q`` the
query's real time and any reference ``t_ref``::

    exp(-(t_q - t(n)) / lambda_2) = exp(-(t_q - t_ref) / lambda_2) * exp(-(t_ref - t(n)) / lambda_2)

and the first factor is common to every neighbour of the query. Multiplying all
``sim2`` of a query by one positive constant keeps their order (the same top ``k``,
the same ties) and multiplies every score of the query by it: the ranking is
unchanged. STAN stands in the most recent candidate of the query for ``t(s)``
(``t_ref``: that candidate has ``w2 = 1``), which is the literal ``t(s) = T`` (the
last training time) up to that factor and never underflows to all-zero weights. When
the log has no times (e.g. the SR-GNN files) ``t(n)`` is the session's recency rank in
the log (0, 1, 2, ...), and ``lambda_2`` is counted in sessions instead of seconds.

The switches ``item_recency``, ``session_recency`` and ``neighbour_position`` turn a
factor off (its weights become 1: the paper's ablation).

No evidence -> popularity (docs/DESIGN.md, the policy of every rule and kNN model): a
history with no known item (empty, or only unknown items) or with known items but no
neighbour scores the training popularity scaled into [0, 1) (``count / (max count + 1)``,
``seqrec.data.pairs.popularity_fallback``).

Index (``seqrec.data.session_index``): sessions renumbered by recency, ``session ->
(distinct item, its last position)`` and ``item -> (the sample_size most recent
sessions, the item's last position there)``, plus every session's length and time.
A batch is scored in one vectorised numpy pass: no Python loop per query or per item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from seqrec.data.idmap import ItemIndex
from seqrec.data.pairs import popularity_fallback
from seqrec.data.samples import Samples
from seqrec.data.session_index import build_index, gather, index_arrays, index_tensors
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import Histories, Recommender

_INDEX_KEYS = (
    "sess_offsets",
    "sess_items",
    "sess_pos",
    "sess_events",
    "sess_time",
    "item_offsets",
    "item_sessions",
    "item_pos",
)


@dataclass(frozen=True)
class STANConfig:
    k: int = 100  # neighbours kept per query
    sample_size: int = 1000  # most recent sessions sharing an item considered per query
    lambda_1: float = 2.0  # item recency in the session (positions)
    lambda_2: float = 1e5  # neighbour recency (seconds; sessions when the log has no times)
    lambda_3: float = 2.0  # distance to r in the neighbour (positions)
    item_recency: bool = True  # factor 1 (w1); False: every item of s weighs 1
    session_recency: bool = True  # factor 2 (w2); False: sim2 = sim1
    neighbour_position: bool = True  # factor 3 (w3); False: w3 = 1

    def validate(self) -> None:
        for name in ("k", "sample_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lambda_1", "lambda_2", "lambda_3"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")


class STAN(Recommender):
    """STAN (Garg et al. 2019); see the module docstring for the formulas."""

    name = "stan"
    Config = STANConfig
    small_config: ClassVar[dict[str, Any]] = {"k": 5, "sample_size": 20}

    def fit(
        self,
        train: SessionLog,
        valid: SessionLog | Samples | None = None,
        *,
        item_index: ItemIndex | None = None,
    ) -> STAN:
        self.begin_fit(train, item_index)
        cap = int(self.config.sample_size)
        self.index_ = build_index(train, self.n_items_, cap, sequences=True)
        return self

    # ------------------------------------------------------------- queries
    def _query(self, histories: Histories) -> tuple[np.ndarray, ...]:
        """Distinct (row, item) pairs of the batch's known items, the item's most recent
        position in the history, its w1, and each row's length l(s)."""
        hs = [np.asarray(h, dtype=np.int64).reshape(-1) for h in histories]
        lens = np.array([len(h) for h in hs], dtype=np.int64)
        flat = np.concatenate(hs) if hs else np.zeros(0, dtype=np.int64)
        rows = np.repeat(np.arange(len(hs)), lens)
        known = flat >= 0
        rows, flat = rows[known], flat[known]
        n_known = np.bincount(rows, minlength=len(hs))
        pos = np.arange(len(flat)) - (np.cumsum(n_known) - n_known)[rows] + 1
        keys, inv = np.unique(rows * self.n_items_ + flat, return_inverse=True)
        last = np.zeros(len(keys), dtype=np.int64)
        np.maximum.at(last, inv, pos)
        rows = keys // self.n_items_
        w1 = np.ones(len(keys))
        if self.config.item_recency:
            w1 = np.exp((last - n_known[rows]) / self.config.lambda_1)
        return rows, keys % self.n_items_, last, w1, n_known.astype(np.float64)

    def _neighbours_batch(self, histories: Histories) -> tuple[np.ndarray, ...]:
        """(row, session id, sim2, p(r, n)) of every query's neighbours, by row, then
        largest sim2 first (ties: more recent first). Session ids are recency ranks."""
        cfg, ix = self.config, self.index_
        rows, q, qpos, w1, n_known = self._query(histories)
        ids, which = gather(ix["item_offsets"], ix["item_sessions"], q)
        npos, _ = gather(ix["item_offsets"], ix["item_pos"], q)
        n_sess = len(ix["sess_offsets"]) - 1
        keys, inv = np.unique(rows[which] * n_sess + ids, return_inverse=True)
        overlap = np.bincount(inv, weights=w1[which], minlength=len(keys))
        # r: the shared item most recent in s; its position in n, one per candidate
        by_cand = np.lexsort((qpos[which], inv))
        grouped = inv[by_cand]
        ends = np.ones(len(grouped), dtype=bool)
        ends[:-1] = grouped[1:] != grouped[:-1]
        pr = npos[by_cand][ends]
        r, cand = keys // n_sess, keys % n_sess
        # the sample_size most recent candidates of each row (keys sorted by row, session)
        per_row = np.bincount(r, minlength=len(histories))
        last = np.cumsum(per_row) - 1
        recent = last[r] - np.arange(len(r)) < cfg.sample_size
        r, cand, overlap, pr = r[recent], cand[recent], overlap[recent], pr[recent]
        sim = overlap / np.sqrt(n_known[r] * ix["sess_events"][cand])
        if cfg.session_recency:
            t = ix["sess_time"][cand]
            per_row = np.bincount(r, minlength=len(histories))
            t_ref = t[(np.cumsum(per_row) - 1)[r]]  # the row's most recent candidate
            sim = sim * np.exp(-(t_ref - t) / cfg.lambda_2)
        order = np.lexsort((-cand, -sim, r))
        r, cand, sim, pr = r[order], cand[order], sim[order], pr[order]
        counts = np.bincount(r, minlength=len(histories))
        top = np.arange(len(r)) - (np.cumsum(counts) - counts)[r] < cfg.k
        return r[top], cand[top], sim[top], pr[top]

    def neighbours(self, history: Any) -> tuple[np.ndarray, np.ndarray]:
        """Ids (recency-ordered session ids of the index) and ``sim2`` of the neighbours
        of one history, largest first (ties: more recent first)."""
        self._check_fitted()
        _, cand, sim, _ = self._neighbours_batch([history])
        return cand, sim

    def score(self, histories: Histories) -> torch.Tensor:
        """One vectorised pass over the batch: no Python loop over queries or items."""
        self._check_fitted()
        b, n, ix = len(histories), self.n_items_, self.index_
        r, nb, sim, pr = self._neighbours_batch(histories)
        items, which = gather(ix["sess_offsets"], ix["sess_items"], nb)
        weight = sim[which]
        if self.config.neighbour_position:
            ipos, _ = gather(ix["sess_offsets"], ix["sess_pos"], nb)
            weight = weight * np.exp(-np.abs(ipos - pr[which]) / self.config.lambda_3)
        flat = np.bincount(r[which] * n + items, weights=weight, minlength=b * n)
        out = flat.astype(np.float64, copy=False).reshape(b, n)
        return torch.from_numpy(popularity_fallback(out, self.item_support_).astype(np.float32))

    # --------------------------------------------------------- persistence
    def _weights(self) -> dict[str, torch.Tensor]:
        return index_tensors(self.index_, _INDEX_KEYS)

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        ix = index_arrays(weights, _INDEX_KEYS)
        if any(a.ndim != 1 for a in ix.values()):
            raise ValueError("index arrays must be 1-D")
        if ix["item_offsets"].shape != (self.n_items_ + 1,):
            raise ValueError(f"index arrays do not match a catalogue of {self.n_items_} items")
        so, io = ix["sess_offsets"], ix["item_offsets"]
        n_sess = len(so) - 1
        sizes = [  # (have, want)
            (len(ix["sess_items"]), int(so[-1]) if n_sess >= 0 else -1),
            (len(ix["sess_pos"]), len(ix["sess_items"])),
            (len(ix["item_sessions"]), int(io[-1])),
            (len(ix["item_pos"]), len(ix["item_sessions"])),
            (len(ix["sess_events"]), n_sess),
            (len(ix["sess_time"]), n_sess),
        ]
        if any(have != want for have, want in sizes):
            raise ValueError("index offsets do not match their value arrays")
        self.index_ = ix
