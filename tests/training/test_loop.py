"""The training loop with a fake task: epochs, checkpoints, exact resume, early stopping,
validation callable and progress output, independent of any model."""

from __future__ import annotations

import io
import json

import pytest
import torch

from seqrec.training import loop
from seqrec.training.loop import LoopOptions, run_training
from seqrec.training.progress import Progress


class FakeTask:
    """A random walk of one weight: each step adds noise from the task's generator."""

    def __init__(self, steps: int = 5, seed: int = 0) -> None:
        self.steps = steps
        self.w = torch.zeros(3)
        self.gen = torch.Generator().manual_seed(seed)
        self.seen: list[int] = []

    def n_events(self, epoch: int) -> int:
        return self.steps * 2

    def batches(self, epoch: int):
        for i in range(self.steps):
            yield epoch * 100 + i

    def train_step(self, batch: int) -> tuple[torch.Tensor, int]:
        self.seen.append(batch)
        self.w += torch.rand(3, generator=self.gen)
        return self.w.sum() / (1 + len(self.seen)), 2

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"w": self.w.clone(), "rng": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.w = state["w"].clone()
        self.gen.set_state(state["rng"])


def test_epochs_losses_and_events():
    task = FakeTask()
    hist = run_training(task, LoopOptions(n_epochs=3, progress=False))
    assert [h.epoch for h in hist] == [0, 1, 2]
    assert all(h.events == 10 for h in hist)
    assert task.seen[:5] == [0, 1, 2, 3, 4] and task.seen[5] == 100


def test_checkpoint_resume_is_exact(tmp_path, monkeypatch):
    full = FakeTask()
    run_training(full, LoopOptions(n_epochs=4, progress=False))
    real = loop.save_checkpoint
    calls = {"n": 0}

    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_training(FakeTask(), LoopOptions(n_epochs=4, checkpoint_dir=tmp_path, progress=False))
    monkeypatch.setattr(loop, "save_checkpoint", real)
    info = json.loads((tmp_path / "checkpoint" / "info.json").read_text())
    assert info["epoch"] == 1
    resumed = FakeTask()
    hist = run_training(
        resumed, LoopOptions(n_epochs=4, checkpoint_dir=tmp_path, resume=True, progress=False)
    )
    assert [h.epoch for h in hist] == [0, 1, 2, 3]  # the history continues
    assert resumed.seen[0] == 200  # only epochs 3 and 4 ran
    assert torch.equal(resumed.w, full.w)


def test_resume_without_checkpoint_starts_from_scratch(tmp_path):
    task = FakeTask()
    hist = run_training(task, LoopOptions(n_epochs=2, checkpoint_dir=tmp_path, resume=True))
    assert len(hist) == 2 and (tmp_path / "checkpoint" / "state.safetensors").exists()


def test_early_stopping_restores_the_best_epoch():
    metrics = iter([0.1, 0.3, 0.2, 0.25, 0.9])
    task = FakeTask()
    states = []

    def validate() -> dict[str, float]:
        states.append(task.w.clone())
        return {"recall@20": next(metrics)}

    hist = run_training(task, LoopOptions(n_epochs=5, patience=2, validate=validate))
    assert len(hist) == 4  # best at epoch 2, no gain in epochs 3 and 4
    assert [h.metrics["recall@20"] for h in hist] == [0.1, 0.3, 0.2, 0.25]
    assert torch.equal(task.w, states[1])


def test_validation_without_patience_never_stops():
    task = FakeTask()
    hist = run_training(task, LoopOptions(n_epochs=3, validate=lambda: {"recall@20": 0.0}))
    assert len(hist) == 3 and hist[-1].metrics == {"recall@20": 0.0}


def test_divergence_is_a_clear_error():
    task = FakeTask()
    task.train_step = lambda batch: (torch.tensor(float("nan")), 1)  # type: ignore[method-assign]
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        run_training(task, LoopOptions(n_epochs=2, progress=False))


def test_progress_on_a_non_terminal_writes_plain_lines():
    stream = io.StringIO()  # not a tty: no carriage-return bar
    bar = Progress(1000, "gru4rec epoch 1/2", stream=stream, every=0.0)
    for _ in range(10):
        bar.update(100, 1.5)
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10 and lines[-1].startswith("gru4rec epoch 1/2: 100% (1,000/1,000")


def test_progress_lines_are_rate_limited_and_off_when_disabled():
    stream = io.StringIO()
    bar = Progress(1000, "x", stream=stream, every=3600.0)
    for _ in range(100):
        bar.update(10, 1.0)
    assert stream.getvalue() == ""  # at most one line an hour
    quiet = io.StringIO()
    off = Progress(1000, "x", enabled=False, stream=quiet, every=0.0)
    off.update(10, 1.0)
    assert quiet.getvalue() == ""


def test_the_loop_never_writes_carriage_returns_to_a_non_terminal(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr("seqrec.training.progress.PLAIN_EVERY_SECONDS", 0.0)
    run_training(FakeTask(steps=120), LoopOptions(n_epochs=2, progress=True))
    text = stream.getvalue()
    assert "\r" not in text and text.count("\n") == 4  # a line every 50 steps, 2 epochs


def test_resume_keeps_the_best_epoch_seen_before_the_interruption(tmp_path, monkeypatch):
    """Early stopping across a resume: the best epoch (here the 2nd, before the
    interruption) and its weights come back from the checkpoint, so patience counts on
    and the returned weights are that epoch's, exactly as without the interruption."""
    values = [0.1, 0.9, 0.2, 0.3, 0.4]

    def run(task: FakeTask, start: int, **kw) -> tuple[list, list]:
        it = iter(values[start:])
        states: list[torch.Tensor] = []

        def validate() -> dict[str, float]:
            states.append(task.w.clone())
            return {"recall@20": next(it)}

        opts = LoopOptions(n_epochs=5, patience=3, validate=validate, progress=False, **kw)
        return run_training(task, opts), states

    whole = FakeTask()
    hist, states = run(whole, 0)
    assert len(hist) == 5 and torch.equal(whole.w, states[1])

    real = loop.save_checkpoint
    calls = {"n": 0}

    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(FakeTask(), 0, checkpoint_dir=tmp_path)
    monkeypatch.setattr(loop, "save_checkpoint", real)
    info = json.loads((tmp_path / "checkpoint" / "info.json").read_text())
    assert info["epoch"] == 2 and info["best_value"] == 0.9 and info["bad_epochs"] == 1
    resumed = FakeTask()
    hist, _ = run(resumed, 3, checkpoint_dir=tmp_path, resume=True)
    assert [h.metrics["recall@20"] for h in hist] == values  # stopped after epoch 5 as before
    assert torch.equal(resumed.w, states[1])  # the 2nd epoch's weights, from best.safetensors


def test_a_checkpoint_with_a_best_value_but_no_best_state_is_a_clear_error(tmp_path):
    from seqrec.errors import ModelFileError

    task = FakeTask()
    metrics = iter([0.5, 0.6])
    run_training(
        task,
        LoopOptions(
            n_epochs=2, patience=2, validate=lambda: {"recall@20": next(metrics)},
            checkpoint_dir=tmp_path, progress=False,
        ),
    )  # fmt: skip
    (tmp_path / "checkpoint" / "best.safetensors").unlink()
    with pytest.raises(ModelFileError, match=r"best\.safetensors is missing"):
        run_training(FakeTask(), LoopOptions(n_epochs=3, checkpoint_dir=tmp_path, resume=True))


def test_resuming_a_run_that_stopped_early_trains_no_more_epochs(tmp_path):
    """A finished early-stopped checkpoint resumed (e.g. `train --refit --resume` after
    the second run was interrupted) returns the best weights without another epoch; a
    larger patience given on resume continues it."""
    values = iter([0.9, 0.2, 0.3, 0.4, 0.5])

    def run(task: FakeTask, patience: int, resume: bool):
        opts = LoopOptions(
            n_epochs=5, patience=patience, validate=lambda: {"recall@20": next(values)},
            checkpoint_dir=tmp_path, resume=resume, progress=False,
        )  # fmt: skip
        return run_training(task, opts)

    first = FakeTask()
    assert len(run(first, 2, False)) == 3  # epochs 2 and 3 without gain: stopped
    again = FakeTask()
    hist = run(again, 2, True)
    assert len(hist) == 3 and again.seen == []  # no step taken
    assert torch.equal(again.w, first.w)  # the best (1st) epoch's weights
    more = FakeTask()
    assert len(run(more, 4, True)) == 5 and more.seen  # patience 4: epochs 4 and 5 run
