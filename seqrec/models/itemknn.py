"""Item-kNN (the baseline of Hidasi et al. ICLR 2016 and Ludewig & Jannach UMUAI 2018):
the next item is scored by its similarity to the last item of the session.

Items are binary vectors over the training sessions (1 where the session contains the
item, however often). The similarity is cosine with shrinkage ``lambda_``:

    sim(i, j) = |S_i & S_j| / (sqrt(|S_i| * |S_j|) + lambda_)

where ``S_i`` is the set of sessions containing ``i``; an item is not its own neighbour.
Hidasi et al. (2016) describe this cosine of the items' session vectors (sessions in
common over the square root of the product of the items' session counts) plus a
regularisation against chance high similarities of rare items, without printing the
regularised formula; adding ``lambda_`` to the denominator (20 by default) is our
reading of it, not a quoted formula. ``lambda_ = 0`` is the plain cosine. The shrinkage
lowers the similarities of rare items more than those of frequent ones, so it changes
the ranking of a row, unlike a per-row constant.
Only the ``k`` most similar neighbours of each item are kept (ties: smaller item id
first), as CSR arrays (``seqrec.data.pairs.ItemMatrix``). An empty history, an unknown
last item or a last item without neighbours scores the training popularity scaled into
[0, 1), as in the rule models (``seqrec.data.pairs.popularity_fallback``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from seqrec.data.idmap import ItemIndex
from seqrec.data.pairs import (
    ItemMatrix,
    index_meta,
    position_pairs,
    session_of_events,
    top_k_per_row,
)
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import Histories, Recommender


@dataclass(frozen=True)
class ItemKNNConfig:
    k: int = 100  # neighbours kept per item
    lambda_: float = 20.0  # shrinkage added to the cosine's denominator

    def validate(self) -> None:
        if self.k < 1 or self.lambda_ < 0:
            raise ConfigError("itemknn: k must be >= 1 and lambda_ >= 0")


class ItemKNN(Recommender):
    """Cosine item-to-item neighbours from session co-occurrence; scores from the last item."""

    name = "itemknn"
    Config = ItemKNNConfig
    small_config: ClassVar[dict[str, Any]] = {"k": 5, "lambda_": 1.0}

    def fit(
        self,
        train: SessionLog,
        valid: SessionLog | Samples | None = None,
        *,
        item_index: ItemIndex | None = None,
    ) -> ItemKNN:
        self.begin_fit(train, item_index)
        t0 = time.perf_counter()
        n = self.n_items_
        sess = session_of_events(train)
        # each (session, item) once, sorted by session then item
        keys = np.unique(sess * n + train.items.astype(np.int64))
        s, items = keys // n, keys % n
        support = np.bincount(items, minlength=n).astype(np.float64)  # |S_i|
        longest = int(np.bincount(s).max())
        a, b, _ = position_pairs(items, s, longest)  # every unordered pair once, a < b
        rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
        # |S_i & S_j| by summing ones, then the shrunk cosine of every stored pair
        cooc = ItemMatrix.from_pairs(rows, cols, np.ones(len(rows)), n)
        r, c = cooc.row_ids(), cooc.indices
        sims = cooc.values / (np.sqrt(support[r] * support[c]) + self.config.lambda_)
        r, c, v = top_k_per_row(r, c, sims, self.config.k)
        self.matrix_ = ItemMatrix.from_pairs(r, c, v, n)
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
