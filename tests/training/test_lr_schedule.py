"""The step learning-rate schedule of the padded-sequence family (``lr_decay_step``,
``lr_decay``; SR-GNN's x 0.1 every 3 epochs): the rate of every epoch, on the dense and
the row-sparse optimisers, an exact resume across a decay boundary, validation, and the
keys belonging to the sequences family only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqrec.errors import ConfigError
from seqrec.models.gru4rec import GRU4Rec
from seqrec.models.sasrec import SASRec
from seqrec.training.loop import LoopOptions, run_training
from seqrec.training.optim import step_lr
from seqrec.training.sequence_task import SequenceOptions, SequenceTask

from .test_sequence_task import N_ITEMS, _net, chain_log


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_step_lr_values() -> None:
    assert [step_lr(1e-3, e, 3, 0.1) for e in range(8)] == pytest.approx(
        [1e-3] * 3 + [1e-4] * 3 + [1e-5] * 2
    )
    assert [step_lr(0.5, e, 1, 0.5) for e in range(4)] == [0.5, 0.25, 0.125, 0.0625]
    assert [step_lr(0.5, e, 0, 0.1) for e in range(4)] == [0.5] * 4  # 0: off


class RecordingTask(SequenceTask):
    """Records the optimisers' learning rates at every step."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[float | None, float | None]] = []

    def train_step(self, batch):
        dense = self.opt.param_groups[0]["lr"] if self.opt is not None else None
        rows = self.row_opt.lr if self.row_opt is not None else None
        self.seen.append((dense, rows))
        return super().train_step(batch)


@pytest.mark.parametrize("rows", [False, True])
def test_every_epoch_trains_with_its_scheduled_rate(rows: bool) -> None:
    opts = SequenceOptions(
        max_len=4, batch_size=64, learning_rate=0.02, seed=1, lr_decay_step=2, lr_decay=0.5,
        negatives="uniform", n_neg=2, loss="bpr",
    )  # fmt: skip
    task = RecordingTask(_net(rows=rows), chain_log(), N_ITEMS, opts)
    steps_per_epoch = -(-task.batcher.n_samples // 64)
    run_training(task, LoopOptions(n_epochs=5, progress=False))
    want = [0.02, 0.02, 0.01, 0.01, 0.005]
    assert len(task.seen) == 5 * steps_per_epoch
    for epoch, lr in enumerate(want):
        for dense, row in task.seen[epoch * steps_per_epoch : (epoch + 1) * steps_per_epoch]:
            assert dense == pytest.approx(lr)
            assert row == (pytest.approx(lr) if rows else None)


def _train(tmp: Path | None, epochs: int, resume: bool = False, **kw) -> SequenceTask:
    opts = SequenceOptions(max_len=5, batch_size=8, learning_rate=0.02, seed=7, **kw)
    task = SequenceTask(_net(dropout=0.3, rows=True), chain_log(), N_ITEMS, opts)
    loop = LoopOptions(n_epochs=epochs, checkpoint_dir=tmp, resume=resume, progress=False)
    run_training(task, loop)
    return task


@pytest.mark.parametrize("stop", [1, 2, 3])
def test_resume_across_a_decay_boundary_is_exact(tmp_path: Path, stop: int) -> None:
    kw = {"lr_decay_step": 2, "lr_decay": 0.1, "negatives": "uniform", "n_neg": 2}
    full = _train(None, 5, **kw)
    _train(tmp_path, stop, **kw)  # a checkpoint after epoch `stop`
    resumed = _train(tmp_path, 5, resume=True, **kw)
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the schedule changed the training: without it the weights differ
    plain = _train(None, 5, negatives="uniform", n_neg=2).state_dict()
    assert not torch.equal(plain["net.out"], a["net.out"])


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"lr_decay_step": -1}, "lr_decay_step"),
        ({"lr_decay": 0.0}, "lr_decay"),
        ({"lr_decay": 1.5}, "lr_decay"),
        ({"lr_decay": float("nan")}, "lr_decay"),
    ],
)
def test_bad_schedules_are_config_errors(kw: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        SequenceOptions(**kw)
    with pytest.raises(ConfigError, match=msg):
        SASRec(**kw)  # the family's keys, validated when the model is built


def test_the_schedule_keys_belong_to_the_sequences_family() -> None:
    model = SASRec(lr_decay_step=3, lr_decay=0.5)
    assert (model.training_keys["lr_decay_step"], model.training_keys["lr_decay"]) == (3, 0.5)
    assert SASRec().training_keys["lr_decay_step"] == 0  # off unless asked for
    with pytest.raises(ConfigError, match="unknown config key 'lr_decay_step'"):
        GRU4Rec(lr_decay_step=3)


def test_a_checkpoint_from_before_the_schedule_keys_resumes(tmp_path: Path) -> None:
    """A checkpoint whose fingerprint lacks lr_decay_step / lr_decay (written before the
    keys existed) resumes when the run keeps the schedule off, and not otherwise."""
    from seqrec.data.sessions import SessionLog
    from seqrec.errors import ModelFileError
    from seqrec.training import fit

    log = SessionLog.from_sequences([[0, 1, 2, 3], [2, 3, 1], [4, 0, 2]] * 4)
    keys = {"hidden": 8, "n_blocks": 1, "max_len": 4, "batch_size": 4}
    fit(SASRec(**keys, n_epochs=1), log, checkpoint_dir=tmp_path, progress=False)
    info = tmp_path / "checkpoint" / "info.json"
    saved = json.loads(info.read_text())
    for key in ("lr_decay_step", "lr_decay"):
        del saved["fingerprint"]["config"][key]  # as an older version wrote it
    info.write_text(json.dumps(saved))
    model = fit(SASRec(**keys, n_epochs=2), log, checkpoint_dir=tmp_path, resume=True)
    assert [h.epoch for h in model.history_] == [0, 1]
    with pytest.raises(ModelFileError, match="another configuration \\(lr_decay_step"):
        fit(SASRec(**keys, n_epochs=3, lr_decay_step=1), log, checkpoint_dir=tmp_path, resume=True)
