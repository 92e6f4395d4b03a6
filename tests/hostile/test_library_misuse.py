"""The same guards for library users (no CLI in between): one-line SeqrecErrors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, DataError, ModelFileError
from seqrec.models import load_model
from seqrec.models.gru4rec import GRU4Rec
from seqrec.models.pop import Pop
from seqrec.training import fit
from seqrec.training.loop import checkpoint_fingerprint

SMALL = {"layers": [8], "n_epochs": 1, "n_sample": 4, "batch_size": 2}


def log_of(*sessions: list[int]) -> SessionLog:
    offsets = np.cumsum([0, *map(len, sessions)]).astype(np.int64)
    items = np.asarray([i for s in sessions for i in s], dtype=np.int32)
    return SessionLog(offsets=offsets, items=items)


def test_gru4rec_refuses_a_log_without_pairs_pop_does_not() -> None:
    single = log_of([0], [1], [2], [1])
    with pytest.raises(DataError, match=r"4 sessions with 4 events, but no session has 2"):
        GRU4Rec(SMALL).fit(single)
    assert Pop().fit(single).n_items_ == 3


def test_resume_needs_a_checkpoint_dir() -> None:
    with pytest.raises(ConfigError, match="resume needs a checkpoint directory"):
        fit(GRU4Rec(SMALL), log_of([0, 1, 2], [2, 1]), resume=True)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("logq", float("nan")),
        ("bpreg", float("nan")),
        ("learning_rate", float("inf")),
        ("momentum", float("-inf")),
        ("init_scale", 10**400),
    ],
)
def test_non_finite_floats_are_rejected(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"'{key}': (expected a finite number|.* is too large)"):
        GRU4Rec({key: value})


def test_fingerprint_ignores_run_options_only() -> None:
    log = log_of([0, 1, 2], [2, 1])
    a = checkpoint_fingerprint({"layers": [8], "n_epochs": 1, "device": "cpu"}, log, 3)
    b = checkpoint_fingerprint({"layers": [8], "n_epochs": 9, "device": "cuda"}, log, 3)
    c = checkpoint_fingerprint({"layers": [9], "n_epochs": 1, "device": "cpu"}, log, 3)
    d = checkpoint_fingerprint({"layers": [8], "n_epochs": 1}, log_of([0, 2, 1], [2, 1]), 3)
    assert a == b and a != c and a["data"] != d["data"]


def test_load_validates_fields_for_library_users(tmp_path, env) -> None:
    shutil.copytree(env.g4r, tmp_path / "m")
    f = tmp_path / "m" / "config.json"
    good = json.loads(f.read_text())
    for broken, field in (
        ([1, 2, 3], "JSON object"),
        ({**good, "n_items": "many"}, "'n_items'"),
        ({**good, "format_version": 3}, "'format_version' is 3"),
        ({**good, "config": {**good["config"], "cell": 3}}, "field 'config'"),
    ):
        f.write_text(json.dumps(broken))
        with pytest.raises(ModelFileError, match=field) as exc:
            GRU4Rec.load(tmp_path / "m")
        assert str(f) in str(exc.value) and "\n" not in str(exc.value)
        with pytest.raises(ModelFileError, match=field):
            load_model(tmp_path / "m")
