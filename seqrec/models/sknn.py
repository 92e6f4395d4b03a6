"""Session-based nearest neighbours: ``sknn``, ``v-sknn`` and ``vmis-knn``.

The formulas, with ``s`` the current session, ``n`` a neighbour (training) session and
``1_n(i)`` 1 when ``n`` contains item ``i``:

* **SKNN** (Jannach & Ludewig, RecSys 2017; Ludewig & Jannach, UMUAI 2018): sessions are
  binary item vectors; ``sim(s, n) = |s & n| / sqrt(|s| * |n|)`` (cosine); the ``k``
  most similar of the ``sample_size`` most recent sessions sharing an item with ``s``
  are the neighbours ``N(s)``; ``score(i) = sum over n in N(s) of sim(s, n) * 1_n(i)``.
* **V-SKNN** (Ludewig & Jannach, UMUAI 2018, "vector multiplication" SKNN): the current
  session is a real vector whose item at position ``p`` of ``|s|`` weighs ``w(p)``, the
  last item 1 and earlier ones less. The paper names a linear decay over the positions
  of the current session without printing it; ``linear`` here is ``p / |s|``, our
  reading of the session-rec framework's (not checked against its code); the four
  decays are listed in :func:`position_weights`. The paper's similarity is the dot
  product of that vector with the binary neighbour vector,
  ``sim(s, n) = sum over i in s & n of w(i)``, no normalisation (``normalise = false``,
  the default); ``normalise = true`` divides by both norms, the cosine
  ``sim / (||w|| * sqrt(|n|))`` (an option, not the paper's). Scores sum the
  similarities as in SKNN, times ``idf(i) = log(N / df(i))`` with ``idf_weighting``
  (``N`` training sessions, ``df(i)`` of them contain ``i``; the idf factor comes from
  the issue and session-rec, we have not found it in the 2018 paper's text).
* **VMIS-kNN** (Kersbergen, Sprangers & Schelter, "Serenade", SIGMOD 2022): the same
  scores as V-SKNN from an index that keeps only the ``m`` most recent sessions per
  item. As we understand Serenade (and session-rec's later V-SKNN), each neighbour is
  also weighted by the position in ``s`` of the most recent item it shares with ``s``
  (offered here as ``match_weighting``: ``1/x``, ``1/x^2`` or ``1/log2(x + 1)`` with
  ``x = 1`` when the neighbour contains the last item), and the idf term is a tunable
  number (Serenade's documented search ranges tune ``idf_weighting`` over 1..10). We
  have not confirmed either formula in the paper's text: the match weight is offered
  but off by default (``"none"``, which keeps VMIS-kNN equal to V-SKNN), and idf is the
  plain factor ``idf(i)`` above. Serenade also searches ``max_items_in_session``
  (only the last few clicks of ``s``), which seqrec does not offer.

Unsure points, stated rather than guessed: the exact shape of the paper's "linear"
decay, where V-SKNN's idf factor was first defined, Serenade's exact match-weight and
idf formulas. What is tested by hand (tests/models/test_sknn.py): the cosine of SKNN,
the dot product and the cosine option of V-SKNN, the four decays, the match weights,
idf = log(N / df) and the recency-sampled candidates.

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
the more recent first) and every item of a neighbour gets the neighbour's similarity
(times its match weight, if any).

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

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from seqrec.data.idmap import ItemIndex
from seqrec.data.pairs import index_meta, popularity_fallback
from seqrec.data.samples import Samples
from seqrec.data.session_index import build_index, index_arrays, index_tensors
from seqrec.data.session_index import gather as _gather
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import Histories, Recommender

Weighting = Literal["linear", "log", "quadratic", "harmonic"]
MatchWeighting = Literal["none", "harmonic", "quadratic", "log"]

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
    # false: the paper's dot product of the weighted session vector with the binary
    # neighbour vector; true: the cosine (divided by both vectors' norms)
    normalise: bool = False
    # weight of a neighbour by the steps x (1 = the last item) back to the most recent
    # item of the current session it contains: none (1), harmonic (1/x), quadratic
    # (1/x^2), log (1/log2(x + 1))
    match_weighting: MatchWeighting = "none"

    def validate(self) -> None:
        _check_positive(self, "k", "sample_size")


@dataclass(frozen=True)
class VMISConfig:
    k: int = 100
    sample_size: int = 500
    m: int = 500  # most recent sessions kept per item in the index
    weighting: Weighting = "linear"
    idf_weighting: bool = False
    normalise: bool = False
    match_weighting: MatchWeighting = "none"

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


def match_weights(steps: np.ndarray, how: str) -> np.ndarray | None:
    """Weight of a neighbour whose most recent shared item is ``steps`` back (1 = the
    last item of the current session); None for ``"none"``."""
    if how == "none":
        return None
    x = np.asarray(steps, dtype=np.float64)
    if how == "harmonic":
        return 1.0 / x
    if how == "quadratic":
        return 1.0 / (x * x)
    if how == "log":
        return 1.0 / np.log2(x + 1.0)
    raise ConfigError(f"unknown match_weighting {how!r}")


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
        t0 = time.perf_counter()
        self._set_index(build_index(train, self.n_items_, self._cap()))
        self.meta_.update(index_meta(self.index_, time.perf_counter() - t0))
        return self

    def _set_index(self, index: dict[str, np.ndarray]) -> None:
        self.index_ = index
        self.sess_len_ = np.diff(index["sess_offsets"]).astype(np.float64)

    # ------------------------------------------------------------- queries
    def _positions_weight(self, pos: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Weight of the known item at 1-based position ``pos`` of ``n`` (1 for SKNN)."""
        return np.ones(len(pos))

    def _similarity(self, overlap: np.ndarray, cand: np.ndarray, norm: np.ndarray) -> np.ndarray:
        """Similarity of the candidates from their (weighted) overlap with the query;
        ``norm`` is the Euclidean norm of the query's (weighted) vector."""
        return overlap

    def _match_weight(self, steps: np.ndarray) -> np.ndarray | None:
        """Weight of a neighbour by ``steps`` (1 = the last item) back to the most recent
        item of the query it contains; None: no such weight (SKNN)."""
        return None

    def _item_factor(self) -> np.ndarray | None:
        return None

    def _query_pairs(
        self, histories: Histories
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Distinct (row, item) pairs of the known items of a batch, their weights (a
        repeated item keeps its largest, i.e. most recent, position weight) and the steps
        back from the last known item to the item's most recent occurrence (1 = last)."""
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
        latest = np.zeros(len(keys))
        np.maximum.at(latest, inv, pos)
        rows = keys // self.n_items_
        return rows, keys % self.n_items_, w, n_known[rows] - latest + 1.0

    def _neighbours_batch(
        self, histories: Histories
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(row, session id, similarity, scoring weight) of every query's neighbours, by
        row, then most similar first (ties: more recent first). Session ids are recency
        ranks; the scoring weight is the similarity times the match weight, if any."""
        ix = self.index_
        rows, q, w, steps = self._query_pairs(histories)
        ids, which = _gather(ix["item_offsets"], ix["item_sessions"], q)
        n_sess = len(ix["sess_offsets"]) - 1
        keys, inv = np.unique(rows[which] * n_sess + ids, return_inverse=True)
        overlap = np.bincount(inv, weights=w[which], minlength=len(keys))
        r, cand = keys // n_sess, keys % n_sess
        # the sample_size most recent candidates of each row (keys sorted by row, session)
        per_row = np.bincount(r, minlength=len(histories))
        last = np.cumsum(per_row) - 1
        recent = last[r] - np.arange(len(r)) < self.config.sample_size
        norm = np.sqrt(np.bincount(rows, weights=w * w, minlength=len(histories)))
        sim = self._similarity(overlap[recent], cand[recent], norm[r[recent]])
        weight = sim
        if self._match_weight(np.ones(1)) is not None:
            nearest = np.full(len(keys), np.inf)
            np.minimum.at(nearest, inv, steps[which])
            weight = sim * self._match_weight(nearest[recent])
        r, cand = r[recent], cand[recent]
        order = np.lexsort((-cand, -sim, r))
        r, cand, sim, weight = r[order], cand[order], sim[order], weight[order]
        counts = np.bincount(r, minlength=len(histories))
        rank = np.arange(len(r)) - (np.cumsum(counts) - counts)[r]
        top = rank < self.config.k
        return r[top], cand[top], sim[top], weight[top]

    def neighbours(self, history: Any) -> tuple[np.ndarray, np.ndarray]:
        """Ids (recency-ordered session ids of the index) and similarities of the
        neighbours of one history, most similar first (ties: more recent first)."""
        _, cand, sim, _ = self._neighbours_batch([history])
        return cand, sim

    def score(self, histories: Histories) -> torch.Tensor:
        """One vectorised pass over the batch: no Python loop over queries or items."""
        self._check_fitted()
        b, n = len(histories), self.n_items_
        ix = self.index_
        r, nb, _, weight = self._neighbours_batch(histories)
        items, which = _gather(ix["sess_offsets"], ix["sess_items"], nb)
        flat = np.bincount(r[which] * n + items, weights=weight[which], minlength=b * n)
        out = flat.astype(np.float64, copy=False).reshape(b, n)  # int64 when no neighbour
        factor = self._item_factor()
        if factor is not None:
            out *= factor
        out = out.astype(np.float32)
        return torch.from_numpy(popularity_fallback(out, self.item_support_))

    # --------------------------------------------------------- persistence
    def _weights(self) -> dict[str, torch.Tensor]:
        return index_tensors(self.index_, _INDEX_KEYS)

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        index = index_arrays(weights, _INDEX_KEYS)
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

    def _similarity(self, overlap: np.ndarray, cand: np.ndarray, norm: np.ndarray) -> np.ndarray:
        # binary query: overlap = |s & n| and norm = sqrt(|s|)
        return overlap / (norm * np.sqrt(self.sess_len_[cand]))


class VSKNN(_SessionKNN):
    """V-SKNN (Ludewig & Jannach 2018): SKNN with position-decayed session items.

    The current session's items are weighted by position (:func:`position_weights`;
    a repeated item keeps its most recent weight);
    ``sim(s, n) = sum of w(i)`` over the items ``i`` of ``s`` in ``n`` (a weighted dot
    product with the binary neighbour vector; with ``normalise`` divided by
    ``||w|| * sqrt(|n|)``, the cosine); ``score(i) = sum of sim(s, n) * m(s, n)`` over
    the ``k`` neighbours containing ``i`` (``m`` the match weight, 1 by default), times
    ``idf(i)`` with ``idf_weighting``."""

    name = "v-sknn"
    Config = VSKNNConfig
    small_config: ClassVar[dict[str, Any]] = {"k": 5, "sample_size": 20, "idf_weighting": True}

    def _positions_weight(self, pos: np.ndarray, n: np.ndarray) -> np.ndarray:
        return _decay(pos, n, self.config.weighting)

    def _similarity(self, overlap: np.ndarray, cand: np.ndarray, norm: np.ndarray) -> np.ndarray:
        if not self.config.normalise:
            return overlap
        return overlap / (norm * np.sqrt(self.sess_len_[cand]))

    def _match_weight(self, steps: np.ndarray) -> np.ndarray | None:
        return match_weights(steps, self.config.match_weighting)

    def _item_factor(self) -> np.ndarray | None:
        return self.index_["idf"] if self.config.idf_weighting else None


class VMISKNN(VSKNN):
    """VMIS-kNN (Kersbergen et al. 2022): V-SKNN from the m most recent sessions per item.

    The index keeps only the ``m`` most recent sessions per item, so a query reads at
    most ``m`` sessions per item of the current session; the scores are V-SKNN's
    (equal to them when ``m >= sample_size``), with the same options."""

    name = "vmis-knn"
    Config = VMISConfig
    small_config: ClassVar[dict[str, Any]] = {"k": 5, "sample_size": 20, "m": 10}

    def _cap(self) -> int:
        return int(self.config.m)
