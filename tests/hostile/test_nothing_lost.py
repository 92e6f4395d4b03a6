"""Nothing lost: a failed or interrupted ``seqrec train`` never removes or changes an
existing model directory, ``--out`` never deletes files seqrec did not write, and no
temporary directory is left behind."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import seqrec.models.base as base
from seqrec.cli import main
from seqrec.errors import OutputError
from seqrec.models import load_model
from seqrec.training.session_parallel import SessionParallelTask
from tests.hostile.helpers import TINY_G4R, Env, assert_one_error, snapshot, tiny_log

REPO = Path(__file__).resolve().parents[2]


def leftovers(*dirs: Path) -> list[str]:
    """Temporary entries seqrec may create next to its outputs."""
    out = []
    for d in dirs:
        if d.is_dir():
            out += [p.name for p in d.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
            out += [p.name for p in d.iterdir() if ".probe-" in p.name]
    return out


@pytest.fixture
def existing(env: Env, tmp_path: Path) -> Path:
    """A model directory the user already has at --out (a copy of a trained model)."""
    out = tmp_path / "runs" / "model"
    shutil.copytree(env.g4r, out)
    return out


def train_argv(env: Env, out: Path, *extra: str) -> list[str]:
    argv = ["train", "--train", str(env.train), "--model", "gru4rec", "--out", str(out)]
    return [*argv, *TINY_G4R, *extra]


def test_exception_in_the_last_epoch_keeps_the_old_model(env, existing, tmp_path, monkeypatch):
    original = SessionParallelTask.n_events

    def failing_n_events(self, epoch):  # called when every epoch starts
        if epoch == 2:
            raise RuntimeError("injected failure in the last epoch")
        return original(self, epoch)

    monkeypatch.setattr(SessionParallelTask, "n_events", failing_n_events)
    before = snapshot(existing.parent)
    ck = tmp_path / "ck"
    with pytest.raises(RuntimeError, match="injected"):
        main(train_argv(env, existing, "--set", "n_epochs=3", "--checkpoint-dir", str(ck)))
    assert snapshot(existing.parent) == before
    assert leftovers(existing.parent, ck) == []
    info = json.loads((ck / "checkpoint" / "info.json").read_text())
    assert info["epoch"] == 1  # the checkpoint of the last completed epoch is intact


def test_failure_while_writing_the_model_keeps_the_old_one(env, existing, capsys, monkeypatch):
    """The latest possible failure: the disk fills while the new weights are written."""

    def disk_full(path, tensors):
        Path(path).write_bytes(b"\x00" * 10)  # half-written
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(base, "save_tensors", disk_full)
    before = snapshot(existing.parent)
    code = main(train_argv(env, existing))
    assert code == 2
    assert_one_error(capsys.readouterr().err, "No space left on device", exact=False)
    assert snapshot(existing.parent) == before
    assert leftovers(existing.parent) == []
    load_model(existing)  # still a complete, loadable model


def test_bad_input_discovered_late_keeps_the_old_model(env, existing, tmp_path, capsys):
    """A validation file that fails only after the training data was read."""
    bad = tmp_path / "valid.tsv"
    bad.write_text("SessionId\tItemId\tTime\n1\t2\t3\n1\t3\tlater\n")
    before = snapshot(existing.parent)
    assert main(train_argv(env, existing, "--valid", str(bad))) == 2
    assert_one_error(capsys.readouterr().err, "valid.tsv", exact=False)
    assert snapshot(existing.parent) == before and leftovers(existing.parent) == []


def test_out_never_deletes_files_seqrec_did_not_write(env, existing, capsys):
    (existing / "NOTES.md").write_text("my notes about this model")
    before = snapshot(existing.parent)
    assert main(train_argv(env, existing)) == 2
    assert_one_error(capsys.readouterr().err, "holds 'NOTES.md'")
    assert snapshot(existing.parent) == before


def test_out_replaces_a_model_directory_atomically(env, existing, capsys):
    old_inode = existing.stat().st_ino
    assert main(train_argv(env, existing, "--set", "seed=7")) == 0
    assert existing.stat().st_ino != old_inode  # a new directory renamed into place
    assert json.loads((existing / "config.json").read_text())["training"]["seed"] == 7
    assert sorted(p.name for p in existing.parent.iterdir()) == ["model"]


def test_save_refuses_foreign_targets_for_library_users(env, tmp_path):
    model = load_model(env.pop)
    (tmp_path / "file").write_text("mine")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.txt").write_text("mine")
    before = snapshot(tmp_path)
    for target in ("file", "dir"):
        with pytest.raises(OutputError):
            model.save(tmp_path / target)
    shutil.copytree(env.pop, tmp_path / "m")
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="refusing"):
        model.save(tmp_path / "m", replace="never")
    assert snapshot(tmp_path) == before
    (tmp_path / "empty").mkdir()
    model.save(tmp_path / "empty", replace="never")  # an empty directory is fine
    model.save(tmp_path / "m")  # the default replaces a seqrec model directory
    assert load_model(tmp_path / "m").n_items_ == model.n_items_


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("sig", "code", "message"),
    [
        (signal.SIGTERM, 128 + signal.SIGTERM, "interrupted by SIGTERM"),
        (signal.SIGINT, 130, "interrupted"),
    ],
    ids=["SIGTERM", "SIGINT"],
)
def test_signal_mid_training_keeps_the_old_model(env, existing, tmp_path, sig, code, message):
    """A real `seqrec train` process stopped mid-training (its first checkpoint is on
    disk) exits cleanly with one error line; the old model is untouched, nothing is
    left half-written, and the checkpoint resumes."""
    data = tmp_path / "train.tsv"
    data.write_text(tiny_log(n_sessions=40, length=6))
    ck = tmp_path / "ck"
    argv = ["train", "--train", str(data), "--model", "gru4rec", "--out", str(existing)]
    argv += [*TINY_G4R, "--set", "n_epochs=100000", "--checkpoint-dir", str(ck)]
    before = snapshot(existing.parent)
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "seqrec.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        # a job started with `&` by a non-interactive shell (CI scripts, nohup) inherits
        # SIGINT ignored, and Python then keeps it ignored: give the child the default
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 120
        while not (ck / "checkpoint" / "info.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never wrote a checkpoint"
            time.sleep(0.05)
        time.sleep(0.3)  # well inside the epochs now
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # say where it hangs: faulthandler's tracebacks
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"no exit 60 s after {sig.name}; the process's threads:\n{err[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert out == ""
    assert_one_error(err, message, exact=False)
    assert f"the last finished epoch is in {ck}" in err and "--resume" in err  # how to go on
    assert snapshot(existing.parent) == before
    assert leftovers(existing.parent, ck) == []
    info = json.loads((ck / "checkpoint" / "info.json").read_text())
    done = info["epoch"] + 1
    argv[argv.index("n_epochs=100000")] = f"n_epochs={done + 1}"
    assert main([*argv, "--resume"]) == 0  # one more epoch from the checkpoint
    assert json.loads((existing / "config.json").read_text())["training"]["n_epochs"] == done + 1


def test_an_interrupted_train_says_what_it_kept():
    from argparse import Namespace

    from seqrec.cli import _resume_hint

    assert "--resume" in _resume_hint(Namespace(command="train", checkpoint_dir="ck"))
    lost = _resume_hint(Namespace(command="train", checkpoint_dir=None))
    assert "lost" in lost and "--checkpoint-dir" in lost
    assert _resume_hint(Namespace(command="evaluate")) == ""
