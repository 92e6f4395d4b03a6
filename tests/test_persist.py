"""Atomic writes: a failure never leaves a half-written target behind."""

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
