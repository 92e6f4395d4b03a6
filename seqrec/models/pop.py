"""Popularity baselines: ``pop`` (global) and ``session-pop`` (current session first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from seqrec.data.idmap import ItemIndex
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.models.base import Histories, Recommender


@dataclass(frozen=True)
class PopConfig:
    # "events": every training click counts; "targets": only clicks that follow another
    # click in their session (the labels of prefix->next training samples).
    support: Literal["events", "targets"] = "events"


def _support(train: SessionLog, n_items: int, how: str) -> np.ndarray:
    if how == "targets":
        first = np.zeros(train.n_events, dtype=bool)
        first[train.offsets[:-1][train.lengths > 0]] = True
        return np.bincount(train.items[~first], minlength=n_items).astype(np.float64)
    return train.item_counts(n_items).astype(np.float64)


class Pop(Recommender):
    """Recommends the globally most popular training items to everyone."""

    name = "pop"
    Config = PopConfig
    small_config: ClassVar[dict[str, Any]] = {}

    def fit(
        self,
        train: SessionLog,
        valid: SessionLog | Samples | None = None,
        *,
        item_index: ItemIndex | None = None,
    ) -> Pop:
        self.begin_fit(train, item_index)
        counts = _support(train, self.n_items_, self.config.support)
        self.popularity_ = torch.as_tensor(counts, dtype=torch.float32)
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        self._check_fitted()
        return self.popularity_.unsqueeze(0).expand(len(histories), -1)  # (B, n_items)

    def _weights(self) -> dict[str, torch.Tensor]:
        return {"popularity": self.popularity_}

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        pop = weights["popularity"]
        if tuple(pop.shape) != (self.n_items_,):
            shape = tuple(pop.shape)
            raise ValueError(f"popularity has shape {shape}, expected ({self.n_items_},)")
        self.popularity_ = pop.float()


class SessionPop(Pop):
    """Items of the current session by their count in it; global popularity breaks ties
    (and ranks every item the session has not touched)."""

    name = "session-pop"

    def score(self, histories: Histories) -> torch.Tensor:
        self._check_fitted()
        pop = self.popularity_
        base = pop / (pop.max() + 1.0)  # in [0, 1): only breaks ties between equal counts
        scores = base.unsqueeze(0).repeat(len(histories), 1)  # (B, n_items)
        hs = [np.asarray(h, dtype=np.int64) for h in histories]
        if not hs:
            return scores
        rows = np.repeat(np.arange(len(hs)), [len(h) for h in hs])
        cols = np.concatenate(hs)
        keep = cols >= 0  # unknown items (-1) do not count
        flat = torch.as_tensor(rows[keep] * self.n_items_ + cols[keep])
        scores.view(-1).index_add_(0, flat, torch.ones(len(flat), dtype=scores.dtype))
        return scores  # one vectorised scatter for the whole batch
