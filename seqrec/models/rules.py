"""Rule models of Ludewig & Jannach (UMUAI 2018): first-order ``markov``, sequential
rules ``sr`` and association rules ``ar``; all score the next item from the last one.

The formulas, with ``S_p`` the training sessions, ``l`` the last item of the current
session and ``N(l) = sum over the occurrences of l in S_p of (|p| - 1)``:

* **AR**: ``score(i) = (1 / N(l)) * #{(p, x, y): p in S_p, x != y, p_x = l, p_y = i}``,
  co-occurrence in a session counted over ordered pairs of positions, so in both
  directions (the paper's formula sums ``x`` and ``y`` over 1..|p|; its normaliser
  ``|p| - 1`` counts the other positions, so ``x = y`` is left out, as here). Every row
  sums to 1. An item repeated in a session makes a self-rule ``i -> i``.
* **SR**: a rule ``a -> b`` for every ``b`` that follows ``a`` in a session, weighted by
  the gap ``d`` (``w(d) = 1/d`` in the paper, ``weighting = "div"``), summed over the
  training sessions. The paper sums over every earlier position; ``steps`` (default 10)
  bounds the gap as session-rec's implementation does (``steps`` at least the longest
  session minus 1 gives the paper's unbounded sum). ``normalise`` divides row ``l`` by
  ``N(l)`` as AR does. We are not sure the paper's SR normaliser is exactly ``N(l)``;
  any per-row constant leaves the ranking of the row unchanged (scores come from the
  one row of ``l``), so only the scale differs, e.g. in a hybrid.
* **Markov**: ``P(next = j | last = i) = count(i -> j) / count(i -> anything)`` over
  consecutive clicks (``normalise = "count"``: the raw counts, same ranking).

The other gap weights (``same``, ``linear``, ``quadratic``, ``log``; :func:`gap_weight`)
are this library's options for tuning, not the paper's.

Each model is an item-to-item matrix ``R`` (rows: the last item, columns: the next)
built once from pairs of positions in the training sessions and kept as CSR arrays
(``seqrec.data.pairs.ItemMatrix``); a batch is scored by gathering the rows of its
last items into a dense ``(B, n_items)`` tensor with one scatter. An empty history, or
one whose last item is unknown (-1) or starts no rule, has no evidence: it scores the
training popularity scaled into [0, 1) (``seqrec.data.pairs.popularity_fallback``, the
policy of every neighbourhood and rule model, docs/DESIGN.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from seqrec.data.idmap import ItemIndex
from seqrec.data.pairs import (
    ItemMatrix,
    index_meta,
    position_pairs,
    session_of_events,
)
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import Histories, Recommender

Weighting = Literal["div", "same", "linear", "quadratic", "log"]


def gap_weight(d: np.ndarray | int, steps: int, how: str) -> np.ndarray:
    """Weight of a rule between positions ``d`` >= 1 apart (``d`` <= ``steps``):
    div ``1/d`` (the paper), same ``1``, linear ``1 - (d - 1)/steps``, quadratic
    ``1/d^2``, log ``1/log2(d + 1)``; each is 1 at ``d = 1``."""
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


class RuleModel(Recommender):
    """Base of the rule models: an item matrix ``R``; scores = the row of the last item."""

    small_config: ClassVar[dict[str, Any]] = {}

    def build(self, train: SessionLog) -> ItemMatrix:
        raise NotImplementedError

    def fit(
        self,
        train: SessionLog,
        valid: SessionLog | Samples | None = None,
        *,
        item_index: ItemIndex | None = None,
    ) -> RuleModel:
        self.begin_fit(train, item_index)
        t0 = time.perf_counter()
        self.matrix_ = self.build(train)
        self.meta_.update(index_meta(self.matrix_.arrays(), time.perf_counter() - t0))
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        self._check_fitted()
        return torch.from_numpy(self.matrix_.last_item_scores(histories, self.item_support_))

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v) for k, v in self.matrix_.arrays().items()}

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        try:
            arrays = {k: w.numpy() for k, w in weights.items()}
            self.matrix_ = ItemMatrix.from_arrays(arrays, self.n_items_)
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None


# ---------------------------------------------------------------- the models
@dataclass(frozen=True)
class MarkovConfig:
    # "probability": P(next = j | last = i) = count(i -> j) / count(i -> anything);
    # "count": the raw transition counts (same ranking, unnormalised scores)
    normalise: Literal["probability", "count"] = "probability"


class Markov(RuleModel):
    """First-order Markov chain: transitions between consecutive clicks."""

    name = "markov"
    Config = MarkovConfig

    def build(self, train: SessionLog) -> ItemMatrix:
        a, b, _ = position_pairs(train.items, session_of_events(train), 1)
        vals = np.ones(len(a), dtype=np.float64)
        if self.config.normalise == "probability":
            out = np.bincount(a, minlength=self.n_items_).astype(np.float64)
            vals = vals / out[a]
        return ItemMatrix.from_pairs(a, b, vals, self.n_items_)


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


class SR(RuleModel):
    """Sequential rules: a -> b when b follows a within ``steps`` clicks, weighted by
    the gap; scores are the rules of the last item."""

    name = "sr"
    Config = SRConfig
    small_config: ClassVar[dict[str, Any]] = {"steps": 3}

    def build(self, train: SessionLog) -> ItemMatrix:
        cfg = self.config
        a, b, d = position_pairs(train.items, session_of_events(train), cfg.steps)
        vals = gap_weight(d, cfg.steps, cfg.weighting)
        if cfg.normalise:
            vals = vals / _rule_normaliser(train, self.n_items_)[a]
        return ItemMatrix.from_pairs(a, b, vals, self.n_items_)


@dataclass(frozen=True)
class ARConfig:
    normalise: bool = True  # as SR: divide by the rules item i could take part in


class AR(RuleModel):
    """Association rules: a <-> b for every two positions of the same session, in
    either order; scores are the rules of the last item."""

    name = "ar"
    Config = ARConfig

    def build(self, train: SessionLog) -> ItemMatrix:
        longest = int(train.lengths.max())
        a, b, _ = position_pairs(train.items, session_of_events(train), longest)
        rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
        vals = np.ones(len(rows), dtype=np.float64)
        if self.config.normalise:
            vals = vals / _rule_normaliser(train, self.n_items_)[rows]
        return ItemMatrix.from_pairs(rows, cols, vals, self.n_items_)
