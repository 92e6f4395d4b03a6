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
an uninterrupted run gives. A checkpoint stores a fingerprint of the config and the
training data (:func:`checkpoint_fingerprint`); resuming with another config or data
is a one-line error, checked before any tensor is loaded. This module never imports a
model class.
"""

from __future__ import annotations

import json
import logging
import math
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from seqrec.errors import ConfigError, DataError, ModelFileError, one_line
from seqrec.persist import atomic_dir, check_output_dir, load_tensors, save_tensors
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
    seconds: float  # the epoch's training steps
    metrics: dict[str, float] = field(default_factory=dict)
    valid_seconds: float = 0.0  # the validation after the epoch

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
    # config + data identity saved with checkpoints and checked on resume
    # (checkpoint_fingerprint); None: not checked
    fingerprint: dict[str, Any] | None = None


CHECKPOINT = "checkpoint"
# best.safetensors: the best validation epoch's state (early stopping), when there is one
CHECKPOINT_FILES = frozenset({"state.safetensors", "info.json", "best.safetensors"})
# config keys a resumed run may change: they do not shape the saved training state
RESUMABLE_KEYS = frozenset(
    {
        "n_epochs",
        "device",
        "threads",
        "malloc_tuning",
        "eval_batch_size",
        "patience",
        "monitor",
        "fast_step",
    }
)


# keys added after checkpoints were first written, with the value that reproduces the
# training of a checkpoint that lacks them (it was written before they existed)
ADDED_KEYS: dict[str, Any] = {"lr_decay_step": 0, "lr_decay": 0.1, "mask_last_prob": 0.0}


def checkpoint_fingerprint(config: dict[str, Any], train: Any, n_items: int) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the config (less RESUMABLE_KEYS) and
    the training data's shape and content (sessions, events, items, a CRC of the log)."""
    crc = zlib.crc32(np.ascontiguousarray(train.offsets).tobytes())
    crc = zlib.crc32(np.ascontiguousarray(train.items).tobytes(), crc)
    return {
        "config": {k: v for k, v in sorted(config.items()) if k not in RESUMABLE_KEYS},
        "data": {
            "n_items": int(n_items),
            "n_sessions": int(train.n_sessions),
            "n_events": int(train.n_events),
            "crc32": crc,
        },
    }


def _fingerprint_mismatch(saved: Any, current: dict[str, Any]) -> str | None:
    """Why a checkpoint's fingerprint does not match this run (None if it does)."""
    if not isinstance(saved, dict):
        return "its fingerprint is malformed"
    s_cfg, c_cfg = saved.get("config"), current["config"]
    if isinstance(s_cfg, dict):  # a checkpoint older than a key: that key's old behaviour
        s_cfg = {**{k: v for k, v in ADDED_KEYS.items() if k in c_cfg}, **s_cfg}
    if s_cfg != c_cfg:
        if not isinstance(s_cfg, dict):
            return "its fingerprint is malformed"
        for key in sorted(set(s_cfg) | set(c_cfg)):
            if s_cfg.get(key) != c_cfg.get(key):
                return (
                    f"it belongs to another configuration ({key} = {s_cfg.get(key)!r} in the "
                    f"checkpoint, {c_cfg.get(key)!r} now)"
                )
    s_data, c_data = saved.get("data"), current["data"]
    if s_data != c_data:
        if not isinstance(s_data, dict):
            return "its fingerprint is malformed"
        for key in ("n_items", "n_sessions", "n_events"):
            if s_data.get(key) != c_data[key]:
                return (
                    f"it belongs to another dataset ({key} {s_data.get(key)!r} in the "
                    f"checkpoint, {c_data[key]!r} now)"
                )
        return "it belongs to another dataset (same size, different events)"
    return None


def check_checkpoint_dir(directory: str | Path) -> None:
    """Up-front check that checkpoints can be written to ``directory``."""
    ck = Path(directory) / CHECKPOINT
    check_output_dir(ck, CHECKPOINT_FILES, what="checkpoint")


def save_checkpoint(
    directory: Path,
    state: dict[str, torch.Tensor],
    info: dict[str, Any],
    best: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the checkpoint atomically: the state after the epoch, ``info`` and, with early
    stopping, the best epoch's state (``info["best_value"]`` its monitored value)."""
    with atomic_dir(directory / CHECKPOINT, names=CHECKPOINT_FILES, what="checkpoint") as tmp:
        save_tensors(tmp / "state.safetensors", state)
        if best is not None:
            save_tensors(tmp / "best.safetensors", best)
        (tmp / "info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _epoch_result(h: Any) -> EpochResult | None:
    """An EpochResult from a saved history entry, None if malformed."""
    keys = {"epoch", "loss", "events", "seconds", "metrics"}
    if not isinstance(h, dict) or set(h) - {"valid_seconds"} != keys:  # older: no valid_seconds
        return None
    metrics = h["metrics"]
    if not (
        _is_int(h["epoch"])
        and _is_num(h["loss"])
        and _is_int(h["events"])
        and _is_num(h["seconds"])
        and isinstance(metrics, dict)
        and all(_is_num(v) for v in metrics.values())
        and _is_num(h.get("valid_seconds", 0.0))
    ):
        return None
    return EpochResult(**h)


def _check_info(file: Path, info: Any) -> dict[str, Any]:
    """The checkpoint's info.json, validated field by field (one-line errors)."""
    if not isinstance(info, dict):
        raise ModelFileError(f"{file}: must be a JSON object, got {type(info).__name__}")

    def bad(key: str, want: str) -> ModelFileError:
        got = repr(info[key])[:40] if key in info else "nothing"
        return ModelFileError(f"{file}: field {key!r} must be {want}, got {got}")

    if not _is_int(info.get("epoch")):
        raise bad("epoch", "a non-negative integer")
    if not _is_int(info.get("bad_epochs", 0)):
        raise bad("bad_epochs", "a non-negative integer")
    best_value = info.get("best_value")
    if best_value is not None and not (_is_num(best_value) and math.isfinite(best_value)):
        raise bad("best_value", "a finite number or null")
    history = info.get("history", [])
    results = [_epoch_result(h) for h in history] if isinstance(history, list) else [None]
    if any(r is None for r in results):
        raise bad("history", "a list of epoch results")
    info["history"] = results
    return info


def load_checkpoint(
    directory: Path, fingerprint: dict[str, Any] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The checkpoint in ``directory`` (None if there is none): (state, info).

    Its info.json is validated, and when ``fingerprint`` is given it must match the one
    saved (same config and data) before any tensor is read."""
    ck = directory / CHECKPOINT
    if not ck.exists():
        return None
    file = ck / "info.json"
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{ck}: unreadable checkpoint ({exc})".splitlines()[0]) from None
    info = _check_info(file, info)
    if fingerprint is not None and "fingerprint" in info:
        why = _fingerprint_mismatch(info["fingerprint"], fingerprint)
        if why is not None:
            raise ModelFileError(f"cannot resume from {ck}: {why}")
    if info.get("best_value") is not None:
        if not (ck / "best.safetensors").is_file():
            raise ModelFileError(f"{ck}: best.safetensors is missing (info.json has a best_value)")
        info["best_state"] = load_tensors(ck / "best.safetensors")
    return load_tensors(ck / "state.safetensors"), info


def run_training(task: TrainTask, opts: LoopOptions) -> list[EpochResult]:
    """Train ``task`` for ``opts.n_epochs`` epochs; returns per-epoch results."""
    history: list[EpochResult] = []
    start_epoch = 0
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    bad_epochs = 0
    ckdir = Path(opts.checkpoint_dir) if opts.checkpoint_dir else None
    if opts.resume and ckdir is None:
        raise ConfigError("resume needs a checkpoint directory (--checkpoint-dir)")
    if opts.resume and ckdir is not None:
        loaded = load_checkpoint(ckdir, opts.fingerprint)
        if loaded is not None:
            state, info = loaded
            try:
                task.load_state_dict(state)
            except (KeyError, RuntimeError, ValueError) as exc:
                raise ModelFileError(
                    f"cannot resume from {ckdir / CHECKPOINT}: it does not match this model "
                    f"(another configuration or dataset?): {one_line(exc)}"
                ) from None
            start_epoch = info["epoch"] + 1
            history = info["history"]
            bad_epochs = info.get("bad_epochs", 0)
            if info.get("best_value") is not None:  # early stopping goes on where it was
                best = (float(info["best_value"]), info["best_state"])
            log.info("resumed from %s after epoch %d", ckdir / CHECKPOINT, start_epoch)
            if opts.patience > 0 and bad_epochs >= opts.patience:
                # the run had stopped early: nothing more to train (a larger patience
                # given on resume continues it)
                log.info("that run had stopped early (no %s gain for %d epochs)",
                         opts.monitor, bad_epochs)  # fmt: skip
                start_epoch = opts.n_epochs
        else:
            log.info("no checkpoint in %s: starting from scratch", ckdir)

    for epoch in range(start_epoch, opts.n_epochs):
        total = task.n_events(epoch)
        if total == 0:
            raise DataError(
                "no training events: nothing can be learned from this log "
                f"(epoch {epoch + 1} has 0 events)"
            )
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
        t1 = time.perf_counter()
        metrics = (opts.validate() if opts.validate is not None else None) or {}
        res = EpochResult(
            epoch=epoch, loss=mean_loss, events=n_ev, seconds=seconds, metrics=metrics,
            valid_seconds=time.perf_counter() - t1,
        )  # fmt: skip
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
                    "best_value": best[0] if best is not None else None,
                    "history": [h.__dict__ for h in history],
                    **({"fingerprint": opts.fingerprint} if opts.fingerprint else {}),
                },
                best[1] if best is not None else None,
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
