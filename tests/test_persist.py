"""Atomic writes: a failure never leaves a half-written target behind."""

import os
import signal
import stat

import pytest

from seqrec.persist import atomic_dir, atomic_write_bytes


def test_atomic_dir_replaces_and_cleans_up(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("two")
    assert (target / "a.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_dir_failure_keeps_old_version(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("new")
        raise RuntimeError("crash while writing")
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_write_bytes(tmp_path):
    f = tmp_path / "x.toml"
    atomic_write_bytes(f, b"a = 1\n")
    assert f.read_bytes() == b"a = 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.toml"]


# -- issue 14: what atomic_dir may replace, umask modes, interrupts -------------------
def test_atomic_dir_refuses_user_files(tmp_path):
    from seqrec.errors import OutputError

    (tmp_path / "file").write_text("mine")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("mine")
    for name in ("file", "dir"):
        with pytest.raises(OutputError), atomic_dir(tmp_path / name) as tmp:
            (tmp / "a.txt").write_text("new")
    assert (tmp_path / "file").read_text() == "mine"
    assert (tmp_path / "dir" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]
    # a directory holding only what is written (or names allowed) is replaced
    with atomic_dir(tmp_path / "dir", names={"notes.txt"}) as tmp:
        (tmp / "a.txt").write_text("new")
    assert [p.name for p in (tmp_path / "dir").iterdir()] == ["a.txt"]


def test_check_writable_fails_up_front(tmp_path):
    from seqrec.errors import OutputError
    from seqrec.persist import check_writable

    (tmp_path / "f").write_text("x")
    check_writable(tmp_path / "new" / "deeper" / "m")  # parents are created later
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # the probe is gone
    with pytest.raises(OutputError, match="is not a directory"):
        check_writable(tmp_path / "f" / "m")
    with pytest.raises(OutputError, match="cannot write here"):
        check_writable("/proc/seqrec-test/m")


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_written_modes_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        with atomic_dir(tmp_path / "m") as tmp:
            (tmp / "a.txt").write_text("x")
            (tmp / "sub").mkdir()
            (tmp / "sub" / "b.txt").write_text("y")
        atomic_write_bytes(tmp_path / "c.toml", b"z")
    finally:
        os.umask(old)

    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(tmp_path / "m") == 0o777 & ~umask
    assert mode(tmp_path / "m" / "sub") == 0o777 & ~umask
    assert mode(tmp_path / "m" / "a.txt") == 0o666 & ~umask
    assert mode(tmp_path / "m" / "sub" / "b.txt") == 0o666 & ~umask
    assert mode(tmp_path / "c.toml") == 0o666 & ~umask


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_between_the_renames_lands_after_them(tmp_path, monkeypatch, sig):
    """A signal arriving while the old directory is moved aside never leaves the
    target missing: it takes effect once the new directory is in place."""
    import seqrec.persist as persist

    class Stop(BaseException):
        pass

    def stop(signum, frame):
        raise Stop

    target = tmp_path / "m"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("old")
    real_replace = os.replace
    calls = []

    def replace_with_signal(src, dst):
        calls.append(src)
        if len(calls) == 1:
            signal.raise_signal(sig)  # right after the first of the two renames
        real_replace(src, dst)

    previous = signal.signal(sig, stop)
    try:
        monkeypatch.setattr(persist.os, "replace", replace_with_signal)
        with pytest.raises(Stop), atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("new")
    finally:
        signal.signal(sig, previous)
    assert len(calls) == 2
    assert (target / "a.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
