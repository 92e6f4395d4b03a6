"""`seqrec tune` for every neural model on user histories (issue 17): each model's shipped
``configs/<model>/space.toml`` over its ``small_config``, on a synthetic s3rec file.

Every trial must train on ``history[:-2]`` and be scored on the second-to-last item of
each history of 3 or more items, from ``history[:-2]``; no history's last item (the test
label) may reach training or evaluation. ``seqrec.training.fit`` and
``seqrec.evaluation.evaluate`` are wrapped to record what each trial is given."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import seqrec.evaluation
import seqrec.training
from seqrec.cli import main
from seqrec.data.samples import Samples
from seqrec.models import MODELS
from seqrec.tuning import load_space, to_toml

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
NEURAL = sorted(name for name, cls in MODELS.items() if cls.family is not None)


def _histories() -> dict[str, list[str]]:
    """40 users over 25 items: 36 histories of 4-9 distinct items, 4 of 1-2 items (no
    validation sample: only trained on). Distinct items, so a history's last item never
    equals its second-to-last nor appears before it."""
    rng = np.random.default_rng(17)
    out: dict[str, list[str]] = {}
    for u in range(1, 41):
        n = int(rng.integers(1, 3)) if u % 10 == 0 else int(rng.integers(4, 10))
        out[str(u)] = [str(i + 1) for i in rng.choice(25, size=n, replace=False)]
    return out


def _sequences(log: Any, index: Any) -> dict[str, list[str]]:
    """user id -> external item ids of each session of a SessionLog (one per user)."""
    assert len(set(log.session_ids.tolist())) == log.n_sessions
    return {
        str(sid): [str(x) for x in index.decode(log.items[a:b])]
        for sid, a, b in zip(log.session_ids, log.offsets[:-1], log.offsets[1:], strict=True)
    }


def _in_space(value: Any, spec: dict[str, Any]) -> bool:
    if spec["type"] == "categorical":
        return value in spec["choices"]
    kind = int if spec["type"] == "int" else (int, float)
    return isinstance(value, kind) and spec["low"] <= value <= spec["high"]


def test_every_neural_model_is_covered():
    # the families that train through seqrec.training; hybrids (family None) tune weights
    assert NEURAL == [
        "bert4rec",
        "bprmf",
        "caser",
        "fpmc",
        "gru4rec",
        "narm",
        "sasrec",
        "srgnn",
        "stamp",
    ]


@pytest.mark.parametrize("name", NEURAL)
def test_tune_validates_on_the_second_to_last_items(name, tmp_path, monkeypatch, capsys):
    hist = _histories()
    data = tmp_path / "Beauty.txt"
    data.write_text("".join(f"{u} {' '.join(items)}\n" for u, items in hist.items()))
    full = {u: items for u, items in hist.items() if len(items) >= 3}
    assert 0 < len(full) < len(hist)

    base = {**MODELS[name].small_config, "n_epochs": 1, "threads": 1}
    cfg = tmp_path / "base.toml"
    cfg.write_text(to_toml(base))
    space_path = CONFIGS / name / "space.toml"
    space = load_space(space_path)

    trained: list[dict[str, list[str]]] = []
    scored: list[tuple[dict[str, list[str]], dict[str, str], bool]] = []
    real_fit, real_evaluate = seqrec.training.fit, seqrec.evaluation.evaluate

    def fit(model, train, *args, **kwargs):
        trained.append(_sequences(train, kwargs["item_index"]))
        return real_fit(model, train, *args, **kwargs)

    def evaluate(model, va, *args, **kwargs):
        assert isinstance(va, Samples)
        index = model.item_index_
        labels = dict(zip(va.prefixes.session_ids, index.decode(va.labels), strict=True))
        scored.append((_sequences(va.prefixes, index), labels, va.exclude_history))
        return real_evaluate(model, va, *args, **kwargs)

    monkeypatch.setattr(seqrec.training, "fit", fit)
    monkeypatch.setattr(seqrec.evaluation, "evaluate", evaluate)

    out = tmp_path / "best.toml"
    argv = ["tune", "--train", str(data), "--format", "s3rec", "--model", name]
    argv += ["--space", str(space_path), "--config", str(cfg), "--trials", "2"]
    assert main([*argv, "--out", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert f"the second-to-last item of each of {len(full)} histories" in err

    best = tomllib.loads(out.read_text())
    assert best["n_epochs"] == 1 and best["threads"] == 1
    for key, spec in space.items():
        assert _in_space(best[key], spec), (key, best[key], spec)
    MODELS[name](best)  # the written config builds the model
    assert "second-to-last item" in out.read_text().splitlines()[2]

    records = [json.loads(line) for line in (tmp_path / "best.toml.trials.jsonl").open()]
    assert len(records) == 2
    for rec in records:
        assert rec["validation"] == "leave-one-out" and rec["n_queries"] == len(full)
        assert all(_in_space(rec["params"][key], spec) for key, spec in space.items())

    # each trial: trained on history[:-2] (short histories whole), scored on
    # history[:-2] -> history[-2] with the history excluded; the last item nowhere
    expected_train = {u: items[:-2] if len(items) >= 3 else items for u, items in hist.items()}
    assert trained == [expected_train, expected_train]
    assert len(scored) == 2
    for prefixes, labels, excluded in scored:
        assert prefixes == {u: items[:-2] for u, items in full.items()}
        assert labels == {u: items[-2] for u, items in full.items()}
        assert all(labels[u] != items[-1] for u, items in full.items())
        assert excluded


def test_tune_refuses_histories_without_a_second_to_last_item(tmp_path, capsys, write):
    data = write("h.txt", "1 3 4\n2 5\n3 6 7\n")  # no history of 3 items: nothing to score
    space = CONFIGS / "sasrec" / "space.toml"
    argv = ["tune", "--train", str(data), "--format", "s3rec", "--model", "sasrec"]
    assert main([*argv, "--space", str(space), "--out", str(tmp_path / "b.toml"), "-q"]) == 2
    assert "no history has 3 or more items" in capsys.readouterr().err
    assert not (tmp_path / "b.toml").exists()
