"""GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018): the model.

A recurrent network over the items of a session, written from the papers and the
documented parameters of the official implementation (clean room). Item input:
``constrained_embedding = true`` (default) uses the output item weights ``Wy`` as the
input embedding; ``embedding = d`` learns a separate ``(n_items, d)`` one; neither feeds
items one-hot (the first layer's input weights are an ``(n_items, G*H0)`` row table).
``layers``: sizes of the stacked recurrent layers; ``cell``: gru | lstm | rnn. Dropout
(training only) on the input and on every layer's output; the dropped-out hidden vector
is also the state carried to the next step (``carry_dropout``: what reproduces the
official figures). Scores: ``h_last . Wy[item] + By[item]``. ``init_state``/``step``
update a session click by click; ``score`` runs whole histories; both agree.

How it learns (session-parallel batches, sampled negatives, losses, row-sparse Adagrad,
the fast step) belongs to :mod:`seqrec.training`, configured by the training keys.
State layout: ``(1, B, S)``, the last dim concatenating every layer's ``h`` (then ``c``
for lstm), so dim 1 is the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from seqrec.errors import ConfigError
from seqrec.models.base import Histories, Recommender

GATES = {"gru": 3, "lstm": 4, "rnn": 1}
READOUT_COPY_MAX_BYTES = 256 * 2**20  # largest Wy (bytes) whose Wy^T inference keeps
# training-time dropout: (x, p) -> (output, what its backward multiplies the gradient by)
Dropout = Callable[[torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class GRU4RecConfig:
    layers: tuple[int, ...] = (100,)  # recurrent layer sizes, e.g. [100], [512, 512]
    cell: Literal["gru", "lstm", "rnn"] = "gru"
    embedding: int = 0  # size of a separate input embedding (0 = none)
    constrained_embedding: bool = True  # output item weights double as input embedding
    dropout_p_embed: float = 0.0
    dropout_p_hidden: float = 0.0
    carry_dropout: bool = True  # the dropped-out hidden state is what the next step sees
    init_scale: float = 1.0  # multiplier of the Glorot-uniform init range

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise ConfigError(f"gru4rec: {msg}")

        if not self.layers or any(h <= 0 for h in self.layers):
            bad(f"layers must be a non-empty list of positive sizes, got {list(self.layers)}")
        if self.embedding < 0:
            bad("embedding must be >= 0")
        if self.embedding > 0 and self.constrained_embedding:
            bad(
                "embedding > 0 conflicts with constrained_embedding = true "
                "(set constrained_embedding = false to learn a separate embedding)"
            )
        for name in ("dropout_p_embed", "dropout_p_hidden"):
            if not 0.0 <= getattr(self, name) < 1.0:
                bad(f"{name} must be in [0, 1)")
        if self.init_scale <= 0:
            bad("init_scale must be > 0")


def _glorot(rows: int, cols: int, gates: int, scale: float, gen: torch.Generator) -> torch.Tensor:
    """(rows, gates*cols): each gate block ~ U(-s, s), s = scale*sqrt(6/(rows+cols))."""
    s = scale * math.sqrt(6.0 / (rows + cols))
    return (torch.rand(rows, gates * cols, generator=gen) * 2 - 1) * s


class GRU4RecNet(nn.Module):
    """The network: item tables (``row_params``, updated row-wise) and the recurrent
    stack (dense). ``recur`` is one time step."""

    def __init__(self, n_items: int, cfg: GRU4RecConfig, seed: int) -> None:
        super().__init__()
        self.cell = cfg.cell
        self.carry_dropout = cfg.carry_dropout
        self.p_embed, self.p_hidden = cfg.dropout_p_embed, cfg.dropout_p_hidden
        self.layers = list(cfg.layers)
        g = GATES[cfg.cell]
        gen = torch.Generator().manual_seed(seed)
        sc = cfg.init_scale
        h_last = self.layers[-1]
        if cfg.embedding > 0:
            self.input_mode, self.input_param, in0 = "embedding", "E", cfg.embedding
        elif cfg.constrained_embedding:
            self.input_mode, self.input_param, in0 = "constrained", "Wy", h_last
        else:
            self.input_mode, self.input_param, in0 = "onehot", "Wx.0", n_items
        # item tables: updated row-wise
        self.Wy = nn.Parameter(_glorot(n_items, h_last, 1, sc, gen))  # (n_items, H_last)
        self.By = nn.Parameter(torch.zeros(n_items))  # (n_items,)
        if self.input_mode == "embedding":
            self.E = nn.Parameter(_glorot(n_items, cfg.embedding, 1, sc, gen))  # (n_items, d)
        # recurrent stack: Wx[l] (in_l, g*H_l); Wh[l] (H_l, g*H_l); b[l] (g*H_l,)
        self.Wx = nn.ParameterList()
        self.Wh = nn.ParameterList()
        self.b = nn.ParameterList()
        prev = in0
        for h in self.layers:
            self.Wx.append(nn.Parameter(_glorot(prev, h, g, sc, gen)))
            self.Wh.append(nn.Parameter(_glorot(h, h, g, sc, gen)))
            self.b.append(nn.Parameter(torch.zeros(g * h)))
            prev = h
        per = 2 if cfg.cell == "lstm" else 1
        self.state_size = sum(h * per for h in self.layers)
        self.row_params = ["Wy", "By"] + ([self.input_param] if self.input_param != "Wy" else [])

    def input_table(self) -> torch.Tensor:
        """The table whose rows are the per-item input to the first layer."""
        return self.get_parameter(self.input_param)

    def recur(
        self, state: torch.Tensor, x: torch.Tensor, dropout: Dropout | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step. ``state`` (B, S); ``x`` (B, in0) the gathered input rows.

        Returns (new state (B, S), output of the last layer after dropout (B, H_last)).
        ``dropout`` (training only; None: inference) drops out the input and every
        layer's output; with ``carry_dropout`` the state carried to the next step is the
        dropped-out hidden vector, the same one fed upwards.
        """
        new_parts = []
        offset = 0
        inp = dropout(x, self.p_embed)[0] if dropout is not None and self.p_embed > 0 else x
        for layer, hsz in enumerate(self.layers):
            if layer == 0 and self.input_mode == "onehot":
                gx = inp + self.b[0]  # (B, g*H): the gathered one-hot projection
            else:
                gx = torch.addmm(self.b[layer], inp, self.Wx[layer])  # (B, g*H)
            Wh = self.Wh[layer]
            h = state[:, offset : offset + hsz]  # (B, H)
            c_new = None
            if self.cell == "gru":
                offset += hsz
                xr, xz, xn = gx.split(hsz, dim=1)
                hr, hz = (h @ Wh[:, : 2 * hsz]).split(hsz, dim=1)
                r = torch.sigmoid(xr + hr)
                z = torch.sigmoid(xz + hz)
                n = torch.tanh(xn + (r * h) @ Wh[:, 2 * hsz :])
                h_new = torch.lerp(h, n, z)  # (1 - z) * h + z * n
            elif self.cell == "lstm":
                c = state[:, offset + hsz : offset + 2 * hsz]
                offset += 2 * hsz
                i, f, o, gg = (gx + h @ Wh).split(hsz, dim=1)
                c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                h_new = torch.sigmoid(o) * torch.tanh(c_new)
            else:  # rnn
                offset += hsz
                h_new = torch.tanh(gx + h @ Wh)
            # (B, H)
            drop = dropout is not None and self.p_hidden > 0
            inp = dropout(h_new, self.p_hidden)[0] if drop else h_new
            new_parts.append(inp if self.carry_dropout else h_new)
            if c_new is not None:
                new_parts.append(c_new)
        new_state = torch.cat(new_parts, dim=1) if len(new_parts) > 1 else new_parts[0]
        return new_state, inp


class GRU4Rec(Recommender):
    """GRU4Rec with the recurrent inference API (``init_state`` / ``step``)."""

    name = "gru4rec"
    Config = GRU4RecConfig
    family = "session-parallel"
    training_defaults: ClassVar[dict[str, Any]] = dict(
        loss="cross-entropy",
        n_sample=2048,
        sample_alpha=0.5,
        optimizer="adagrad",
        learning_rate=0.05,
        batch_size=64,
        n_epochs=10,
    )
    small_config: ClassVar[dict[str, Any]] = dict(
        layers=[16], n_epochs=2, batch_size=4, n_sample=8, sample_cache=100, learning_rate=0.1
    )

    def build_net(self, n_items: int, device: torch.device, seed: int) -> None:
        self.device_ = device
        self.net_ = GRU4RecNet(n_items, self.config, seed).to(device)
        self._wy_t: torch.Tensor | None = None  # inference cache, see _readout_weights
        self._wy_key: tuple[int, int] | None = None

    def _check_training(self, keys: dict[str, Any]) -> None:
        if keys["matmul_precision"] == "bfloat16" and self.config.cell != "gru":
            raise ConfigError("gru4rec: matmul_precision = bfloat16 needs the fast step (cell gru)")

    # -- inference ----------------------------------------------------------
    def init_state(self, batch_size: int) -> torch.Tensor:
        self._check_fitted()
        return torch.zeros(1, batch_size, self.net_.state_size, device=self.device_)  # (1, B, S)

    @torch.no_grad()
    def _advance(self, state: torch.Tensor, items: torch.Tensor) -> tuple[Tensor, Tensor]:
        """state (B, S), items (B,) -> (new state (B, S), last-layer output (B, H))."""
        return self.net_.recur(state, self.net_.input_table().index_select(0, items))

    def _readout_weights(self) -> torch.Tensor:
        """``Wy^T`` (H, n_items) for the score product: outside training a contiguous copy
        (up to ``READOUT_COPY_MAX_BYTES``; small-batch products run ~2x faster on it),
        rebuilt whenever the weights are replaced or modified by torch ops."""
        wy = self.net_.Wy
        if self.in_fit or wy.numel() * wy.element_size() > READOUT_COPY_MAX_BYTES:
            return wy.detach().t()
        key = (id(wy), wy._version)
        if self._wy_t is None or self._wy_key != key:
            self._wy_t = wy.detach().t().contiguous()  # (H, n_items)
            self._wy_key = key
        return self._wy_t

    @torch.no_grad()
    def _scores(self, out: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.net_.By, out, self._readout_weights())  # (B, n_items)

    def _check_items(self, items: torch.Tensor | Any) -> torch.Tensor:
        items = torch.as_tensor(items, dtype=torch.long, device=self.device_)
        if items.numel() and (items.min() < 0 or items.max() >= self.n_items_):
            raise ConfigError("step() got item ids outside the catalogue (encode them first)")
        return items

    @torch.no_grad()
    def step(self, state: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed one item per session: (1, B, S) state, (B,) items -> (state, (B, n_items))."""
        self._check_fitted()
        new, out = self._advance(state[0], self._check_items(items))
        return new.unsqueeze(0), self._scores(out)

    @torch.no_grad()
    def advance(self, state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``step`` without the scores: (1, B, S) state, (B,) items -> (1, B, S) state."""
        self._check_fitted()
        new, _ = self._advance(state[0], self._check_items(items))
        return new.unsqueeze(0)

    # Scores are linear in a slice of the state, ``query . Wy^T + By``: a server reads a
    # session's top-K from its stored state, or searches an inner-product index.
    def query_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """(1, B, S) state -> (B, H) query: the last layer's output ``h``."""
        net = self.net_
        start = sum(h * (2 if net.cell == "lstm" else 1) for h in net.layers[:-1])
        return state[0, :, start : start + net.layers[-1]]

    @torch.no_grad()
    def scores_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """(1, B, S) state -> (B, n_items) scores: what the ``step`` into it returned."""
        self._check_fitted()
        return self._scores(self.query_from_state(state))

    def item_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The output item weights and biases ``(Wy (n_items, H), By (n_items,))``."""
        self._check_fitted()
        return self.net_.Wy.detach(), self.net_.By.detach()

    @torch.no_grad()
    def encode_histories(self, histories: Histories) -> tuple[torch.Tensor, torch.Tensor]:
        """Run each history through the network: (final state (B, S), output (B, H))."""
        self._check_fitted()
        hs = [np.asarray(h, dtype=np.int64) for h in histories]
        hs = [h[h >= 0] for h in hs]
        B = len(hs)
        lens = np.fromiter((len(h) for h in hs), dtype=np.int64, count=B)
        state = torch.zeros(B, self.net_.state_size, device=self.device_)
        out = torch.zeros(B, self.net_.layers[-1], device=self.device_)
        if B == 0 or lens.max() == 0:
            return state, out
        order = np.argsort(-lens, kind="stable")  # longest first: active rows are a prefix
        T = int(lens.max())
        pad = np.zeros((B, T), dtype=np.int64)
        for r, b in enumerate(order):
            pad[r, : lens[b]] = hs[b]
        pad_t = torch.from_numpy(pad).to(self.device_)
        sorted_lens = lens[order]
        for t in range(T):
            n_act = int((sorted_lens > t).sum())
            state[:n_act], out[:n_act] = self._advance(state[:n_act], pad_t[:n_act, t])
        inv = torch.from_numpy(np.argsort(order)).to(self.device_)
        return state.index_select(0, inv), out.index_select(0, inv)

    @torch.no_grad()
    def score(self, histories: Histories) -> torch.Tensor:
        _, out = self.encode_histories(histories)
        return self._scores(out)
