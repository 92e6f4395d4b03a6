"""Property-based fuzzing of the config parser (Hypothesis): TOML files, ``--set``
overrides and the real model configs.

Properties: nothing but a :class:`~seqrec.errors.ConfigError` (one printable line) for
any input; values of the documented types and ranges are accepted and round-trip
(``config_to_dict`` -> ``build_config`` gives the same config; a TOML file or a
``--set`` value written from a value reads back as that value). Non-finite floats are
left out of the "must reject" properties (their range checks belong to the model's
``validate``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import tempfile
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st

from seqrec.cli import model_config
from seqrec.config import build_config, config_to_dict, load_toml, parse_overrides, parse_value
from seqrec.errors import ConfigError, SeqrecError
from seqrec.models import MODELS, get_model_class
from seqrec.models.gru4rec import GRU4Rec, GRU4RecConfig
from seqrec.tuning import load_space
from tests.fuzzing import FUZZ

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.toml"))
CONFIG_CLASSES = {name: cls.Config for name, cls in MODELS.items()}


def flat_gru4rec(values: dict[str, Any]) -> dict[str, Any]:
    """Every flat key of a GRU4Rec built from ``values`` (model keys and training keys,
    each routed to its owner)."""
    model = GRU4Rec(values)
    return {**config_to_dict(model.config), **model.training_keys}


def outcome(fn: Any) -> Any:
    """``fn()``, or the ConfigError it raised (checked: one printable line)."""
    try:
        return fn()
    except SeqrecError as exc:
        assert isinstance(exc, ConfigError), exc
        msg = str(exc)
        assert msg and msg.isprintable(), f"not one printable line: {msg!r}"
        return exc


# ----------------------------------------------------------------------------- TOML values
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.dates(),
    st.times(),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
KEYS = st.text(min_size=1, max_size=12)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)


def toml_key(key: str) -> str:
    return (
        key
        if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key)
        else (toml_string(key))
    )


def toml_string(text: str) -> str:
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c.isprintable() and c not in "\x7f":
            out.append(c)
        else:
            out.append(f"\\U{ord(c):08x}" if ord(c) > 0xFFFF else f"\\u{ord(c):04x}")
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    """TOML text of a value (inline tables and arrays for containers)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def write(data: bytes) -> tuple[tempfile.TemporaryDirectory, Path]:
    d = tempfile.TemporaryDirectory(prefix="seqrec-fuzz-")
    path = Path(d.name) / "c.toml"
    path.write_bytes(data)
    return d, path


# ----------------------------------------------------------------------------- load_toml
@FUZZ
@given(data=st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
@example(data=b"a = " + b"[" * 5000)  # RecursionError in tomllib
@example(data=b'a = "caf\xe9"\n')  # not UTF-8
@example(data=b'a = "\x1b[31m"\n')  # a raw escape character quoted in the message
def test_load_toml_of_random_bytes(data: bytes) -> None:
    d, path = write(data)
    with d:
        got = outcome(lambda: load_toml(path))
        assert isinstance(got, (dict, ConfigError))


@FUZZ
@given(doc=st.dictionaries(KEYS, VALUES, max_size=5))
def test_toml_documents_round_trip(doc: dict[str, Any]) -> None:
    text = "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in doc.items())
    note(text)
    d, path = write(text.encode("utf-8"))
    with d:
        got = outcome(lambda: load_toml(path))
    assert not isinstance(got, ConfigError), got
    assert same(got, doc)


# ----------------------------------------------------------------------------- --set
@FUZZ
@given(pairs=st.lists(st.text(max_size=40), max_size=4))
@example(pairs=["layers=" + "[" * 3000])
@example(pairs=["layers=[1]\nn_epochs = 5"])
@example(pairs=["=1"])
def test_parse_overrides_of_random_text(pairs: list[str]) -> None:
    got = outcome(lambda: parse_overrides(pairs))
    if isinstance(got, dict):
        assert all(isinstance(k, str) and k == k.strip() and k for k in got)


@FUZZ
@given(value=VALUES)
def test_set_values_round_trip(value: Any) -> None:
    text = toml_value(value)
    got = parse_value(text)
    if isinstance(value, str) and not same(got, value):
        # a string that is not valid TOML on its own is taken as written: "--set loss=bpr"
        assert got == text
    else:
        assert same(got, value), (text, got)


def test_a_set_value_holding_a_second_statement_is_a_string() -> None:
    assert parse_value("[1]\nn_epochs = 5") == "[1]\nn_epochs = 5"
    assert parse_value("[" * 3000) == "[" * 3000


# ----------------------------------------------------------------------------- build_config
def valid_values(tp: Any, name: str) -> st.SearchStrategy[Any]:
    """Values of a config field's type (ranges are left to ``validate``)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(tp))
    if origin in (tuple, list):
        return st.lists(valid_values(typing.get_args(tp)[0], name), max_size=3)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**63), 2**63 - 1)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)
    if tp is str:
        return st.text(max_size=10)
    return VALUES


@st.composite
def config_values(draw: st.DrawFn, cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, max_size=6))
    out = {}
    for name in chosen:
        typed = valid_values(hints[name], name)
        out[name] = draw(typed | VALUES if draw(st.booleans()) else typed)
    if draw(st.booleans()):
        out[draw(KEYS)] = draw(VALUES)  # maybe an unknown key
    return out


@FUZZ
@given(data=st.data(), model=st.sampled_from(sorted(CONFIG_CLASSES)))
@example(data=None, model="gru4rec")
def test_build_config_accepts_or_says_why(data: Any, model: str) -> None:
    cls = CONFIG_CLASSES[model]
    values = (
        {"learning_rate": 10**400, "layers": [2**70]}
        if data is None
        else data.draw(config_values(cls))
    )
    note(repr(values))
    got = outcome(lambda: build_config(cls, values))
    if isinstance(got, ConfigError):
        return
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # every accepted value has its field's type
        v = getattr(got, f.name)
        tp = hints[f.name]
        if tp is float:
            assert type(v) is float
        elif tp is int:
            assert type(v) is int
        elif tp is bool:
            assert type(v) is bool
        elif typing.get_origin(tp) is tuple:
            assert isinstance(v, tuple)
    again = build_config(cls, config_to_dict(got))
    assert config_to_dict(again) == config_to_dict(got) or any(
        isinstance(x, float) and math.isnan(x) for x in config_to_dict(got).values()
    )
    # the same values through the model's constructor: the same outcome, except for the
    # checks a neural model makes across its owners' keys (fpmc: max_len >= window)
    built = outcome(lambda: get_model_class(model)(values))
    if isinstance(built, ConfigError) and get_model_class(model).family is not None:
        return
    assert not isinstance(built, ConfigError), built
    assert config_to_dict(built.config) == config_to_dict(got)


POSITIVE = st.floats(min_value=1e-12, max_value=1e12, allow_nan=False)
NON_NEGATIVE = st.floats(min_value=0.0, max_value=1e12, allow_nan=False) | st.integers(0, 10**6)
FRACTION = st.floats(min_value=0.0, max_value=0.999, allow_nan=False)
COUNT = st.integers(0, 2**31)
GRU4REC_VALID = {
    "layers": st.lists(st.integers(1, 4096), min_size=1, max_size=3),
    "cell": st.sampled_from(["gru", "lstm", "rnn"]),
    "constrained_embedding": st.booleans(),
    "loss": st.sampled_from(["cross-entropy", "bpr-max", "top1-max", "bpr", "top1"]),
    "bpreg": NON_NEGATIVE,
    "elu_param": NON_NEGATIVE,
    "logq": NON_NEGATIVE,
    "n_sample": COUNT,
    "sample_alpha": NON_NEGATIVE,
    "sample_cache": st.integers(1, 2**31),
    "mask_false_negatives": st.booleans(),
    "dropout_p_embed": FRACTION,
    "dropout_p_hidden": FRACTION,
    "carry_dropout": st.booleans(),
    "optimizer": st.sampled_from(["adagrad", "adam"]),
    "learning_rate": POSITIVE,
    "momentum": FRACTION,
    "n_epochs": COUNT,
    "batch_size": st.integers(1, 2**20),
    "eval_batch_size": st.integers(1, 2**20),
    "shuffle": st.booleans(),
    "init_scale": POSITIVE,
    "seed": st.integers(0, 2**32),
    "device": st.just("cpu"),
    "patience": COUNT,
    "threads": st.integers(0, 256) | st.just("auto"),
    "malloc_tuning": st.booleans(),
    "fast_step": st.booleans(),
}


@FUZZ
@given(
    values=st.fixed_dictionaries({}, optional=GRU4REC_VALID),
    embedding=st.integers(1, 512),
    bf16=st.booleans(),
)
def test_documented_gru4rec_values_are_accepted(
    values: dict[str, Any], embedding: int, bf16: bool
) -> None:
    """Every value inside the documented types and ranges is accepted as given."""
    if not values.get("constrained_embedding", True):
        values["embedding"] = embedding
    if bf16 and values.get("fast_step", True) and values.get("cell", "gru") == "gru":
        values["matmul_precision"] = "bfloat16"
    got = flat_gru4rec(values)
    for key, value in values.items():
        assert got[key] == value, key
        assert isinstance(got[key], bool) == isinstance(value, bool), key
    assert flat_gru4rec(got) == got
    text = "".join(f"{k} = {toml_value(v)}\n" for k, v in got.items())
    d, path = write(text.encode("utf-8"))
    with d:
        assert flat_gru4rec(load_toml(path)) == got


@FUZZ
@given(data=st.data())
def test_wrong_types_are_rejected(data: Any) -> None:
    """A value that no field type admits (a table, a date, text for a number) is an
    error naming the key; never coerced."""
    hints = typing.get_type_hints(GRU4RecConfig)
    name = data.draw(st.sampled_from([n for n, t in hints.items() if t in (int, float, bool)]))
    bad = data.draw(
        st.dictionaries(KEYS, SCALARS, max_size=2)
        | st.dates()
        | st.text(max_size=8)
        | st.lists(st.integers(), min_size=1, max_size=2)
    )
    got = outcome(lambda: build_config(GRU4RecConfig, {name: bad}))
    assert isinstance(got, ConfigError) and repr(name) in str(got)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_configs_load(path: Path) -> None:
    values = load_toml(path)
    if path.stem.startswith("space"):
        assert load_space(path)
        return
    model = path.parent.name
    get_model_class(model)({k: v for k, v in values.items() if k != "model"})


@FUZZ
@given(
    path=st.sampled_from([p for p in CONFIGS if not p.stem.startswith("space")]),
    key=st.sampled_from([f.name for f in dataclasses.fields(GRU4RecConfig)]) | KEYS,
    value=VALUES,
)
def test_shipped_configs_with_one_random_override(path: Path, key: str, value: Any) -> None:
    pair = f"{key}={toml_value(value)}"
    note(pair)
    values = outcome(lambda: model_config(path.parent.name, str(path), [pair]))
    if isinstance(values, ConfigError):
        return
    outcome(lambda: get_model_class(path.parent.name)(values))


# ----------------------------------------------------------------------------- search spaces
SPEC = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["float", "int", "categorical"]) | SCALARS,
        "low": SCALARS,
        "high": SCALARS,
        "log": SCALARS,
        "step": SCALARS,
        "choices": VALUES,
    },
)


@FUZZ
@given(space=st.dictionaries(KEYS, SPEC | VALUES, max_size=3))
@example(space={"lr": {"type": "float", "low": "a", "high": 1}})  # was a TypeError
@example(space={"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}})
def test_search_spaces(space: dict[str, Any]) -> None:
    text = "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in space.items())
    note(text)
    d, path = write(text.encode("utf-8"))
    with d:
        got = outcome(lambda: load_space(path))
    if isinstance(got, ConfigError):
        return
    for spec in got.values():
        if spec["type"] in ("float", "int"):
            assert spec["low"] <= spec["high"]
            assert not spec.get("log") or spec["low"] > 0
        else:
            assert spec["choices"]


# ----------------------------------------------------------------------------- files
def test_config_files_that_are_not_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, expected a TOML config file"):
        load_toml(tmp_path)
    loop = tmp_path / "loop.toml"
    os.symlink(loop.name, loop)
    with pytest.raises(ConfigError, match=r"cannot read the config file \(Too many levels"):
        load_toml(loop)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'loss = "bpr-max"\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_toml(bad)
    assert str(info.value) == f"{bad} line 2: not valid UTF-8 (byte 0xe9); TOML files are UTF-8"


def test_huge_integer_for_a_float_key() -> None:
    with pytest.raises(ConfigError, match=r"config key 'learning_rate': 1000.* is too large"):
        GRU4Rec({"learning_rate": 10**400})
