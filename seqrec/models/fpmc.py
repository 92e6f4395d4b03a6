"""FPMC (Rendle, Freudenthaler & Schmidt-Thieme, WWW 2010): the model.

Factorising personalised Markov chains score item ``i`` after the previous basket ``B``
of user ``u`` as ``<V_UI[i], V_IU[u]> + mean_{l in B} <V_IL[i], V_LI[l]>``. Sessions are
anonymous and the scoring API has no user ids, so the user term is left out: what
remains is the factorised first-order Markov chain (FMC) of the paper,

    score(i | history) = <V_IL[i], mean of V_LI[l] over the last ``window`` items l>

with ``window = 1`` (the default) the previous item alone - the basket of a session
step is one click. Scores are linear in that mean (the query) against the item table
``V_IL``. Training (the paper's BPR with sampled negatives by default, or any loss of
the padded-sequence family, e.g. cross-entropy: ``loss = "cross-entropy"``) is
:mod:`seqrec.training`'s: the ``"sequences"`` family with last-of-prefix targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from seqrec.errors import ConfigError
from seqrec.models.base import Histories, Recommender
from seqrec.nn.padding import embedding_ids, pad_histories


@dataclass(frozen=True)
class FPMCConfig:
    factors: int = 64  # k: size of the item factors V_IL and V_LI
    window: int = 1  # previous basket: the mean of the last `window` items
    init_std: float = 0.01  # factors ~ N(0, init_std^2) (the paper's initialisation)

    def validate(self) -> None:
        if self.factors < 1 or self.window < 1 or self.init_std <= 0:
            raise ConfigError("fpmc: factors and window must be >= 1, init_std > 0")


class FPMCNet(nn.Module):
    """V_LI: (n_items + 2, k) factors of the previous items (+ PAD, MASK rows);
    V_IL: (n_items, k) factors of the next item."""

    def __init__(self, n_items: int, cfg: FPMCConfig, seed: int) -> None:
        super().__init__()
        self.row_params = ["V_LI", "V_IL"]  # sparse gradients: updated row by row
        gen = torch.Generator().manual_seed(seed)
        k, self.n_items, self.window = cfg.factors, n_items, cfg.window
        self.V_LI = nn.Parameter(torch.randn(n_items + 2, k, generator=gen) * cfg.init_std)
        self.V_IL = nn.Parameter(torch.randn(n_items, k, generator=gen) * cfg.init_std)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, T) padded histories -> (B, T, k): at column t, the mean of V_LI over the
        last ``window`` items up to t (zeros where there is none)."""
        valid = (seqs >= 0).unsqueeze(-1).to(self.V_LI.dtype)  # (B, T, 1)
        x = F.embedding(embedding_ids(seqs, self.n_items), self.V_LI, sparse=True) * valid
        if self.window == 1:
            return x
        w = self.window  # sums over the last w columns from cumulative sums
        csum = nn.functional.pad(torch.cumsum(x, 1), (0, 0, w, 0))  # (B, w + T, k)
        ccnt = nn.functional.pad(torch.cumsum(valid, 1), (0, 0, w, 0))  # (B, w + T, 1)
        total, count = csum[:, w:] - csum[:, :-w], ccnt[:, w:] - ccnt[:, :-w]
        return total / count.clamp(min=1.0)  # (B, T, k)

    def item_scores(self, hidden: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(N, k) -> (N, n_items) | (N, C) for items (C,) | (N, K) for items (N, K)."""
        if items is None:
            return hidden @ self.V_IL.t()
        w = F.embedding(items, self.V_IL, sparse=True)  # (C, k) | (N, K, k)
        return hidden @ w.t() if items.dim() == 1 else torch.einsum("nk,nck->nc", hidden, w)


class FPMC(Recommender):
    """FPMC without users: the factorised Markov chain over the last ``window`` items."""

    name = "fpmc"
    Config = FPMCConfig
    family = "sequences"
    training_defaults: ClassVar[dict[str, Any]] = {
        "layout": "last",  # every (previous items, next item) pair of every session
        "max_len": 1,  # the batches' window: set it >= window when window > 1
        "loss": "bpr",
        "negatives": "uniform",
        "n_sample": 1,  # BPR: one sampled negative per pair, as in the paper
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 256,
        "shuffle": True,
        "n_epochs": 10,
    }
    small_config: ClassVar[dict[str, Any]] = {"factors": 8, "n_epochs": 2, "batch_size": 16}

    def _check_training(self, keys: dict[str, Any]) -> None:
        if keys["max_len"] < self.config.window:
            raise ConfigError(
                f"fpmc: max_len ({keys['max_len']}) must be >= window ({self.config.window})"
            )

    def build_net(self, n_items: int, device: torch.device, seed: int) -> None:
        self.device_ = device
        self.net_ = FPMCNet(n_items, self.config, seed).to(device)

    @torch.no_grad()
    def query(self, histories: Histories) -> torch.Tensor:
        """(B, k): the mean previous-item factors of each history's last ``window`` items."""
        self._check_fitted()
        seqs = torch.from_numpy(pad_histories(histories, self.config.window)).to(self.device_)
        return self.net_(seqs)[:, -1]

    @torch.no_grad()
    def score(self, histories: Histories) -> torch.Tensor:
        return self.net_.item_scores(self.query(histories))  # (B, n_items)
