"""GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018).

A recurrent network over the items of a session. Written from the papers and the
documented parameters of the official implementation (clean room).

* Item input: ``embedding = 0`` and ``constrained_embedding = false`` feeds items
  one-hot, i.e. the first recurrent layer's input weights are an ``(n_items, G*H0)``
  table (``G`` gates) whose rows are gathered; ``embedding = d`` learns a separate
  ``(n_items, d)`` embedding; ``constrained_embedding = true`` (default) uses the
  output item weights ``Wy`` as the input embedding as well.
* ``layers``: sizes of the stacked recurrent layers; ``cell``: gru | lstm | rnn.
* Dropout on the input embedding and on every layer's output; in training the
  dropped-out hidden vector is also the state carried to the next step
  (``carry_dropout``, on by default: it is what reproduces the official figures).
* Scores: ``h_last . Wy[item] + By[item]`` (optionally through ELU(``elu_param``) in
  the loss).
* Training: session-parallel mini-batches (:mod:`seqrec.batching`), in-batch targets as
  negatives plus ``n_sample`` shared negatives drawn from popularity^``sample_alpha``
  (:mod:`seqrec.sampling`), ranking losses (:mod:`seqrec.losses`), and Adagrad with
  momentum (or Adam) that updates only the item rows a step touched
  (:mod:`seqrec.optim`). Gradients flow through one time step (the carried state is
  detached), as in GRU4Rec.
* Inference: ``init_state``/``step`` update a session click by click in O(1);
  ``score`` runs whole histories. Both give the same scores.

State layout: a tensor ``(1, B, S)`` whose last dim concatenates every layer's state
(``h`` for gru/rnn, ``h`` then ``c`` for lstm), so dim 1 is the batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqrec import fused
from seqrec.batching import ParallelPlan, session_parallel_plan
from seqrec.config import config_to_dict
from seqrec.data.idmap import ItemIndex
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, DataError
from seqrec.losses import get_loss
from seqrec.models.base import Histories, Recommender, resolve_device
from seqrec.optim import AdagradM, RowAdam, RowOptimizer
from seqrec.sampling import PopularitySampler
from seqrec.sysmem import keep_freed_memory

log = logging.getLogger(__name__)

GATES = {"gru": 3, "lstm": 4, "rnn": 1}

# Largest item table (bytes) for which inference keeps a contiguous copy of Wy^T.
READOUT_COPY_MAX_BYTES = 256 * 2**20


@dataclass(frozen=True)
class GRU4RecConfig:
    layers: tuple[int, ...] = (100,)  # recurrent layer sizes, e.g. [100], [512, 512]
    cell: Literal["gru", "lstm", "rnn"] = "gru"
    embedding: int = 0  # size of a separate input embedding (0 = none)
    constrained_embedding: bool = True  # output item weights double as input embedding
    loss: Literal["cross-entropy", "bpr-max", "top1-max", "bpr", "top1"] = "cross-entropy"
    bpreg: float = 1.0  # score regularisation of bpr-max
    elu_param: float = 0.0  # >0: ELU(alpha) on scores before the loss (bpr-max setups)
    logq: float = 0.0  # logQ correction strength for cross-entropy
    n_sample: int = 2048  # shared extra negatives per mini-batch (0 = in-batch only)
    sample_alpha: float = 0.5  # negatives ~ support^alpha (0 uniform, 1 popularity)
    sample_cache: int = 10_000_000  # draws pre-computed at a time
    mask_false_negatives: bool = False  # ignore negatives that equal the row's own target
    dropout_p_embed: float = 0.0
    dropout_p_hidden: float = 0.0
    carry_dropout: bool = True  # the dropped-out hidden state is what the next step sees
    optimizer: Literal["adagrad", "adam"] = "adagrad"
    learning_rate: float = 0.05
    momentum: float = 0.0  # Adagrad momentum
    n_epochs: int = 10
    batch_size: int = 64
    shuffle: bool = False  # shuffle session order every epoch (default: time order)
    init_scale: float = 1.0  # multiplier of the Glorot-uniform init range
    seed: int = 42
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    patience: int = 0  # early stopping on valid recall@20 (0 = off)
    eval_batch_size: int = 512
    # intra-op CPU threads of the training steps; 0 = auto (see train_threads)
    threads: int = 0
    # training step: true = the fast manual-backward step (seqrec.models.gru4rec_step)
    # whenever it supports the config (cell gru; otherwise the autograd step is used,
    # logged at debug level); false = the autograd reference step. The two give the
    # same results up to float rounding.
    fast_step: bool = True
    # dtype of the training step's matrix products: "float32" (default) or "bfloat16"
    # (operands rounded to bfloat16, products accumulated in float32 and returned in
    # bfloat16; weights, optimiser state, loss and evaluation stay float32). Fast step
    # only. ~2.4x the matmul rate on CPUs with AVX512-BF16/AMX and on GPUs.
    matmul_precision: Literal["float32", "bfloat16"] = "float32"

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
        if self.n_sample < 0:
            bad("n_sample must be >= 0")
        if self.sample_alpha < 0:
            bad("sample_alpha must be >= 0")
        if self.sample_cache < 1:
            bad("sample_cache must be >= 1")
        if self.learning_rate <= 0:
            bad("learning_rate must be > 0")
        if not 0.0 <= self.momentum < 1.0:
            bad("momentum must be in [0, 1)")
        if self.n_epochs < 0:
            bad("n_epochs must be >= 0")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            bad("batch_size and eval_batch_size must be >= 1")
        if self.elu_param < 0 or self.bpreg < 0 or self.logq < 0:
            bad("elu_param, bpreg and logq must be >= 0")
        if self.init_scale <= 0:
            bad("init_scale must be > 0")
        if self.patience < 0:
            bad("patience must be >= 0")
        if not isinstance(self.fast_step, bool):
            bad("fast_step must be true or false")
        if self.threads < 0:
            bad("threads must be >= 0 (0 = auto)")
        if self.matmul_precision not in ("float32", "bfloat16"):
            bad(f"matmul_precision must be float32 or bfloat16, got {self.matmul_precision!r}")
        if self.matmul_precision == "bfloat16" and (not self.fast_step or self.cell != "gru"):
            bad("matmul_precision = bfloat16 needs the fast step (fast_step = true, cell gru)")


def _glorot(rows: int, cols: int, gates: int, scale: float, gen: torch.Generator) -> torch.Tensor:
    """(rows, gates*cols): each gate block ~ U(-s, s), s = scale*sqrt(6/(rows+cols))."""
    s = scale * math.sqrt(6.0 / (rows + cols))
    return (torch.rand(rows, gates * cols, generator=gen) * 2 - 1) * s


def train_dropout(x: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-time dropout of ``x`` with probability ``p``: (output, what its backward
    multiplies the gradient with), the same in the autograd and in the fast step.

    CPU: ``x * noise`` with noise 0 or ``1 / (1 - p)`` from a counter-based generator
    (:func:`seqrec.fused.dropout_noise`: the compiled kernel, or its torch twin that draws
    the same noise bit for bit) and one 64-bit seed drawn from torch's default generator
    per call, so ``torch.manual_seed`` and checkpoints reproduce it.
    CUDA: ``torch.native_dropout`` (what ``F.dropout`` calls there; boolean mask).
    """
    if x.device.type == "cuda":
        return torch.native_dropout(x, p, True)  # (output, bool mask)
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    noise = fused.dropout_noise(torch.empty_like(x), seed, 1 - p)
    return x * noise, noise


class GRU4RecNet(nn.Module):
    """The network: item tables (row-updated) and the recurrent stack (dense)."""

    def __init__(self, n_items: int, cfg: GRU4RecConfig) -> None:
        super().__init__()
        self.cell = cfg.cell
        self.carry_dropout = cfg.carry_dropout
        self.layers = list(cfg.layers)
        g = GATES[cfg.cell]
        gen = torch.Generator().manual_seed(cfg.seed)
        sc = cfg.init_scale
        h_last = self.layers[-1]
        if cfg.embedding > 0:
            self.input_mode = "embedding"
            in0 = cfg.embedding
        elif cfg.constrained_embedding:
            self.input_mode = "constrained"
            in0 = h_last
        else:
            self.input_mode = "onehot"
            in0 = n_items
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
        self.row_params = (
            ["Wy", "By"]
            + (["E"] if self.input_mode == "embedding" else [])
            + (["Wx.0"] if self.input_mode == "onehot" else [])
        )

    def input_table(self) -> torch.Tensor:
        """The table whose rows are the per-item input to the first layer."""
        return {
            "embedding": getattr(self, "E", None),
            "constrained": self.Wy,
            "onehot": self.Wx[0],
        }[self.input_mode]

    def recur(
        self, state: torch.Tensor, x: torch.Tensor, p_embed: float, p_hidden: float, train: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step. ``state`` (B, S); ``x`` (B, in0) the gathered input rows.

        Returns (new state (B, S), output of the last layer after dropout (B, H_last)).
        With ``carry_dropout`` (training only) the state carried to the next step is the
        dropped-out hidden vector, the same one fed upwards.
        """
        new_parts = []
        offset = 0
        inp = train_dropout(x, p_embed)[0] if p_embed > 0 and train else x
        for layer, hsz in enumerate(self.layers):
            if layer == 0 and self.input_mode == "onehot":
                gx = inp + self.b[0]  # (B, g*H): the gathered one-hot projection
            else:
                gx = torch.addmm(self.b[layer], inp, self.Wx[layer])  # (B, g*H)
            Wh = self.Wh[layer]
            if self.cell == "gru":
                h = state[:, offset : offset + hsz]  # (B, H)
                offset += hsz
                xr, xz, xn = gx.split(hsz, dim=1)
                hr, hz = (h @ Wh[:, : 2 * hsz]).split(hsz, dim=1)
                r = torch.sigmoid(xr + hr)
                z = torch.sigmoid(xz + hz)
                n = torch.tanh(xn + (r * h) @ Wh[:, 2 * hsz :])
                h_new = torch.lerp(h, n, z)  # (1 - z) * h + z * n
                c_new = None
            elif self.cell == "lstm":
                h = state[:, offset : offset + hsz]
                c = state[:, offset + hsz : offset + 2 * hsz]
                offset += 2 * hsz
                gates = gx + h @ Wh
                i, f, o, gg = gates.split(hsz, dim=1)
                c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                h_new = torch.sigmoid(o) * torch.tanh(c_new)
            else:  # rnn
                h = state[:, offset : offset + hsz]
                offset += hsz
                h_new = torch.tanh(gx + h @ Wh)
                c_new = None
            # (B, H)
            inp = train_dropout(h_new, p_hidden)[0] if p_hidden > 0 and train else h_new
            new_parts.append(inp if self.carry_dropout else h_new)
            if c_new is not None:
                new_parts.append(c_new)
        new_state = torch.cat(new_parts, dim=1) if len(new_parts) > 1 else new_parts[0]
        return new_state, inp


# auto threads: steps with batch_size * largest layer up to this use one intra-op thread
SMALL_STEP_WORK = 4096


def train_threads(cfg: GRU4RecConfig) -> int:
    """Intra-op threads for the CPU training steps of ``cfg`` (0 = leave torch's setting).

    ``threads > 0`` is taken as given. Auto (``threads = 0``): one thread when the step
    is small (``batch_size * max(layers) <= SMALL_STEP_WORK``, e.g. batch 32 with [100]),
    torch's current setting otherwise. A small step's matmuls are too short to pay for
    waking a second OpenMP thread at every op, and the core left free draws the next
    negative-sample cache in the background. Measured on 2 cores (benchmarks/PROFILE.md):
    batch 32 [100] 15-17k events/s with 1 thread against 10-17k with 2; batch 128 [100]
    25k with 1 thread against 34-40k with 2.
    """
    if cfg.threads > 0:
        return cfg.threads
    if cfg.batch_size * max(cfg.layers) <= SMALL_STEP_WORK:
        return 1
    return 0


class _Task:
    """GRU4Rec's plug-in for the training loop (seqrec.training.TrainTask)."""

    def __init__(
        self, model: GRU4Rec, train: SessionLog, valid: SessionLog | Samples | None
    ) -> None:
        cfg = model.config
        self.model = model
        self.cfg = cfg
        self.net = model.net_
        self.device = model.device_
        self.train_log = train
        self.valid = valid
        counts = train.item_counts(model.n_items_)
        from seqrec.sampling import spare_core

        # CPU threads of the training steps, set while an epoch's batches are consumed
        self.threads = train_threads(cfg) if self.device.type == "cpu" else 0
        self.sampler = PopularitySampler(
            counts,
            cfg.sample_alpha,
            cfg.n_sample,
            cache_size=cfg.sample_cache,
            seed=cfg.seed,
            device=self.device,
            # the next cache is drawn in a thread while this one is used (same draws),
            # when a CPU core is left over by torch's threads
            background=self.device.type == "cpu" and spare_core(self.threads or None),
        )
        self.log_q = self.sampler.log_prob.to(self.device) if cfg.logq > 0 else None
        self.loss_fn = get_loss(cfg.loss)
        params = dict(self.net.named_parameters())
        self.row_names = self.net.row_params
        self.dense_names = [n for n in params if n not in self.row_names]
        opt_params = {n: p for n, p in params.items()}
        self.opt: RowOptimizer = (
            AdagradM(opt_params, cfg.learning_rate, cfg.momentum)
            if cfg.optimizer == "adagrad"
            else RowAdam(opt_params, cfg.learning_rate)
        )
        self.params = params
        self.state: torch.Tensor | None = None
        self._plans: dict[int, ParallelPlan] = {}
        from seqrec.models.gru4rec_step import make_fast_step

        self.fast_step = make_fast_step(self)  # None: the autograd step below

    # -- TrainTask protocol -------------------------------------------------
    def plan(self, epoch: int) -> ParallelPlan:
        if epoch not in self._plans:
            self._plans.clear()
            order = None
            if self.cfg.shuffle:
                rng = np.random.default_rng(self.cfg.seed + 1000 + epoch)
                order = rng.permutation(self.train_log.n_sessions)
            self._plans[epoch] = session_parallel_plan(self.train_log, self.cfg.batch_size, order)
        return self._plans[epoch]

    def n_events(self, epoch: int) -> int:
        return self.plan(epoch).n_pairs

    def batches(
        self, epoch: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]]:
        plan = self.plan(epoch)
        self.net.train()
        dev = self.device
        B = self.cfg.batch_size
        self.state = torch.zeros(B, self.net.state_size, device=dev)
        inputs = torch.from_numpy(plan.inputs).to(dev)
        targets = torch.from_numpy(plan.targets).to(dev)
        resets = torch.from_numpy(plan.resets).to(dev)
        full = (plan.targets >= 0).all(axis=1)
        if self.fast_step is not None:
            self.fast_step.refresh()  # the weights may have been loaded since the last step
        previous = torch.get_num_threads()
        if self.threads and self.threads != previous:
            torch.set_num_threads(self.threads)
        try:
            for t in range(plan.n_steps):
                yield inputs[t], targets[t], resets[t], bool(full[t])
        finally:
            if torch.get_num_threads() != previous:
                torch.set_num_threads(previous)

    def train_step(
        self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]
    ) -> tuple[torch.Tensor, int]:
        if self.fast_step is not None:
            return self.fast_step(batch)
        inp, tgt, reset, full = batch
        cfg, net = self.cfg, self.net
        assert self.state is not None
        state = self.state.masked_fill(reset.unsqueeze(1), 0.0)  # (B, S) new sessions start at 0
        if not full:  # end of epoch: some slots are idle
            active = (tgt >= 0).nonzero().squeeze(1)
            inp, tgt, state_in = inp[active], tgt[active], state[active]
        else:
            active, state_in = None, state
        n = tgt.shape[0]
        neg = self.sampler.sample()  # (S,)
        cand = torch.cat([tgt, neg]) if neg.numel() else tgt  # (C,) = (B + S,)

        # gather the touched rows of the item tables as leaf tensors
        leaves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        Wy = self.params["Wy"].data
        By = self.params["By"].data
        if net.input_mode == "constrained":
            rows, inv = torch.unique(torch.cat([inp, cand]), return_inverse=True)
            wy = Wy.index_select(0, rows).requires_grad_()
            by = By.index_select(0, rows).requires_grad_()
            x = wy.index_select(0, inv[:n])  # (B, H)
            w_c = wy.index_select(0, inv[n:])  # (C, H)
            b_c = by.index_select(0, inv[n:])  # (C,)
            leaves["Wy"] = (rows, wy)
            leaves["By"] = (rows, by)
        else:
            rows_o, inv_o = torch.unique(cand, return_inverse=True)
            wy = Wy.index_select(0, rows_o).requires_grad_()
            by = By.index_select(0, rows_o).requires_grad_()
            w_c, b_c = wy.index_select(0, inv_o), by.index_select(0, inv_o)
            leaves["Wy"] = (rows_o, wy)
            leaves["By"] = (rows_o, by)
            name = "E" if net.input_mode == "embedding" else "Wx.0"
            rows_i, inv_i = torch.unique(inp, return_inverse=True)
            tab = self.params[name].data.index_select(0, rows_i).requires_grad_()
            x = tab.index_select(0, inv_i)
            leaves[name] = (rows_i, tab)

        new_state, out = net.recur(state_in, x, cfg.dropout_p_embed, cfg.dropout_p_hidden, True)
        scores = torch.addmm(b_c, out, w_c.t())  # (B, C)
        if cfg.elu_param > 0:
            scores = F.elu(scores, alpha=cfg.elu_param)
        log_q = self.log_q.index_select(0, cand) if self.log_q is not None else None
        mask = None
        if cfg.mask_false_negatives:
            mask = cand.unsqueeze(0) == tgt.unsqueeze(1)  # (B, C)
            mask.fill_diagonal_(False)
        loss = self.loss_fn(scores, log_q=log_q, logq=cfg.logq, bpreg=cfg.bpreg, mask=mask)
        loss.backward()

        self.opt.tick()
        with torch.no_grad():
            for name in self.dense_names:
                self.opt.step_dense(name)
            for name, (rows, leaf) in leaves.items():
                if leaf.grad is not None:
                    self.opt.step_rows(name, rows, leaf.grad)
            new_state = new_state.detach()
            if active is None:
                self.state = new_state
            else:
                state = state.clone()
                state[active] = new_state
                self.state = state
        return loss.detach(), n

    def validate(self) -> dict[str, float] | None:
        if self.valid is None or len(self.valid) == 0:
            return None
        from seqrec.evaluation import evaluate

        # sessions: next-item over every position; Samples (leave-one-out): their labels
        res = evaluate(
            self.model,
            self.valid,
            protocol="samples" if isinstance(self.valid, Samples) else "next-item",
            ks=(20,),
            batch_size=self.cfg.eval_batch_size,
        )
        self.net.train()
        return {"recall@20": float(res["recall@20"]), "mrr@20": float(res["mrr@20"])}

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {f"net.{k}": v.detach().clone() for k, v in self.net.state_dict().items()}
        out.update({f"opt.{k}": v.clone() for k, v in self.opt.state_dict().items()})
        for k, v in self.sampler.state_dict().items():
            out[f"sampler.{k}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
        out["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            out["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        def part(prefix: str) -> dict[str, Any]:
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

        self.net.load_state_dict({k: v.to(self.device) for k, v in part("net.").items()})
        self.opt.load_state_dict({k: v.to(self.device) for k, v in part("opt.").items()})
        self.opt.refresh_shadows()
        self.sampler.load_state_dict(part("sampler."))
        torch.set_rng_state(state["rng.torch"])
        if "rng.cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng.cuda"], self.device)


def _check_trainable(train: SessionLog) -> None:
    """DataError when no session has two events: GRU4Rec learns from (click, next click)
    pairs inside sessions, so such a log gives it nothing to learn."""
    if int(np.maximum(train.lengths - 1, 0).sum()) == 0:
        raise DataError(
            f"gru4rec: nothing to learn: {train.n_sessions:,} sessions with "
            f"{train.n_events:,} events, but no session has 2 or more events (GRU4Rec "
            "learns from consecutive clicks of a session; check the session column)"
        )


class GRU4Rec(Recommender):
    """GRU4Rec with the recurrent inference API (``init_state`` / ``step``)."""

    name = "gru4rec"
    Config = GRU4RecConfig

    def _build(self, n_items: int) -> None:
        self.device_ = resolve_device(self.config.device)
        self.net_ = GRU4RecNet(n_items, self.config).to(self.device_)
        self._wy_t: torch.Tensor | None = None  # inference cache, see _readout_weights
        self._wy_key: tuple[int, int] | None = None
        self._in_fit = False

    def fit(
        self,
        train: SessionLog,
        valid: SessionLog | Samples | None = None,
        *,
        item_index: ItemIndex | None = None,
        checkpoint_dir: str | None = None,
        resume: bool = False,
        progress: bool = True,
    ) -> GRU4Rec:
        from seqrec.training import LoopOptions, checkpoint_fingerprint, run_training

        self._begin_fit(train, item_index)
        _check_trainable(train)
        cfg = self.config
        fingerprint = (
            checkpoint_fingerprint(config_to_dict(cfg), train, self.n_items_)
            if checkpoint_dir
            else None
        )
        if resolve_device(cfg.device).type == "cpu":
            keep_freed_memory()  # no page faults from the step's big tensors (sysmem.py)
        torch.manual_seed(cfg.seed)
        self._build(self.n_items_)
        task = _Task(self, train, valid)
        self._in_fit = True  # weights change in place: no inference cache meanwhile
        try:
            self.history_ = run_training(
                task,
                LoopOptions(
                    n_epochs=cfg.n_epochs,
                    checkpoint_dir=checkpoint_dir,
                    resume=resume,
                    patience=cfg.patience,
                    progress=progress,
                    desc="gru4rec",
                    fingerprint=fingerprint,
                ),
            )
        finally:
            self._in_fit = False
        self.net_.eval()
        self.meta_["history"] = [
            {"epoch": h.epoch + 1, "loss": h.loss, "events_per_s": h.events_per_second, **h.metrics}
            for h in self.history_
        ]
        self.meta_["kernels"] = fused.compute_path(self.device_)  # which path trained it
        log.info(
            "gru4rec: %d epochs, %s events in %.1f s (%s)",
            len(self.history_),
            f"{sum(h.events for h in self.history_):,}",
            sum(h.seconds for h in self.history_),
            self.meta_["kernels"],
        )
        return self

    # -- inference ----------------------------------------------------------
    def init_state(self, batch_size: int) -> torch.Tensor:
        self._check_fitted()
        return torch.zeros(1, batch_size, self.net_.state_size, device=self.device_)  # (1, B, S)

    @torch.no_grad()
    def _advance(
        self, state: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """state (B, S), items (B,) -> (new state (B, S), last-layer output (B, H))."""
        x = self.net_.input_table().index_select(0, items)
        return self.net_.recur(state, x, 0.0, 0.0, False)

    def _readout_weights(self) -> torch.Tensor:
        """``Wy^T`` as an (H, n_items) operand of the score product.

        Outside training, a contiguous transposed copy is kept when the item table is at
        most ``READOUT_COPY_MAX_BYTES``: the small-batch products of serving and
        evaluation run about twice as fast on it as on the transposed view. The copy is
        rebuilt whenever the weights are replaced or modified by torch ops."""
        wy = self.net_.Wy
        if self._in_fit or wy.numel() * wy.element_size() > READOUT_COPY_MAX_BYTES:
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
            h = hs[b]
            pad[r, : len(h)] = h
        pad_t = torch.from_numpy(pad).to(self.device_)
        sorted_lens = lens[order]
        st = state.clone()
        ot = out.clone()
        for t in range(T):
            n_act = int((sorted_lens > t).sum())
            new, o = self._advance(st[:n_act], pad_t[:n_act, t])
            st[:n_act] = new
            ot[:n_act] = o
        inv = torch.from_numpy(np.argsort(order)).to(self.device_)
        return st.index_select(0, inv), ot.index_select(0, inv)

    @torch.no_grad()
    def score(self, histories: Histories) -> torch.Tensor:
        _, out = self.encode_histories(histories)
        return self._scores(out)

    # -- persistence ----------------------------------------------------------
    def _weights(self) -> dict[str, torch.Tensor]:
        return dict(self.net_.state_dict())

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self._build(self.n_items_)
        try:
            self.net_.load_state_dict({k: v.to(self.device_) for k, v in weights.items()})
        except RuntimeError as exc:
            from seqrec.errors import ModelFileError, one_line

            msg = one_line(exc)
            raise ModelFileError(f"weights do not match the gru4rec config: {msg}") from None
        self.net_.eval()
