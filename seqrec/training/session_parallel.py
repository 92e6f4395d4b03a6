"""The session-parallel training task for recurrent models (GRU4Rec-style).

``B`` session slots run side by side (:mod:`seqrec.training.batching`); every step feeds
each slot's current item and predicts its next one against the batch's own targets plus
``n_sample`` shared negatives from popularity^``sample_alpha``
(:mod:`seqrec.training.sampling`), scored by the configured loss
(:mod:`seqrec.training.losses`); the item tables' touched rows and the dense weights are
updated by a row-sparse optimiser (:mod:`seqrec.training.optim`). Gradients flow through
one time step (the carried state is detached), as in GRU4Rec.

A model of this family has a network (``model.net_``) with the :class:`SessionParallelNet`
members. A model may have an accelerator (``ACCELERATORS``, by model name) that replaces
the autograd step with the same computation, e.g. GRU4Rec's fast step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from seqrec.data.sessions import SessionLog
from seqrec.errors import DataError
from seqrec.models.base import Recommender
from seqrec.trainconfig import LossConfig, SamplerConfig, TrainConfig
from seqrec.training import gru4rec_fast, sampling
from seqrec.training.batching import ParallelPlan, session_parallel_plan
from seqrec.training.dropout import train_dropout
from seqrec.training.losses import get_loss
from seqrec.training.optim import AdagradM, RowAdam, RowOptimizer
from seqrec.training.threads import resolve_threads

__all__ = ["ACCELERATORS", "SessionParallelNet", "SessionParallelTask"]

log = logging.getLogger("seqrec.training.session_parallel")

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]  # inputs, targets, resets, full


class SessionParallelNet(Protocol):
    """What the session-parallel task needs from a model's network."""

    state_size: int  # S: per-session state width
    layers: list[int]  # recurrent layer sizes (the thread policy's step size)
    row_params: list[str]  # item tables (n_items rows) updated row by row
    input_param: str  # the item table whose rows are the input ("Wy": shared with output)
    Wy: nn.Parameter  # (n_items, H) read-out item weights
    By: nn.Parameter  # (n_items,) read-out item biases

    def recur(
        self, state: torch.Tensor, x: torch.Tensor, dropout: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) state, (B, in) input rows -> (new state (B, S), output (B, H))."""
        ...

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...

    def train(self, mode: bool = True) -> Any: ...


# model name -> factory of a faster train_step for the task (None: the autograd step)
ACCELERATORS: dict[str, Callable[[SessionParallelTask], Any]] = {
    "gru4rec": gru4rec_fast.make_fast_step,
}


def check_trainable(name: str, train: SessionLog) -> None:
    """DataError when no session has two events: the family learns from (click, next
    click) pairs inside sessions, so such a log gives it nothing to learn."""
    if int(np.maximum(train.lengths - 1, 0).sum()) == 0:
        raise DataError(
            f"{name}: nothing to learn: {train.n_sessions:,} sessions with "
            f"{train.n_events:,} events, but no session has 2 or more events (a "
            "session-parallel model learns from consecutive clicks of a session; check "
            "the session column)"
        )


class SessionParallelTask:
    """A :class:`seqrec.training.loop.TrainTask` for a recurrent model's network."""

    def __init__(
        self,
        model: Recommender,
        train: SessionLog,
        cfg: TrainConfig,
        loss_cfg: LossConfig,
        sampler_cfg: SamplerConfig,
    ) -> None:
        check_trainable(model.name, train)
        net: Any = model.net_  # type: ignore[attr-defined]
        self.model, self.net, self.device = model, net, model.device_
        self.cfg, self.loss_cfg = cfg, loss_cfg
        self.train_log = train
        counts = train.item_counts(model.n_items_)
        cpu = self.device.type == "cpu"
        # CPU threads of the training steps, set while an epoch's batches are consumed
        self.threads = resolve_threads(cfg.threads, cfg.batch_size * max(net.layers)) if cpu else 0
        self.sampler = sampling.PopularitySampler(
            counts,
            sampler_cfg.sample_alpha,
            sampler_cfg.n_sample,
            cache_size=sampler_cfg.sample_cache,
            seed=cfg.seed,
            device=self.device,
            # the next cache is drawn in a thread while this one is used (same draws),
            # when a CPU core is left over by torch's threads
            background=cpu and sampling.spare_core(self.threads or None),
        )
        self.log_q = self.sampler.log_prob.to(self.device) if loss_cfg.logq > 0 else None
        self.loss_fn = get_loss(loss_cfg.loss)
        params = dict(net.named_parameters())
        self.row_names = net.row_params
        self.dense_names = [n for n in params if n not in self.row_names]
        self.opt: RowOptimizer = (
            AdagradM(params, cfg.learning_rate, cfg.momentum)
            if cfg.optimizer == "adagrad"
            else RowAdam(params, cfg.learning_rate)
        )
        self.params = params
        self.state: torch.Tensor | None = None
        self._plans: dict[int, ParallelPlan] = {}
        # dropout noise from the task's own generator (saved in checkpoints)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.dropout = partial(train_dropout, generator=self.generator)
        accelerate = ACCELERATORS.get(model.name)
        self.fast_step = accelerate(self) if accelerate is not None else None

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

    def batches(self, epoch: int) -> Iterator[Batch]:
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

    def train_step(self, batch: Batch) -> tuple[torch.Tensor, int]:
        if self.fast_step is not None:
            return self.fast_step(batch)
        inp, tgt, reset, full = batch
        lc, net = self.loss_cfg, self.net
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
        if net.input_param == "Wy":  # the output table is the input table as well
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
            name = net.input_param
            rows_i, inv_i = torch.unique(inp, return_inverse=True)
            tab = self.params[name].data.index_select(0, rows_i).requires_grad_()
            x = tab.index_select(0, inv_i)
            leaves[name] = (rows_i, tab)

        new_state, out = net.recur(state_in, x, self.dropout)
        scores = torch.addmm(b_c, out, w_c.t())  # (B, C)
        if lc.elu_param > 0:
            scores = torch.nn.functional.elu(scores, alpha=lc.elu_param)
        log_q = self.log_q.index_select(0, cand) if self.log_q is not None else None
        mask = None
        if lc.mask_false_negatives:
            mask = cand.unsqueeze(0) == tgt.unsqueeze(1)  # (B, C)
            mask.fill_diagonal_(False)
        loss = self.loss_fn(
            scores, log_q=log_q, logq=lc.logq, bpreg=lc.bpreg, mask=mask,
            temperature=lc.temperature,
        )  # fmt: skip
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

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {f"net.{k}": v.detach().clone() for k, v in self.net.state_dict().items()}
        out.update({f"opt.{k}": v.clone() for k, v in self.opt.state_dict().items()})
        for k, v in self.sampler.state_dict().items():
            out[f"sampler.{k}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
        out[self._rng_key()] = self.generator.get_state()
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        def part(prefix: str) -> dict[str, Any]:
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

        self.net.load_state_dict({k: v.to(self.device) for k, v in part("net.").items()})
        self.opt.load_state_dict({k: v.to(self.device) for k, v in part("opt.").items()})
        self.opt.refresh_shadows()
        self.sampler.load_state_dict(part("sampler."))
        if self._rng_key() in state:
            self.generator.set_state(state[self._rng_key()])

    def _rng_key(self) -> str:
        return "rng.cuda" if self.device.type == "cuda" else "rng.torch"
