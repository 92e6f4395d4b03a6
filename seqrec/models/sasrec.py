"""SASRec (Kang & McAuley, ICDM 2018): the model.

Self-attentive sequential recommendation: the last ``max_len`` items of a history are
embedded (item embedding scaled by ``sqrt(d)`` plus a learned position embedding,
dropout), passed through ``n_blocks`` blocks of causal multi-head self-attention and a
point-wise feed-forward network, each sub-layer wrapped as in the paper,

    x <- x + Dropout(sublayer(LayerNorm(x)))

and a final LayerNorm. The hidden state at column ``t`` depends on the items up to
``t`` only (causal mask); keys at PAD positions are never attended (a PAD query
attends to itself alone, so its state is finite and ignored by the task). The score
of item ``i`` is the inner product of the state with the item's embedding: the input
table is shared with the output layer.

Positions (``positions``):

* ``"absolute"``: counted from the oldest item kept in the window (0 = the first item
  of the history, or of its last ``max_len`` items), the positions of the paper;
* ``"recent"``: counted back from the most recent item (0 = the last item), so the last
  few items keep their position embeddings whatever the history length. (This is also
  what the paper's left-padded fixed-length implementation gives the last item.)

Training is :mod:`seqrec.training`'s ``"sequences"`` family with the causal layout (the
next item at every position); the loss is chosen by the loss keys: full cross-entropy
by default ("SASRec+"), the paper's BCE with one sampled negative per position with
``loss = "bce"``, ``negatives = "uniform"``, ``n_sample = 1``, gBCE (``loss = "gbce"``,
``gbce_t``), or sampled softmax with logQ correction (``negatives = "popularity"``,
``n_sample``, ``logq = 1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from seqrec.errors import ConfigError
from seqrec.models.base import PaddedSequenceModel
from seqrec.nn.padding import embedding_ids
from seqrec.nn.transformer import POSITIONS, TransformerBlock, attention_mask, position_ids


@dataclass(frozen=True)
class SASRecConfig:
    hidden: int = 64  # d: item / position embedding and block width
    n_blocks: int = 2  # self-attention blocks
    n_heads: int = 1  # attention heads (hidden must be divisible by n_heads)
    dropout: float = 0.2  # embedding, attention weights, sub-layer outputs, FFN
    positions: str = "absolute"  # "absolute" (from the oldest item) | "recent" (back from the last)
    init_std: float = 0.02  # item and position embeddings ~ N(0, init_std^2)

    def validate(self) -> None:
        if self.hidden < 1 or self.n_blocks < 0 or self.n_heads < 1:
            raise ConfigError("sasrec: hidden and n_heads must be >= 1, n_blocks >= 0")
        if self.hidden % self.n_heads:
            raise ConfigError(
                f"sasrec: hidden ({self.hidden}) must be divisible by n_heads ({self.n_heads})"
            )
        if not 0.0 <= self.dropout < 1.0 or self.init_std <= 0:
            raise ConfigError("sasrec: dropout must be in [0, 1), init_std > 0")
        if self.positions not in POSITIONS:
            raise ConfigError(
                f"sasrec: positions must be one of {', '.join(POSITIONS)}, got {self.positions!r}"
            )


class SASRecNet(nn.Module):
    """item_emb: (n_items + 2, d) (+ PAD, MASK rows), shared with the output layer;
    pos_emb: (max_len, d)."""

    def __init__(self, n_items: int, max_len: int, cfg: SASRecConfig, seed: int) -> None:
        super().__init__()
        self.n_items, self.max_len, self.recent = n_items, max_len, cfg.positions == "recent"
        d = cfg.hidden
        with torch.random.fork_rng(devices=[]):  # weights from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self.item_emb = nn.Parameter(torch.randn(n_items + 2, d) * cfg.init_std)
            self.pos_emb = nn.Parameter(torch.randn(max_len, d) * cfg.init_std)
            self.blocks = nn.ModuleList(
                TransformerBlock(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_blocks)
            )
        self.ln = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.scale = math.sqrt(d)

    def positions(self, valid: torch.Tensor) -> torch.Tensor:
        """(B, T) position index of every column (PAD columns: clamped, masked anyway)."""
        return position_ids(valid, self.max_len, self.recent)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, T) right-aligned padded histories (T <= max_len) -> (B, T, d)."""
        if seqs.shape[1] > self.max_len:
            seqs = seqs[:, -self.max_len :]  # keep the most recent items
        valid = seqs >= 0  # (B, T)
        x = self.item_emb[embedding_ids(seqs, self.n_items)] * self.scale
        x = self.drop(x + self.pos_emb[self.positions(valid)]) * valid.unsqueeze(-1)
        allowed = attention_mask(valid, causal=True)  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, allowed) * valid.unsqueeze(-1)
        return self.ln(x)

    def item_scores(self, hidden: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(N, d) -> (N, n_items) | (N, C) for items (C,) | (N, K) for items (N, K)."""
        if items is None:
            return hidden @ self.item_emb[: self.n_items].t()
        w = self.item_emb[items]  # (C, d) | (N, K, d)
        return hidden @ w.t() if items.dim() == 1 else torch.einsum("nd,ncd->nc", hidden, w)

    def output_table(self) -> tuple[torch.Tensor, None]:
        """``(E (n_items, d), no bias)``: ``item_scores(h) == h @ E.T``, so the training
        task computes full cross-entropy chunk by chunk, without the (N, n_items) scores."""
        return self.item_emb[: self.n_items], None


class SASRec(PaddedSequenceModel):
    """SASRec: causal self-attention over the last ``max_len`` items of a history."""

    name = "sasrec"
    Config = SASRecConfig
    query_position = -1  # the state at the most recent item
    training_defaults: ClassVar[dict[str, Any]] = {
        "layout": "causal",  # the next item at every position
        "max_len": 50,  # the window: the most recent items kept (also at inference)
        "loss": "cross-entropy",  # full softmax; the paper: bce + uniform + n_sample 1
        "negatives": "full",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 128,
        "shuffle": True,
        "n_epochs": 20,
    }
    small_config: ClassVar[dict[str, Any]] = {
        "hidden": 8,
        "n_blocks": 1,
        "max_len": 8,
        "n_epochs": 2,
        "batch_size": 16,
    }

    def make_net(self, n_items: int, seed: int) -> SASRecNet:
        return SASRecNet(n_items, self.max_len, self.config, seed)
