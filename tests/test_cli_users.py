"""`seqrec recommend --user ID`: a model that scores known users (bprmf) gets the id; a
user of the training data is scored with its vector, another id from --items (with a
note); a model without users refuses the option. `seqrec train` / `evaluate` on a
user-history file pass the user ids along."""

from __future__ import annotations

import json

import numpy as np

from seqrec.cli import main
from seqrec.models import load_model

LINES = [
    f"{u} " + " ".join(str(100 + (u % 2) * 10 + (u + k) % 6) for k in range(5)) for u in range(30)
]


def _train(tmp_path, model: str, capsys) -> str:
    data = tmp_path / "Tiny.txt"  # S3-Rec format: user id, then the user's items in order
    data.write_text("\n".join(LINES) + "\n")
    out = tmp_path / model
    argv = ["train", "--train", str(data), "--model", model, "--out", str(out), "-q"]
    argv += ["--set", "n_epochs=2"] if model == "bprmf" else []
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    return str(out)


def _recommend(capsys, *argv: str) -> tuple[dict, str]:
    assert main(["recommend", *argv, "-k", "4", "--json"]) == 0
    cap = capsys.readouterr()
    return json.loads(cap.out), cap.err


def test_recommend_for_a_known_and_an_unknown_user(tmp_path, capsys):
    out = _train(tmp_path, "bprmf", capsys)
    model = load_model(out)
    known, err = _recommend(capsys, "--model", out, "--items", "", "--user", "7")
    assert err == ""  # a known user needs no history
    ids, scores = model.recommend([np.array([], dtype=np.int64)], 4, users=["7"])
    assert known["items"] == model.item_index_.decode(ids[0])
    np.testing.assert_allclose(known["scores"], scores[0], rtol=1e-5)
    folded, err = _recommend(capsys, "--model", out, "--items", "101 102", "--user", "x9")
    assert "user 'x9' is not one of the model's users" in err
    plain, _ = _recommend(capsys, "--model", out, "--items", "101 102")
    assert folded == plain  # an unknown user is scored from the items alone


def test_evaluate_a_user_history_file(tmp_path, capsys):
    out = _train(tmp_path, "bprmf", capsys)
    data = str(tmp_path / "Tiny.txt")
    assert main(["evaluate", "--model", out, "--test", data, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["protocol"] == "last-item" and res["n_queries"] == 30


def test_a_model_without_users_refuses_the_option(tmp_path, capsys):
    out = _train(tmp_path, "pop", capsys)
    assert main(["recommend", "--model", out, "--items", "101", "--user", "7"]) == 2
    assert "--user: model pop does not use user ids" in capsys.readouterr().err
