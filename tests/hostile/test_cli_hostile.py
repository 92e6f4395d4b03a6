"""Hostile input against every ``seqrec`` sub-command, run in-process.

Every case asserts the exact outcome: exit code 2, stderr holding exactly one
``error: ...`` line (no traceback) that says what is wrong, nothing on stdout, and not
one byte, mode or inode changed under the case's directory or the shared artefacts
(models, data, checkpoints): no file written, replaced or deleted, no temp dir left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seqrec.cli import json_dumps_finite, main
from tests.hostile.helpers import TINY_G4R, Env, assert_one_error, snapshot, tiny_log

Setup = Callable[[Path, Env], None]


@dataclass
class Case:
    id: str
    argv: list[str]
    pattern: str  # must appear in the error line
    setup: Setup | None = None
    exact: bool = True  # stderr is the error line alone (else report lines may precede)
    extra: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ setups
def write(name: str, data: str | bytes) -> Setup:
    def setup(tmp: Path, env: Env) -> None:
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data, encoding="utf-8")

    return setup


def mkdirs(*names: str) -> Setup:
    def setup(tmp: Path, env: Env) -> None:
        for n in names:
            (tmp / n).mkdir(parents=True, exist_ok=True)

    return setup


def chain(*setups: Setup) -> Setup:
    def setup(tmp: Path, env: Env) -> None:
        for s in setups:
            s(tmp, env)

    return setup


def model_copy(which: str = "g4r") -> Setup:
    def setup(tmp: Path, env: Env) -> None:
        shutil.copytree(getattr(env, which), tmp / "m")

    return setup


def ck_copy() -> Setup:
    def setup(tmp: Path, env: Env) -> None:
        shutil.copytree(env.ck, tmp / "ck")

    return setup


def edit_config(which: str = "g4r", **changes: object) -> Setup:
    """A copy of a trained model whose config.json has ``changes`` (``...`` deletes)."""

    def setup(tmp: Path, env: Env) -> None:
        model_copy(which)(tmp, env)
        f = tmp / "m" / "config.json"
        info = json.loads(f.read_text())
        for k, v in changes.items():
            if v is ...:
                info.pop(k, None)
            elif k == "config_patch":
                info["config"].update(v)  # type: ignore[arg-type]
            else:
                info[k] = v
        f.write_text(json.dumps(info))

    return setup


def model_file(name: str, data: str | bytes, which: str = "g4r") -> Setup:
    return chain(model_copy(which), write(f"m/{name}", data))


def model_remove(name: str) -> Setup:
    def setup(tmp: Path, env: Env) -> None:
        model_copy()(tmp, env)
        (tmp / "m" / name).unlink()

    return setup


def ck_info(data: str) -> Setup:
    return chain(ck_copy(), write("ck/checkpoint/info.json", data))


def ck_info_edit(**changes: object) -> Setup:
    def setup(tmp: Path, env: Env) -> None:
        ck_copy()(tmp, env)
        f = tmp / "ck" / "checkpoint" / "info.json"
        info = json.loads(f.read_text())
        info.update(changes)
        f.write_text(json.dumps(info))

    return setup


def symlink(name: str, to: str) -> Setup:
    def setup(tmp: Path, env: Env) -> None:
        (tmp / to).mkdir(exist_ok=True)
        (tmp / name).symlink_to(tmp / to)

    return setup


# ------------------------------------------------------------------ cases
TRAIN = ["train", "--train", "{train}", "--out", "{tmp}/out"]
G4R = [*TRAIN, "--model", "gru4rec", *TINY_G4R]
POP = [*TRAIN, "--model", "pop", "-q"]
RESUME = [*G4R, "--checkpoint-dir", "{tmp}/ck", "--resume"]
EVAL = ["evaluate", "--test", "{test}", "-q"]
EVAL_M = [*EVAL, "--model", "{tmp}/m"]
REC = ["recommend", "--items", "1 2"]
TUNE = ["tune", "--train", "{train}", "--trials", "1", "-q"]
SERVE = ["serve", "--port", "0", "--log-level", "critical"]
# the training log with two clicks of one session swapped: same size, other events
SWAPPED = tiny_log().replace("1\t3\t1007\n1\t1\t1014", "1\t1\t1007\n1\t3\t1014")
SPACE = '[learning_rate]\ntype = "float"\nlow = 0.01\nhigh = 0.1\n'


def _set(*pairs: str) -> list[str]:
    return [x for p in pairs for x in ("--set", p)]


CASES = [
    # -- train: model names, --set values (checked before any data is read)
    Case("train-unknown-model", [*TRAIN, "--model", "nope"], "unknown model 'nope'"),
    Case("set-unknown-key", [*G4R, *_set("lerning_rate=0.1")], "did you mean 'learning_rate'"),
    Case("set-no-equals", [*G4R, *_set("layers")], "--set expects key=value"),
    Case("set-empty-key", [*G4R, *_set("=3")], "--set expects key=value"),
    Case("set-layers-string", [*G4R, *_set("layers=abc")], "'layers'"),
    Case("set-layers-empty", [*G4R, *_set("layers=[]")], "layers must be a non-empty"),
    Case("set-layers-zero", [*G4R, *_set("layers=[0]")], "layers must be a non-empty"),
    Case("set-layers-float", [*G4R, *_set("layers=[8.5]")], "expected an integer"),
    Case("set-dropout-1", [*G4R, *_set("dropout_p_hidden=1.0")], "dropout_p_hidden"),
    Case("set-dropout-neg", [*G4R, *_set("dropout_p_embed=-0.1")], "dropout_p_embed"),
    Case("set-logq-nan", [*G4R, *_set("logq=nan")], "'logq': expected a finite number"),
    Case("set-bpreg-nan", [*G4R, *_set("bpreg=nan")], "'bpreg': expected a finite number"),
    Case("set-lr-inf", [*G4R, *_set("learning_rate=inf")], "'learning_rate': expected a finite"),
    Case("set-lr-neg-inf", [*G4R, *_set("learning_rate=-inf")], "expected a finite number"),
    Case("set-lr-huge-int", [*G4R, *_set("learning_rate=1" + "0" * 400)], "too large"),
    Case("set-lr-overflow", [*G4R, *_set("learning_rate=1e400")], "expected a finite number"),
    Case("set-alpha-nan", [*G4R, *_set("sample_alpha=nan")], "'sample_alpha'"),
    Case("set-elu-neg", [*G4R, *_set("elu_param=-1")], "elu_param"),
    Case("set-lr-zero", [*G4R, *_set("learning_rate=0")], "learning_rate must be > 0"),
    Case("set-lr-string", [*G4R, *_set("learning_rate=fast")], "expected a number"),
    Case("set-lr-bool", [*G4R, *_set("learning_rate=true")], "expected a number"),
    Case("set-momentum", [*G4R, *_set("momentum=1.5")], "momentum must be in [0, 1)"),
    Case("set-epochs-neg", [*G4R, *_set("n_epochs=-1")], "n_epochs must be >= 0"),
    Case("set-batch-zero", [*G4R, *_set("batch_size=0")], "batch_size"),
    Case("set-loss", [*G4R, *_set("loss=hinge")], "'hinge' is not one of"),
    Case("set-cell", [*G4R, *_set("cell=lstm2")], "'lstm2' is not one of"),
    Case("set-seed-float", [*G4R, *_set("seed=1.5")], "'seed': expected an integer"),
    Case("set-sample-bool", [*G4R, *_set("n_sample=true")], "'n_sample': expected an integer"),
    Case("set-table", [*G4R, *_set("layers={a=1}")], "'layers': expected a list"),
    Case("set-embed-conflict", [*G4R, *_set("embedding=8")], "conflicts"),
    Case("pop-bad-support", [*POP, *_set("support=all")], "'all' is not one of"),
    Case("pop-foreign-key", [*POP, *_set("layers=[8]")], "unknown config key 'layers'"),
    # -- train: --config TOML files
    Case("config-missing", [*G4R, "--config", "{tmp}/no.toml"], "config file not found"),
    Case(
        "config-invalid",
        [*G4R, "--config", "{tmp}/c.toml"],
        "invalid TOML",
        write("c.toml", "layers = ["),
    ),
    Case(
        "config-binary",
        [*G4R, "--config", "{tmp}/c.toml"],
        "not valid UTF-8",
        write("c.toml", b"\xff\xfe\x00x"),
    ),
    Case(
        "config-directory",
        [*G4R, "--config", "{tmp}/c"],
        "is a directory",
        mkdirs("c"),
    ),
    Case(
        "config-other-model",
        [*G4R, "--config", "{tmp}/c.toml"],
        "for model 'pop'",
        write("c.toml", 'model = "pop"\n'),
    ),
    Case(
        "config-unknown-key",
        [*G4R, "--config", "{tmp}/c.toml"],
        "unknown config key 'hidden'",
        write("c.toml", "hidden = 3\n"),
    ),
    Case(
        "config-wrong-type",
        [*G4R, "--config", "{tmp}/c.toml"],
        "'embedding': expected an integer",
        write("c.toml", 'embedding = "eight"\n'),
    ),
    Case(
        "config-nan",
        [*G4R, "--config", "{tmp}/c.toml"],
        "'logq': expected a finite",
        write("c.toml", "logq = nan\n"),
    ),
    Case(
        "config-inf",
        [*G4R, "--config", "{tmp}/c.toml"],
        "'momentum': expected a finite",
        write("c.toml", "momentum = inf\n"),
    ),
    Case(
        "config-table",
        [*G4R, "--config", "{tmp}/c.toml"],
        "unknown config key 'training'",
        write("c.toml", "[training]\nlr = 1\n"),
    ),
    Case(
        "config-date",
        [*G4R, "--config", "{tmp}/c.toml"],
        "'seed': expected an integer",
        write("c.toml", "seed = 2024-01-01\n"),
    ),
    # -- train: outputs (checked before training; nothing of the user's is touched)
    Case("resume-no-ckdir", [*G4R, "--resume"], "--resume needs --checkpoint-dir"),
    Case("out-is-file", [*G4R, "--out", "{tmp}/f.txt"], "not a directory", write("f.txt", "mine")),
    Case(
        "out-foreign-dir",
        G4R,
        "holds 'notes.txt'",
        chain(write("out/notes.txt", "mine"), mkdirs("out/sub")),
    ),
    Case("out-foreign-subdir", G4R, "holds 'sub'", mkdirs("out/sub")),
    Case("out-hidden-file", G4R, "holds '.keep'", write("out/.keep", "")),
    Case(
        "out-fake-model",
        G4R,
        "is not a seqrec model directory",
        write("out/config.json", '{"mine": 1}'),
    ),
    Case("out-proc", [*G4R, "--out", "/proc/seqrec-x/m"], "cannot write here"),
    Case(
        "out-under-file",
        [*G4R, "--out", "{tmp}/f.txt/m"],
        "is not a directory",
        write("f.txt", "x"),
    ),
    Case("out-symlink", G4R, "symbolic link", symlink("out", "real")),
    Case("out-dot", [*G4R, "--out", "/"], "not a usable output directory"),
    Case("ckdir-is-out", [*G4R, "--checkpoint-dir", "{tmp}/out"], "must not be --out"),
    Case("ckdir-in-out", [*G4R, "--checkpoint-dir", "{tmp}/out/ck"], "must not be --out"),
    Case(
        "out-in-ckpt",
        [*G4R, "--out", "{tmp}/ck/checkpoint/m", "--checkpoint-dir", "{tmp}/ck"],
        "must not be --out",
    ),
    Case(
        "ckdir-under-file",
        [*G4R, "--checkpoint-dir", "{tmp}/f.txt/ck"],
        "is not a directory",
        write("f.txt", "x"),
    ),
    Case(
        "ckdir-foreign",
        [*G4R, "--checkpoint-dir", "{tmp}/ck"],
        "holds 'mine.txt'",
        write("ck/checkpoint/mine.txt", "x"),
    ),
    Case("ckdir-proc", [*G4R, "--checkpoint-dir", "/proc/seqrec-x"], "cannot write here"),
    # -- train: data (read after the checks above: the data report may precede)
    Case("train-missing", [*G4R[:2], "{tmp}/none.tsv", *G4R[3:]], "no such file or directory"),
    Case("train-empty", [*G4R[:2], "{tmp}/e.tsv", *G4R[3:]], "file is empty", write("e.tsv", "")),
    Case("train-dir", [*G4R[:2], "{tmp}", *G4R[3:]], "not a sessions folder"),
    Case("train-bad-col", [*G4R, "--session-col", "sid"], "sid", exact=False),
    Case("train-bad-format", [*G4R, "--format", "xml"], "invalid choice: 'xml'"),
    Case(
        "train-single-events",
        [*G4R[:2], "{single}", *G4R[3:]],
        "no session has 2 or more events",
        exact=False,
    ),
    Case(
        "train-bad-time",
        [*POP[:2], "{tmp}/b.tsv", *POP[3:]],
        "line 3",
        write("b.tsv", "SessionId\tItemId\tTime\n1\t10\t100\n1\t11\tabc\n"),
        exact=False,
    ),
    Case("train-valid-missing", [*G4R, "--valid", "{tmp}/none.tsv"], "no such file", exact=False),
    Case("train-device", [*G4R, "--device", "tpu"], "unknown device 'tpu'", exact=False),
    # -- train --resume: checkpoints of other configs / data, corrupt info.json
    Case(
        "resume-other-layers",
        [*RESUME, *_set("layers=[4]")],
        "belongs to another configuration (layers",
        ck_copy(),
        exact=False,
    ),
    Case(
        "resume-other-loss",
        [*RESUME, *_set("loss=bpr-max")],
        "another configuration (loss",
        ck_copy(),
        exact=False,
    ),
    Case(
        "resume-other-data",
        [*RESUME[:2], "{tmp}/d.tsv", *RESUME[3:]],
        "belongs to another dataset (n_items",
        chain(ck_copy(), write("d.tsv", tiny_log(n_items=5))),
        exact=False,
    ),
    Case(
        "resume-same-shape-data",
        [*RESUME[:2], "{tmp}/d.tsv", *RESUME[3:]],
        "same size, different events",
        chain(ck_copy(), write("d.tsv", SWAPPED)),
        exact=False,
    ),
    Case("ck-info-list", RESUME, "must be a JSON object, got list", ck_info("[1]"), exact=False),
    Case(
        "ck-info-epoch-str",
        RESUME,
        "field 'epoch' must be a non-negative integer, got 'two'",
        ck_info('{"epoch": "two"}'),
        exact=False,
    ),
    Case("ck-info-epoch-neg", RESUME, "field 'epoch'", ck_info_edit(epoch=-1), exact=False),
    Case("ck-info-epoch-bool", RESUME, "field 'epoch'", ck_info_edit(epoch=True), exact=False),
    Case(
        "ck-info-bad-epochs",
        RESUME,
        "field 'bad_epochs'",
        ck_info_edit(bad_epochs="x"),
        exact=False,
    ),
    Case(
        "ck-info-history",
        RESUME,
        "field 'history'",
        ck_info_edit(history=[{"loss": 1}]),
        exact=False,
    ),
    Case(
        "ck-info-history-type", RESUME, "field 'history'", ck_info_edit(history="long"), exact=False
    ),
    Case(
        "ck-info-fingerprint",
        RESUME,
        "fingerprint is malformed",
        ck_info_edit(fingerprint=[1]),
        exact=False,
    ),
    Case("ck-info-not-json", RESUME, "unreadable checkpoint", ck_info("{epoch"), exact=False),
    Case(
        "ck-info-binary",
        RESUME,
        "unreadable checkpoint",
        chain(ck_copy(), write("ck/checkpoint/info.json", b"\xff\x00")),
        exact=False,
    ),
    Case(
        "ck-state-corrupt",
        RESUME,
        "corrupt weights file",
        chain(ck_copy(), write("ck/checkpoint/state.safetensors", b"\x00" * 20)),
        exact=False,
    ),
    Case(
        "ck-state-missing",
        RESUME,
        "missing weights file",
        chain(ck_copy(), lambda t, e: (t / "ck/checkpoint/state.safetensors").unlink()),
        exact=False,
    ),
    # -- evaluate: model directories (validated field by field, before the test data)
    Case("eval-model-missing", [*EVAL, "--model", "{tmp}/none"], "model directory not found"),
    Case("eval-model-empty", EVAL_M, "config.json: missing", mkdirs("m")),
    Case("eval-model-is-file", EVAL_M, "model directory not found", write("m", "x")),
    Case(
        "eval-config-list",
        EVAL_M,
        "must be a JSON object, got list",
        model_file("config.json", "[1, 2, 3]"),
    ),
    Case(
        "eval-config-string",
        EVAL_M,
        "must be a JSON object, got str",
        model_file("config.json", '"gru4rec"'),
    ),
    Case("eval-config-not-json", EVAL_M, "corrupt JSON", model_file("config.json", "{")),
    Case("eval-config-binary", EVAL_M, "not UTF-8", model_file("config.json", b"\xff\xfe\x00")),
    Case(
        "eval-config-dir",
        EVAL_M,
        "config.json: cannot read",
        chain(model_remove("config.json"), mkdirs("m/config.json")),
    ),
    Case(
        "eval-n-items-many",
        EVAL_M,
        "field 'n_items' must be a positive integer, got 'many'",
        edit_config(n_items="many"),
    ),
    Case("eval-n-items-missing", EVAL_M, "field 'n_items' is missing", edit_config(n_items=...)),
    Case("eval-n-items-zero", EVAL_M, "field 'n_items'", edit_config(n_items=0)),
    Case("eval-n-items-float", EVAL_M, "field 'n_items'", edit_config(n_items=7.0)),
    Case(
        "eval-n-items-mismatch",
        EVAL_M,
        "but field 'n_items' of config.json says 99",
        edit_config(n_items=99),
    ),
    Case("eval-format", EVAL_M, "field 'format'", edit_config(format="other")),
    Case("eval-format-missing", EVAL_M, "field 'format' is missing", edit_config(format=...)),
    Case(
        "eval-version-new", EVAL_M, "field 'format_version' is 99", edit_config(format_version=99)
    ),
    Case(
        "eval-version-str",
        EVAL_M,
        "field 'format_version' must be an integer",
        edit_config(format_version="1"),
    ),
    Case("eval-model-name", EVAL_M, "field 'model' is 'nope'", edit_config(model="nope")),
    Case("eval-model-name-type", EVAL_M, "field 'model' must be", edit_config(model=3)),
    Case("eval-config-obj", EVAL_M, "field 'config' must be an object", edit_config(config=[])),
    Case(
        "eval-config-key",
        EVAL_M,
        "field 'config': unknown config key 'hidden'",
        edit_config(config_patch={"hidden": 1}),
    ),
    Case(
        "eval-config-value",
        EVAL_M,
        "field 'config': config key 'layers'",
        edit_config(config_patch={"layers": "x"}),
    ),
    Case(
        "eval-config-nan",
        EVAL_M,
        "field 'config'",
        edit_config(config_patch={"logq": float("nan")}),
    ),
    Case(
        "eval-config-layers",
        EVAL_M,
        "weights do not match",
        edit_config(config_patch={"layers": [4]}),
    ),
    Case("eval-meta", EVAL_M, "field 'meta' must be an object", edit_config(meta=[1])),
    Case("eval-items-object", EVAL_M, "JSON list of strings", model_file("items.json", '{"a": 1}')),
    Case("eval-items-ints", EVAL_M, "JSON list of strings", model_file("items.json", "[1, 2]")),
    Case(
        "eval-items-dup", EVAL_M, "duplicate ids", model_file("items.json", json.dumps(["1"] * 7))
    ),
    Case("eval-items-missing", EVAL_M, "missing item index", model_remove("items.json")),
    Case("eval-items-binary", EVAL_M, "not UTF-8", model_file("items.json", b"\xff\x00")),
    Case(
        "eval-weights-trunc",
        EVAL_M,
        "corrupt weights file",
        model_file("weights.safetensors", b"\x08\x00"),
    ),
    Case(
        "eval-weights-missing", EVAL_M, "missing weights file", model_remove("weights.safetensors")
    ),
    Case(
        "eval-pop-weights",
        EVAL_M,
        "weights do not match the pop config",
        chain(model_copy("pop"), lambda t, e: shutil.copy(e.g4r / "weights.safetensors", t / "m")),
    ),
    # -- evaluate: test data and options
    Case(
        "eval-all-unknown",
        [*EVAL[:2], "{unknown}", "-q", "--model", "{pop}"],
        "nothing to evaluate",
        exact=False,
    ),
    Case(
        "eval-all-unknown-json",
        [*EVAL[:2], "{unknown}", "-q", "--json", "--model", "{g4r}"],
        "nothing to evaluate",
    ),
    Case("eval-test-missing", [*EVAL[:2], "{tmp}/none.tsv", "--model", "{pop}"], "no such file"),
    Case("eval-k-zero", [*EVAL, "--model", "{pop}", "--k", "0,5"], "--k values must be positive"),
    Case("eval-k-text", [*EVAL, "--model", "{pop}", "--k", "ten"], "comma-separated integers"),
    Case("eval-batch-zero", [*EVAL, "--model", "{pop}", "--batch-size", "0"], "positive integer"),
    Case("eval-protocol", [*EVAL, "--model", "{pop}", "--protocol", "random"], "invalid choice"),
    Case("eval-ties", [*EVAL, "--model", "{pop}", "--ties", "best"], "invalid choice"),
    Case(
        "eval-both-history",
        [*EVAL, "--model", "{pop}", "--exclude-history", "--include-history"],
        "not allowed with",
    ),
    # -- recommend
    Case("rec-model-missing", [*REC, "--model", "{tmp}/none"], "model directory not found"),
    Case(
        "rec-config-list",
        [*REC, "--model", "{tmp}/m"],
        "must be a JSON object",
        model_file("config.json", "[]"),
    ),
    Case(
        "rec-n-items", [*REC, "--model", "{tmp}/m"], "field 'n_items'", edit_config(n_items="many")
    ),
    Case(
        "rec-strict-unknown",
        [*REC[:2], "1 zzz", "--strict", "--model", "{pop}"],
        "unknown item id(s): zzz",
    ),
    Case("rec-k-zero", [*REC, "--model", "{pop}", "-k", "0"], "positive integer"),
    Case("rec-no-items", ["recommend", "--model", "{pop}"], "required: --items"),
    # -- data stats
    Case("stats-missing", ["data", "stats", "{tmp}/none.tsv"], "no such file"),
    Case("stats-empty", ["data", "stats", "{tmp}/e.tsv"], "file is empty", write("e.tsv", "")),
    Case("stats-dir", ["data", "stats", "{tmp}"], "not a sessions folder"),
    Case("stats-format", ["data", "stats", "{train}", "--format", "xml"], "invalid choice"),
    Case("stats-no-path", ["data", "stats"], "required: PATH"),
    Case("data-no-sub", ["data"], "required: COMMAND"),
    # -- tune
    Case(
        "tune-space-missing",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o.toml"],
        "config file not found",
    ),
    Case(
        "tune-space-empty",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o.toml"],
        "empty search space",
        write("s.toml", ""),
    ),
    Case(
        "tune-space-foreign",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o.toml"],
        "'hidden' is not a gru4rec parameter",
        write("s.toml", '[hidden]\ntype = "int"\nlow = 1\nhigh = 2\n'),
    ),
    Case(
        "tune-space-nan",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o.toml"],
        "low must be a finite number",
        write("s.toml", '[logq]\ntype = "float"\nlow = nan\nhigh = 1.0\n'),
    ),
    Case(
        "tune-space-str",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o.toml"],
        "low must be a finite number",
        write("s.toml", '[logq]\ntype = "float"\nlow = "a"\nhigh = 1\n'),
    ),
    Case(
        "tune-space-order",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o.toml"],
        "needs low <= high",
        write("s.toml", '[logq]\ntype = "float"\nlow = 2.0\nhigh = 1.0\n'),
    ),
    Case(
        "tune-space-log0",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o.toml"],
        "log = true needs low > 0",
        write("s.toml", '[logq]\ntype = "float"\nlow = 0.0\nhigh = 1.0\nlog = true\n'),
    ),
    Case(
        "tune-space-type",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o.toml"],
        "type must be float, int or categorical",
        write("s.toml", '[logq]\ntype = "normal"\n'),
    ),
    Case(
        "tune-out-dir",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o"],
        "--out must name a file",
        chain(write("s.toml", SPACE), mkdirs("o")),
    ),
    Case(
        "tune-out-proc",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "/proc/seqrec-x/o.toml"],
        "cannot write here",
        write("s.toml", SPACE),
    ),
    Case(
        "tune-trials-zero",
        [*TUNE, "--space", "s", "--out", "o", "--trials", "0"],
        "positive integer",
    ),
    Case(
        "tune-fraction",
        [*TUNE, "--space", "s", "--out", "o", "--valid-fraction", "1.5"],
        "between 0 and 1",
    ),
    Case(
        "tune-fraction-nan",
        [*TUNE, "--space", "s", "--out", "o", "--valid-fraction", "nan"],
        "between 0 and 1",
    ),
    Case(
        "tune-timeout",
        [*TUNE, "--space", "s", "--out", "o", "--timeout", "-1"],
        "positive finite number",
    ),
    Case(
        "tune-days-inf",
        [*TUNE, "--space", "s", "--out", "o", "--valid-days", "inf"],
        "positive finite number",
    ),
    Case(
        "tune-model",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o.toml", "--model", "x"],
        "unknown model 'x'",
        write("s.toml", SPACE),
    ),
    Case(
        "tune-metric",
        [*TUNE, "--space", "{tmp}/s.toml", "--out", "{tmp}/o.toml", "--metric", "auc"],
        "--metric must look like",
        write("s.toml", SPACE),
        exact=False,
    ),
    # -- demo
    Case(
        "demo-model", ["demo", "--models", "pop,nope", "--out", "{tmp}/d"], "unknown model 'nope'"
    ),
    Case(
        "demo-out-foreign",
        ["demo", "--models", "pop", "--out", "{tmp}/d"],
        "holds 'x.txt'",
        write("d/pop/x.txt", "mine"),
    ),
    Case(
        "demo-train-missing",
        ["demo", "--models", "pop", "--train", "{tmp}/none.tsv", "--out", "{tmp}/d"],
        "no such file",
    ),
    # -- serve: argument errors (before any socket is opened)
    Case("serve-model-missing", [*SERVE, "--model", "{tmp}/none"], "model directory not found"),
    Case(
        "serve-config-list",
        [*SERVE, "--model", "{tmp}/m"],
        "must be a JSON object",
        model_file("config.json", "[1,2,3]"),
    ),
    Case(
        "serve-n-items",
        [*SERVE, "--model", "{tmp}/m"],
        "field 'n_items' must be a positive integer",
        edit_config(n_items="many"),
    ),
    Case(
        "serve-ttl-nan",
        [*SERVE, "--model", "{pop}", "--session-ttl", "nan"],
        "positive finite number",
    ),
    Case(
        "serve-ttl-neg",
        [*SERVE, "--model", "{pop}", "--session-ttl", "-5"],
        "positive finite number",
    ),
    Case("serve-workers-zero", [*SERVE, "--model", "{pop}", "--workers", "0"], "positive integer"),
    Case(
        "serve-workers-memory",
        [*SERVE, "--model", "{pop}", "--workers", "2"],
        "needs a shared session store",
    ),
    Case("serve-max-k", [*SERVE, "--model", "{pop}", "--max-k", "-1"], "positive integer"),
    Case("serve-ann", [*SERVE, "--model", "{pop}", "--ann", "hnsw"], "invalid choice"),
    # -- top level
    Case("no-command", [], "required: COMMAND"),
    Case("unknown-command", ["fit"], "invalid choice: 'fit'"),
    Case(
        "unknown-option",
        ["evaluate", "--model", "x", "--test", "y", "--resume"],
        "unrecognized arguments: --resume",
    ),
]


def _fill(argv: list[str], tmp: Path, env: Env) -> list[str]:
    subs = {
        "{tmp}": str(tmp),
        "{train}": str(env.train),
        "{test}": str(env.test),
        "{single}": str(env.single),
        "{unknown}": str(env.unknown),
        "{pop}": str(env.pop),
        "{g4r}": str(env.g4r),
    }
    out = []
    for a in argv:
        for k, v in subs.items():
            a = a.replace(k, v)
        out.append(a)
    return out


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A serve case that got as far as starting the server is a failure, not a hang."""
    import uvicorn

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("serve got past its argument checks")

    monkeypatch.setattr(uvicorn, "run", refuse)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_cli(case: Case, env: Env, tmp_path: Path, capsys, no_server) -> None:
    if case.setup is not None:
        case.setup(tmp_path, env)
    argv = _fill(case.argv, tmp_path, env)
    before = snapshot(tmp_path, env.root)
    code, out, err = run_cli(capsys, argv)
    assert code == 2, (code, out, err)
    assert out == ""
    assert_one_error(err, case.pattern, case.exact)
    assert snapshot(tmp_path, env.root) == before, "files changed on disk"


def test_case_ids_are_unique_and_the_suite_is_large() -> None:
    assert tiny_log() != SWAPPED
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 100


# ------------------------------------------------------------------ not errors, but checked
def test_recommend_empty_session_says_so(env: Env, capsys) -> None:
    for items in ("", "   ", "zzz"):
        code, out, err = run_cli(capsys, ["recommend", "--model", str(env.pop), "--items", items])
        assert code == 0 and "rank" in out
        assert "note: the session is empty" in err
    code, out, err = run_cli(capsys, ["recommend", "--model", str(env.pop), "--items", "1"])
    assert code == 0 and "session is empty" not in err


def test_evaluate_json_has_no_nan(env: Env, tmp_path: Path, capsys) -> None:
    """Every target unknown, counted as misses: popularity@K is undefined -> null."""
    test = tmp_path / "t.tsv"
    test.write_text("SessionId\tItemId\tTime\n1\t3\t1\n1\tx2\t2\n1\tx3\t3\n")
    code, out, _ = run_cli(
        capsys,
        ["evaluate", "--model", str(env.g4r), "--test", str(test), "--unknown", "miss", "--json"],
    )
    assert code == 0
    assert "NaN" not in out and "Infinity" not in out
    res = json.loads(out)
    assert res["n_queries"] > 0 and res["popularity@20"] is None


def test_json_dumps_finite_maps_non_finite_to_null() -> None:
    import numpy as np

    text = json_dumps_finite({"a": float("nan"), "b": [float("inf"), 1.5], "c": np.float32(2)})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": 2.0}


def test_pop_trains_on_single_event_sessions(env: Env, tmp_path: Path, capsys) -> None:
    code, out, _ = run_cli(
        capsys,
        ["train", "--train", str(env.single), "--model", "pop", "--out", str(tmp_path / "m")],
    )
    assert code == 0 and "trained pop on 6 events" in out


def test_permission_denied_input_is_one_line(env: Env, tmp_path: Path, capsys, monkeypatch) -> None:
    """An unreadable input (EACCES) of any reader: one error line naming the file."""
    denied = tmp_path / "locked.tsv"
    denied.write_text(tiny_log())
    real_open = Path.open

    def fake_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self.name == "locked.tsv":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", fake_open)
    for argv in (
        ["data", "stats", str(denied)],
        ["train", "--train", str(denied), "--model", "pop", "--out", str(tmp_path / "m")],
        ["evaluate", "--model", str(env.pop), "--test", str(denied), "-q"],
    ):
        code, out, err = run_cli(capsys, argv)
        assert code == 2 and out == ""
        assert_one_error(err, f"{denied}: cannot read (Permission denied)", exact=False)
    assert not (tmp_path / "m").exists()


# Root ignores permission bits: the child imports what `data stats` needs, then drops to
# nobody (the interpreter itself may live where nobody cannot read), then runs the CLI.
EACCES_CHILD = """
import os, sys
import pyarrow.csv, seqrec.cli, seqrec.data.events, seqrec.data.loading, seqrec.pipeline
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
sys.exit(seqrec.cli.main(["data", "stats", sys.argv[1]]))
"""


def test_permission_denied_subprocess() -> None:
    """A real EACCES: a chmod-000 file read by an unprivileged process."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="seqrec-eacces-"))
    try:
        base.chmod(0o755)
        locked = base / "locked.tsv"
        locked.write_text(tiny_log())
        locked.chmod(0)
        repo = Path(__file__).resolve().parents[2]
        proc = subprocess.run(
            [sys.executable, "-c", EACCES_CHILD, str(locked)],
            capture_output=True,
            text=True,
            cwd=repo,
            env={**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1"},
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        assert_one_error(proc.stderr, "locked.tsv: cannot read (Permission denied)")
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--model", "gru4rec", "--set", "logq=nan"],
        ["evaluate", "--model", "{tmp}/m", "--test", "x.tsv"],
        ["serve", "--model", "{tmp}/none", "--port", "0"],
    ],
    ids=["train-nan", "evaluate-bad-model", "serve-missing-model"],
)
def test_subprocess_one_line(argv: list[str], env: Env, tmp_path: Path) -> None:
    """The real entry point: exit 2, one error line, no traceback."""
    model_file("config.json", "[1, 2, 3]")(tmp_path, env)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "train":
        argv += ["--train", str(env.train), "--out", str(tmp_path / "out")]
    before = snapshot(tmp_path)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "seqrec.cli", *argv],
        capture_output=True,
        text=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_error(proc.stderr, "")
    assert snapshot(tmp_path) == before
