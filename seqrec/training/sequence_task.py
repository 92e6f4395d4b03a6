"""The padded-sequence training task: any network that maps a padded batch to hidden
states, trained with the configured target layout, negatives and loss.

A network of this family (:class:`SequenceNet`) has two methods:

* ``forward(seqs)``: ``(B, T)`` int64 padded histories (:mod:`seqrec.nn.padding`:
  right-aligned, PAD = -1, MASK = -2) -> ``(B, T, d)`` hidden states, the state at
  column ``t`` predicting the target at column ``t`` (a causal model must not look at
  later columns; a cloze model may); or ``(B, 1, d)``: one state per sample, scored
  against every target of its row (the ``last`` and ``window`` layouts: Caser);
* ``item_scores(hidden, items=None)``: ``(N, d)`` hidden states -> scores of
  all items ``(N, n_items)`` (``items`` None), of shared candidates ``(N, C)``
  (``items`` (C,)) or of per-row candidates ``(N, K)`` (``items`` (N, K)).

A network that embeds users sets ``uses_users = True``; its forward is then
``forward(seqs, users)`` with ``users`` ``(B,)`` int64, the dense user code of each
sample's session (-1: unknown). The codes of the training sessions come from the model
(:class:`SessionUsers`, e.g. Caser's user index over the log's ``session_ids``); the
batches then carry them as a third array. Other networks see two-array batches.

The task cuts the sessions into batches (:class:`~seqrec.training.sequences.SequenceBatcher`;
``layout`` causal / masked / last-of-prefix / window), gathers the hidden states of the
positions that have a target, scores them against the candidates of ``negatives``

* ``full``: the whole catalogue (the loss sees every item);
* ``uniform``: ``n_neg`` uniform negatives per position, never the positive (nor the
  row's session items with ``exclude_history``);
* ``popularity``: ``n_neg`` negatives shared by the batch, drawn with probability
  proportional to count ** ``sample_alpha`` (:class:`~seqrec.training.sampling.PopularitySampler`);
  negatives equal to a row's positive are masked;
* ``in-batch``: the batch's distinct targets (plus ``n_neg`` popularity negatives);

and applies the loss named by ``loss`` (:data:`~seqrec.training.losses.TARGET_LOSSES`;
with ``logq`` > 0 the cross-entropy and InfoNCE subtract ``logq * log Q`` of each
candidate: the sampled softmax with logQ correction; ``temperature`` divides the scores
of InfoNCE). The model never sees which loss it is trained
with. Dense parameters are updated by ``torch.optim`` (Adam, or Adagrad); the item
tables a network lists in ``row_params`` (optional) by the row-sparse
:class:`~seqrec.training.optim.RowAdam` / :class:`~seqrec.training.optim.AdagradM`,
which touch only the rows of a sparse gradient (``nn.functional.embedding(...,
sparse=True)``): a step then costs the batch's rows, not the catalogue's (FPMC on
Diginetica's 43k items, batch 256, one thread: 39 ms per step with dense Adam on the
two tables, 1.5 ms row-sparse).

The learning rate follows a step schedule (``lr_decay_step`` > 0: times ``lr_decay``
every ``lr_decay_step`` epochs; SR-GNN's x 0.1 every 3 epochs). It is set on both
optimisers at the start of every epoch from the epoch number alone
(:func:`~seqrec.training.optim.step_lr`), so there is no schedule state to save: a
resumed run, which starts at the epoch after its checkpoint, sets the same rate.

Randomness comes from generators the task owns: the batch order and masks from numpy
Generators seeded by ``(seed, epoch)`` (see :mod:`seqrec.training.sequences`); the
negatives from a ``torch.Generator`` (saved in the state dict); dropout inside the
network draws from torch's default generator, which the task seeds from its own
generator for the duration of each epoch and then restores (``torch.random.fork_rng``),
so the process's random stream is left as it was and a resumed run is exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import Recommender
from seqrec.trainconfig import (
    LossConfig,
    SamplerConfig,
    SequenceConfig,
    TrainConfig,
    check_lr_schedule,
)
from seqrec.training.dropout import fast_dropout
from seqrec.training.losses import full_softmax_cross_entropy, get_target_loss
from seqrec.training.optim import build_optimizers, set_learning_rate, step_lr, step_row_params
from seqrec.training.precision import PRECISIONS, resolve_matmul_dtype
from seqrec.training.sampling import PopularitySampler, in_batch_candidates, uniform_negatives
from seqrec.training.sequences import LAYOUTS, EpochPlan, SequenceBatcher, trim_batch
from seqrec.training.threads import resolve_threads

__all__ = [
    "NEGATIVES",
    "SequenceNet",
    "SequenceOptions",
    "SequenceTask",
    "SessionUsers",
    "sequence_task",
]

NEGATIVES: tuple[str, ...] = ("full", "uniform", "popularity", "in-batch")
OPTIMIZERS: tuple[str, ...] = ("adam", "adagrad")

# inputs (B, T), targets (B, T) | (B, n_targets) [, users (B,)]; int64, PAD = -1
Batch = tuple[Tensor, ...]


class SequenceNet(Protocol):
    """What the padded-sequence task needs from a model's network."""

    def __call__(self, seqs: Tensor) -> Tensor:
        """(B, T) int64 padded histories -> (B, T, d) | (B, 1, d) hidden states
        (``uses_users``: called as ``net(seqs, users)``, users (B,) int64)."""
        ...

    def item_scores(self, hidden: Tensor, items: Tensor | None = None) -> Tensor:
        """(N, d) -> (N, n_items) | (N, C) for items (C,) | (N, K) for items (N, K)."""
        ...

    # optional: ``row_params: list[str]``, item tables updated row-sparsely;
    # ``uses_users: bool``, forward takes the samples' user codes;
    # ``output_table() -> (table (n_items, d), bias (n_items,) | None)`` with
    # ``item_scores(hidden) == hidden @ table.T + bias``: full cross-entropy is then
    # computed without the (N, n_items) score matrix (losses.full_softmax_cross_entropy)

    def parameters(self) -> Iterator[nn.Parameter]: ...

    def train(self, mode: bool = True) -> Any: ...


@runtime_checkable
class SessionUsers(Protocol):
    """A model whose network embeds users: the user code of every training session."""

    def session_users(self, log: SessionLog) -> np.ndarray:
        """(n_sessions,) int64 dense user code of every session of ``log`` (-1: unknown)."""
        ...


@dataclass(frozen=True)
class SequenceOptions:
    """How the task batches, samples, scores and updates (validated on construction)."""

    layout: Literal["causal", "masked", "last", "window"] = "causal"
    max_len: int = 50  # window T: the most recent items kept
    n_targets: int = 1  # window layout: the next items predicted from each window
    mask_prob: float = 0.2  # masked layout: masking probability
    mask_last_prob: float = 0.0  # masked layout: share of windows with only their last item masked
    batch_size: int = 128  # sessions (causal, masked) or prefixes (last) per batch
    shuffle: bool = True  # shuffle the samples every epoch
    sort_pool: int = 0  # > 0: batches of similar-length samples (pools of this many batches)
    optimizer: Literal["adam", "adagrad"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.0  # adagrad: momentum of the row-sparse item-table updates
    weight_decay: float = 0.0
    lr_decay_step: int = 0  # > 0: the learning rate times lr_decay every this many epochs
    lr_decay: float = 0.1  # factor of the step schedule (0 < lr_decay <= 1)
    seed: int = 42
    loss: str = "cross-entropy"  # a name in TARGET_LOSSES
    negatives: Literal["full", "uniform", "popularity", "in-batch"] = "full"
    n_neg: int = 1  # per position (uniform) or shared by the batch (popularity, in-batch)
    sample_alpha: float = 0.75  # popularity exponent of shared negatives
    sample_cache: int = 1_000_000  # shared negatives drawn at a time
    exclude_history: bool = False  # uniform: never the row's session items
    logq: float = 0.0  # logQ correction strength of the cross-entropy
    bpreg: float = 1.0  # bpr-max score regularisation
    gbce_t: float = 0.0  # gbce calibration t in [0, 1]
    temperature: float = 1.0  # infonce: softmax over scores / temperature
    elu_param: float = 0.0  # > 0: ELU(alpha) on the scores before the loss
    mask_hits: bool = True  # popularity: mask shared negatives equal to a row's positive
    threads: int | Literal["auto"] = 0  # intra-op CPU threads while training (0: leave)
    # dtype of the full cross-entropy's catalogue-wide products (losses.full_softmax_
    # cross_entropy's matmul_dtype): "float32", "bfloat16" or "auto" (training.precision)
    matmul_precision: Literal["float32", "bfloat16", "auto"] = "float32"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.negatives not in NEGATIVES:
            raise ConfigError(
                f"negatives must be one of {', '.join(NEGATIVES)}, got {self.negatives!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        get_target_loss(self.loss)  # ConfigError for unknown names
        if self.max_len < 1 or self.batch_size < 1:
            raise ConfigError("max_len and batch_size must be >= 1")
        if self.sort_pool < 0:
            raise ConfigError(f"sort_pool must be >= 0, got {self.sort_pool}")
        if self.n_targets < 1 or (self.n_targets > 1 and self.layout != "window"):
            raise ConfigError(
                f"n_targets must be 1 with the {self.layout} layout (> 1: window), "
                f"got {self.n_targets}"
            )
        if not 0.0 < self.mask_prob <= 1.0:
            raise ConfigError(f"mask_prob must be in (0, 1], got {self.mask_prob}")
        if not 0.0 <= self.mask_last_prob <= 1.0:
            raise ConfigError(f"mask_last_prob must be in [0, 1], got {self.mask_last_prob}")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ConfigError("learning_rate must be > 0 and weight_decay >= 0")
        check_lr_schedule(self.lr_decay_step, self.lr_decay)
        if self.n_neg < 0 or (self.negatives in ("uniform", "popularity") and self.n_neg < 1):
            raise ConfigError(f"n_neg must be >= 1 with {self.negatives} negatives")
        if min(self.sample_alpha, self.logq, self.bpreg, self.elu_param) < 0:
            raise ConfigError("sample_alpha, logq, bpreg and elu_param must be >= 0")
        if not 0.0 <= self.gbce_t <= 1.0:
            raise ConfigError(f"gbce_t must be in [0, 1], got {self.gbce_t}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"temperature must be a finite number > 0, got {self.temperature}")
        if self.matmul_precision not in PRECISIONS:
            raise ConfigError(
                f"matmul_precision must be one of {', '.join(PRECISIONS)}, "
                f"got {self.matmul_precision!r}"
            )


class SequenceTask:
    """A :class:`seqrec.training.loop.TrainTask` for a :class:`SequenceNet`.

    Args:
        net: the network (an ``nn.Module``; trained in place on its own device).
        train: the training sessions (dense item ids, no unknown items).
        n_items: catalogue size.
        options: batching, negatives, loss and optimiser settings.
        users: ``(n_sessions,)`` int64 user code of every session of ``train`` (-1:
            unknown), for a net with ``uses_users``; None gives every sample -1.
    """

    def __init__(
        self,
        net: nn.Module,
        train: SessionLog,
        n_items: int,
        options: SequenceOptions,
        users: np.ndarray | None = None,
    ) -> None:
        self.net, self.n_items, self.o = net, int(n_items), options
        self.device = next(net.parameters()).device
        o = options
        if getattr(net, "uses_users", False):
            if users is None:
                users = np.full(train.n_sessions, -1, dtype=np.int64)
        else:
            users = None  # two-array batches: the net takes no users
        self.batcher = SequenceBatcher(
            train, o.max_len, o.layout, mask_prob=o.mask_prob, mask_last_prob=o.mask_last_prob,
            seed=o.seed, shuffle=o.shuffle,
            sort_pool=o.sort_pool, batch_size=o.batch_size, n_targets=o.n_targets, users=users,
        )  # fmt: skip
        # a net that needs the full window width says so; otherwise every batch is cut
        # to its longest window (the states of real positions are unchanged)
        self.trim = not getattr(net, "fixed_width", False)
        self.loss_fn = get_target_loss(o.loss)
        # full softmax cross-entropy straight from the net's output table, chunk by chunk
        # (same loss and gradients up to float rounding; no (N, n_items) scores in memory)
        self.chunked_xent = (
            o.negatives == "full"
            and o.loss == "cross-entropy"
            and o.elu_param == 0
            and callable(getattr(net, "output_table", None))
        )
        self.matmul_dtype = resolve_matmul_dtype(o.matmul_precision, self.device, self.chunked_xent)
        if self.matmul_dtype is not None and not self.chunked_xent:
            raise ConfigError(
                "matmul_precision = bfloat16 applies to the full softmax cross-entropy "
                '(loss "cross-entropy", negatives "full", elu_param 0) of a net with an '
                "output table (narm, stamp, srgnn, sasrec, bert4rec); this configuration has none"
            )
        self.opt, self.row_opt, self.row_names = build_optimizers(
            net, o.optimizer, o.learning_rate, o.weight_decay, o.momentum
        )
        self.generator = torch.Generator(device=self.device).manual_seed(o.seed)
        counts = train.item_counts(self.n_items).astype(np.float64)
        self.sampler: PopularitySampler | None = None
        if o.negatives == "popularity" or (o.negatives == "in-batch" and o.n_neg > 0):
            self.sampler = PopularitySampler(
                counts, o.sample_alpha, o.n_neg, cache_size=o.sample_cache,
                seed=o.seed + 1, device=self.device,
            )  # fmt: skip
        # log Q of each item: the sampler's, or the unigram frequency of in-batch targets
        freq = np.log(np.maximum(counts, 1.0) / max(counts.sum(), 1.0))
        self.log_q = (
            self.sampler.log_prob
            if self.sampler is not None
            else torch.from_numpy(freq).to(self.device, torch.float32)
        )
        self._plan: tuple[int, EpochPlan] | None = None

    # -- TrainTask protocol -------------------------------------------------
    def plan(self, epoch: int) -> EpochPlan:
        if self._plan is None or self._plan[0] != epoch:
            self._plan = (epoch, self.batcher.plan(epoch))
        return self._plan[1]

    def n_events(self, epoch: int) -> int:
        """Target positions trained on in ``epoch``."""
        return self.plan(epoch).n_targets

    def learning_rate(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based): the step schedule's
        ``learning_rate * lr_decay ** (epoch // lr_decay_step)``, or ``learning_rate``."""
        o = self.o
        return step_lr(o.learning_rate, epoch, o.lr_decay_step, o.lr_decay)

    def batches(self, epoch: int) -> Iterator[Batch]:
        plan = self.plan(epoch)
        # the epoch's learning rate: a function of the epoch alone, so a resumed run
        # (which starts at the epoch after its checkpoint) sets the same one
        set_learning_rate(self.opt, self.row_opt, self.learning_rate(epoch))
        cuda = self.device.type == "cuda"
        seed = int(torch.randint(0, 2**62, (), generator=self.generator, device=self.device))
        # dropout draws from torch's default generator of the device: seeded from ours
        # for this epoch, the process's stream restored afterwards
        threads = 0 if cuda else resolve_threads(self.o.threads, self.o.batch_size * self.o.max_len)
        previous = torch.get_num_threads()
        with torch.random.fork_rng(devices=[self.device] if cuda else []):
            if cuda:
                with torch.cuda.device(self.device):
                    torch.cuda.manual_seed(seed)
            else:
                torch.default_generator.manual_seed(seed)
            self.net.train()
            if threads and threads != previous:
                torch.set_num_threads(threads)
            try:
                with fast_dropout(self.net):
                    for arrays in self.batcher.batches(epoch, self.o.batch_size, plan):
                        if self.trim:
                            arrays = trim_batch(*arrays)
                        yield tuple(torch.from_numpy(a).to(self.device) for a in arrays)
            finally:
                self.net.eval()
                if torch.get_num_threads() != previous:
                    torch.set_num_threads(previous)

    def train_step(self, batch: Batch) -> tuple[Tensor, int]:
        inputs, targets = batch[0], batch[1]  # (B, T), (B, T) | (B, n_targets)
        o, net = self.o, self.net
        hidden = net(inputs, batch[2]) if len(batch) == 3 else net(inputs)  # (B, T | 1, d)
        if hidden.shape[1] != targets.shape[1]:
            if hidden.shape[1] != 1:
                raise ValueError(
                    f"the net returned {hidden.shape[1]} states per row for "
                    f"{targets.shape[1]} target columns (want one per column, or 1)"
                )
            hidden = hidden.expand(-1, targets.shape[1], -1)  # one state for every target
        sel = targets >= 0  # (B, T)
        h = hidden[sel]  # (N, d)
        tgt = targets[sel]  # (N,)
        if self.chunked_xent:
            table, bias = net.output_table()  # type: ignore[operator]
            loss = full_softmax_cross_entropy(h, table, bias, tgt, matmul_dtype=self.matmul_dtype)
        else:
            scores, column, mask, log_q = self._scores(h, tgt, inputs, targets, sel)
            if o.elu_param > 0:
                scores = torch.nn.functional.elu(scores, alpha=o.elu_param)
            loss = self.loss_fn(
                scores, column, mask=mask, log_q=log_q, logq=o.logq, bpreg=o.bpreg,
                gbce_t=o.gbce_t, n_items=self.n_items, temperature=o.temperature,
            )  # fmt: skip
        for p in self.net.parameters():
            p.grad = None
        loss.backward()
        if self.opt is not None:
            self.opt.step()
        if self.row_opt is not None:
            step_row_params(self.row_opt, self.row_names, o.weight_decay)
        return loss.detach(), int(tgt.shape[0])

    def _scores(
        self, h: Tensor, tgt: Tensor, inputs: Tensor, targets: Tensor, sel: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """(scores (N, C), target column (N,), mask (N, C) | None, log Q | None)."""
        o, net = self.o, self.net
        n = tgt.shape[0]
        zeros = torch.zeros(n, dtype=torch.long, device=h.device)
        if o.negatives == "full":
            return net.item_scores(h), tgt, None, None
        if o.negatives == "uniform":
            history = None
            if o.exclude_history:
                rows = sel.nonzero(as_tuple=True)[0]  # (N,) batch row of each position
                history = torch.cat([inputs, targets], dim=1)[rows]  # (N, 2T)
            neg = uniform_negatives(tgt, self.n_items, o.n_neg, self.generator, history)
            cand = torch.cat([tgt[:, None], neg], dim=1)  # (N, 1 + K)
            return net.item_scores(h, cand), zeros, None, None  # uniform Q: logQ is constant
        if o.negatives == "popularity":
            assert self.sampler is not None
            neg = self.sampler.sample()  # (S,)
            scores = torch.cat(
                [net.item_scores(h, tgt[:, None]), net.item_scores(h, neg)], dim=1
            )  # (N, 1 + S)
            mask = None
            if o.mask_hits:  # (N, 1 + S): accidental hits
                hits = neg[None, :] == tgt[:, None]  # (N, S)
                mask = torch.cat([torch.zeros_like(hits[:, :1]), hits], dim=1)
            log_q = torch.cat(
                [self.log_q[tgt][:, None], self.log_q[neg][None, :].expand(n, -1)], dim=1
            )
            return scores, zeros, mask, log_q
        extra = self.sampler.sample() if self.sampler is not None else None
        cand, column = in_batch_candidates(tgt, extra)  # (C,), (N,)
        return net.item_scores(h, cand), column, None, self.log_q[cand]

    def state_dict(self) -> dict[str, Tensor]:
        out = {f"net.{k}": v.detach().clone() for k, v in self.net.state_dict().items()}
        if self.opt is not None:
            for idx, st in self.opt.state_dict()["state"].items():
                for name, value in st.items():
                    out[f"opt.{idx}.{name}"] = torch.as_tensor(value).clone()
        if self.row_opt is not None:
            out.update({f"rowopt.{k}": v.clone() for k, v in self.row_opt.state_dict().items()})
        out["rng.negatives"] = self.generator.get_state()
        if self.sampler is not None:
            for k, v in self.sampler.state_dict().items():
                out[f"sampler.{k}"] = v if isinstance(v, Tensor) else torch.tensor(v)
        return out

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        def part(prefix: str) -> dict[str, Any]:
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

        self.net.load_state_dict({k: v.to(self.device) for k, v in part("net.").items()})
        opt_state: dict[int, dict[str, Tensor]] = {}
        for key, value in part("opt.").items():
            idx, name = key.split(".", 1)
            opt_state.setdefault(int(idx), {})[name] = value
        if self.opt is not None:
            groups = self.opt.state_dict()["param_groups"]
            self.opt.load_state_dict({"state": opt_state, "param_groups": groups})
        if self.row_opt is not None:
            self.row_opt.load_state_dict(part("rowopt."))
        self.generator.set_state(state["rng.negatives"])
        if self.sampler is not None:
            self.sampler.load_state_dict(part("sampler."))
        self._plan = None


def sequence_task(
    model: Recommender,
    train: SessionLog,
    cfg: TrainConfig,
    loss_cfg: LossConfig,
    sampler_cfg: SamplerConfig,
) -> SequenceTask:
    """The task of a model of the ``"sequences"`` family (``seqrec.training.FAMILIES``):
    its ``net_`` trained with its training keys (the family's own keys,
    :class:`~seqrec.trainconfig.SequenceConfig`, are read from ``model.training_keys``)."""
    keys = model.training_keys
    seq = {f: keys[f] for f in SequenceConfig.__dataclass_fields__}
    users = None
    if getattr(model.net_, "uses_users", False):  # type: ignore[attr-defined]
        if not isinstance(model, SessionUsers):
            raise ConfigError(f"{model.name}: its net embeds users but it has no session_users")
        users = model.session_users(train)
    options = SequenceOptions(
        **seq,
        batch_size=cfg.batch_size,
        shuffle=cfg.shuffle,
        optimizer=cfg.optimizer,
        learning_rate=cfg.learning_rate,
        momentum=cfg.momentum,
        seed=cfg.seed,
        threads=cfg.threads,
        matmul_precision=cfg.matmul_precision,
        loss=loss_cfg.loss,
        logq=loss_cfg.logq,
        bpreg=loss_cfg.bpreg,
        gbce_t=loss_cfg.gbce_t,
        temperature=loss_cfg.temperature,
        elu_param=loss_cfg.elu_param,
        mask_hits=loss_cfg.mask_false_negatives,
        n_neg=sampler_cfg.n_sample,
        sample_alpha=sampler_cfg.sample_alpha,
        sample_cache=sampler_cfg.sample_cache,
    )
    return SequenceTask(model.net_, train, model.n_items_, options, users)  # type: ignore[attr-defined]
