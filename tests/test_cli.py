"""The seqrec command line: every sub-command, JSON output and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqrec.cli import build_parser, main

SMALL_G4R = [
    "--set",
    "layers=[16]",
    "--set",
    "n_epochs=1",
    "--set",
    "n_sample=32",
    "--set",
    "batch_size=16",
]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, excerpt):
    out = tmp_path_factory.mktemp("models")
    paths = {}
    for model, extra in (("pop", []), ("session-pop", []), ("gru4rec", SMALL_G4R)):
        assert (
            main(
                [
                    "train",
                    "--train",
                    str(excerpt / "train.tsv"),
                    "--model",
                    model,
                    "--out",
                    str(out / model),
                    "-q",
                    *extra,
                ]
            )
            == 0
        )
        paths[model] = out / model
    return paths


def test_help_of_every_subcommand_documents_every_option(capsys):
    parser = build_parser()
    subs = parser._subparsers._group_actions[0].choices
    for name, sub in subs.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    assert "--set" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["pop", "session-pop", "gru4rec"])
def test_evaluate_json_is_one_object(trained, excerpt, capsys, model):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--model",
        str(trained[model]),
        "--test",
        str(excerpt / "test.tsv"),
        "--k",
        "5,20",
        "--json",
        "-q",
    )
    assert code == 0
    res = json.loads(out)  # exactly one JSON document on stdout
    for key in ("recall@20", "mrr@20", "ndcg@20", "recall@5", "n_queries", "protocol", "ties"):
        assert key in res
    assert res["protocol"] == "next-item" and res["ties"] == "conservative"
    assert res["n_queries"] > 500
    assert 0.0 < res["recall@20"] <= 1.0


def test_evaluate_table_and_options(trained, excerpt, capsys):
    code, out, _ = run(
        capsys,
        "evaluate",
        "--model",
        str(trained["session-pop"]),
        "--test",
        str(excerpt / "test.tsv"),
        "--ties",
        "optimistic",
        "--exclude-history",
        "-q",
    )
    assert code == 0
    assert "ties optimistic" in out and "Recall" in out


def test_recommend_prints_items_and_reports_unknown(trained, capsys):
    code, out, err = run(
        capsys,
        "recommend",
        "--model",
        str(trained["gru4rec"]),
        "--items",
        "214827009 not-an-item",
        "-k",
        "3",
        "--json",
    )
    assert code == 0
    res = json.loads(out)
    assert len(res["items"]) == 3 and res["unknown_items"] == ["not-an-item"]
    assert "unknown" in err
    code, _, err = run(
        capsys,
        "recommend",
        "--model",
        str(trained["gru4rec"]),
        "--items",
        "not-an-item",
        "--strict",
    )
    assert code == 2 and err.startswith("error:") and "not-an-item" in err


def test_data_stats(excerpt, capsys):
    code, out, _ = run(capsys, "data", "stats", str(excerpt / "train.tsv"))
    assert code == 0
    assert "events    5,293" in out and "sessions  1,265" in out and "length distribution" in out


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "gru4rec", "--set", "lerning_rate=0.1"], "unknown config key 'lerning_rate'"),
        (["--model", "gru4rec", "--set", "layers=abc"], "layers"),
        (["--model", "gru4rec", "--set", "dropout_p_hidden=2.0"], "dropout_p_hidden"),
        (["--model", "pop", "--config", "/nonexistent.toml"], "config file not found"),
        (["--model", "bprmf", "--set", 'matmul_precision="bfloat16"'], "float32 only"),
        (
            ["--model", "narm", "--set", 'matmul_precision="bfloat16"', "--set", 'loss="bpr-max"'],
            "bfloat16 applies to the full softmax cross-entropy",
        ),
    ],
)
def test_train_errors_are_one_line_exit_2(excerpt, tmp_path, capsys, argv, pattern):
    code, _, err = run(
        capsys,
        "train",
        "--train",
        str(excerpt / "train.tsv"),
        "--out",
        str(tmp_path / "m"),
        "-q",
        *argv,
    )
    assert code == 2
    assert err.startswith("error:") and pattern in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_bad_data_file_is_one_line_error(tmp_path, capsys, write):
    bad = write("bad.tsv", "SessionId\tItemId\tTime\n1\t10\t100\n1\t11\tabc\n")
    code, _, err = run(
        capsys, "train", "--train", str(bad), "--model", "pop", "--out", str(tmp_path / "m")
    )
    assert code == 2
    assert "bad.tsv" in err and "line 3" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(
        capsys,
        "train",
        "--train",
        str(tmp_path / "missing.tsv"),
        "--model",
        "pop",
        "--out",
        str(tmp_path / "m"),
    )
    assert code == 2 and "missing.tsv" in err


def test_evaluate_bad_model_dir(tmp_path, excerpt, capsys):
    code, _, err = run(
        capsys, "evaluate", "--model", str(tmp_path), "--test", str(excerpt / "test.tsv")
    )
    assert code == 2 and err.startswith("error:")


def test_bad_k_is_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--model", "x", "--test", "y", "--k", "0,5"])
    assert exc.value.code == 2


def test_config_file_and_set_override(excerpt, tmp_path, capsys):
    cfg = tmp_path / "g.toml"
    cfg.write_text('model = "gru4rec"\nlayers = [8]\nn_epochs = 1\nn_sample = 16\n')
    code, _out, _ = run(
        capsys,
        "train",
        "--train",
        str(excerpt / "train.tsv"),
        "--model",
        "gru4rec",
        "--config",
        str(cfg),
        "--set",
        "loss=bpr-max",
        "--out",
        str(tmp_path / "m"),
        "-q",
    )
    assert code == 0
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["config"]["layers"] == [8] and saved["training"]["loss"] == "bpr-max"
    cfg.write_text('model = "pop"\n')
    code, _, err = run(
        capsys,
        "train",
        "--train",
        str(excerpt / "train.tsv"),
        "--model",
        "gru4rec",
        "--config",
        str(cfg),
        "--out",
        str(tmp_path / "m2"),
    )
    assert code == 2 and "for model 'pop'" in err


def test_entry_point_subprocess_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqrec.cli",
            "train",
            "--train",
            str(tmp_path / "nothing.tsv"),
            "--model",
            "pop",
            "--out",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error:")


def test_build_kernels_says_where_they_are(capsys):
    import shutil

    from seqrec.training import kernels as fused

    if not shutil.which("c++") or fused.kernels() is None:
        pytest.skip("no C++ compiler here: the pure-torch path is used")
    code, out, err = run(capsys, "build-kernels")
    assert code == 0, err
    assert out.startswith("seqrec's CPU kernels ")
    library = out.strip().rsplit(": ", 1)[1]
    assert library.endswith(".so") and Path(library).is_file()


def test_build_kernels_without_a_compiler_is_one_line_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-seqrec")
    code, out, err = run(capsys, "build-kernels")
    assert code == 2 and out == ""
    assert err.startswith("error: no C++ compiler") and err.count("\n") == 1


def test_trained_model_records_which_training_path_ran(trained):
    from seqrec.training import kernels as fused

    meta = json.loads((trained["gru4rec"] / "config.json").read_text())["meta"]
    assert meta["kernels"] in (fused.FUSED_CPU, fused.TORCH_FALLBACK)


@pytest.mark.parametrize("model", ["vmis-knn", "sr", "itemknn"])
def test_train_logs_and_records_the_index_size_and_build_time(excerpt, tmp_path, capsys, model):
    from seqrec.models import load_model

    code, out, _ = run(
        capsys, "train", "--train", str(excerpt / "train.tsv"), "--model", model,
        "--out", str(tmp_path / model), "-q",
    )  # fmt: skip
    assert code == 0
    meta = load_model(tmp_path / model).meta_
    assert meta["index_mib"] > 0 and meta["index_build_seconds"] >= 0
    assert f"index: {meta['index_mib']:.1f} MiB, built in" in out


def test_stamp_trains_with_bfloat16_products_from_the_cli(excerpt, tmp_path, capsys):
    out = tmp_path / "m"
    code, _, err = run(
        capsys,
        "train",
        "--train",
        str(excerpt / "train.tsv"),
        "--model",
        "stamp",
        "--set",
        "n_epochs=1",
        "--set",
        'matmul_precision="bfloat16"',
        "--out",
        str(out),
        "-q",
    )
    assert code == 0, err
    code, out_text, _ = run(
        capsys, "evaluate", "--model", str(out), "--test", str(excerpt / "test.tsv"), "--json"
    )
    assert code == 0 and 0.0 < json.loads(out_text)["recall@20"] <= 1.0
