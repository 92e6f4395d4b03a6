"""Item-kNN (the baseline of Hidasi et al. ICLR 2016 and Ludewig & Jannach UMUAI 2018):
the next item is scored by its similarity to the last item of the session.

Items are binary vectors over the training sessions (1 where the session contains the
item, however often). The similarity is cosine with shrinkage ``lambda_``:

    sim(i, j) = |S_i & S_j| / (sqrt(|S_i| * |S_j|) + lambda_)

where ``S_i`` is the set of sessions containing ``i``; an item is not its own neighbour.
Only the ``k`` most similar neighbours of each item are kept (ties: smaller item id
first), as CSR arrays. Empty and unknown histories score all zeros, as in the rule
models (``seqrec.models.rules``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.rules import CSRItemModel, position_pairs, session_of_events, to_csr


@dataclass(frozen=True)
class ItemKNNConfig:
    k: int = 100  # neighbours kept per item
    lambda_: float = 20.0  # shrinkage added to the cosine's denominator

    def validate(self) -> None:
        if self.k < 1 or self.lambda_ < 0:
            raise ConfigError("itemknn: k must be >= 1 and lambda_ >= 0")


def top_k_per_row(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ``k`` largest values of every row (ties: smaller column first)."""
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, rows, side="left")
    keep = (np.arange(len(rows)) - starts) < k
    return rows[keep], cols[keep], vals[keep]


class ItemKNN(CSRItemModel):
    """Cosine item-to-item neighbours from session co-occurrence; scores from the last item."""

    name = "itemknn"
    Config = ItemKNNConfig
    small_config: ClassVar[dict[str, Any]] = {"k": 5, "lambda_": 1.0}

    def build(self, train: SessionLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.n_items_
        sess = session_of_events(train)
        # each (session, item) once, sorted by session then item
        keys = np.unique(sess * n + train.items.astype(np.int64))
        s, items = keys // n, keys % n
        support = np.bincount(items, minlength=n).astype(np.float64)  # |S_i|
        longest = int(np.bincount(s).max())
        a, b, _ = position_pairs(items, s, longest)  # every unordered pair once, a < b
        rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
        indptr, indices, cooc = to_csr(rows, cols, np.ones(len(rows)), n)
        r = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        sims = cooc / (np.sqrt(support[r] * support[indices]) + self.config.lambda_)
        r, c, v = top_k_per_row(r, indices, sims, self.config.k)
        return to_csr(r, c, v, n)
