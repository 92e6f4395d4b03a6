"""`seqrec train --valid-fraction / --valid-days`: a validation split carved from the
training sessions (early stopping without a separate file; no test data read)."""

import json
from pathlib import Path

import pytest

from seqrec.cli import main

SMALL = ["--set", "hidden=8", "--set", "embedding=8", "--set", "batch_size=32", "-q"]


def _train(tmp_path, excerpt, *extra, model="narm"):
    out = tmp_path / "m"
    argv = ["train", "--train", str(excerpt / "train.tsv"), "--model", model, "--out", str(out)]
    return main([*argv, *SMALL, *extra]), out


def test_valid_fraction_holds_out_the_last_sessions_and_validates_every_epoch(
    tmp_path, excerpt, capsys
):
    code, out = _train(tmp_path, excerpt, "--valid-fraction", "0.1", "--set", "n_epochs=2")
    assert code == 0
    err = capsys.readouterr().err
    assert "valid  sessions carved from --train (the last 10 % of sessions)" in err
    meta = json.loads((Path(out) / "config.json").read_text())
    history = json.dumps(meta)
    assert "recall@20" in history  # each epoch was validated


def test_valid_fraction_trains_on_fewer_sessions(tmp_path, excerpt, capsys):
    main(["train", "--train", str(excerpt / "train.tsv"), "--model", "pop", "--out",
          str(tmp_path / "a"), "-q"])  # fmt: skip
    full = capsys.readouterr().out
    main(["train", "--train", str(excerpt / "train.tsv"), "--model", "pop", "--out",
          str(tmp_path / "b"), "--valid-fraction", "0.5", "-q"])  # fmt: skip
    half = capsys.readouterr().out

    def events(text: str) -> int:
        return int(text.split("trained pop on ")[1].split(" events")[0].replace(",", ""))

    assert events(half) < 0.7 * events(full)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--valid-fraction", "1.5"], "--valid-fraction (valid_fraction) must be in (0, 1)"),
        (["--valid-days", "1"], "--valid-days (valid_days) needs timestamps"),
    ],
)
def test_bad_valid_split_is_one_line_error(tmp_path, capsys, extra, message):
    data = tmp_path / "s"
    data.mkdir()
    (data / "train_sessions.txt").write_text("1 2 3\n2 3 4\n3 4 5\n4 5 6\n")
    code = main(["train", "--train", str(data), "--format", "sessions", "--model", "pop",
                 "--out", str(tmp_path / "m"), *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err


def test_valid_and_valid_fraction_together_is_an_error(tmp_path, excerpt, capsys):
    code, _ = _train(
        tmp_path, excerpt, "--valid", str(excerpt / "test.tsv"), "--valid-fraction", "0.1"
    )
    err = capsys.readouterr().err
    assert code != 0 and "either --valid or --valid-fraction" in err


def test_user_histories_refuse_a_carved_split(tmp_path, capsys):
    hist = tmp_path / "h.txt"
    hist.write_text("1 1 2 3 4\n2 2 3 4 5\n")
    code = main(["train", "--train", str(hist), "--format", "s3rec", "--model", "pop", "--out",
                 str(tmp_path / "m"), "--valid-fraction", "0.1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "second-to-last item" in err


def test_refit_retrains_on_every_session_for_the_best_validation_epoch(tmp_path, excerpt, capsys):
    code, out = _train(
        tmp_path, excerpt, "--valid-fraction", "0.2", "--refit", "--set", "n_epochs=3",
        "--set", "patience=0",
    )  # fmt: skip
    assert code == 0
    meta = json.loads((Path(out) / "config.json").read_text())["meta"]
    refit = meta["refit"]
    valid = refit["valid_history"]
    assert [h["epoch"] for h in valid] == [1, 2, 3]
    values = [h[refit["monitor"]] for h in valid]
    assert refit["epochs"] == values.index(max(values)) + 1
    assert refit["valid_value"] == max(values)
    assert len(meta["history"]) == refit["epochs"]  # the refit's own epochs, no validation
    assert all(refit["monitor"] not in h for h in meta["history"])
    training = json.loads((Path(out) / "config.json").read_text())["training"]
    assert training["threads"] == "auto" and training["malloc_tuning"]  # as the first run
    cli_out = capsys.readouterr().out
    code, _ = _train(tmp_path / "plain", excerpt, "--set", "n_epochs=1")
    plain = capsys.readouterr().out

    def events(text: str) -> int:
        return int(text.split("trained narm on ")[1].split(" events")[0].replace(",", ""))

    assert events(cli_out) == events(plain)  # every training session, validation included


def test_refit_needs_a_carved_split_and_an_epoch_model(tmp_path, excerpt, capsys):
    code, out = _train(tmp_path, excerpt, "--refit")
    err = capsys.readouterr().err
    assert code != 0 and "give --valid-fraction or --valid-days" in err and "Traceback" not in err
    code = main(["train", "--train", str(excerpt / "train.tsv"), "--model", "pop", "--out",
                 str(tmp_path / "p"), "--valid-fraction", "0.2", "--refit", "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "models trained in epochs" in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "p").exists()
