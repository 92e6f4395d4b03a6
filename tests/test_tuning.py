"""seqrec tune: space parsing, validation carving and an end-to-end mini search."""

import json
import tomllib

import numpy as np
import pytest

from seqrec.cli import main
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError
from seqrec.tuning import carve_validation, load_space, to_toml

SPACE = """
[learning_rate]
type = "float"
low = 0.05
high = 0.2
log = true

[layers]
type = "categorical"
choices = [[8], [16]]
"""


def test_load_space_validates(write):
    assert set(load_space(write("s.toml", SPACE))) == {"learning_rate", "layers"}
    with pytest.raises(ConfigError, match="type must be"):
        load_space(write("b.toml", "[x]\ntype = 'weird'\n"))
    with pytest.raises(ConfigError, match="low <= high"):
        load_space(write("c.toml", "[x]\ntype = 'float'\nlow = 2\nhigh = 1\n"))
    with pytest.raises(ConfigError, match="unknown key"):
        load_space(write("d.toml", "[x]\ntype = 'int'\nlow = 1\nhigh = 2\nfoo = 1\n"))


def test_to_toml_round_trip():
    values = {"a": 1, "b": 0.5, "c": "x", "d": [100, 200], "e": True}
    assert tomllib.loads(to_toml(values, "header\nline")) == values


def test_carve_validation_by_fraction_keeps_only_known_items():
    log = SessionLog.from_sequences([[0, 1], [1, 2], [2, 3], [3, 9, 3], [0, 1]])
    tr, va = carve_validation(log, None, 0.4)
    assert tr.n_sessions == 3
    assert set(va.items.tolist()) <= set(tr.items.tolist())
    assert np.all(va.lengths >= 2)


def test_tune_end_to_end(excerpt, tmp_path, capsys, write):
    space = write("space.toml", SPACE)
    out = tmp_path / "best.toml"
    code = main(
        [
            "tune",
            "--train",
            str(excerpt / "train.tsv"),
            "--space",
            str(space),
            "--set",
            "n_epochs=1",
            "--set",
            "n_sample=32",
            "--trials",
            "2",
            "--valid-days",
            "0.2",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "validation: next-item over every position of " in err
    assert "(the sessions starting in the last 0.2 days); the test set is never read" in err
    best = tomllib.loads(out.read_text())
    assert best["n_epochs"] == 1 and best["layers"] in ([8], [16])
    assert [
        rec["validation"] for rec in map(json.loads, out.with_suffix(".toml.trials.jsonl").open())
    ] == ["next-item"] * 2
    assert 0.05 <= best["learning_rate"] <= 0.2
    assert (tmp_path / "best.toml.trials.jsonl").read_text().count("\n") == 2


def test_tune_rejects_parameters_outside_the_model(excerpt, tmp_path, capsys, write):
    space = write("space.toml", "[nope]\ntype = 'int'\nlow = 1\nhigh = 2\n")
    code = main(
        [
            "tune",
            "--train",
            str(excerpt / "train.tsv"),
            "--space",
            str(space),
            "--out",
            str(tmp_path / "b.toml"),
        ]
    )
    assert code == 2 and "'nope' is not a gru4rec parameter" in capsys.readouterr().err


def test_base_trial_encodes_the_base_values_that_lie_in_the_space():
    from seqrec.models import get_model_class
    from seqrec.tuning import base_trial

    space = {
        "k": {"type": "int", "low": 50, "high": 500},
        "sample_size": {"type": "categorical", "choices": [500, 1000]},
        "weighting": {"type": "categorical", "choices": ["log", "harmonic"]},
        "idf_weighting": {"type": "categorical", "choices": [False, True]},
    }
    got = base_trial(get_model_class("v-sknn"), {"k": 120}, space)
    # k from the base config, sample_size / idf_weighting from the model defaults;
    # the default weighting ("linear") is not a choice, so the sampler draws it
    assert got == {"k": 120, "sample_size": "500", "idf_weighting": "false"}
    assert base_trial(get_model_class("v-sknn"), {"k": 20}, space).get("k") is None
    layers = {"layers": {"type": "categorical", "choices": [[8], [100]]}}
    assert base_trial(get_model_class("gru4rec"), {"layers": [8]}, layers) == {"layers": "[8]"}


def test_tune_first_trial_is_the_base_config(tmp_path, write):
    """The first trial evaluates the base config; --no-base-trial leaves it to the sampler."""
    train = write(
        "train.tsv",
        "session_id\titem_id\ttimestamp\n"
        + "".join(f"{s}\t{(s + j) % 7}\t{s * 10 + j}\n" for s in range(60) for j in range(4)),
    )
    space = write("space.toml", "[k]\ntype = 'int'\nlow = 1\nhigh = 50\n")
    for flag, first_k in (([], 37), (["--no-base-trial"], None)):
        out = tmp_path / f"best{len(flag)}.toml"
        args = ["tune", "--train", str(train), "--model", "sknn", "--space", str(space)]
        args += ["--set", "k=37", "--trials", "2", "--seed", "3", "--out", str(out), "-q"]
        assert main(args + flag) == 0
        first = json.loads((tmp_path / f"{out.name}.trials.jsonl").read_text().splitlines()[0])
        if first_k is None:
            assert first["params"]["k"] != 37
        else:
            assert first["params"]["k"] == first_k
