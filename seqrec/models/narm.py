"""NARM (Li et al., CIKM 2017, "Neural Attentive Session-based Recommendation"): the model.

A session ``x_1 .. x_t`` is embedded (item table ``E``, ``D`` columns; dropout after the
embedding) and read by a GRU (``H`` units, zero initial state) into hidden states
``h_1 .. h_t``. Two encoders summarise them:

* the **global** encoder is the last hidden state, ``c_g = h_t`` (the whole sequential
  behaviour, as in GRU4Rec);
* the **local** encoder attends over every hidden state of the session, conditioned on
  the last one (the user's main purpose in the session):

      e_tj = v^T sigmoid(A_1 h_t + A_2 h_j)             j = 1 .. t
      c_l  = sum_j alpha_tj h_j

  with ``A_1, A_2`` (``H x H``) and ``v`` (``H``), no biases. The paper uses the
  scores themselves as the weights, ``alpha_tj = e_tj`` (``attention = "raw"``). The
  default, ``attention = "softmax"``, normalises them over the session's real positions,
  ``alpha_tj = exp(e_tj) / sum_k exp(e_tk)``, so the weights are positive and sum to one
  (a convex combination of the states: the scale of ``c_l`` no longer grows with the
  session's length, and the weights read as an attention distribution). PAD positions
  get no weight in either form.

The session representation ``c_t = [c_g; c_l]`` (``2H``; dropout) is decoded
bilinearly against the item embeddings - the input table is shared with the output:

    S_i = E_i^T B c_t                                    B: (D x 2H)

computed as the inner product of ``E_i`` with the query ``q = B c_t`` (a ``D``-vector),
so scores are linear in the query (``query``; an inner-product index can serve them).

Padding. Batches are right-aligned with PAD on the left (:mod:`seqrec.nn.padding`). The
network packs the real items of every row (a ``PackedSequence`` built by index
arithmetic, rows sorted by length): the GRU, the attention and its sums run over the
real items only, PAD never enters the recurrence and a row costs its own length; the
attention's softmax is a per-row (segment) softmax over the packed items. An empty
history gives ``c_t = 0``: all scores 0.

Training is :mod:`seqrec.training`'s ``"sequences"`` family with the ``last`` layout
(every prefix of every session predicts its next item: the papers' prefix augmentation),
full softmax cross-entropy, Adam with learning rate 0.001 and batches of 512, as in the
paper. The net declares its read-out table (``output_table``), so the task computes the
full cross-entropy chunk by chunk without the ``(N, n_items)`` score matrix
(:func:`seqrec.training.losses.full_softmax_cross_entropy`). Sampled softmax
(``negatives = "popularity"``, ``n_sample``, ``logq = 1``) and the other losses of the
family by the loss keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from seqrec.errors import ConfigError
from seqrec.models.base import PaddedSequenceModel
from seqrec.nn.padding import embedding_ids

ATTENTIONS = ("softmax", "raw")


@dataclass(frozen=True)
class NARMConfig:
    embedding: int = 50  # D: item embeddings (input and output: shared table)
    hidden: int = 100  # H: GRU units
    dropout_embed: float = 0.25  # between the item embeddings and the GRU
    dropout_context: float = 0.5  # on c_t = [c_g; c_l], before the bilinear decoder
    attention: str = "softmax"  # "softmax" (normalised over real positions) | "raw" (paper)
    init_std: float = 0.1  # item embeddings ~ N(0, init_std^2)

    def validate(self) -> None:
        if self.embedding < 1 or self.hidden < 1:
            raise ConfigError("narm: embedding and hidden must be >= 1")
        for key in ("dropout_embed", "dropout_context"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"narm: {key} must be in [0, 1)")
        if self.init_std <= 0:
            raise ConfigError("narm: init_std must be > 0")
        if self.attention not in ATTENTIONS:
            raise ConfigError(
                f"narm: attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}"
            )


class Encoded(NamedTuple):
    """The GRU's states of a padded batch, packed: one row per real item (``M`` in all).

    ``states`` (M, H): ``h_j`` after each real item; ``rows`` (M,), ``cols`` (M,): its
    batch row and right-aligned column; ``real`` (M,) bool: False only for the one
    stand-in step of an empty history; ``last`` (B, H): ``h_t`` of every row (zero for
    an empty history)."""

    states: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    real: torch.Tensor
    last: torch.Tensor

    def padded(self, values: torch.Tensor, width: int) -> torch.Tensor:
        """(M, ...) values of the real items -> (B, width, ...) at their right-aligned
        columns, zero at PAD."""
        b = self.last.shape[0]
        out = values.new_zeros((b, width, *values.shape[1:]))
        return out.index_put((self.rows, self.cols), values * _bcast(self.real, values))


def _bcast(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(M,) bool -> a float mask broadcastable against ``like`` (M, ...)."""
    return mask.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


class NARMNet(nn.Module):
    """item_emb: (n_items + 2, D) (+ PAD, MASK rows; never read as items); gru: D -> H;
    A1, A2: (H x H); v: (H,); decoder: B (D x 2H), a bias-free Linear 2H -> D.

    The padded batch is packed once (:meth:`encode`): the GRU, the attention and the
    sums all run over the ``M`` real items only (on Diginetica's prefixes about 4 items
    per row against batches 20 to 50 columns wide)."""

    def __init__(self, n_items: int, cfg: NARMConfig, seed: int) -> None:
        super().__init__()
        self.n_items, self.softmax = n_items, cfg.attention == "softmax"
        D, H = cfg.embedding, cfg.hidden
        with torch.random.fork_rng(devices=[]):  # weights from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self.item_emb = nn.Parameter(torch.randn(n_items + 2, D) * cfg.init_std)
            self.gru = nn.GRU(D, H)
            self.A1 = nn.Linear(H, H, bias=False)
            self.A2 = nn.Linear(H, H, bias=False)
            self.v = nn.Parameter(torch.empty(H).uniform_(-(H**-0.5), H**-0.5))
            self.decoder = nn.Linear(2 * H, D, bias=False)  # B
        self.drop_embed = nn.Dropout(cfg.dropout_embed)
        self.drop_context = nn.Dropout(cfg.dropout_context)

    def encode(self, seqs: torch.Tensor) -> Encoded:
        """(B, T) right-aligned padded histories -> the GRU's states over their real items.

        The rows are sorted by length (longest first) and packed time step by time step
        (``PackedSequence``: step ``j`` holds item ``j`` of every row longer than ``j``),
        so PAD never enters the recurrence and a row costs its own length. An empty
        history runs one stand-in step (not ``real``; its ``last`` is zeroed)."""
        T, device = seqs.shape[1], seqs.device
        lengths = (seqs >= 0).sum(1).cpu()  # (B,) PAD only on the left, by convention
        order = torch.argsort(lengths, descending=True, stable=True)  # (B,) longest first
        run = lengths[order].clamp(min=1)  # (B,) steps of each sorted row
        steps = torch.arange(int(run[0]) if len(run) else 0)
        batch_sizes = (run[None, :] > steps[:, None]).sum(1)  # (S,) rows alive at step j
        j = torch.repeat_interleave(steps, batch_sizes)  # (M,) step of every packed item
        i = torch.arange(len(j)) - (torch.cumsum(batch_sizes, 0) - batch_sizes)[j]  # sorted row
        rows, cols = order[i].to(device), (T - run[i] + j).to(device)  # (M,), (M,)
        ids = seqs[rows, cols]  # (M,) item ids (PAD: the stand-in step of an empty row)
        x = self.drop_embed(self.item_emb[embedding_ids(ids, self.n_items)])  # (M, D)
        packed = PackedSequence(x, batch_sizes, order.to(device), torch.argsort(order).to(device))
        out, h_n = self.gru(packed)
        nonempty = (lengths > 0).to(device=device, dtype=x.dtype)[:, None]  # (B, 1)
        return Encoded(out.data, rows, cols, ids >= 0, h_n[-1] * nonempty)

    def attention(self, enc: Encoded) -> torch.Tensor:
        """(M,) weight alpha_tj of every real item's state in the local encoder: ``e_tj =
        v^T sigmoid(A1 h_t + A2 h_j)``, softmax-normalised over its row's real items
        (``attention = "softmax"``) or raw; zero for the stand-in step of an empty row."""
        rows, real = enc.rows, enc.real
        gate = torch.sigmoid(self.A1(enc.last)[rows] + self.A2(enc.states))  # (M, H)
        e = gate @ self.v  # (M,)
        if not self.softmax:
            return e * real.to(e.dtype)
        b = enc.last.shape[0]  # softmax per row: shift by the row's max (no gradient)
        top = e.new_full((b,), -torch.inf).scatter_reduce(0, rows, e.detach(), "amax")
        w = torch.exp(e - top[rows]) * real.to(e.dtype)  # (M,)
        total = e.new_zeros(b).index_add(0, rows, w)  # (B,)
        return w / total.clamp(min=torch.finfo(e.dtype).tiny)[rows]

    def context(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, 2H): c_t = [c_g; c_l] (before dropout)."""
        if seqs.shape[0] == 0:  # no history at all: nothing to run the GRU on
            return self.item_emb.new_zeros((0, 2 * self.gru.hidden_size))
        enc = self.encode(seqs)
        alpha = self.attention(enc)  # (M,)
        local = torch.zeros_like(enc.last).index_add(0, enc.rows, alpha[:, None] * enc.states)
        return torch.cat([enc.last, local], dim=1)  # c_l = sum_j alpha_tj h_j

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, T) padded histories -> (B, 1, D): the query ``B c_t`` of each history."""
        return self.decoder(self.drop_context(self.context(seqs)))[:, None, :]

    def item_scores(self, hidden: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D) -> (N, n_items) | (N, C) for items (C,) | (N, K) for items (N, K):
        ``E_i . q``."""
        if items is None:
            return hidden @ self.item_emb[: self.n_items].t()
        w = self.item_emb[items]  # (C, D) | (N, K, D)
        return hidden @ w.t() if items.dim() == 1 else torch.einsum("nd,nkd->nk", hidden, w)

    def output_table(self) -> tuple[torch.Tensor, None]:
        """``(E (n_items, D), no bias)``: ``item_scores(q) == q @ E.T`` (the training task
        computes full cross-entropy from it without the (N, n_items) score matrix)."""
        return self.item_emb[: self.n_items], None


class NARM(PaddedSequenceModel):
    """NARM: a GRU with a global (last state) and an attentive local encoder, decoded
    bilinearly against the item embeddings."""

    name = "narm"
    Config = NARMConfig
    training_defaults: ClassVar[dict[str, Any]] = {
        "layout": "last",  # every prefix of every session -> its next item
        "max_len": 50,  # the most recent items read (also at inference)
        "loss": "cross-entropy",  # full softmax, as in the paper
        "negatives": "full",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 512,
        "shuffle": True,
        "n_epochs": 30,
    }
    small_config: ClassVar[dict[str, Any]] = {
        "embedding": 8,
        "hidden": 8,
        "max_len": 8,
        "n_epochs": 2,
        "batch_size": 16,
    }

    def make_net(self, n_items: int, seed: int) -> NARMNet:
        """The query is ``B c_t`` of each history's last ``max_len`` items."""
        return NARMNet(n_items, self.config, seed)
