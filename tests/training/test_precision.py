"""``matmul_precision = "auto"``: bfloat16 products where the configuration has them
and the device computes bfloat16 natively, float32 everywhere else (never an error)."""

from __future__ import annotations

import pytest
import torch

from seqrec.errors import ConfigError
from seqrec.models.bert4rec import BERT4Rec
from seqrec.models.bprmf import BPRMF
from seqrec.models.gru4rec import GRU4Rec
from seqrec.models.sasrec import SASRec
from seqrec.training import build_task, precision
from tests.models.test_bert4rec import chain
from tests.training.test_fast_step import BASE, make_task

AUTO = {"matmul_precision": "auto"}


@pytest.fixture(params=[True, False], ids=["native", "emulated"])
def native(request, monkeypatch) -> bool:
    monkeypatch.setattr(precision, "native_bf16", lambda device: request.param)
    return request.param


def test_cpu_flags_are_read_from_cpuinfo(tmp_path) -> None:
    for flags, want in (("fpu avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True),
                        ("fpu avx2 avx512f", False)):  # fmt: skip
        f = tmp_path / f"cpuinfo-{want}-{len(flags)}"
        f.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert precision.cpu_has_native_bf16(str(f)) is want
    assert precision.cpu_has_native_bf16(str(tmp_path / "missing")) is False
    assert precision.native_bf16("meta") is False


def test_resolution_rules(native: bool) -> None:
    bf16 = torch.bfloat16
    assert precision.resolve_matmul_dtype("float32", "cpu", True) is None
    assert precision.resolve_matmul_dtype("bfloat16", "cpu", True) is bf16
    assert precision.resolve_matmul_dtype("auto", "cpu", True) is (bf16 if native else None)
    assert precision.resolve_matmul_dtype("auto", "cpu", False) is None


def test_sequence_models_take_bfloat16_only_for_the_full_cross_entropy(native: bool) -> None:
    small = {"hidden": 8, "n_blocks": 1, "max_len": 6}
    for cls in (SASRec, BERT4Rec):
        task = build_task(cls({**small, **AUTO}), chain(30))
        assert task.matmul_dtype is (torch.bfloat16 if native else None)
        keys = {**small, **AUTO, "negatives": "uniform", "n_sample": 4}
        sampled = build_task(cls(keys), chain(30))
        assert sampled.matmul_dtype is None  # no error: float32 where bf16 cannot apply
        with pytest.raises(ConfigError, match="bfloat16"):
            cls({**small, "matmul_precision": "bfloat16", "negatives": "uniform", "n_sample": 4})


def test_gru4rec_fast_step_follows_auto_and_the_autograd_step_stays_float32(native) -> None:
    _, task = make_task({**BASE, **AUTO}, "fast")
    assert task.fast_step.lp is (torch.bfloat16 if native else None)
    model = GRU4Rec({**BASE, **AUTO, "cell": "lstm"})  # no fast step: float32, no error
    assert model.training_keys["matmul_precision"] == "auto"


def test_auto_is_accepted_everywhere_and_other_values_are_not() -> None:
    assert BPRMF({**AUTO}).training_keys["matmul_precision"] == "auto"
    with pytest.raises(ConfigError, match="matmul_precision"):
        SASRec({"matmul_precision": "float16"})
