"""BPR-MF (Rendle et al., UAI 2009): matrix factorisation learned with BPR.

The non-sequential baseline: a user ``u`` and an item ``i`` meet in a ``d``-dimensional
space, the order of a history plays no part,

    x_ui = p_u . q_i (+ b_i)

with user factors ``P`` (n_users, d), item factors ``Q`` (n_items, d) and an optional item
bias ``b``. BPR-Opt maximises ``sum ln sigma(x_ui - x_uj) - lambda |Theta|^2`` over triples
of a user, an item of the user's history and an item outside it. Here that is
:mod:`seqrec.training`'s ``"user-item"`` family with its defaults: every (user, item)
event of the training log is a positive, ``n_sample`` uniform negatives per positive that
are never an item of the user's history (``exclude_history``), ``loss = "bpr"`` and
``reg`` = lambda on the rows a triple touches (``|p_u|^2 + |q_i|^2 + b_i^2`` plus the mean
of ``|q_j|^2 + b_j^2`` over its negatives), optimised by Adam on the rows of the batch
(the tables are read with sparse gradients). The users of a training log are its
``session_ids`` (:func:`seqrec.models.base.user_rows`): user ids for user-history data;
with session data each session is a user.

Inference (``uses_users``: called as ``score(histories, users=...)``):

* a **known user** (an id of the user index) is scored with its trained ``p_u``; its
  history is not read;
* an **unknown user**, or ``users=None``, gets a **folded-in** vector: the item table
  frozen, the ridge regression of the history's implicit feedback on the item features
  ``f_i = q_i`` (``f_i = [q_i, b_i]`` with the bias: its weight is fitted too), with an
  intercept. ``y_i = 1`` for the distinct items of the history, 0 for the rest of the
  catalogue;

      w = argmin_{w, c} sum_i (y_i - c - w . f_i)^2 + lam |w|^2
        = (Fc^T Fc + lam I)^-1 sum_{i in history} (f_i - f_mean),   Fc = F - f_mean,

  the same as least squares over every pair of items, ``sum_{i, j} ((y_i - y_j) - w .
  (f_i - f_j))^2 / 2n + lam |w|^2``: the squared-loss counterpart of BPR's pairwise
  objective, in closed form. The scores are ``w . f_i`` (a known user's are
  ``[p_u, 1] . [q_i, b_i]``). The regression's scale is small (it predicts a 0/1
  indicator over the catalogue), so fitting the bias's weight keeps the bias from
  swamping the history. ``lam = fold_in_reg * trace(Fc^T Fc) / d'`` (``d'`` features:
  relative to the item table's scale; the default was chosen on the validation split of
  S3-Rec Beauty, where larger values did better than 0.1 or 1). One inverse is shared
  by every history (cached outside training), so fold-in is a batched sum and one
  matrix product: deterministic, and blind to the order (and repeats) of the history.
  An empty history gets ``w = 0``: every item scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from seqrec.data.idmap import ItemIndex
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, ModelFileError
from seqrec.models.base import Histories, Recommender, Users, check_users, user_rows


@dataclass(frozen=True)
class BPRMFConfig:
    factors: int = 64  # d: size of the user and item factors
    item_bias: bool = True  # b_i: an item bias added to every score
    init_std: float = 0.1  # P, Q ~ N(0, init_std^2); b starts at 0
    fold_in_reg: float = 10.0  # fold-in ridge, relative to trace(Fc^T Fc) / d'

    def validate(self) -> None:
        if self.factors < 1 or self.init_std <= 0 or self.fold_in_reg <= 0:
            raise ConfigError("bprmf: factors must be >= 1, init_std and fold_in_reg > 0")


class BPRMFNet(nn.Module):
    """P (n_users, d), Q (n_items, d), b (n_items, 1) when ``item_bias``: the network of
    the user-item family, every table updated row-sparsely."""

    def __init__(self, n_users: int, n_items: int, cfg: BPRMFConfig, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)  # weights from `seed`, global RNG untouched
        d = cfg.factors
        self.n_users, self.n_items = n_users, n_items
        self.P = nn.Parameter(torch.randn(n_users, d, generator=gen) * cfg.init_std)
        self.Q = nn.Parameter(torch.randn(n_items, d, generator=gen) * cfg.init_std)
        self.b = nn.Parameter(torch.zeros(n_items, 1)) if cfg.item_bias else None
        self.row_params = ["P", "Q"] + (["b"] if cfg.item_bias else [])

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) user rows -> (B, d)."""
        return F.embedding(users, self.P, sparse=True)

    def _bias(self, items: torch.Tensor) -> torch.Tensor:
        assert self.b is not None
        return F.embedding(items, self.b, sparse=True).squeeze(-1)

    def features(self) -> torch.Tensor:
        """(n_items, d') the item features of a score: ``Q``, or ``[Q, b]`` with the bias
        (a user vector ``[p_u, 1]`` then gives ``p_u . q_i + b_i``)."""
        return self.Q if self.b is None else torch.cat([self.Q, self.b], dim=1)

    def item_scores(self, hidden: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(N, d) -> (N, n_items) | (N, C) for items (C,) | (N, K) for items (N, K)."""
        if items is None:
            out = hidden @ self.Q.t()  # (N, n_items)
            return out if self.b is None else out + self.b.view(1, -1)
        q = F.embedding(items, self.Q, sparse=True)  # (C, d) | (N, K, d)
        out = hidden @ q.t() if items.dim() == 1 else torch.einsum("nd,nkd->nk", hidden, q)
        return out if self.b is None else out + self._bias(items)

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B,) users, (B, C) items (the positive in column 0, negatives after) -> (B,):
        ``|p_u|^2 + |q_i|^2 + b_i^2 + mean_j (|q_j|^2 + b_j^2)``."""
        sq = F.embedding(items, self.Q, sparse=True).square().sum(-1)  # (B, C)
        if self.b is not None:
            sq = sq + self._bias(items).square()
        out = self.user_vectors(users).square().sum(-1) + sq[:, 0]  # (B,)
        return out + sq[:, 1:].mean(1) if items.shape[1] > 1 else out


class BPRMF(Recommender):
    """BPR-MF: user and item factors; known users by their vector, others folded in."""

    name = "bprmf"
    Config = BPRMFConfig
    family = "user-item"
    uses_users = True
    training_defaults: ClassVar[dict[str, Any]] = {
        "loss": "bpr",
        "negatives": "uniform",
        "n_sample": 1,  # one negative per positive, as in the paper
        "exclude_history": True,
        "reg": 0.05,
        "optimizer": "adam",
        "learning_rate": 0.01,
        "batch_size": 1024,
        "shuffle": True,
        "n_epochs": 20,
    }
    small_config: ClassVar[dict[str, Any]] = {"factors": 8, "n_epochs": 2, "batch_size": 16}

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.n_users_ = 0
        self._fold: tuple[torch.Tensor, torch.Tensor] | None = None  # (q_mean, inverse)

    def begin_fit(self, train: SessionLog, item_index: ItemIndex | None) -> None:
        super().begin_fit(train, item_index)
        self.user_index_, rows = user_rows(train)
        self.n_users_ = int(rows.max()) + 1

    def build_net(self, n_items: int, device: torch.device, seed: int) -> None:
        self.device_ = device
        self.net_ = BPRMFNet(self.n_users_, n_items, self.config, seed).to(device)
        self._fold = None

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        if "P" not in weights or weights["P"].dim() != 2:
            raise ModelFileError("weights do not match the bprmf config: no user table P")
        self.n_users_ = int(weights["P"].shape[0])
        n_ids = len(self.user_index_) if self.user_index_ is not None else 0
        if n_ids not in (0, self.n_users_):
            raise ModelFileError(
                f"the user index holds {n_ids} users, the weights {self.n_users_} user rows"
            )
        super()._set_weights(weights)
        self._fold = None

    # ----------------------------------------------------------------- inference
    def _fold_in_map(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_mean (d',), (Fc^T Fc + lam I)^-1 (d', d')); cached unless training."""
        if self._fold is not None and not self.in_fit:
            return self._fold
        f = self.net_.features().detach().double()  # (n_items, d'): the inverse in float64
        mean = f.mean(0)
        qc = f - mean
        gram = qc.t() @ qc  # (d, d)
        d = gram.shape[0]
        lam = self.config.fold_in_reg * max(float(gram.trace()) / d, 1e-12)
        inv = torch.linalg.inv(gram + lam * torch.eye(d, dtype=gram.dtype, device=gram.device))
        fold = (mean.float(), inv.float())
        if not self.in_fit:
            self._fold = fold
        return fold

    @torch.no_grad()
    def fold_in(self, histories: Histories) -> torch.Tensor:
        """(B, d') folded-in weights of the item features of histories (module doc)."""
        self._check_fitted()
        mean, inv = self._fold_in_map()
        n = self.n_items_
        lens = [len(h) for h in histories]
        flat = (
            np.concatenate([np.asarray(h, dtype=np.int64) for h in histories if len(h)])
            if sum(lens)
            else np.zeros(0, np.int64)
        )
        rows = np.repeat(np.arange(len(histories), dtype=np.int64), lens)
        keep = flat >= 0  # unknown items (-1) carry no feedback
        pairs = np.unique(rows[keep] * n + flat[keep])  # distinct (row, item)
        r = torch.as_tensor(pairs // n, device=self.device_)
        i = torch.as_tensor(pairs % n, device=self.device_)
        f = self.net_.features().detach()
        sums = torch.zeros(len(histories), f.shape[1], device=self.device_)  # (B, d')
        sums.index_add_(0, r, f[i] - mean)
        return sums @ inv  # (B, d'): inv is symmetric

    @torch.no_grad()
    def query(self, histories: Histories, users: Users = None) -> torch.Tensor:
        """(B, d'), scores = query . features: ``[p_u, 1]`` (``p_u`` without the bias) of
        each known user, the folded-in weights of the history otherwise."""
        self._check_fitted()
        ids = check_users(users, len(histories))
        rows = np.full(len(histories), -1, dtype=np.int64)
        if ids is not None and self.user_index_ is not None and len(self.user_index_):
            rows = self.user_index_.encode(ids).astype(np.int64)
        known = rows >= 0
        width = self.config.factors + int(self.config.item_bias)
        out = torch.ones(len(histories), width, device=self.device_)  # bias weight 1
        if known.any():
            idx = torch.as_tensor(np.flatnonzero(known), device=self.device_)
            p = self.net_.P.detach()[torch.as_tensor(rows[known], device=self.device_)]
            out[idx, : self.config.factors] = p
        if not known.all():
            rest = np.flatnonzero(~known)
            folded = self.fold_in([histories[j] for j in rest])
            out[torch.as_tensor(rest, device=self.device_)] = folded
        return out

    @torch.no_grad()
    def score(self, histories: Histories, users: Users = None) -> torch.Tensor:
        return self.query(histories, users) @ self.net_.features().detach().t()  # (B, n_items)
