"""The keys of how a model learns: training, loss and sampler configs.

Plain frozen dataclasses (no torch): a model's constructor routes the flat keys it is
given (``GRU4Rec(layers=[100], loss="bpr-max", n_epochs=3)``, a TOML file, ``--set``)
to their owners and validates them here, without importing :mod:`seqrec.training`,
which reads them when it trains. A neural model's class lists its own defaults
(``training_defaults``); the dataclass defaults below apply to keys it leaves out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from seqrec.config import build_config, config_to_dict, route_keys
from seqrec.errors import ConfigError

__all__ = [
    "FAMILY_OWNERS",
    "OWNERS",
    "LossConfig",
    "SamplerConfig",
    "SequenceConfig",
    "TrainConfig",
    "UserItemConfig",
    "check_lr_schedule",
    "split_training",
    "training_configs",
    "training_dict",
    "training_owners",
]


MONITORS = ("recall@20", "mrr@20", "recall@10", "ndcg@10")  # = evaluation.VALID_METRICS


def _bad(msg: str) -> None:
    raise ConfigError(msg)


@dataclass(frozen=True)
class TrainConfig:
    n_epochs: int = 10
    batch_size: int = 64
    shuffle: bool = False  # shuffle session order every epoch (default: time order)
    optimizer: Literal["adagrad", "adam"] = "adagrad"  # row-sparse on the item tables
    learning_rate: float = 0.05
    momentum: float = 0.0  # Adagrad momentum
    patience: int = 0  # early stopping on the valid `monitor` metric (0 = off)
    # validation metric early stopping maximises: recall@20 | mrr@20 | recall@10 | ndcg@10
    monitor: str = "recall@20"
    eval_batch_size: int = 512  # batch of the validation after every epoch
    seed: int = 42  # initial weights, dropout noise, negatives, shuffling
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    # intra-op CPU threads of the training steps: 0 = leave torch's setting, N = N
    # while training (restored afterwards), "auto" = seqrec.training.threads' policy
    threads: int | Literal["auto"] = 0
    # opt-in process tuning (lasts for the process): keep freed memory in the heap
    malloc_tuning: bool = False
    # true: an accelerated step when the model has one that supports the config (GRU4Rec:
    # seqrec.training.gru4rec_fast, cell gru); false: the autograd reference step. The
    # two give the same results up to float rounding.
    fast_step: bool = True
    # dtype of the big matrix products: "float32" or "bfloat16" (operands rounded to
    # bfloat16, accumulated in float32; weights, optimiser state, loss and evaluation
    # stay float32). GRU4Rec: every product of its fast step; the sequences family
    # (narm, stamp, srgnn, sasrec, bert4rec): the full cross-entropy's catalogue-wide products.
    # ~2.4x the matmul rate on CPUs with AVX512-BF16/AMX and on GPUs. "auto": bfloat16
    # where the config has such products and the device runs them natively, else
    # float32 (seqrec.training.precision).
    matmul_precision: Literal["float32", "bfloat16", "auto"] = "float32"

    def validate(self) -> None:
        if self.learning_rate <= 0:
            _bad("learning_rate must be > 0")
        if not 0.0 <= self.momentum < 1.0:
            _bad("momentum must be in [0, 1)")
        if self.n_epochs < 0:
            _bad("n_epochs must be >= 0")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            _bad("batch_size and eval_batch_size must be >= 1")
        if self.patience < 0:
            _bad("patience must be >= 0")
        if self.monitor not in MONITORS:
            _bad(f"monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")
        if isinstance(self.threads, int) and self.threads < 0:
            _bad('threads must be >= 0 or "auto" (0 = leave torch\'s setting)')
        if self.matmul_precision == "bfloat16" and not self.fast_step:
            _bad("matmul_precision = bfloat16 needs the fast step (fast_step = true, cell gru)")


LOSS_NAMES = (
    "cross-entropy", "bpr-max", "top1-max", "bpr", "top1", "bce", "gbce", "lambdarank", "infonce",
)  # fmt: skip
TARGET_COLUMN_LOSSES = ("bce", "gbce")  # the sequences family only


@dataclass(frozen=True)
class LossConfig:
    # bce and gbce: the sequences and user-item families only (losses over a target column)
    loss: Literal[
        "cross-entropy", "bpr-max", "top1-max", "bpr", "top1", "bce", "gbce", "lambdarank",
        "infonce",
    ] = "cross-entropy"  # fmt: skip
    bpreg: float = 1.0  # score regularisation of bpr-max
    elu_param: float = 0.0  # >0: ELU(alpha) on scores before the loss (bpr-max setups)
    logq: float = 0.0  # logQ correction strength for cross-entropy and infonce
    mask_false_negatives: bool = False  # ignore negatives that equal the row's own target
    gbce_t: float = 0.0  # gbce calibration t in [0, 1] (Petrov & Macdonald 2023)
    temperature: float = 1.0  # infonce: softmax over scores / temperature (1: cross-entropy)

    def validate(self) -> None:
        if self.elu_param < 0 or self.bpreg < 0 or self.logq < 0:
            _bad("elu_param, bpreg and logq must be >= 0")
        if not 0.0 <= self.gbce_t <= 1.0:
            _bad("gbce_t must be in [0, 1]")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            _bad("temperature must be a finite number > 0")


@dataclass(frozen=True)
class SamplerConfig:
    n_sample: int = 2048  # shared extra negatives per mini-batch (0 = in-batch only)
    sample_alpha: float = 0.5  # negatives ~ support^alpha (0 uniform, 1 popularity)
    sample_cache: int = 10_000_000  # draws pre-computed at a time

    def validate(self) -> None:
        if self.n_sample < 0:
            _bad("n_sample must be >= 0")
        if self.sample_alpha < 0:
            _bad("sample_alpha must be >= 0")
        if self.sample_cache < 1:
            _bad("sample_cache must be >= 1")


OWNERS: dict[str, type] = {"training": TrainConfig, "loss": LossConfig, "sampler": SamplerConfig}


def split_training(
    keys: Mapping[str, Any], family: str | None = None
) -> tuple[TrainConfig, LossConfig, SamplerConfig]:
    """Build the three configs from flat training keys (each validated; unknown keys and
    model keys are errors; the keys of ``family``'s own owners are allowed)."""
    parts = route_keys(keys, training_owners(family), "training")
    loss = build_config(LossConfig, parts["loss"])
    if family == "session-parallel" and loss.loss in TARGET_COLUMN_LOSSES:
        _bad(
            f"loss {loss.loss!r} needs a target column (padded-sequence models); "
            "session-parallel training (GRU4Rec) supports: "
            + ", ".join(x for x in LOSS_NAMES if x not in TARGET_COLUMN_LOSSES)
        )
    return (
        build_config(TrainConfig, parts["training"]),
        loss,
        build_config(SamplerConfig, parts["sampler"]),
    )


def training_dict(*configs: Any) -> dict[str, Any]:
    """The flat keys of built configs (what a saved model records under "training")."""
    out: dict[str, Any] = {}
    for cfg in configs:
        out.update(config_to_dict(cfg))
    return out


def check_lr_schedule(step: int, decay: float) -> None:
    """The step schedule's keys: ``lr_decay_step`` an integer >= 0 (0: off) and
    ``lr_decay`` a factor in (0, 1] (ConfigError otherwise)."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        _bad(f"lr_decay_step must be an integer >= 0 (epochs; 0 = off), got {step!r}")
    if not (math.isfinite(decay) and 0.0 < decay <= 1.0):
        _bad(f"lr_decay must be in (0, 1], got {decay!r}")


@dataclass(frozen=True)
class SequenceConfig:
    """Keys of the padded-sequence family (seqrec.training.sequence_task).

    The sampler's ``n_sample`` is the number of negatives: per target position with
    ``negatives = "uniform"``, shared by the batch with ``"popularity"``, added to the
    batch's targets with ``"in-batch"``; ``"full"`` scores the whole catalogue.
    """

    layout: Literal["causal", "masked", "last", "window"] = "causal"  # where the targets are
    max_len: int = 50  # window: the most recent items of a session kept
    n_targets: int = 1  # window layout: the next items predicted from each window
    mask_prob: float = 0.2  # masked layout: probability of masking an item
    # masked layout: the share of windows (drawn every epoch) that have only their last
    # item masked instead (BERT4Rec's extra last-item samples: the inference task)
    mask_last_prob: float = 0.0
    sort_pool: int = 0  # > 0: batches of similar-length histories (pools of this many batches)
    negatives: Literal["full", "uniform", "popularity", "in-batch"] = "full"
    exclude_history: bool = False  # uniform negatives: never an item of the session
    weight_decay: float = 0.0  # of the torch.optim optimiser
    # step learning-rate schedule: epoch e (0-based) trains with
    # learning_rate * lr_decay ** (e // lr_decay_step); lr_decay_step = 0: constant
    lr_decay_step: int = 0
    lr_decay: float = 0.1

    def validate(self) -> None:
        if self.max_len < 1:
            _bad("max_len must be >= 1")
        if self.n_targets < 1 or (self.n_targets > 1 and self.layout != "window"):
            _bad(f"n_targets must be 1 with layout {self.layout!r} (> 1 needs layout 'window')")
        if not 0.0 < self.mask_prob <= 1.0:
            _bad("mask_prob must be in (0, 1]")
        if not 0.0 <= self.mask_last_prob <= 1.0:
            _bad("mask_last_prob must be in [0, 1]")
        if self.mask_last_prob > 0 and self.layout != "masked":
            _bad(f"mask_last_prob applies to the masked layout, not {self.layout!r}")
        if self.sort_pool < 0:
            _bad("sort_pool must be >= 0")
        if self.weight_decay < 0:
            _bad("weight_decay must be >= 0")
        check_lr_schedule(self.lr_decay_step, self.lr_decay)


@dataclass(frozen=True)
class UserItemConfig:
    """Keys of the user-item pairs family (seqrec.training.user_item_task): every
    (user, item) event of the training log is a positive of its user.

    The sampler's ``n_sample`` is the number of uniform negatives per positive with
    ``negatives = "uniform"``; ``"full"`` scores the whole catalogue. ``reg`` is the L2
    regularisation of the objective on what a training row touches (BPR-Opt's lambda):
    ``reg * penalty`` is added to the loss, the penalty given by the network (BPR-MF:
    ``|p_u|^2 + |q_i|^2 + b_i^2`` plus the mean of ``|q_j|^2 + b_j^2`` over the row's
    negatives).
    """

    negatives: Literal["uniform", "full"] = "uniform"
    exclude_history: bool = True  # uniform negatives: never an item of the user's history
    reg: float = 0.0  # L2 of the rows a training pair touches, added to the loss

    def validate(self) -> None:
        if self.negatives not in ("uniform", "full"):
            _bad(f"negatives must be uniform or full, got {self.negatives!r}")
        if self.reg < 0:
            _bad("reg must be >= 0")


# the owners of a batching family's own training keys, beyond OWNERS
FAMILY_OWNERS: dict[str, dict[str, type]] = {
    "sequences": {"sequences": SequenceConfig},
    "user-item": {"user-item": UserItemConfig},
}


def training_owners(family: str | None) -> dict[str, type]:
    """Every owner of the training keys of a model of batching ``family``."""
    return {**OWNERS, **FAMILY_OWNERS.get(family or "", {})}


def training_configs(keys: Mapping[str, Any], family: str | None) -> tuple[Any, ...]:
    """Every training config of ``family`` built from flat keys: TrainConfig,
    LossConfig, SamplerConfig, then the family's own (each validated)."""
    parts = route_keys(keys, training_owners(family), "training")
    extra = FAMILY_OWNERS.get(family or "", {})
    train, loss, sampler = split_training(keys, family)
    own = tuple(build_config(cls, parts[name]) for name, cls in extra.items())
    _check_precision(train, loss, own, family)
    return (train, loss, sampler, *own)


def _check_precision(
    train: TrainConfig, loss: LossConfig, own: tuple[Any, ...], family: str | None
) -> None:
    """bfloat16 products exist where a family has them (before any data is read);
    ``"auto"`` falls back to float32 where they do not (seqrec.training.precision)."""
    if train.matmul_precision != "bfloat16":
        return
    if family == "user-item":
        _bad("matmul_precision = bfloat16 is not supported by the user-item family (float32 only)")
    if family == "sequences":
        seq = own[0]
        if loss.loss != "cross-entropy" or seq.negatives != "full" or loss.elu_param != 0:
            _bad(
                "matmul_precision = bfloat16 applies to the full softmax cross-entropy "
                '(loss "cross-entropy", negatives "full", elu_param 0) only'
            )
