"""``fit``: the one entry point that trains any model.

A non-neural model (``family`` None) fits itself. A neural model is trained here: its
training keys (the class's ``training_defaults``, the keys it was built with, then the
keys given to :func:`fit`) are split into :class:`~seqrec.trainconfig.TrainConfig`,
:class:`~seqrec.trainconfig.LossConfig` and :class:`~seqrec.trainconfig.SamplerConfig`;
the model builds its network from ``seed``; the task of its batching family runs in
:func:`seqrec.training.loop.run_training`, validated after every epoch by a callable
built from :mod:`seqrec.evaluation`.

Nothing process-wide is changed unless a key asks for it: the random streams come from
generators the task owns, torch's thread count is changed only by ``threads`` (and
restored), malloc only by ``malloc_tuning``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seqrec.config import config_to_dict
from seqrec.data.idmap import ItemIndex
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.models.base import Recommender, resolve_device
from seqrec.trainconfig import training_configs, training_dict
from seqrec.training import kernels
from seqrec.training.loop import LoopOptions, TrainTask, checkpoint_fingerprint, run_training
from seqrec.training.sequence_task import sequence_task
from seqrec.training.session_parallel import SessionParallelTask
from seqrec.training.sysmem import keep_freed_memory
from seqrec.training.user_item_task import user_item_task

__all__ = ["FAMILIES", "build_task", "fit"]

# batching family -> task factory (model, train, TrainConfig, LossConfig, SamplerConfig)
FAMILIES: dict[str, Callable[..., TrainTask]] = {
    "session-parallel": SessionParallelTask,
    "sequences": sequence_task,
    "user-item": user_item_task,
}

Validator = Callable[[], dict[str, float]]

log = logging.getLogger("seqrec.training")


def build_task(
    model: Recommender,
    train: SessionLog,
    *,
    item_index: ItemIndex | None = None,
    **keys: Any,
) -> Any:
    """Prepare ``model`` for training on ``train`` and return its family's task (the
    network built from ``seed``, the optimiser, sampler and generators ready)."""
    if model.family not in FAMILIES:
        raise ConfigError(f"{model.name}: unknown training family {model.family!r}")
    all_keys = {**model.training_keys, **keys}
    configs = training_configs(all_keys, model.family)
    cfg, loss_cfg, sampler_cfg = configs[:3]
    model._check_training(training_dict(*configs))
    device = resolve_device(cfg.device)
    if cfg.malloc_tuning and device.type == "cpu":
        keep_freed_memory()  # opt-in: no page faults from the step's big tensors (sysmem.py)
    model.begin_fit(train, item_index)
    model.build_net(model.n_items_, device, cfg.seed)
    model.training_keys = training_dict(*configs)
    return FAMILIES[model.family](model, train, cfg, loss_cfg, sampler_cfg)


def default_validator(
    model: Recommender, valid: SessionLog | Samples, batch_size: int
) -> Validator:
    """Recall@20 and MRR@20 of ``model`` on ``valid`` (next-item over every position of
    sessions; the labels of leave-one-out samples)."""
    from seqrec.evaluation import validator

    return validator(model, valid, batch_size=batch_size)


def fit(
    model: Recommender,
    train: SessionLog,
    valid: SessionLog | Samples | None = None,
    *,
    item_index: ItemIndex | None = None,
    validate: Validator | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    **keys: Any,
) -> Recommender:
    """Train ``model`` on ``train``; returns the model.

    ``keys``: training, loss or sampler keys overriding the model's ``training_keys``
    for this call (recorded in the model). ``valid``: evaluated after every epoch
    (``validate`` replaces the default recall@20 / MRR@20 callable); early stopping with
    ``patience``. ``checkpoint_dir``: a full training checkpoint after every epoch,
    written atomically; ``resume``: continue from it (exactly, on CPU). ``progress``:
    a bar on a terminal, plain lines elsewhere.
    """
    if model.family is None:
        if keys:
            raise ConfigError(f"{model.name} takes no training keys (got {sorted(keys)[0]!r})")
        return model.fit(train, valid, item_index=item_index)
    task = build_task(model, train, item_index=item_index, **keys)
    if validate is None and valid is not None and len(valid) > 0:
        validate = default_validator(model, valid, int(model.training_keys["eval_batch_size"]))
    fingerprint = None  # what a checkpoint must match to be resumed: keys and data
    if checkpoint_dir:
        keys_used = {**config_to_dict(model.config), **model.training_keys}
        fingerprint = checkpoint_fingerprint(keys_used, train, model.n_items_)
    model.in_fit = True  # weights change in place: no inference caches meanwhile
    try:
        history = run_training(
            task,
            LoopOptions(
                n_epochs=int(model.training_keys["n_epochs"]),
                checkpoint_dir=checkpoint_dir,
                resume=resume,
                patience=int(model.training_keys["patience"]),
                monitor=str(model.training_keys["monitor"]),
                progress=progress,
                desc=model.name,
                validate=validate,
                fingerprint=fingerprint,
            ),
        )
    finally:
        model.in_fit = False
    model.net_.eval()  # type: ignore[attr-defined]
    model.history_ = history  # type: ignore[attr-defined]
    model.meta_["history"] = [
        {
            "epoch": h.epoch + 1,
            "loss": h.loss,
            "events_per_s": h.events_per_second,
            "seconds": round(h.seconds, 3),  # training steps
            "valid_seconds": round(h.valid_seconds, 3),
            **h.metrics,
        }
        for h in history
    ]
    model.meta_["kernels"] = kernels.compute_path(model.device_)  # which path trained it
    log.info(
        "%s: %d epochs, %s events in %.1f s (%s)",
        model.name,
        len(history),
        f"{sum(h.events for h in history):,}",
        sum(h.seconds for h in history),
        model.meta_["kernels"],
    )
    return model
