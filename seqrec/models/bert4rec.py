"""BERT4Rec (Sun et al., CIKM 2019): the model.

A bidirectional transformer encoder trained with the cloze task. The last ``max_len``
items of a history are embedded (item embedding plus a learned position embedding,
then LayerNorm and dropout as in BERT's embedding layer, which the paper builds on),

    h^0_t = Dropout(LN(E[v_t] + P[t]))

and passed through ``n_blocks`` post-LN transformer blocks (the paper's Eq. 5-6 and
BERT's layer):

    A   = LN(H + Dropout(MultiHeadAttn(H)))
    H'  = LN(A + Dropout(FFN(A))),   FFN(x) = GELU(x W1 + b1) W2 + b2,  W1: d x 4d

Attention has **no causal mask**: every real position attends every real position,
before and after it; keys at PAD positions are never attended (a PAD query attends
itself alone: finite, ignored). The output layer (the paper's Eq. 7) scores item ``i``
at position ``t`` by the inner product with the **shared** item table plus a per-item
bias (``output_bias``),

    s_i = head(h^L_t) . E[i] + b^O_i,
    head(h) = LN(GELU(h W^P + b^P))   (``head = "gelu-ln"``, BERT's masked-LM transform)
            = GELU(h W^P + b^P)       (``head = "gelu"``, Eq. 7 as printed)
            = h                       (``head = "none"``, SASRec's read-out).

The head is part of ``forward``: the states a network returns are the query vectors,
so scores are linear in them.

Training is :mod:`seqrec.training`'s ``"sequences"`` family with the **masked** (cloze)
layout: each item of a window is replaced by MASK with probability ``mask_prob`` (a
window without any gets its last item masked) and predicted at its position from both
sides. At inference the history is followed by one MASK (``pad_histories(...,
append_mask=True)``; the most recent ``max_len - 1`` items are kept) and the MASK
position's state scores the catalogue. Loss: full softmax cross-entropy by default;
sampled softmax with ``negatives = "popularity"`` (or ``"uniform"``, ``"in-batch"``),
``n_sample`` and ``logq``.

Paper settings: d = 64, 2 layers, 2 heads, dropout 0.1, GELU, ``max_len`` 200
(ML-1m, ML-20m) or 50 (Beauty, Steam), mask proportion 0.6 (Beauty), 0.4 (Steam), 0.2
(ML-1m, ML-20m), Adam lr 1e-4 with L2 weight decay 0.01 and linear decay, batch 256,
weights from a truncated normal "in [-0.02, 0.02]" (read here as BERT's initialiser:
std ``init_std`` = 0.02, truncated at two std). The defaults below keep the
architecture and use ``mask_prob`` 0.2 (the paper's value for the dense MovieLens
sets and the common default of re-implementations) and SASRec's optimiser settings;
the paper's Beauty value is ``--set mask_prob=0.6``. Post-LN (the paper's choice) has
no warm-up here and dislikes large learning rates: on a toy chain two blocks did not
train at lr 0.01 and did at 1e-3. The paper also adds training samples that mask only
the last item (the inference task): ``mask_last_prob`` is the share of the windows,
drawn every epoch, that are masked so instead of at random (0: none, the default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from seqrec.errors import ConfigError
from seqrec.models.base import PaddedSequenceModel
from seqrec.nn.padding import PAD, embedding_ids
from seqrec.nn.transformer import POSITIONS, TransformerBlock, attention_mask, position_ids

HEADS = ("gelu-ln", "gelu", "none")
ACTIVATIONS = ("gelu", "relu")


@dataclass(frozen=True)
class BERT4RecConfig:
    hidden: int = 64  # d: item / position embedding and block width
    n_blocks: int = 2  # transformer layers
    n_heads: int = 2  # attention heads (hidden must be divisible by n_heads)
    ffn_factor: int = 4  # FFN inner size = ffn_factor * hidden (the paper: 4)
    activation: str = "gelu"  # FFN and head activation: "gelu" (the paper) | "relu"
    dropout: float = 0.1  # embeddings, attention weights, sub-layer outputs
    positions: str = "absolute"  # "absolute" (from the oldest item) | "recent" (back from the last)
    head: str = "gelu-ln"  # output projection: "gelu-ln" | "gelu" | "none" (module doc)
    output_bias: bool = True  # b^O: a learned bias per item added to its score
    init_std: float = 0.02  # weights ~ N(0, init_std^2) truncated at 2 init_std

    def validate(self) -> None:
        if self.hidden < 1 or self.n_blocks < 0 or self.n_heads < 1 or self.ffn_factor < 1:
            raise ConfigError(
                "bert4rec: hidden, n_heads and ffn_factor must be >= 1, n_blocks >= 0"
            )
        if self.hidden % self.n_heads:
            raise ConfigError(
                f"bert4rec: hidden ({self.hidden}) must be divisible by n_heads ({self.n_heads})"
            )
        if not 0.0 <= self.dropout < 1.0 or self.init_std <= 0:
            raise ConfigError("bert4rec: dropout must be in [0, 1), init_std > 0")
        for key, value, allowed in (
            ("positions", self.positions, POSITIONS),
            ("head", self.head, HEADS),
            ("activation", self.activation, ACTIVATIONS),
        ):
            if value not in allowed:
                raise ConfigError(
                    f"bert4rec: {key} must be one of {', '.join(allowed)}, got {value!r}"
                )


class BERT4RecNet(nn.Module):
    """item_emb: (n_items + 2, d) (+ PAD, MASK rows), shared with the output layer;
    pos_emb: (max_len, d); out_bias: (n_items,) when ``output_bias``."""

    def __init__(self, n_items: int, max_len: int, cfg: BERT4RecConfig, seed: int) -> None:
        super().__init__()
        self.n_items, self.max_len, self.recent = n_items, max_len, cfg.positions == "recent"
        self.act = F.gelu if cfg.activation == "gelu" else F.relu
        d = cfg.hidden
        block = {"inner": cfg.ffn_factor * d, "activation": cfg.activation, "post_norm": True}
        with torch.random.fork_rng(devices=[]):  # weights from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self.item_emb = nn.Parameter(torch.empty(n_items + 2, d))
            self.pos_emb = nn.Parameter(torch.empty(max_len, d))
            self.emb_ln = nn.LayerNorm(d)
            self.blocks = nn.ModuleList(
                TransformerBlock(d, cfg.n_heads, cfg.dropout, inner_dropout=False, **block)
                for _ in range(cfg.n_blocks)
            )
            self.head_dense = nn.Linear(d, d) if cfg.head != "none" else None
            self.head_ln = nn.LayerNorm(d) if cfg.head == "gelu-ln" else None
            self.out_bias = nn.Parameter(torch.zeros(n_items)) if cfg.output_bias else None
            self._init(cfg.init_std)
        self.drop = nn.Dropout(cfg.dropout)

    def _init(self, std: float) -> None:
        """Embeddings and linear weights ~ N(0, std^2) truncated to [-2 std, 2 std];
        biases 0; LayerNorms 1, 0."""
        with torch.no_grad():
            for p in (self.item_emb, self.pos_emb):
                nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
                    nn.init.zeros_(m.bias)

    def positions(self, valid: torch.Tensor) -> torch.Tensor:
        """(B, T) position index of every column (PAD columns: clamped, never attended)."""
        return position_ids(valid, self.max_len, self.recent)

    def encode(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, T) right-aligned padded inputs (MASK allowed) -> (B, T, d) last-layer states."""
        if seqs.shape[1] > self.max_len:
            seqs = seqs[:, -self.max_len :]  # keep the most recent items
        valid = seqs != PAD  # (B, T): items and MASK are real positions, PAD is not
        x = self.item_emb[embedding_ids(seqs, self.n_items)] + self.pos_emb[self.positions(valid)]
        x = self.drop(self.emb_ln(x))  # (B, T, d)
        allowed = attention_mask(valid, causal=False)  # (B, 1, T, T): both directions
        for block in self.blocks:
            x = block(x, allowed)
        return x

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, d) query vectors: the states through the output head."""
        h = self.encode(seqs)
        if self.head_dense is not None:
            h = self.act(self.head_dense(h))
            if self.head_ln is not None:
                h = self.head_ln(h)
        return h

    def item_scores(self, hidden: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(N, d) -> (N, n_items) | (N, C) for items (C,) | (N, K) for items (N, K):
        ``hidden . E[i] + b^O_i``."""
        if items is None:
            s = hidden @ self.item_emb[: self.n_items].t()
            return s if self.out_bias is None else s + self.out_bias
        w = self.item_emb[items]  # (C, d) | (N, K, d)
        s = hidden @ w.t() if items.dim() == 1 else torch.einsum("nd,ncd->nc", hidden, w)
        return s if self.out_bias is None else s + self.out_bias[items]

    def output_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(E (n_items, d), b^O (n_items,) | None)``: ``item_scores(h) == h @ E.T + b^O``,
        so the training task computes full cross-entropy chunk by chunk (and with
        ``matmul_precision = "bfloat16"``), without the (N, n_items) scores."""
        return self.item_emb[: self.n_items], self.out_bias


class BERT4Rec(PaddedSequenceModel):
    """BERT4Rec: a bidirectional transformer trained with the cloze task; a MASK
    appended to the history is predicted at inference."""

    name = "bert4rec"
    Config = BERT4RecConfig
    query_position = -1  # the query is the state at the MASK appended to each history
    append_mask = True
    training_defaults: ClassVar[dict[str, Any]] = {
        "layout": "masked",  # cloze: masked items predicted at their positions
        "mask_prob": 0.2,  # the paper: 0.6 Beauty, 0.4 Steam, 0.2 MovieLens
        "max_len": 50,  # the window; at inference max_len - 1 items + MASK
        "loss": "cross-entropy",  # full softmax; sampled: negatives + n_sample + logq
        "negatives": "full",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 128,
        "shuffle": True,
        "n_epochs": 50,  # a cloze epoch predicts ~mask_prob of the items: more epochs
    }
    small_config: ClassVar[dict[str, Any]] = {
        "hidden": 8,
        "n_blocks": 1,
        "max_len": 8,
        "n_epochs": 2,
        "batch_size": 16,
    }

    def _check_training(self, keys: dict[str, Any]) -> None:
        if keys["layout"] != "masked":
            raise ConfigError(
                f'bert4rec is trained with the cloze layout (layout = "masked"), got '
                f"{keys['layout']!r}: a bidirectional encoder would see the targets of "
                "the other layouts"
            )
        if keys["max_len"] < 2:
            raise ConfigError(
                f"bert4rec: max_len must be >= 2 (the history and the MASK), got {keys['max_len']}"
            )

    def make_net(self, n_items: int, seed: int) -> BERT4RecNet:
        return BERT4RecNet(n_items, self.max_len, self.config, seed)
