"""Negatives of sampled evaluation: for each query, ``n`` distinct items that are neither
in its history nor its target, drawn uniformly or in proportion to training popularity.

Papers that report "HR@10 with 100 sampled negatives" rank each target among itself and
such items (SASRec: 100 uniform negatives; S3-Rec: 99). :mod:`seqrec.evaluation` uses
this module only when asked (``sampled_negatives``); full ranking is its default.

Sampling is without replacement and *successive*: each next negative is drawn from the
items not drawn yet, with probability proportional to its weight (1 for ``uniform``,
the item's training event count for ``popularity``; items never seen in training can
then not be drawn). Two exact methods give that distribution:

* rejection (the usual case, O(n) per query): i.i.d. draws from the whole catalogue,
  keeping the first occurrence of each item outside the history and target until ``n``
  are kept;
* dense (when ``n`` is more than half of the items a query can get, or rejection would
  need more than a quarter as many draws as the catalogue has items, e.g. when a few
  items hold almost all the weight): an exponential race, the ``n`` smallest of ``E_i / w_i`` with
  ``E_i ~ Exp(1)`` over the allowed items (the Gumbel top-k trick), O(n_items) per query.

Determinism: the negatives of a query depend only on ``(seed, query id, history,
target)``: each query draws from its own counter-based generator (Philox keyed by the
seed and the query id), so they do not depend on the batch size, the order in which
queries are scored, the device or the other queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqrec.errors import SeqrecError

__all__ = ["SAMPLERS", "QueryNegatives"]

SAMPLERS = ("uniform", "popularity")
_ROUNDS = 8  # rejection rounds before the dense method


class QueryNegatives:
    """``n`` negatives per query (see the module docstring).

    Args:
        n_items: catalogue size (dense ids ``0..n_items-1``).
        n: negatives per query, >= 1.
        sampler: ``"uniform"`` or ``"popularity"`` (in proportion to ``counts``).
        seed: a non-negative integer < 2**64.
        counts: (n_items,) training event counts; needed by ``"popularity"``.

    A query that has fewer than ``n`` eligible items (outside its history and target;
    with ``popularity``, also seen in training) is an error, never silently given fewer
    negatives: every rank would otherwise not be "among 1 + n candidates".
    """

    def __init__(
        self,
        n_items: int,
        n: int,
        sampler: str = "uniform",
        seed: int = 0,
        counts: np.ndarray | Sequence[float] | None = None,
    ) -> None:
        if sampler not in SAMPLERS:
            raise SeqrecError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise SeqrecError(f"sampled negatives must be a positive integer, got {n!r}")
        if (
            isinstance(seed, bool)
            or not isinstance(seed, int | np.integer)
            or not (0 <= seed < 2**64)
        ):
            raise SeqrecError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        self.n_items, self.n, self.sampler, self.seed = int(n_items), int(n), sampler, int(seed)
        self._w: np.ndarray | None = None
        self._inv_w: np.ndarray | None = None
        eligible = self.n_items
        if sampler == "popularity":
            if counts is None:
                raise SeqrecError("the popularity sampler needs the training item counts")
            w = np.asarray(counts, dtype=np.float64).reshape(-1)
            if len(w) != self.n_items or not np.isfinite(w).all() or (w < 0).any():
                raise SeqrecError(
                    f"item counts must be {self.n_items} finite numbers >= 0, got {len(w)} entries"
                )
            self._w = w
            with np.errstate(divide="ignore"):
                self._inv_w = 1.0 / w  # (n_items,) inf where w == 0
            self._cdf = np.cumsum(w)  # (n_items,)
            self._total = float(self._cdf[-1]) if len(w) else 0.0
            self._last = int(np.flatnonzero(w > 0)[-1]) if self._total > 0 else -1
            eligible = int(np.count_nonzero(w > 0))
        if self.n >= eligible:
            what = "items seen in training" if sampler == "popularity" else "items"
            raise SeqrecError(
                f"{self.n} sampled negatives need more than {self.n} {what}: the catalogue "
                f"has {eligible} (a query's target and history are never negatives); "
                "use fewer negatives or full ranking"
            )
        self._eligible = eligible

    def label(self) -> str:
        """What a result must say: ``"sampled: 99 uniform negatives, seed 42"``."""
        return f"sampled: {self.n} {self.sampler} negatives, seed {self.seed}"

    def sample(
        self,
        qids: np.ndarray | Sequence[int],
        targets: np.ndarray | Sequence[int],
        histories: Sequence[np.ndarray],
    ) -> np.ndarray:
        """(B, n) int64 negatives of queries ``qids`` (B,) (non-negative ids, unique per
        query of an evaluation) with targets (B,) and histories (B arrays of item ids)."""
        qids = np.asarray(qids, dtype=np.int64).reshape(-1)
        if len(qids) and int(qids.min()) < 0:
            raise ValueError("query ids must be >= 0")
        targets = np.asarray(targets, dtype=np.int64).reshape(-1)
        if not len(qids) == len(targets) == len(histories):
            raise ValueError("qids, targets and histories must have one entry per query")
        out = np.empty((len(qids), self.n), dtype=np.int64)
        for b, (q, t, h) in enumerate(zip(qids, targets, histories, strict=True)):
            banned = np.unique(np.append(np.asarray(h, dtype=np.int64), t))  # sorted
            key = np.array([self.seed, int(q)], dtype=np.uint64)
            rng = np.random.Generator(np.random.Philox(key=key))
            out[b] = self._one(rng, banned, int(q))
        return out

    # ------------------------------------------------------------------ one query
    def _one(self, rng: np.random.Generator, banned: np.ndarray, qid: int) -> np.ndarray:
        w = self._w
        if w is None:
            available = self.n_items - len(banned)
        else:
            available = self._eligible - int(np.count_nonzero(w[banned]))
        if self.n > available:
            raise SeqrecError(
                f"query {qid}: {self.n} sampled negatives requested but only {available} "
                "items are outside its history and target"
                + (" and seen in training" if w is not None else "")
                + "; use fewer negatives or full ranking"
            )
        got = np.zeros(0, dtype=np.int64)
        if 2 * self.n <= available:
            for _ in range(_ROUNDS):
                need = self.n - len(got)
                # chance that a draw is new and eligible: the weight of what is left
                accept = 1.0 - self._mass(banned) - self._mass(got)
                m = int(need / max(accept, 1e-12) * 1.25) + 16  # expected draws + margin
                if 4 * m > self.n_items:
                    break  # the dense method is cheaper (a draw costs a binary search)
                draws = self._draw(rng, m)
                pos = np.minimum(np.searchsorted(banned, draws), len(banned) - 1)
                draws = draws[banned[pos] != draws]
                both = np.concatenate([got, draws])
                _, first = np.unique(both, return_index=True)
                got = both[np.sort(first)]  # first occurrences, in draw order
                if len(got) >= self.n:
                    return got[: self.n]
        return self._dense(rng, banned)

    def _mass(self, items: np.ndarray) -> float:
        """Share of the sampling weight that ``items`` (distinct) hold."""
        if self._w is None:
            return len(items) / self.n_items
        return float(self._w[items].sum()) / self._total

    def _draw(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """``m`` i.i.d. items from the whole catalogue, in proportion to the weights."""
        if self._w is None:
            return rng.integers(0, self.n_items, m, dtype=np.int64)
        idx = np.searchsorted(self._cdf, rng.random(m) * self._total, side="right")
        return np.minimum(idx, self._last).astype(np.int64)  # rounding at the very top

    def _dense(self, rng: np.random.Generator, banned: np.ndarray) -> np.ndarray:
        """Exponential race: item i rings at ``E_i / w_i`` (E_i ~ Exp(1)); the first ``n``
        to ring, in order, are a successive sample in proportion to ``w``."""
        clocks = rng.standard_exponential(self.n_items)  # (n_items,)
        if self._inv_w is not None:
            clocks *= self._inv_w  # inf for items never seen in training
        clocks[banned] = np.inf
        first = np.argpartition(clocks, self.n - 1)[: self.n]
        return first[np.argsort(clocks[first], kind="stable")].astype(np.int64)
