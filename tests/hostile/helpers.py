"""Helpers of the hostile-input tests: tiny literal data, a snapshot of a directory
tree, and the "exit 2 + one error line" assertion."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

# GRU4Rec small enough to train in well under a second on the tiny log
TINY_G4R = [
    "--set",
    "layers=[8]",
    "--set",
    "n_epochs=1",
    "--set",
    "n_sample=4",
    "--set",
    "batch_size=2",
    "-q",
]


def tiny_log(n_sessions: int = 10, length: int = 4, n_items: int = 7, first: int = 1) -> str:
    """A TSV event log: ``n_sessions`` sessions of ``length`` clicks over ``n_items`` items."""
    rows = ["SessionId\tItemId\tTime"]
    t = 1_000
    for s in range(first, first + n_sessions):
        for i in range(length):
            t += 7
            rows.append(f"{s}\t{(s * 3 + i * 5) % n_items}\t{t}")
    return "\n".join(rows) + "\n"


@dataclass
class Env:
    """Read-only artefacts shared by a whole test session (never modified by a case)."""

    root: Path
    train: Path  # 10 sessions x 4 clicks over 7 items
    test: Path  # sessions over the same items
    single: Path  # every session has one event (nothing for GRU4Rec to learn)
    unknown: Path  # only items the models never saw
    pop: Path  # trained model directories
    g4r: Path
    ck: Path  # a checkpoint directory of a tiny GRU4Rec run on ``train``


def snapshot(*roots: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry under ``roots`` (hidden ones too): (mode, inode, file mtime, sha256)."""
    out: dict[str, tuple[int, int, int, str]] = {}
    for root in roots:
        if not os.path.lexists(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [".", *dirnames, *filenames]:
                p = os.path.normpath(os.path.join(dirpath, name))
                st = os.lstat(p)
                digest, mtime = "", 0  # a directory's mtime moves when an entry is
                if stat.S_ISREG(st.st_mode):  # probed: its entries are what counts
                    with open(p, "rb") as fh:
                        digest = hashlib.sha256(fh.read()).hexdigest()
                    mtime = st.st_mtime_ns
                out[p] = (st.st_mode, st.st_ino, mtime, digest)
    return out


def assert_one_error(err: str, pattern: str, exact: bool = True) -> None:
    """stderr holds exactly one ``error: ...`` line containing ``pattern`` and no
    traceback; ``exact``: nothing else at all (else: only report lines before it)."""
    assert "Traceback" not in err, err
    lines = err.strip("\n").splitlines()
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0], err
    assert pattern in errors[0], f"{pattern!r} not in {errors[0]!r}"
    if exact:
        assert len(lines) == 1, err
