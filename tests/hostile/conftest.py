"""The hostile tests' shared artefacts: tiny data and tiny trained models."""

from __future__ import annotations

import pytest

from seqrec.cli import main
from tests.hostile.helpers import TINY_G4R, Env, tiny_log


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("hostile-env")
    (root / "train.tsv").write_text(tiny_log())
    (root / "test.tsv").write_text(tiny_log(4, 5, first=100))
    (root / "single.tsv").write_text(tiny_log(6, 1))
    (root / "unknown.tsv").write_text(
        "SessionId\tItemId\tTime\n1\tx1\t1\n1\tx2\t2\n1\tx3\t3\n2\tx4\t4\n2\tx5\t5\n"
    )
    e = Env(
        root,
        root / "train.tsv",
        root / "test.tsv",
        root / "single.tsv",
        root / "unknown.tsv",
        root / "pop",
        root / "g4r",
        root / "ck",
    )
    assert (
        main(["train", "--train", str(e.train), "--model", "pop", "--out", str(e.pop), "-q"]) == 0
    )
    argv = ["train", "--train", str(e.train), "--model", "gru4rec", *TINY_G4R]
    assert main([*argv, "--out", str(e.g4r), "--checkpoint-dir", str(e.ck)]) == 0
    return e
