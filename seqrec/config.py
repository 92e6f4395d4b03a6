"""Strict configuration helpers shared by every component.

Configs are frozen dataclasses. :func:`build_config` turns a plain dict (from TOML,
JSON or ``--set`` flags) into one, rejecting unknown keys and values of the wrong
type with a one-line :class:`~seqrec.errors.ConfigError`. Float values must be finite
(``nan`` and ``inf`` are rejected for every key); ranges are each config's ``validate``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from seqrec.errors import ConfigError
from seqrec.quoting import escape, quote

C = TypeVar("C")


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML value, falling back to the plain string.

    >>> parse_value("0.2"), parse_value("true"), parse_value("[480]"), parse_value("bpr-max")
    (0.2, True, [480], 'bpr-max')
    """
    try:
        doc = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, RecursionError):  # RecursionError: [[[[... too deep
        return text
    return doc["v"] if len(doc) == 1 else text  # "1\nx = 2" is not one value


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict, values parsed by :func:`parse_value`."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {quote(pair)}")
        out[key] = parse_value(value.strip())
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; errors name the file."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, expected a TOML config file") from None
    except OSError as exc:  # permission denied, a symbolic link loop, ...
        raise ConfigError(f"{p}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{p} line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); TOML files are UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {escape(str(exc))}") from None
    except RecursionError:
        raise ConfigError(f"{p}: invalid TOML: arrays or tables nested too deeply") from None


def _check_type(name: str, value: Any, tp: Any) -> Any:
    """Validate (and gently coerce int->float) ``value`` against annotation ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_type(name, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"config key {name!r}: value {value!r} has the wrong type ({tp})")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise ConfigError(f"config key {name!r}: {value!r} is not one of {choices}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {name!r}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(_check_type(name, v, inner) for v in value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {name!r}: expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not isinstance(value, float) and not math.isfinite(number):
            raise ConfigError(f"config key {name!r}: {escape(repr(value), 80)} is too large")
        if not math.isfinite(number):
            raise ConfigError(f"config key {name!r}: expected a finite number, got {value!r}")
        return number
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {name!r}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {name!r}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {name!r}: expected a string, got {value!r}")
        return value
    return value


def _closest(key: str, names: list[str]) -> str | None:
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return close[0]
    parts = [n for n in names if n.startswith(key) or key.startswith(n)]
    return max(parts, key=len) if parts else None


def build_config(cls: type[C], values: Mapping[str, Any] | None = None) -> C:
    """Build frozen dataclass ``cls`` from ``values``; unknown keys and bad types are errors.

    The dataclass may define ``validate(self)`` raising ConfigError for range checks.
    """
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = [k for k in values if k not in fields]
    if unknown:
        key = unknown[0]
        hint = (
            f" (did you mean {quote(_closest(key, list(fields)))}?)"
            if _closest(key, list(fields))
            else ""
        )
        raise ConfigError(
            f"unknown config key {quote(key)} for {cls.__name__}{hint}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _check_type(k, v, hints[k]) for k, v in values.items()}
    cfg = cls(**kwargs)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON/TOML-serialisable dict of a config dataclass (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def route_keys(
    values: Mapping[str, Any], owners: Mapping[str, type], what: str = "config"
) -> dict[str, dict[str, Any]]:
    """Split a flat dict of keys by owner: ``{owner: {key: value}}``, every owner present.

    ``owners`` maps an owner's name (``model``, ``training``, ``loss``, ``sampler``) to
    its config dataclass; each key goes to the owner whose dataclass has that field. An
    unknown key is a one-line ConfigError that lists the valid keys of every owner.
    """
    fields = {o: [f.name for f in dataclasses.fields(c)] for o, c in owners.items()}  # type: ignore[arg-type]
    owner_of = {k: o for o, names in fields.items() for k in names}
    out: dict[str, dict[str, Any]] = {o: {} for o in owners}
    for key, value in values.items():
        if key not in owner_of:
            close = _closest(key, list(owner_of))
            hint = f" (did you mean {close!r}?)" if close else ""
            valid = "; ".join(f"{o}: {', '.join(sorted(names))}" for o, names in fields.items())
            raise ConfigError(f"unknown config key {key!r} for {what}{hint}; valid keys: {valid}")
        out[owner_of[key]][key] = value
    return out
