"""The one training loop: epochs, progress, validation, early stopping, checkpoints.

The loop is model-agnostic. A batching family's task plugs in through :class:`TrainTask`:

* ``batches(epoch)`` yields the mini-batches of one epoch (a session-parallel step for
  GRU4Rec, a padded sequence batch for transformer models, ...);
* ``train_step(batch) -> (loss tensor, n_events)`` runs forward, backward and the
  optimiser update for one batch;
* ``state_dict()`` / ``load_state_dict()`` capture everything needed to continue
  exactly (weights, optimiser and sampler state, the task's random generator).

Validation is a callable in :class:`LoopOptions` (``validate() -> {"recall@20": ...}``,
built from :mod:`seqrec.evaluation` by :func:`seqrec.training.fit`); early stopping
watches its ``monitor`` metric and restores the best epoch's state at the end.

After every epoch the full training state is written atomically to
``checkpoint_dir/checkpoint`` (safetensors + JSON); ``resume=True`` continues after
the last completed epoch and - on CPU with a fixed seed - ends with exactly the weights
an uninterrupted run gives. This module never imports a model class.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from seqrec.errors import ModelFileError
from seqrec.persist import atomic_dir, load_tensors, save_tensors
from seqrec.training.progress import Progress

log = logging.getLogger("seqrec.training")


class TrainTask(Protocol):
    def n_events(self, epoch: int) -> int: ...

    def batches(self, epoch: int) -> Iterable[Any]: ...

    def train_step(self, batch: Any) -> tuple[torch.Tensor, int]: ...

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


@dataclass
class EpochResult:
    epoch: int
    loss: float
    events: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class LoopOptions:
    n_epochs: int
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    patience: int = 0  # early stopping after this many epochs without improvement (0 = off)
    monitor: str = "recall@20"  # validation metric to maximise for early stopping
    progress: bool = True  # a bar on a terminal, else a plain line every minute at most
    desc: str = "train"
    on_epoch_end: Callable[[EpochResult], None] | None = None
    validate: Callable[[], dict[str, float]] | None = None  # metrics after every epoch


CHECKPOINT = "checkpoint"


def save_checkpoint(directory: Path, state: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    with atomic_dir(directory / CHECKPOINT) as tmp:
        save_tensors(tmp / "state.safetensors", state)
        (tmp / "info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    ck = directory / CHECKPOINT
    if not ck.exists():
        return None
    try:
        info = json.loads((ck / "info.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{ck}: unreadable checkpoint ({exc})") from None
    return load_tensors(ck / "state.safetensors"), info


def run_training(task: TrainTask, opts: LoopOptions) -> list[EpochResult]:
    """Train ``task`` for ``opts.n_epochs`` epochs; returns per-epoch results."""
    history: list[EpochResult] = []
    start_epoch = 0
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    bad_epochs = 0
    ckdir = Path(opts.checkpoint_dir) if opts.checkpoint_dir else None
    if opts.resume and ckdir is not None:
        loaded = load_checkpoint(ckdir)
        if loaded is not None:
            state, info = loaded
            task.load_state_dict(state)
            start_epoch = int(info["epoch"]) + 1
            history = [EpochResult(**h) for h in info.get("history", [])]
            bad_epochs = int(info.get("bad_epochs", 0))
            log.info("resumed from %s after epoch %d", ckdir / CHECKPOINT, start_epoch)
        else:
            log.info("no checkpoint in %s: starting from scratch", ckdir)

    for epoch in range(start_epoch, opts.n_epochs):
        total = task.n_events(epoch)
        bar = Progress(total, f"{opts.desc} epoch {epoch + 1}/{opts.n_epochs}", opts.progress)
        t0 = time.perf_counter()
        loss_sum: torch.Tensor | float = 0.0
        n_ev = 0
        pending = 0
        for steps, batch in enumerate(task.batches(epoch), 1):
            loss, n = task.train_step(batch)
            loss_sum = loss_sum + loss.detach().double() * n  # stays on device: no sync
            n_ev += n
            pending += n
            if opts.progress and steps % 50 == 0:
                bar.update(pending, float(loss_sum) / max(n_ev, 1))
                pending = 0
        bar.close()
        seconds = time.perf_counter() - t0
        mean_loss = float(loss_sum) / max(n_ev, 1)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(
                f"training diverged in epoch {epoch + 1} (loss {mean_loss}); "
                "lower the learning rate"
            )
        metrics = (opts.validate() if opts.validate is not None else None) or {}
        res = EpochResult(
            epoch=epoch, loss=mean_loss, events=n_ev, seconds=seconds, metrics=metrics
        )
        history.append(res)
        msg = (
            f"epoch {epoch + 1}/{opts.n_epochs}: loss {mean_loss:.4f}, {n_ev:,} events in "
            f"{seconds:.1f}s ({res.events_per_second:,.0f} ev/s)"
        )
        if metrics:
            msg += ", " + ", ".join(f"valid {k} {v:.4f}" for k, v in metrics.items())
        log.info(msg)
        if opts.on_epoch_end is not None:
            opts.on_epoch_end(res)

        stop = False
        if opts.patience > 0 and opts.monitor in metrics:
            value = metrics[opts.monitor]
            if best is None or value > best[0]:
                best = (value, {k: v.clone() for k, v in task.state_dict().items()})
                bad_epochs = 0
            else:
                bad_epochs += 1
                stop = bad_epochs >= opts.patience
        if ckdir is not None:
            save_checkpoint(
                ckdir,
                task.state_dict(),
                {
                    "epoch": epoch,
                    "bad_epochs": bad_epochs,
                    "history": [h.__dict__ for h in history],
                },
            )
        if stop:
            log.info(
                "early stopping after epoch %d (no %s gain for %d epochs)",
                epoch + 1,
                opts.monitor,
                opts.patience,
            )
            break
    if best is not None:
        task.load_state_dict(best[1])
    return history
