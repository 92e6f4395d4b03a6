"""Hyper-parameter search with Optuna on a validation split of the training data.

The space is a TOML file, one table per parameter::

    [learning_rate]
    type = "float"        # float | int | categorical
    low = 0.01
    high = 0.5
    log = true

    [layers]
    type = "categorical"
    choices = [[100], [200], [480]]

The test set is never touched. Sessions: validation is carved from the training data
(the sessions starting in the last days, or the last fraction of sessions when there are
no times) and scored next-item. User histories (s3rec, user-item, recbole, movielens):
the SASRec leave-one-out split of :func:`seqrec.data.preprocess.leave_one_out`, every
trial trained on ``history[:-2]`` and scored on ``history[:-2] -> history[-2]`` (the
second-to-last item, history items excluded from the ranking); the last item, the test
label, is never trained on nor scored. The log, the best config's header and every
record of the trials file say which (:func:`validation_split`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from seqrec.config import load_toml
from seqrec.data.preprocess import carve_validation
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, SeqrecError
from seqrec.persist import atomic_write_bytes
from seqrec.quoting import escape

log = logging.getLogger("seqrec.tuning")

SPEC_KEYS = {"type", "low", "high", "log", "step", "choices"}


def load_space(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and validate a search-space TOML file."""
    raw = load_toml(path)
    space: dict[str, dict[str, Any]] = {}
    for name, spec in raw.items():
        shown = escape(name, 60)
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: [{shown}] must be a table with a 'type' key")
        unknown = set(spec) - SPEC_KEYS
        if unknown:
            raise ConfigError(f"{path}: [{shown}] has unknown key(s) {sorted(unknown)}")
        kind = spec.get("type")
        if kind in ("float", "int"):
            _check_range(path, shown, kind, spec)
        elif kind == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise ConfigError(f"{path}: [{shown}] needs a non-empty 'choices' list")
        else:
            raise ConfigError(f"{path}: [{shown}] type must be float, int or categorical")
        space[name] = spec
    if not space:
        raise ConfigError(f"{path}: empty search space")
    return space


def _check_range(path: str | Path, shown: str, kind: str, spec: dict[str, Any]) -> None:
    """low <= high (numbers: integers for type int), log needs low > 0, step > 0."""
    number = int if kind == "int" else (int, float)
    for key in ("low", "high", "step"):
        value = spec.get(key)
        if value is None and key == "step":
            continue
        finite = not isinstance(value, float) or math.isfinite(value)
        if isinstance(value, bool) or not isinstance(value, number) or not finite:
            what = "an integer" if kind == "int" else "a finite number"
            raise ConfigError(f"{path}: [{shown}] {key} must be {what}")
    if spec["low"] > spec["high"]:
        raise ConfigError(f"{path}: [{shown}] needs low <= high")
    if not isinstance(spec.get("log", False), bool):
        raise ConfigError(f"{path}: [{shown}] log must be true or false")
    if spec.get("log") and spec["low"] <= 0:
        raise ConfigError(f"{path}: [{shown}] log = true needs low > 0")
    if spec.get("step") is not None and spec["step"] <= 0:
        raise ConfigError(f"{path}: [{shown}] step must be > 0")


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Draw one configuration from ``space`` with an Optuna trial."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "float":
            out[name] = trial.suggest_float(
                name, spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step")
            )
        elif kind == "int":
            out[name] = trial.suggest_int(
                name,
                spec["low"],
                spec["high"],
                log=spec.get("log", False),
                step=spec.get("step", 1),
            )
        else:
            # Optuna choices must be scalars: encode lists as JSON strings
            enc = [json.dumps(c) for c in spec["choices"]]
            out[name] = json.loads(trial.suggest_categorical(name, enc))
    return out


def base_trial(
    cls: Any, base_config: dict[str, Any], space: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The encoded Optuna params of the base configuration (``base_config`` over the
    model's and its training defaults) for every searched key whose base value lies in
    the space; keys whose value lies outside are left for the sampler to draw."""
    defaults: dict[str, Any] = {}
    for owner in cls.config_owners().values():
        for f in dataclasses.fields(owner):
            if f.default is not dataclasses.MISSING:
                defaults[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                defaults[f.name] = f.default_factory()
    values = {**defaults, **getattr(cls, "training_defaults", {}), **base_config}
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if name not in values:
            continue
        v = values[name]
        if isinstance(v, tuple):
            v = list(v)
        if spec["type"] == "categorical":
            if v in spec["choices"]:
                out[name] = json.dumps(v)
        elif (
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and spec["low"] <= v <= spec["high"]
            and (spec["type"] == "float" or v == int(v))
        ):
            out[name] = float(v) if spec["type"] == "float" else int(v)
    return out


def to_toml(values: dict[str, Any], header: str = "") -> str:
    """Serialise a flat dict of scalars / lists as TOML."""

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"cannot write non-finite value {v} to TOML")
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        raise ConfigError(f"cannot write {type(v).__name__} value to TOML")

    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines += [f"{k} = {fmt(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def tune(
    *,
    train_path: str,
    fmt: str,
    columns: Any,
    model_name: str,
    space_path: str,
    base_config: dict[str, Any],
    n_trials: int,
    timeout: float | None,
    metric: str,
    valid_days: float | None,
    valid_fraction: float,
    out: str,
    seed: int = 0,
    progress: bool = True,
    start_from_base: bool = True,
) -> dict[str, Any]:
    """Run the search and write the best configuration to ``out`` (TOML).

    With ``start_from_base`` the first trial is the base configuration itself (model
    defaults, then ``base_config``; only its searched keys that lie in the space), so
    the config written is never worse on validation than the one the search started
    from."""
    import optuna

    from seqrec.data.loading import load_training_data
    from seqrec.evaluation import evaluate
    from seqrec.models import get_model_class
    from seqrec.pipeline import with_process_tuning
    from seqrec.training import fit

    cls = get_model_class(model_name)
    space = load_space(space_path)
    keys = {f.name for c in cls.config_owners().values() for f in dataclasses.fields(c)}
    bad = [k for k in space if k not in keys]
    if bad:
        raise ConfigError(f"{space_path}: {bad[0]!r} is not a {model_name} parameter")
    cls(base_config)  # validate the base config early
    k = metric.split("@")[-1]
    if not k.isdigit() or metric.split("@")[0] not in ("recall", "mrr", "ndcg"):
        raise ConfigError(f"--metric must look like recall@20, mrr@20 or ndcg@20, got {metric!r}")
    data = load_training_data(train_path, fmt, columns)
    split = validation_split(data, valid_days, valid_fraction)
    tr, va, protocol = split.train, split.valid, split.protocol
    print(
        f"tuning {model_name}: {tr.n_events:,} train events; metric {metric}\n"
        f"validation: {split.description}",
        file=sys.stderr,
    )

    trials_log: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = dict(base_config)
        params.update(suggest(trial, space))
        try:
            model = cls(with_process_tuning(cls, params))
        except ConfigError as exc:
            raise optuna.TrialPruned(str(exc)) from None
        t0 = time.perf_counter()
        try:
            fit(model, tr, item_index=data.item_index, progress=False)
        except FloatingPointError as exc:
            log.info("trial %d diverged: %s", trial.number, exc)
            return 0.0
        res = evaluate(model, va, protocol=protocol, ks=(int(k),))
        value = float(res[metric])
        rec = {
            "trial": trial.number,
            "value": value,
            "seconds": round(time.perf_counter() - t0, 1),
            "params": suggest_repr(params, space),
            "validation": split.kind,
            "n_queries": int(res["n_queries"]),
        }
        trials_log.append(rec)
        print(
            f"trial {trial.number}: {metric} {value:.4f} ({rec['seconds']}s) {rec['params']}",
            file=sys.stderr,
        )
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    if start_from_base:
        study.enqueue_trial(base_trial(cls, base_config, space))
    study.optimize(objective, n_trials=n_trials, timeout=timeout, show_progress_bar=False)
    done = [t for t in study.trials if t.value is not None]
    if not done:
        raise SeqrecError("no trial finished (all were invalid or timed out)")
    best = dict(base_config)
    best.update({name: _decode(study.best_trial.params[name], space[name]) for name in space})
    header = (
        f"{model_name} config found by `seqrec tune` on {dt.date.today().isoformat()}\n"
        f"train: {train_path}\nvalidation: {split.description}\n"
        f"best validation {metric} = {study.best_value:.4f} after {len(done)} trials"
    )
    atomic_write_bytes(out, to_toml(best, header).encode())
    atomic_write_bytes(
        str(out) + ".trials.jsonl", "".join(json.dumps(t) + "\n" for t in trials_log).encode()
    )
    print(f"best {metric} {study.best_value:.4f}: wrote {out}")
    return best


@dataclasses.dataclass(frozen=True)
class ValidationSplit:
    """What every trial trains on and is scored on, and how to say so."""

    train: SessionLog
    valid: SessionLog | Samples
    protocol: str  # evaluate()'s: "next-item" (sessions) or "samples" (leave-one-out)
    kind: str  # short tag of the trials file: "leave-one-out" or "next-item"
    description: str  # one line for the log and the config's header


def validation_split(data: Any, valid_days: float | None, valid_fraction: float) -> ValidationSplit:
    """The split of loaded :class:`~seqrec.data.loading.TrainingData` that ``tune`` uses.

    User histories come split already (``data.valid``: each history of 3 or more items,
    ``history[:-2] -> history[-2]``; ``data.train``: ``history[:-2]``, shorter histories
    whole), so ``valid_days`` / ``valid_fraction`` do not apply to them; sessions are
    carved by :func:`carve_validation`. ``data.test`` (the histories' last items) is never
    looked at."""
    if isinstance(data.valid, Samples):
        va: Samples = data.valid
        n_all = data.train.n_sessions  # every history keeps >= 1 item in train
        if len(va) == 0:
            raise SeqrecError(
                "no history has 3 or more items: there is no second-to-last item to "
                "validate on (the last one is the test item)"
            )
        short = n_all - len(va)
        notes = ["history items excluded from the ranking"] if va.exclude_history else []
        if short:
            notes.append(f"the {short:,} histories shorter than 3 items are only trained on")
        description = (
            f"leave-one-out: the second-to-last item of each of {len(va):,} histories, "
            f"scored from the items before it{' (' + '; '.join(notes) + ')' if notes else ''}; "
            "the last item of each history (the test item) is never trained on nor scored"
        )
        if valid_days is not None:
            description += " (--valid-days does not apply to user histories)"
        return ValidationSplit(data.train, va, "samples", "leave-one-out", description)
    tr, vs = carve_validation(data.train, valid_days, valid_fraction)
    which = (
        f"the sessions starting in the last {valid_days:g} days"
        if valid_days is not None
        else f"the last {valid_fraction * 100:g} % of sessions"
    )
    description = (
        f"next-item over every position of {vs.n_sessions:,} sessions ({vs.n_events:,} "
        f"events) carved from the training data ({which}); the test set is never read"
    )
    return ValidationSplit(tr, vs, "next-item", "next-item", description)


def _decode(value: Any, spec: dict[str, Any]) -> Any:
    return json.loads(value) if spec["type"] == "categorical" else value


def suggest_repr(params: dict[str, Any], space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: params[k] for k in space}
