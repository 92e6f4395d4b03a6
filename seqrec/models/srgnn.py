"""SR-GNN (Wu, Tang, Zhu, Wang, Xie & Tan, AAAI 2019): the model.

Session-based recommendation with graph neural networks. Each session (here: the last
``max_len`` items of a history) becomes a directed **session graph**: its distinct
items are the nodes, and every pair of consecutive clicks ``v_{s,i-1} -> v_{s,i}`` is
an edge. Two ``n x n`` matrices describe it (``n`` the number of distinct items):

* ``A_out[i, j]``: how often the edge ``i -> j`` occurs, divided by the out-degree of
  ``i`` (the number of edges leaving ``i``, repetitions included), so every row with an
  outgoing edge sums to one;
* ``A_in[i, j]``: how often the edge ``j -> i`` occurs, divided by the in-degree of
  ``i`` (edges arriving at ``i``, repetitions included).

The paper: "we assign each edge with a normalized weighting, which is calculated as the
occurrence of the edge divided by the outdegree of that edge's start node". With
``repeated_edges = "count"`` (the default) an edge that occurs twice weighs twice, as
written; ``repeated_edges = "once"`` gives every distinct edge the weight 1 before the
normalisation (each row then spreads evenly over the distinct neighbours). Worked
example, the session ``[5, 6, 5, 6, 5, 7]``: nodes (sorted by item id) ``5, 6, 7``;
edges ``5->6`` (twice), ``6->5`` (twice), ``5->7`` (once)::

                 count                        once
    A_out   5: [0, 2/3, 1/3]            5: [0, 1/2, 1/2]
            6: [1, 0,   0  ]            6: [1, 0,   0  ]
            7: [0, 0,   0  ]            7: [0, 0,   0  ]   (7 is the last click)
    A_in    5: [0, 1, 0]  (from 6, twice)    the same: every node receives
            6: [1, 0, 0]  (from 5, twice)    from one distinct node only
            7: [1, 0, 0]  (from 5)

A click on the same item twice in a row is a self-loop ``i -> i``.

**Gated graph neural network** (``gnn_steps`` propagation steps, paper: 1). The node
vectors start as the item embeddings, ``v^0_i = e_i``; each step gathers the messages
along the incoming and the outgoing edges with learned weights and biases and updates
every node with GRU gates (paper eq. 1-5)::

    a_i   = [ (A_in V) W_in + b_in ; (A_out V) W_out + b_out ]_i      (2d)
    z_i   = sigmoid(W_z a_i + U_z v_i + b_z)                           update gate
    r_i   = sigmoid(W_r a_i + U_r v_i + b_r)                           reset gate
    v~_i  = tanh(W_o a_i + U_o (r_i * v_i) + b_o)
    v_i  <- (1 - z_i) * v_i + z_i * v~_i

(The paper's gates have no biases; ``b_z``, ``b_r``, ``b_o`` are the usual GRU biases,
learned from zero.)

**Readout** (paper eq. 6-8). Every click ``i = 1..t`` of the session takes its node's
vector ``v_i`` (a repeated item counts once per occurrence); the last click gives the
local interest ``s_l = v_t``; soft attention gives the global one::

    alpha_i = q^T sigmoid(W_1 v_t + W_2 v_i + c)
    s_g     = sum_i alpha_i v_i
    s_h     = W_3 [s_l ; s_g]                                          (d)
    z_j     = <s_h, e_j>              the score of item j: its embedding

The scores are the inner product of ``s_h`` with the item embedding table (the nodes'
initial vectors), so every loss of the padded-sequence task and serving's linear
read-out apply. The paper's softmax cross-entropy over the catalogue is the default.

Batches. A batch is ``(B, T)`` right-aligned windows, PAD (-1) on the left. Everything
is vectorised over the batch: each row's items are sorted, the first occurrence of each
distinct item becomes a node (nodes of a row ordered by item id), ``alias[b, t]`` is the
node of position ``t``; the edges of all rows are counted into one ``(B, N, N)`` tensor
(``N`` the most distinct items of any row) with one ``bincount``; the messages are two
batched products with it. The dense layers (messages, gates, attention) run on the real
nodes and clicks only, packed into ``(R, d)`` / ``(P, d)`` rows: a batch is as wide as
its longest window, several times the mean one on the SR-GNN files. Padding nodes have
no edges and PAD positions are not clicks, so extra left padding (or a wider batch
neighbour) leaves every state unchanged.

Training is :mod:`seqrec.training`'s ``"sequences"`` family with the ``last`` layout
(every prefix of every session, its next item: the paper's samples), full
cross-entropy, Adam 0.001 with L2 1e-5 (``weight_decay``), batch 100, hidden 100, and
the paper's learning-rate decay (x 0.1 every 3 epochs: ``lr_decay_step = 3``,
``lr_decay = 0.1``). Weights are initialised ``U(-1/sqrt(d), 1/sqrt(d))`` (``init =
"uniform"``); ``init = "normal"`` draws them from ``N(0, 0.1^2)``, as the paper's text
says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqrec.errors import ConfigError
from seqrec.models.base import PaddedSequenceModel
from seqrec.nn.padding import PAD

REPEATED_EDGES = ("count", "once")
INITS = ("uniform", "normal")


@dataclass(frozen=True)
class SRGNNConfig:
    hidden: int = 100  # d: item embeddings, node vectors, session vector
    gnn_steps: int = 1  # propagation steps of the gated GNN (paper: 1)
    repeated_edges: str = "count"  # "count": an edge's weight is its occurrences; "once": 1
    init: str = "uniform"  # "uniform": U(-1/sqrt(d), 1/sqrt(d)); "normal": N(0, 0.1^2)

    def validate(self) -> None:
        if self.hidden < 1 or self.gnn_steps < 0:
            raise ConfigError("srgnn: hidden must be >= 1 and gnn_steps >= 0")
        if self.repeated_edges not in REPEATED_EDGES:
            raise ConfigError(
                f"srgnn: repeated_edges must be one of {', '.join(REPEATED_EDGES)}, "
                f"got {self.repeated_edges!r}"
            )
        if self.init not in INITS:
            raise ConfigError(f"srgnn: init must be one of {', '.join(INITS)}, got {self.init!r}")


def session_graphs(seqs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The nodes of every row's session graph.

    ``seqs``: ``(B, T)`` right-aligned windows (negative ids: padding). Returns
    ``nodes`` ``(B, N)`` (the distinct items of each row in increasing order, PAD past
    the row's ``n_b`` nodes; ``N = max(1, max_b n_b)``), ``alias`` ``(B, T)`` (the node
    of every position, -1 at padding) and ``n_nodes`` ``(B,)``."""
    B = seqs.shape[0]
    valid = seqs >= 0
    s, perm = torch.sort(seqs.masked_fill(~valid, PAD), dim=1)  # padding first
    prev = torch.cat([torch.full_like(s[:, :1], PAD), s[:, :-1]], dim=1)
    first = (s >= 0) & (s != prev)  # (B, T) the first occurrence of each distinct item
    node_sorted = torch.cumsum(first, dim=1) - 1  # (B, T): -1 before the first item
    alias = torch.empty_like(seqs).scatter_(1, perm, node_sorted)  # back to time order
    alias = alias.masked_fill(~valid, -1)
    n_nodes = first.sum(dim=1)  # (B,)
    N = max(1, int(n_nodes.max())) if B else 1
    nodes = torch.full((B, N), PAD, dtype=seqs.dtype, device=seqs.device)
    rows, cols = first.nonzero(as_tuple=True)
    nodes[rows, node_sorted[rows, cols]] = s[rows, cols]
    return nodes, alias, n_nodes


def adjacency(alias: Tensor, n_nodes: int, repeated_edges: str = "count") -> tuple[Tensor, Tensor]:
    """``(A_in, A_out)``, each ``(B, N, N)`` float32, of the session graphs whose
    positions map to nodes by ``alias`` ``(B, T)`` (-1: padding; ``N = n_nodes``).

    ``A_out[b, i, j]`` = edges ``i -> j`` / out-degree of ``i``; ``A_in[b, i, j]`` =
    edges ``j -> i`` / in-degree of ``i``; an edge joins two consecutive real positions.
    ``repeated_edges``: ``"count"`` counts every occurrence of an edge (degrees too);
    ``"once"`` counts each distinct edge once. Rows of nodes without such edges are 0."""
    B = alias.shape[0]
    N = n_nodes
    src, dst = alias[:, :-1], alias[:, 1:]  # (B, T - 1)
    edge = (src >= 0) & (dst >= 0)
    rows = torch.arange(B, device=alias.device)[:, None].expand_as(src)
    flat = ((rows * N + src) * N + dst)[edge]  # (E,)
    counts = torch.bincount(flat, minlength=B * N * N).view(B, N, N).to(torch.float32)
    if repeated_edges == "once":
        counts = (counts > 0).to(torch.float32)
    a_out = counts / counts.sum(dim=2, keepdim=True).clamp(min=1.0)
    incoming = counts.transpose(1, 2)  # [b, i, j]: edges j -> i
    a_in = incoming / incoming.sum(dim=2, keepdim=True).clamp(min=1.0)
    return a_in, a_out


class SRGNNNet(nn.Module):
    """item_emb: (n_items, d), the nodes' initial vectors and the output layer;
    w_in, w_out: (d -> d) message weights with biases; gate_a: (2d -> 3d), gate_v:
    (d -> 2d), cand_v: (d -> d) the GRU gates; w1 (d -> d), w2 (d -> d, bias c),
    q (d -> 1), w3 (2d -> d) the readout."""

    def __init__(self, n_items: int, cfg: SRGNNConfig, seed: int) -> None:
        super().__init__()
        d = cfg.hidden
        self.n_items, self.d, self.steps = n_items, d, cfg.gnn_steps
        self.repeated_edges = cfg.repeated_edges
        with torch.random.fork_rng(devices=[]):  # weights from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self.item_emb = nn.Parameter(torch.empty(n_items, d))
            self.w_in = nn.Linear(d, d)
            self.w_out = nn.Linear(d, d)
            self.gate_a = nn.Linear(2 * d, 3 * d)  # W_z, W_r, W_o applied to a
            self.gate_v = nn.Linear(d, 2 * d, bias=False)  # U_z, U_r applied to v
            self.cand_v = nn.Linear(d, d, bias=False)  # U_o applied to r * v
            self.w1 = nn.Linear(d, d, bias=False)
            self.w2 = nn.Linear(d, d)  # its bias is the paper's c
            self.q = nn.Linear(d, 1, bias=False)
            self.w3 = nn.Linear(2 * d, d, bias=False)
            for p in self.parameters():
                if cfg.init == "uniform":
                    bound = 1.0 / math.sqrt(d)
                    nn.init.uniform_(p, -bound, bound)
                else:
                    nn.init.normal_(p, 0.0, 0.1)

    def gnn_step(self, v: Tensor, a_in: Tensor, a_out: Tensor, real: Tensor) -> Tensor:
        """One gated propagation step of the real nodes: (R, d) -> (R, d). ``real``:
        (R,) the flat index ``b * N + i`` of each real node in the ``(B, N)`` node grid
        of the adjacency matrices ``(B, N, N)``."""
        B, N, _ = a_in.shape
        grid = v.new_zeros(B * N, self.d).index_copy(0, real, v).view(B, N, self.d)
        m_in = (a_in @ grid).view(B * N, self.d)[real]  # (R, d): sum_j A_in[i, j] v_j
        m_out = (a_out @ grid).view(B * N, self.d)[real]
        a = torch.cat([self.w_in(m_in), self.w_out(m_out)], dim=-1)  # (R, 2d)
        ga = self.gate_a(a)  # (R, 3d): W_z a + b_z, W_r a + b_r, W_o a + b_o
        gv = self.gate_v(v)  # (R, 2d): U_z v, U_r v
        d = self.d
        z = torch.sigmoid(ga[:, :d] + gv[:, :d])
        r = torch.sigmoid(ga[:, d : 2 * d] + gv[:, d:])
        cand = torch.tanh(ga[:, 2 * d :] + self.cand_v(r * v))
        return v + z * (cand - v)  # (1 - z) v + z v~

    def forward(self, seqs: Tensor) -> Tensor:
        """(B, T) right-aligned padded histories -> (B, 1, d): s_h of each window (the
        last column is the last click; an empty window gives zeros).

        The dense layers run on the real nodes and clicks only, packed (``R`` nodes,
        ``P`` clicks in the batch), not on the ``(B, N)`` / ``(B, T)`` grids: a batch's
        width is its longest window, several times the mean one."""
        B = seqs.shape[0]
        nodes, alias, _ = session_graphs(seqs)  # (B, N), (B, T)
        N = nodes.shape[1]
        a_in, a_out = adjacency(alias, N, self.repeated_edges)  # (B, N, N) each
        flat = nodes.view(-1)
        real = (flat >= 0).nonzero().squeeze(1)  # (R,) b * N + i of the real nodes
        v = self.item_emb[flat[real]]  # (R, d) v^0: the items' embeddings
        for _ in range(self.steps):
            v = self.gnn_step(v, a_in, a_out, real)
        packed = torch.full_like(flat, -1).index_copy_(
            0, real, torch.arange(len(real), device=flat.device)
        )
        rows = torch.arange(B, device=seqs.device)[:, None]
        node_of = torch.where(
            alias >= 0, packed[(rows * N + alias.clamp(min=0)).view(-1)].view_as(alias), -1
        )  # (B, T): packed node of each click
        click_rows, click_cols = (node_of >= 0).nonzero(as_tuple=True)  # (P,) each
        h = v[node_of[click_rows, click_cols]]  # (P, d): v_i of every click, repeats too
        has_last = node_of[:, -1] >= 0  # (B,) False: an empty window
        last = v.new_zeros(B, self.d).index_copy(
            0, has_last.nonzero().squeeze(1), v[node_of[has_last, -1]]
        )  # (B, d) s_l = v_t
        e = torch.sigmoid(self.w1(last)[click_rows] + self.w2(h))  # (P, d)
        alpha = self.q(e)  # (P, 1)
        s_g = v.new_zeros(B, self.d).index_add(0, click_rows, alpha * h)  # (B, d)
        return self.w3(torch.cat([last, s_g], dim=-1)).unsqueeze(1)  # (B, 1, d)

    def item_scores(self, hidden: Tensor, items: Tensor | None = None) -> Tensor:
        """(N, d) -> (N, n_items) | (N, C) for items (C,) | (N, K) for items (N, K):
        the inner product with the item embeddings."""
        if items is None:
            return hidden @ self.item_emb.t()
        w = self.item_emb[items]  # (C, d) | (N, K, d)
        return hidden @ w.t() if items.dim() == 1 else torch.einsum("nd,nkd->nk", hidden, w)

    def output_table(self) -> tuple[Tensor, None]:
        """``(item embeddings (n_items, d), no bias)``: ``item_scores(h) == h @ E.T``, so the
        training task computes full cross-entropy chunk by chunk, without the (N, n_items)
        score matrix."""
        return self.item_emb, None


class SRGNN(PaddedSequenceModel):
    """SR-GNN: a gated GNN over the session graph, attention readout with the last click."""

    name = "srgnn"
    Config = SRGNNConfig
    required_layout = "last"
    layout_reason = "one session state per sample"
    training_defaults: ClassVar[dict[str, Any]] = {
        "layout": "last",  # every prefix of every session -> its next item
        "max_len": 200,  # the window (longer than the SR-GNN files' sessions: whole sessions)
        "loss": "cross-entropy",  # the paper: softmax over the whole catalogue
        "negatives": "full",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "weight_decay": 1e-5,  # the paper's L2 penalty
        "lr_decay_step": 3,  # the paper: x 0.1 every 3 epochs
        "lr_decay": 0.1,
        "batch_size": 100,
        "shuffle": True,
        "n_epochs": 30,
    }
    small_config: ClassVar[dict[str, Any]] = {
        "hidden": 8,
        "max_len": 8,
        "n_epochs": 2,
        "batch_size": 16,
    }

    def make_net(self, n_items: int, seed: int) -> SRGNNNet:
        """The query is ``s_h`` of each history's last ``max_len`` items."""
        return SRGNNNet(n_items, self.config, seed)
