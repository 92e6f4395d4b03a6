"""Every registered model goes through the command line: `seqrec train` (its
``small_config`` written as a TOML file, part tables included), `seqrec recommend` and
`seqrec evaluate`, on the shipped excerpt; the saved directory loads back and scores
deterministically (exact save/load against the trained model: tests/models/test_contract.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqrec.cli import main
from seqrec.models import MODELS, load_model
from seqrec.tuning import to_toml


def _toml(config: dict[str, Any]) -> str:
    flat = {k: v for k, v in config.items() if not isinstance(v, dict)}
    tables = [f'["{k}"]\n{to_toml(v)}' for k, v in config.items() if isinstance(v, dict)]
    return "\n".join([to_toml(flat), *tables])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_train_recommend_evaluate_from_the_cli(name, excerpt, tmp_path, capsys):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(_toml(MODELS[name].small_config))
    out = tmp_path / "model"
    train = str(excerpt / "train.tsv")
    argv = ["train", "--train", train, "--model", name, "--config", str(cfg), "--out", str(out)]
    assert main([*argv, "-q"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    first_item = (excerpt / "test.tsv").read_text().splitlines()[1].split("\t")[1]
    argv = ["recommend", "--model", str(out), "--items", first_item, "-k", "5", "--json"]
    assert main(argv) == 0
    rec = json.loads(capsys.readouterr().out)
    assert len(rec["items"]) == 5 and rec["unknown_items"] == []
    argv = ["evaluate", "--model", str(out), "--test", str(excerpt / "test.tsv"), "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_queries"] > 0 and 0.0 <= res["recall@20"] <= 1.0
    model = load_model(Path(out))
    again = load_model(Path(out))
    hist = [[0, 1, 2], [3]]
    np.testing.assert_array_equal(model.score(hist).numpy(), again.score(hist).numpy())
