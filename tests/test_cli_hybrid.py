"""Hybrids from the command line: `seqrec train --model hybrid|gru4rec+vsknn` with part
configs, `seqrec hybrid` over saved model directories, and their one-line errors."""

import json

import pytest

from seqrec.cli import main
from seqrec.models import load_model


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors (one line too: cli._Parser)
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def parts(tmp_path_factory, excerpt):
    out = tmp_path_factory.mktemp("parts")
    for model in ("session-pop", "sknn"):
        argv = ["train", "--train", excerpt / "train.tsv", "--model", model, "--out", out / model]
        assert main([str(a) for a in [*argv, "-q"]]) == 0
    # the same model on other data: another catalogue
    argv = ["train", "--train", excerpt / "test.tsv", "--model", "pop", "--out", out / "other"]
    assert main([str(a) for a in [*argv, "-q"]]) == 0
    return out


def test_train_a_hybrid_with_tables_part_config_files_and_dotted_keys(
    excerpt, tmp_path, capsys, write
):
    cfg = write(
        "hybrid.toml", 'model = "hybrid"\nparts = ["session-pop", "sknn"]\n[sknn]\nk = 30\n'
    )
    sknn = write("sknn.toml", 'model = "sknn"\nk = 40\nsample_size = 200\n')
    code, out, _ = run(
        capsys,
        "train",
        "--train",
        excerpt / "train.tsv",
        "--model",
        "hybrid",
        "--config",
        cfg,
        "--part-config",
        f"sknn={sknn}",
        "--set",
        "sknn.k=50",
        "--out",
        tmp_path / "h",
        "-q",
    )
    assert code == 0 and "trained hybrid" in out
    model = load_model(tmp_path / "h")
    assert model.part_configs() == [{}, {"k": 50, "sample_size": 200}]
    assert model.parts_[1].config.k == 50 and model.parts_[1].config.sample_size == 200
    assert sum(model.weights_) == pytest.approx(1.0)
    assert model.meta_["tuning"]["validation"] == "carved from the training data"
    code, out, _ = run(
        capsys,
        "evaluate",
        "--model",
        tmp_path / "h",
        "--test",
        excerpt / "test.tsv",
        "--json",
        "-q",
    )
    assert code == 0 and json.loads(out)["recall@20"] > 0.3
    code, out, _ = run(
        capsys, "recommend", "--model", tmp_path / "h", "--items", "214827009", "-k", "3", "--json"
    )
    assert code == 0 and len(json.loads(out)["items"]) == 3


def test_hybrid_of_saved_dirs_with_given_or_tuned_weights(parts, excerpt, tmp_path, capsys):
    dirs = [parts / "session-pop", parts / "sknn"]
    code, out, _ = run(
        capsys, "hybrid", "--parts", *dirs, "--weights", "0.25", "0.75", "--out", tmp_path / "w"
    )
    assert code == 0 and "weights [0.25, 0.75]" in out
    fixed = load_model(tmp_path / "w")
    assert fixed.weights_ == (0.25, 0.75) and fixed.meta_["combined_from"] == [str(d) for d in dirs]
    code, out, _ = run(
        capsys,
        "hybrid",
        "--parts",
        *dirs,
        "--train",
        excerpt / "train.tsv",
        "--metric",
        "recall@20",
        "--out",
        tmp_path / "t",
    )
    assert code == 0 and "validation recall@20" in out
    tuned = load_model(tmp_path / "t")
    assert tuned.meta_["tuning"]["metric"] == "recall@20"
    code, out, _ = run(
        capsys,
        "hybrid",
        "--parts",
        *dirs,
        "--kind",
        "switching",
        "--valid",
        excerpt / "test.tsv",
        "--max-threshold",
        "4",
        "--out",
        tmp_path / "s",
    )
    assert code == 0 and "threshold" in out
    assert len(load_model(tmp_path / "s").meta_["tuning"]["grid"]) == 5


@pytest.mark.parametrize(
    "extra, pattern",
    [
        (["--weights", "1"], "weights has 1 values for 2 parts"),
        (["--weights", "-1", "2"], "weights must be >= 0"),
        (["--weights", "nan", "1"], "expected a finite number"),
        ([], "give --weights"),
        (["--weights", "0.5", "0.5", "--valid", "x.tsv"], "nothing to tune"),
        (["--kind", "switching", "--weights", "1", "1"], "weights apply to kind 'weighted'"),
    ],
)
def test_hybrid_errors_are_one_line_exit_2(parts, tmp_path, capsys, extra, pattern):
    dirs = [parts / "session-pop", parts / "sknn"]
    code, _, err = run(capsys, "hybrid", "--parts", *dirs, *extra, "--out", tmp_path / "h")
    assert code == 2 and pattern in err and err.count("\n") == 1
    assert not (tmp_path / "h").exists()


def test_parts_of_other_catalogues_are_refused(parts, tmp_path, capsys):
    dirs = [parts / "sknn", parts / "other"]
    code, _, err = run(capsys, "hybrid", "--parts", *dirs, "--weights", "1", "1", "--out", tmp_path)
    assert code == 2 and "must share one catalogue" in err and str(dirs[1]) in err


def test_part_config_errors(excerpt, tmp_path, capsys, write):
    base = ["train", "--train", excerpt / "train.tsv", "--out", tmp_path / "m", "-q"]
    g = write("g.toml", "layers = [8]\n")
    code, _, err = run(capsys, *base, "--model", "sknn", "--part-config", f"gru4rec={g}")
    assert code == 2 and "--part-config is for hybrid models" in err
    code, _, err = run(capsys, *base, "--model", "gru4rec+vsknn", "--part-config", f"sknn={g}")
    assert code == 2 and "table [sknn] names no part" in err
    code, _, err = run(capsys, *base, "--model", "gru4rec+vsknn", "--part-config", f"v-sknn={g}")
    assert code == 2 and "part 1 (v-sknn): unknown config key 'layers'" in err
    code, _, err = run(capsys, *base, "--model", "gru4rec+vsknn", "--part-config", "v-sknn")
    assert code == 2 and "expects NAME=FILE.toml" in err
