"""STAMP (Liu, Zeng, Mokhosi & Zhang, KDD 2018): the model, with its STMP and STMO variants.

Short-term attention/memory priority: a session prefix ``x_1 .. x_t`` (item embeddings
``x_i``, ``d`` values each) is read as a long-term memory, the whole prefix, and a
short-term memory, the last click:

    m_s = (1/t) sum_{i=1..t} x_i          the session's mean (real positions only)
    m_t = x_t                              the last click

``variant`` picks how the long-term part is read:

* ``"stamp"`` (the paper's STAMP): attention over the memory conditioned on the last
  click and the mean,

      alpha_i = W0^T sigmoid(W1 x_i + W2 x_t + W3 m_s + b_a)     (W0: d, W1..W3: d x d)
      m_a     = sum_{i=1..t} alpha_i x_i

  the weights are used as they are (no softmax, as in the paper) and are exactly zero
  at padding; then ``h_s = tanh(W_s m_a + b_s)``;
* ``"stmp"`` (short-term memory priority): no attention, ``h_s = tanh(W_s m_s + b_s)``;
* ``"stmo"`` (short-term memory only): no long-term part at all.

and the short-term part is ``h_t = tanh(W_t m_t + b_t)``. The score of item ``i`` is
the trilinear product

    z_i = <h_s, h_t, x_i> = sum_k h_s[k] h_t[k] x_i[k] = <h_s * h_t, x_i>     (STAMP, STMP)
    z_i = <h_t, x_i>                                                          (STMO)

so the scores are linear in the query ``q = h_s * h_t`` (``h_t`` for STMO) against the
input item table (shared with the output): every loss of the padded-sequence task works
on them, and so does a linear read-out. The paper passes ``z`` through a sigmoid before
the softmax; the sigmoid is monotone (rankings are unchanged) but bounds every logit to
(0, 1), which leaves a softmax over tens of thousands of items almost flat, so the
logits here are the plain trilinear products.

STMO computes its query from the last column of the padded batch alone (the last click),
so its scores after a whole session and after its last click are identical.

Training is :mod:`seqrec.training`'s ``"sequences"`` family with the ``last`` layout
(every prefix of every training session, its next item as target: the paper's
augmentation), one state per sample, full softmax cross-entropy by default (sampled
softmax by the loss keys), Adam with learning rate 0.005 and batches of 512 (the paper).
The net declares its read-out table (``output_table``), so the full softmax is computed
chunk by chunk (:func:`seqrec.training.losses.full_softmax_cross_entropy`).
The paper reads the whole session; here a prefix longer than ``max_len`` (default 50)
keeps its most recent ``max_len`` items, in training and at inference (the mean and
the attention run over those). Initialisation as in the paper: item embeddings
``N(0, init_std^2)`` (0.002), weight matrices ``N(0, weight_std^2)`` (0.05), biases zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from seqrec.errors import ConfigError
from seqrec.models.base import PaddedSequenceModel

VARIANTS = ("stamp", "stmp", "stmo")


@dataclass(frozen=True)
class STAMPConfig:
    hidden: int = 100  # d: item embeddings, attention and MLP width (the paper: 100)
    variant: str = "stamp"  # "stamp" (attention) | "stmp" (session mean) | "stmo" (last click)
    init_std: float = 0.002  # item embeddings ~ N(0, init_std^2) (the paper)
    weight_std: float = 0.05  # weight matrices ~ N(0, weight_std^2), biases zero (the paper)

    def validate(self) -> None:
        if self.hidden < 1:
            raise ConfigError("stamp: hidden must be >= 1")
        if self.variant not in VARIANTS:
            raise ConfigError(
                f"stamp: variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}"
            )
        if self.init_std <= 0 or self.weight_std <= 0:
            raise ConfigError("stamp: init_std and weight_std must be > 0")


def _linear(d_in: int, d_out: int, std: float, bias: bool = True) -> nn.Linear:
    """A Linear layer with weights ~ N(0, std^2) and a zero bias."""
    layer = nn.Linear(d_in, d_out, bias=bias)
    nn.init.normal_(layer.weight, 0.0, std)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class STAMPNet(nn.Module):
    """item_emb: (n_items, d), the input table and the output layer; mlp_t: W_t, b_t;
    stamp and stmp: mlp_s: W_s, b_s; stamp: W1 (x_i), W2 (x_t), W3 (m_s), all d x d
    without bias, b_a (d,) and W0: d -> 1.

    The table has no PAD row (PAD positions read row 0 and are zeroed) and the inputs
    are read with a sparse gradient: the full-catalogue scores then give the table's
    one dense gradient, with the input rows added into it, instead of two dense
    gradients of a padded table summed (three fewer passes over the table per step)."""

    def __init__(self, n_items: int, cfg: STAMPConfig, seed: int) -> None:
        super().__init__()
        d, std = cfg.hidden, cfg.weight_std
        self.n_items, self.variant = n_items, cfg.variant
        with torch.random.fork_rng(devices=[]):  # weights from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self.item_emb = nn.Parameter(torch.randn(n_items, d) * cfg.init_std)
            if self.variant == "stamp":
                self.W1 = _linear(d, d, std, bias=False)
                self.W2 = _linear(d, d, std, bias=False)
                self.W3 = _linear(d, d, std, bias=False)
                self.W0 = _linear(d, 1, std, bias=False)
            if self.variant != "stmo":
                self.mlp_s = _linear(d, d, std)
            self.mlp_t = _linear(d, d, std)
        if self.variant == "stamp":
            self.b_a = nn.Parameter(torch.zeros(d))

    def embed(self, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) padded histories -> (x (B, T, d) with PAD rows zero, valid (B, T) bool)."""
        valid = seqs >= 0
        x = F.embedding(seqs.clamp(min=0), self.item_emb, sparse=True)  # (B, T, d)
        return x * valid.unsqueeze(-1), valid

    def memories(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m_s (B, d): the mean over the real positions, zero for an empty row;
        m_t (B, d): the last column, the last click: histories are right-aligned)."""
        count = valid.sum(1, keepdim=True).clamp(min=1).to(x.dtype)  # (B, 1)
        return x.sum(1) / count, x[:, -1]

    def attention(
        self, x: torch.Tensor, valid: torch.Tensor, m_s: torch.Tensor, m_t: torch.Tensor
    ) -> torch.Tensor:
        """(B, T): ``alpha_i = W0^T sigmoid(W1 x_i + W2 m_t + W3 m_s + b_a)`` at the real
        positions, exactly 0 at PAD. Only the real positions are projected (most
        prefixes are far shorter than the batch's widest one)."""
        context = self.W2(m_t) + self.W3(m_s) + self.b_a  # (B, d)
        rows, cols = valid.nonzero(as_tuple=True)  # (P,), (P,) the real positions
        a = self.W0(torch.sigmoid(self.W1(x[rows, cols]) + context[rows])).squeeze(-1)  # (P,)
        alpha = x.new_zeros(valid.shape)  # (B, T)
        return alpha.index_put((rows, cols), a)

    def attention_weights(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, T) padded histories -> (B, T) STAMP's attention weights (0 at PAD)."""
        if self.variant != "stamp":
            raise ConfigError(f"stamp: the {self.variant} variant has no attention")
        x, valid = self.embed(seqs)
        return self.attention(x, valid, *self.memories(x, valid))

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, T) right-aligned padded histories -> (B, 1, d): the query ``h_s * h_t``
        (STMO: ``h_t``, from the last column alone)."""
        if self.variant == "stmo":
            x, _ = self.embed(seqs[:, -1:])  # (B, 1, d): the last click only
            return torch.tanh(self.mlp_t(x))  # h_t
        x, valid = self.embed(seqs)
        m_s, m_t = self.memories(x, valid)
        if self.variant == "stamp":
            alpha = self.attention(x, valid, m_s, m_t)  # (B, T)
            m_s = torch.bmm(alpha.unsqueeze(1), x).squeeze(1)  # m_a (B, d)
        h_s = torch.tanh(self.mlp_s(m_s))  # (B, d)
        h_t = torch.tanh(self.mlp_t(m_t))  # (B, d)
        return (h_s * h_t).unsqueeze(1)

    def output_table(self) -> tuple[torch.Tensor, None]:
        """The linear read-out ``item_scores(h) == h @ item_emb.T`` (no bias): with full
        cross-entropy the task computes the loss chunk by chunk from it, without the
        ``(N, n_items)`` score matrix."""
        return self.item_emb, None

    def item_scores(self, hidden: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(N, d) -> (N, n_items) | (N, C) for items (C,) | (N, K) for items (N, K):
        the trilinear product ``<h_s * h_t, x_i>``."""
        if items is None:
            return hidden @ self.item_emb.t()
        w = self.item_emb[items]  # (C, d) | (N, K, d): a dense gradient (torch's Adam)
        return hidden @ w.t() if items.dim() == 1 else torch.einsum("nd,nkd->nk", hidden, w)


class STAMP(PaddedSequenceModel):
    """STAMP / STMP / STMO (``variant``): the last click's MLP state times the session's
    (attended or mean) MLP state, scored against the item embeddings."""

    name = "stamp"
    Config = STAMPConfig
    required_layout = "last"
    layout_reason = "one state per prefix"
    training_defaults: ClassVar[dict[str, Any]] = {
        "layout": "last",  # every prefix of every session -> its next item
        "max_len": 50,  # the most recent items of a prefix kept (the paper: all)
        "loss": "cross-entropy",  # full softmax, as in the paper
        "negatives": "full",
        "optimizer": "adam",
        "learning_rate": 0.005,
        "batch_size": 512,
        "shuffle": True,
        "n_epochs": 30,
    }
    small_config: ClassVar[dict[str, Any]] = {
        "hidden": 8,
        "max_len": 8,
        "n_epochs": 2,
        "batch_size": 16,
    }

    def make_net(self, n_items: int, seed: int) -> STAMPNet:
        """The query is ``h_s * h_t`` (STMO: ``h_t``) of the last ``max_len`` items."""
        return STAMPNet(n_items, self.config, seed)
