"""Caser (Tang & Wang, WSDM 2018): the model.

Convolutional sequence embedding: the last ``L`` items before the next one are embedded
as an image ``E`` of ``L`` rows and ``d`` columns (row ``l`` the embedding of the
``l``-th of those items, oldest first) and read by two kinds of convolution filters:

* **horizontal** filters ``F (h x d)``, ``n_h`` of each height ``h = 1..L``, slide
  down the rows: ``c_i = ReLU(<E[i : i + h], F> + bias)`` for ``i = 1..L - h + 1``, and
  each filter keeps its maximum over ``i`` (max-pooling over time) - union-level
  patterns of ``h`` consecutive items wherever they occur; ``n_h * L`` values;
* **vertical** filters ``F~ (L x 1)``, ``n_v`` of them: ``c~ = sum_l F~_l E[l] + bias``,
  a learned weighted sum of the ``L`` rows (point-level patterns); ``n_v * d`` values.

Their concatenation, after dropout, goes through a fully connected layer to ``d``
values, ``z = ReLU(W1 [o; o~] + b1)``. With ``user_embedding`` the query is
``[z; P_u]`` (``2d``, ``P_u`` the user's embedding) and the score of item ``i`` is

    y_i = W2_i . [z; P_u] + b2_i

with an output table ``W2`` (``n_items x 2d``) and biases ``b2`` separate from the
input table (as in the paper); without users the query is ``z`` and ``W2`` is
``n_items x d``.

Windows shorter than ``L`` (the first items of a session, short histories at
inference) are left-padded: PAD rows of ``E`` are zero. The paper drops such windows;
padding keeps every position of every session as a sample and lets the model score
histories of any length.

Users (``user_embedding``, default true): the user index is built in ``fit`` from the
training log's ``session_ids`` (for user-history data each session is one user's
history and its id is the user id; sessions sharing an id share a user vector), and it
is saved with the model. ``score(histories, users=...)`` takes one external user id per
history (``uses_users = True``); a known user gets its vector ``P_u``, an unknown user,
a ``None`` entry or ``users=None`` a **zero** user vector, so the score is then
``W2_i . [z; 0] + b2_i``: the sequence part alone. A log without ``session_ids`` gives
an empty user index (every user vector zero).

Training is :mod:`seqrec.training`'s ``"sequences"`` family with the ``window`` layout:
one sample per position of every session, the last ``max_len`` items (``max_len >= L``;
the net reads the last ``L``) and the next ``n_targets`` items (the paper's ``T``,
default 3) as targets, all scored from the window's one state; each sample carries its
session's user. The paper's loss is the default: BCE with 3 uniform negatives per target
(``loss = "bce"``, ``negatives = "uniform"``, ``n_sample = 3``); full cross-entropy with
``loss = "cross-entropy"``, ``negatives = "full"``. The ``last`` layout with
``n_targets = 1`` trains on the next item only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from seqrec.data.idmap import ItemIndex
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import Histories, Recommender, check_users
from seqrec.nn.padding import PAD, embedding_ids, pad_histories

LAYOUTS = ("window", "last")


@dataclass(frozen=True)
class CaserConfig:
    hidden: int = 50  # d: item and user embeddings, the fully connected layer's output
    L: int = 5  # the last L items are the input image (L x d)
    n_h: int = 16  # horizontal filters of each height 1..L
    n_v: int = 4  # vertical filters (L x 1)
    dropout: float = 0.5  # on the concatenated convolution outputs
    user_embedding: bool = True  # [z; P_u] with a user table (users from session_ids)
    init_std: float = 0.1  # item, user and output tables ~ N(0, init_std^2)

    def validate(self) -> None:
        if self.hidden < 1 or self.L < 1:
            raise ConfigError("caser: hidden and L must be >= 1")
        if self.n_h < 0 or self.n_v < 0 or self.n_h + self.n_v < 1:
            raise ConfigError("caser: n_h and n_v must be >= 0, and not both 0")
        if not 0.0 <= self.dropout < 1.0 or self.init_std <= 0:
            raise ConfigError("caser: dropout must be in [0, 1), init_std > 0")


class CaserNet(nn.Module):
    """item_emb: (n_items + 2, d) (+ PAD, MASK rows, zeroed at use); user_emb:
    (n_users + 1, d) (+ the unknown user's row, zeroed at use), absent without users;
    horizontal[h - 1]: Conv2d(1, n_h, (h, d)); vertical: Conv2d(1, n_v, (L, 1));
    fc: (n_h * L + n_v * d) -> d; out_emb: (n_items, H) and out_bias: (n_items,), with
    H = 2d (users) or d."""

    def __init__(self, n_items: int, n_users: int | None, cfg: CaserConfig, seed: int) -> None:
        super().__init__()
        d, L = cfg.hidden, cfg.L
        self.n_items, self.L, self.d = n_items, L, d
        self.uses_users = n_users is not None  # the task then passes each sample's user
        self.n_users = n_users or 0
        self.fc_in = cfg.n_h * L + cfg.n_v * d
        self.query_size = 2 * d if self.uses_users else d
        self.row_params = ["item_emb", "out_emb"] + (["user_emb"] if self.uses_users else [])
        with torch.random.fork_rng(devices=[]):  # weights from `seed`, global RNG untouched
            torch.manual_seed(seed)
            std = cfg.init_std
            self.item_emb = nn.Parameter(torch.randn(n_items + 2, d) * std)
            if self.uses_users:
                self.user_emb = nn.Parameter(torch.randn(self.n_users + 1, d) * std)
            self.horizontal = nn.ModuleList(
                nn.Conv2d(1, cfg.n_h, (h, d)) for h in range(1, L + 1) if cfg.n_h
            )
            self.vertical = nn.Conv2d(1, cfg.n_v, (L, 1)) if cfg.n_v else None
            self.fc = nn.Linear(self.fc_in, d)
            self.out_emb = nn.Parameter(torch.randn(n_items, self.query_size) * std)
        self.out_bias = nn.Parameter(torch.zeros(n_items))
        self.drop = nn.Dropout(cfg.dropout)

    def image(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, T) right-aligned padded histories -> (B, L, d): the embeddings of the last
        ``L`` columns (left-padded with PAD when T < L), PAD rows zero."""
        if seqs.shape[1] > self.L:
            seqs = seqs[:, -self.L :]
        elif seqs.shape[1] < self.L:
            seqs = F.pad(seqs, (self.L - seqs.shape[1], 0), value=PAD)
        valid = (seqs >= 0).unsqueeze(-1).to(self.item_emb.dtype)  # (B, L, 1)
        return F.embedding(embedding_ids(seqs, self.n_items), self.item_emb, sparse=True) * valid

    def conv_features(self, e: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """(B, L, d) -> ([(B, n_h) per height 1..L], (B, n_v * d) | None): the
        max-pooled ReLU outputs of the horizontal filters of each height, and the
        vertical filters' outputs (row-weighted sums, one d-vector per filter)."""
        x = e.unsqueeze(1)  # (B, 1, L, d)
        o_h = [F.relu(conv(x)).squeeze(3).amax(dim=2) for conv in self.horizontal]  # (B, n_h)
        o_v = None if self.vertical is None else self.vertical(x).flatten(1)  # (B, n_v * d)
        return o_h, o_v

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) user codes (-1: unknown) -> (B, d): P_u, zero for unknown users."""
        known = users >= 0
        rows = torch.where(known, users, self.n_users)  # the unknown user's row
        p = F.embedding(rows, self.user_emb, sparse=True)  # (B, d)
        return p * known.unsqueeze(-1).to(p.dtype)

    def forward(self, seqs: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) padded histories [, (B,) user codes] -> (B, 1, H): the query
        ``[z; P_u]`` (or ``z`` without users) of each window."""
        o_h, o_v = self.conv_features(self.image(seqs))
        o = torch.cat(o_h + ([] if o_v is None else [o_v]), dim=1)  # (B, fc_in)
        z = F.relu(self.fc(self.drop(o)))  # (B, d)
        if self.uses_users:
            if users is None:
                users = torch.full((seqs.shape[0],), -1, dtype=torch.long, device=seqs.device)
            z = torch.cat([z, self.user_vectors(users)], dim=1)  # (B, 2d)
        return z.unsqueeze(1)

    def item_scores(self, hidden: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(N, H) -> (N, n_items) | (N, C) for items (C,) | (N, K) for items (N, K):
        ``hidden . W2_i + b2_i``."""
        if items is None:
            return hidden @ self.out_emb.t() + self.out_bias
        w = F.embedding(items, self.out_emb, sparse=True)  # (C, H) | (N, K, H)
        b = self.out_bias[items]  # (C,) | (N, K)
        if items.dim() == 1:
            return hidden @ w.t() + b
        return torch.einsum("nh,nkh->nk", hidden, w) + b


class Caser(Recommender):
    """Caser: horizontal and vertical convolutions over the last ``L`` items, plus a
    user embedding for known users."""

    name = "caser"
    Config = CaserConfig
    family = "sequences"
    uses_users: ClassVar[bool] = True  # score(histories, users=...): one user id per history
    training_defaults: ClassVar[dict[str, Any]] = {
        "layout": "window",  # every position: the last L items -> the next n_targets
        "max_len": 5,  # the batches' window: >= L (the net reads the last L)
        "n_targets": 3,  # the paper's T
        "loss": "bce",  # the paper: BCE with 3 uniform negatives per target
        "negatives": "uniform",
        "n_sample": 3,
        "optimizer": "adam",
        "learning_rate": 0.001,
        "weight_decay": 1e-6,
        "batch_size": 512,
        "shuffle": True,
        "n_epochs": 20,
    }
    small_config: ClassVar[dict[str, Any]] = {
        "hidden": 8,
        "n_h": 2,
        "n_v": 2,
        "n_epochs": 2,
        "batch_size": 16,
    }

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.user_index_ = ItemIndex()  # external user id <-> row of the user table

    def _check_training(self, keys: dict[str, Any]) -> None:
        if keys["layout"] not in LAYOUTS:
            raise ConfigError(
                f"caser: layout must be one of {', '.join(LAYOUTS)}, got {keys['layout']!r}"
            )
        if keys["max_len"] < self.config.L:
            raise ConfigError(f"caser: max_len ({keys['max_len']}) must be >= L ({self.config.L})")

    def begin_fit(self, train: SessionLog, item_index: ItemIndex | None) -> None:
        """The base checks, then the user index over the log's session ids."""
        super().begin_fit(train, item_index)
        ids = train.session_ids if self.config.user_embedding else None
        self.user_index_ = ItemIndex() if ids is None else ItemIndex(ids)

    def session_users(self, log: SessionLog) -> np.ndarray:
        """(n_sessions,) int64 user row of every session of ``log`` (-1: unknown)."""
        if log.session_ids is None:
            return np.full(log.n_sessions, -1, dtype=np.int64)
        return self.user_index_.encode(log.session_ids).astype(np.int64)

    def build_net(self, n_items: int, device: torch.device, seed: int) -> None:
        self.device_ = device
        n_users = len(self.user_index_) if self.config.user_embedding else None
        self.net_ = CaserNet(n_items, n_users, self.config, seed).to(device)

    def user_codes(self, users: Sequence[str | None] | None, n: int) -> torch.Tensor:
        """(n,) int64 user rows of external user ids (-1: unknown, None, or no users)."""
        ids = check_users(users, n)  # ConfigError: a bare string, a wrong count
        if ids is None:
            return torch.full((n,), -1, dtype=torch.long)
        return torch.from_numpy(self.user_index_.encode(ids).astype(np.int64))

    @torch.no_grad()
    def query(
        self, histories: Histories, users: Sequence[str | None] | None = None
    ) -> torch.Tensor:
        """(B, H): ``[z; P_u]`` (``z`` without users) of each history's last L items."""
        self._check_fitted()
        seqs = torch.from_numpy(pad_histories(histories, self.config.L)).to(self.device_)
        if not self.net_.uses_users:
            return self.net_(seqs)[:, 0]
        codes = self.user_codes(users, len(histories)).to(self.device_)
        return self.net_(seqs, codes)[:, 0]

    @torch.no_grad()
    def score(
        self, histories: Histories, users: Sequence[str | None] | None = None
    ) -> torch.Tensor:
        """(B, n_items); ``users``: one external user id per history, or None (unknown
        users and None get a zero user vector)."""
        return self.net_.item_scores(self.query(histories, users))
