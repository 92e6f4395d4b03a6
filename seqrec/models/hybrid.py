"""Hybrids of two or more models: ``hybrid`` (weighted or switching) and the
ready-made ``gru4rec+vsknn``.

* **weighted**: each part scores the whole catalogue; every part's score row is
  normalised per query (``normalise``: ``minmax`` to [0, 1], the default; ``softmax``;
  ``none``), then ``sum_i w_i * row_i``. The weights are given (``weights``) or tuned on
  validation: every point of the simplex grid of step ``weight_step`` (sum 1, each
  weight >= 0) is scored with ``metric`` (``mrr@20`` or ``recall@20``, full ranking,
  conservative ties) and the best one is kept.
* **switching**: two parts; part 0 answers histories shorter than ``threshold`` items,
  part 1 the others (a history of exactly ``threshold`` items goes to part 1). The
  threshold is given or tuned on validation over 0..``max_threshold``.

Validation (Jannach & Ludewig, RecSys 2017, tune their hybrid's weights the same way):
``fit(train, valid)`` tunes on ``valid``; ``fit(train)`` carves a validation split
from the training data only (the splitter of ``seqrec tune``:
:func:`seqrec.data.preprocess.carve_validation`), trains the parts on the rest, tunes,
then (``refit``, the default) trains the parts again on all of ``train``.

Every part shares the hybrid's item index: trained parts get it, saved parts with
another catalogue are refused (:func:`check_catalogues`) rather than mapped onto a
union, so no item is ever scored by a part that never saw it.

A hybrid scores histories (a :class:`~seqrec.models.base.Scorer`, not recurrent):
serving rescores a session's history, which re-runs a recurrent part (GRU4Rec) over it.
Its model directory holds ``config.json`` (its keys, the parts' names, the tuned
weights or threshold and the validation scores), ``items.json``, ``weights.safetensors``
(the item support) and ``part-0/``, ``part-1/``, ... each a normal model directory,
all written in one atomic directory replacement.

Layering: a hybrid builds and loads its parts by model name, so :func:`part_class` is
the one place a model module reaches the registry (a lazy import, the second seam
declared in tests/test_layering.py and docs/DESIGN.md).
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from seqrec.config import config_to_dict
from seqrec.data.idmap import ItemIndex
from seqrec.data.preprocess import carve_validation
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, ModelFileError
from seqrec.models.base import Histories, Recommender, read_model_info
from seqrec.persist import MAX_PARTS, PART_DIRS

NORMALISERS = ("minmax", "softmax", "none")
METRIC = re.compile(r"^(recall|mrr)@([1-9][0-9]*)$")


def part_class(name: str) -> type[Recommender]:
    """The model class registered as ``name``: the one import of the registry from a
    model module (lazy, so importing this module loads no other model; SEAM in
    tests/test_layering.py)."""
    from seqrec.models.registry import get_model_class

    return get_model_class(name)


@dataclass(frozen=True)
class HybridConfig:
    parts: tuple[str, ...] = ()  # model names, in order (part-0, part-1, ...)
    part_configs: tuple[Any, ...] = ()  # one table of keys per part ({}: its defaults)
    kind: Literal["weighted", "switching"] = "weighted"
    normalise: Literal["minmax", "softmax", "none"] = "minmax"  # per query row
    weights: tuple[float, ...] = ()  # weighted: one per part; empty = tune
    threshold: int | None = None  # switching: len(history) < threshold -> part 0; None = tune
    metric: str = "mrr@20"  # what tuning maximises: mrr@K or recall@K
    weight_step: float = 0.1  # tuning: step of the simplex grid of weights
    max_threshold: int = 10  # tuning: thresholds tried are 0..max_threshold
    valid_fraction: float = 0.1  # carved validation: last fraction of sessions ...
    valid_days: float | None = None  # ... or sessions starting in the last days
    valid_queries: int = 20000  # tuning scores at most this many validation queries
    refit: bool = True  # after tuning on a carved split, train the parts on all data
    seed: int = 0  # draws the validation queries when there are more than valid_queries

    def validate(self) -> None:
        n = len(self.parts)
        if n < 2:
            raise ConfigError(f"a hybrid needs at least 2 parts, got {n} (set parts)")
        if n > MAX_PARTS:
            raise ConfigError(f"a hybrid has at most {MAX_PARTS} parts, got {n}")
        if self.part_configs and len(self.part_configs) != n:
            raise ConfigError(f"part_configs has {len(self.part_configs)} tables for {n} parts")
        for i, c in enumerate(self.part_configs):
            if not isinstance(c, Mapping):
                raise ConfigError(f"part_configs[{i}] must be a table of keys, got {c!r}")
        tables = self.part_configs or [{} for _ in self.parts]
        for i, (name, cfg) in enumerate(zip(self.parts, tables)):
            try:
                part_class(name)(dict(cfg))  # an unknown model or key fails now, not after data
            except ConfigError as exc:
                raise ConfigError(f"part {i} ({name}): {exc}") from None
        if self.kind == "switching":
            if n != 2:
                raise ConfigError(f"a switching hybrid has exactly 2 parts, got {n}")
            if self.weights:
                raise ConfigError("weights apply to kind 'weighted', not 'switching'")
        elif self.threshold is not None:
            raise ConfigError("threshold applies to kind 'switching', not 'weighted'")
        if self.weights:
            check_weights(self.weights, n)
        if self.threshold is not None and self.threshold < 0:
            raise ConfigError(f"threshold must be >= 0, got {self.threshold}")
        if not METRIC.match(self.metric):
            raise ConfigError(f"metric must look like mrr@20 or recall@20, got {self.metric!r}")
        if not 0 < self.weight_step <= 1 or not math.isclose(
            1 / self.weight_step, round(1 / self.weight_step), abs_tol=1e-9
        ):
            raise ConfigError(f"weight_step must be 1/N (0.1, 0.05, ...), got {self.weight_step}")
        if self.max_threshold < 0:
            raise ConfigError(f"max_threshold must be >= 0, got {self.max_threshold}")
        if not 0 < self.valid_fraction < 1:
            raise ConfigError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.valid_days is not None and self.valid_days <= 0:
            raise ConfigError(f"valid_days must be positive, got {self.valid_days}")
        if self.valid_queries < 1:
            raise ConfigError(f"valid_queries must be positive, got {self.valid_queries}")


def check_weights(weights: Sequence[float], n_parts: int) -> tuple[float, ...]:
    """The weights as floats: one finite, non-negative weight per part, not all 0."""
    w = tuple(float(x) for x in weights)
    if len(w) != n_parts:
        raise ConfigError(f"weights has {len(w)} values for {n_parts} parts")
    if not all(math.isfinite(x) for x in w):
        raise ConfigError(f"weights must be finite numbers, got {list(w)}")
    if any(x < 0 for x in w):
        raise ConfigError(f"weights must be >= 0, got {list(w)}")
    if not any(x > 0 for x in w):
        raise ConfigError("weights must not all be 0")
    return w


def normalise_rows(scores: torch.Tensor, how: str) -> torch.Tensor:
    """(B, n) scores normalised per row, as a new tensor the caller owns (free to change
    in place): ``minmax`` maps each row to [0, 1] (a constant row to 0), ``softmax`` to
    probabilities, ``none`` leaves the values as they are. Three passes over the rows
    for minmax (one ``aminmax``, a subtraction, an in-place scaling)."""
    s = scores.float()
    if how == "none":
        return s.clone() if s is scores else s
    if how == "softmax":
        return torch.softmax(s, dim=1)
    lo, hi = torch.aminmax(s, dim=1, keepdim=True)
    span = hi - lo
    scale = torch.where(span > 0, 1.0 / torch.where(span > 0, span, 1.0), 0.0)
    return (s - lo).mul_(scale)  # a constant row: 0 * 0


def simplex_grid(n_parts: int, step: float) -> np.ndarray:
    """(C, n_parts) every weight vector with entries in {0, step, 2 step, ..., 1}
    summing to 1, in lexicographic order of the first part's weight descending."""
    m = round(1 / step)
    rows = [c for c in itertools.product(range(m, -1, -1), repeat=n_parts) if sum(c) == m]
    return np.asarray(rows, dtype=np.float64) / m


def conservative_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,) rank of each target: the number of items scoring >= it (itself included),
    as seqrec.evaluation's default (conservative) tie policy counts it."""
    t = scores.gather(1, targets.view(-1, 1))
    return (scores >= t).sum(1)


def check_catalogues(parts: Sequence[Recommender], names: Sequence[str] | None = None) -> None:
    """ConfigError unless every part has the same item index (same ids, same order)."""
    first = parts[0].item_index_
    assert first is not None
    for i, p in enumerate(parts[1:], 1):
        index = p.item_index_
        assert index is not None
        if index == first:
            continue
        a = names[0] if names else "part 0"
        b = names[i] if names else f"part {i}"
        ids_a, ids_b = first.external_ids, index.external_ids
        diff = next((j for j, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y), None)
        where = (
            f"item {diff} is {ids_a[diff]!r} in one and {ids_b[diff]!r} in the other"
            if diff is not None
            else f"{len(ids_a):,} items vs {len(ids_b):,}"
        )
        raise ConfigError(
            f"the parts of a hybrid must share one catalogue, but {a} and {b} differ "
            f"({where}); train them on the same training data"
        )


def _queries(valid: SessionLog | Samples) -> tuple[list[np.ndarray], np.ndarray]:
    """Validation (histories, targets): every position of sessions, or the samples;
    unknown (-1) history items dropped, unknown targets and empty histories skipped."""
    samples = valid if isinstance(valid, Samples) else Samples.from_sessions(valid)
    hs = [h[h >= 0] for h in samples.prefixes]
    keep = [i for i, h in enumerate(hs) if len(h) and samples.labels[i] >= 0]
    return [hs[i] for i in keep], samples.labels[keep].astype(np.int64)


def _metric_values(ranks: torch.Tensor, metric: str) -> torch.Tensor:
    m = METRIC.match(metric)
    assert m is not None
    k = int(m.group(2))
    hit = ranks <= k
    if m.group(1) == "recall":
        return hit.double()
    return torch.where(hit, 1.0 / ranks.double(), 0.0)


def _length(h: Any) -> int:
    return int(np.count_nonzero(np.asarray(h, dtype=np.int64) >= 0))


class Hybrid(Recommender):
    """Weighted or switching hybrid of two or more models (weights tuned on validation)."""

    name = "hybrid"
    Config = HybridConfig
    small_config: ClassVar[dict[str, Any]] = {
        "parts": ["pop", "sknn"],
        "sknn": {"k": 5, "sample_size": 20},
    }
    batch_size: ClassVar[int] = 256  # validation queries scored at once while tuning

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        """Keys of the hybrid, plus each part's keys as a table named after the part's
        model (``{"parts": ["gru4rec", "v-sknn"], "gru4rec": {"layers": [100]}}``, a
        ``[gru4rec]`` table in TOML) or as dotted keys (``gru4rec.n_epochs=3`` with
        ``--set``); ``part_configs`` lists the tables in part order instead (needed when
        one model appears twice)."""
        if config is not None and not isinstance(config, Mapping):
            config = config_to_dict(config)
        super().__init__(_gather_part_tables({**(config or {}), **overrides}, self.Config))
        self.parts_: list[Recommender] = []
        self.weights_: tuple[float, ...] | None = None
        self.threshold_: int | None = None

    @classmethod
    def with_run_defaults(cls, cfg: Mapping[str, Any], keys: Mapping[str, Any]) -> dict[str, Any]:
        """The keys pass on to every neural part (its table's keys win)."""
        out = _gather_part_tables(dict(cfg), cls.Config)
        names = out.get("parts", _default(cls.Config, "parts"))
        tables = list(out.get("part_configs") or [{} for _ in names])
        out["part_configs"] = [
            part_class(name).with_run_defaults(t, keys) for name, t in zip(names, tables)
        ]
        return out

    def part_configs(self) -> list[dict[str, Any]]:
        """One dict of keys per part (its defaults when none was given)."""
        given = list(self.config.part_configs)
        return [dict(c) for c in given] if given else [{} for _ in self.config.parts]

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: SessionLog,
        valid: SessionLog | Samples | None = None,
        *,
        item_index: ItemIndex | None = None,
    ) -> Hybrid:
        """Train the parts on ``train`` and tune the weights (or threshold) on ``valid``;
        without ``valid``, on a validation split carved from ``train`` (the parts then
        trained again on all of ``train`` when ``refit``). Given weights (or a given
        threshold) need no validation."""
        if train.n_events and item_index is None:
            item_index = ItemIndex(range(int(train.items.max()) + 1))
        self.begin_fit(train, item_index)
        if self._fixed():
            self._set_parts(self._fit_parts(train))
            self._set_tuned(self.config.weights, self.config.threshold, None)
            return self
        if valid is not None:
            parts = self._fit_parts(train)
            self._tune(parts, valid, "given")
            self._set_parts(parts)
            return self
        tr, va = carve_validation(train, self.config.valid_days, self.config.valid_fraction)
        if tr.n_events == 0 or va.n_events == 0:
            raise ConfigError(
                "the training data is too small to carve a validation split for the "
                "hybrid's weights; give weights (or threshold) or validation data"
            )
        t0 = time.perf_counter()
        parts = self._fit_parts(tr)
        t1 = time.perf_counter()
        self._tune(parts, va, "carved from the training data")
        t2 = time.perf_counter()
        if self.config.refit:
            parts = self._fit_parts(train)
        self.meta_["parts_trained_on"] = "all training data" if self.config.refit else "carved"
        self.meta_["seconds"] = {
            "fit_parts_on_carved": round(t1 - t0, 3),
            "tune": round(t2 - t1, 3),
            "refit_parts": round(time.perf_counter() - t2, 3),
        }
        self._set_parts(parts)
        return self

    def _fixed(self) -> bool:
        if self.config.kind == "weighted":
            return bool(self.config.weights)
        return self.config.threshold is not None

    def _fit_parts(self, train: SessionLog) -> list[Recommender]:
        out = []
        for name, cfg in zip(self.config.parts, self.part_configs(), strict=True):
            t0 = time.perf_counter()
            part = part_class(name)(cfg).fit(train, item_index=self.item_index_)
            part.meta_["train_seconds"] = round(time.perf_counter() - t0, 3)
            out.append(part)
        return out

    def _set_parts(self, parts: list[Recommender]) -> None:
        check_catalogues(parts)
        self.parts_ = parts
        self.meta_["parts"] = [p.name for p in parts]

    def _set_tuned(
        self, weights: Sequence[float] | None, threshold: int | None, report: dict | None
    ) -> None:
        if self.config.kind == "weighted":
            assert weights is not None
            self.weights_ = check_weights(weights, len(self.config.parts))
        else:
            assert threshold is not None
            self.threshold_ = int(threshold)
        if report is not None:
            self.meta_["tuning"] = report

    def tune(self, valid: SessionLog | Samples) -> Hybrid:
        """Tune the weights (or threshold) of this fitted hybrid's parts on ``valid``:
        data its parts did not train on."""
        self._check_parts()
        self._tune(self.parts_, valid, "given")
        return self

    def tune_by_retraining(self, train: SessionLog) -> Hybrid:
        """Tune on a validation split carved from ``train`` (what the parts trained
        on) by training fresh copies of the parts (same keys) on the rest; the parts
        themselves are kept."""
        self._check_parts()
        tr, va = carve_validation(train, self.config.valid_days, self.config.valid_fraction)
        if tr.n_events == 0 or va.n_events == 0:
            raise ConfigError("the training data is too small to carve a validation split")
        copies = [
            type(p)({**config_to_dict(p.config), **p.training_keys}).fit(
                tr, item_index=self.item_index_
            )
            for p in self.parts_
        ]
        self._tune(copies, va, "carved from the training data (parts retrained on the rest)")
        return self

    def _tune(self, parts: list[Recommender], valid: SessionLog | Samples, how: str) -> None:
        """Score ``valid`` once per part and batch; pick the best grid point."""
        hs, targets = _queries(valid)
        if not len(targets):
            raise ConfigError("no validation query to tune the hybrid on (all were unknown)")
        if len(targets) > self.config.valid_queries:
            rng = np.random.default_rng(self.config.seed)
            pick = np.sort(rng.choice(len(targets), self.config.valid_queries, replace=False))
            hs, targets = [hs[i] for i in pick], targets[pick]
        weighted = self.config.kind == "weighted"
        if weighted:
            grid = simplex_grid(len(parts), self.config.weight_step)
        else:
            grid = np.arange(self.config.max_threshold + 1, dtype=np.float64)[:, None]
        totals = torch.zeros(len(grid), dtype=torch.float64)
        with torch.inference_mode():
            for start in range(0, len(targets), self.batch_size):
                batch = hs[start : start + self.batch_size]
                t = torch.as_tensor(targets[start : start + self.batch_size])
                rows = [normalise_rows(p.score(batch), self.config.normalise) for p in parts]
                rows = [r.to(rows[0].device) for r in rows]
                t = t.to(rows[0].device)
                if weighted:
                    for c, w in enumerate(grid):
                        combined = sum(float(wi) * r for wi, r in zip(w, rows) if wi > 0)
                        ranks = conservative_ranks(combined, t)  # type: ignore[arg-type]
                        totals[c] += _metric_values(ranks, self.config.metric).sum().cpu()
                else:
                    lens = torch.as_tensor([_length(h) for h in batch])
                    m0 = _metric_values(conservative_ranks(rows[0], t), self.config.metric).cpu()
                    m1 = _metric_values(conservative_ranks(rows[1], t), self.config.metric).cpu()
                    for c, (thr,) in enumerate(grid):
                        totals[c] += torch.where(lens < thr, m0, m1).sum()
        values = (totals / len(targets)).tolist()
        best = _best(grid, np.asarray(values), weighted)
        report = {
            "validation": how,
            "queries": len(targets),
            "metric": self.config.metric,
            "best": values[best],
            "grid": [
                {"weights" if weighted else "threshold": _grid_point(g, weighted), "value": v}
                for g, v in zip(grid, values)
            ],
        }
        if weighted:
            singles = [values[int(np.argmax(grid[:, i]))] for i in range(len(parts))]
            report["parts_alone"] = dict(zip([p.name for p in parts], singles))
            self._set_tuned(grid[best].tolist(), None, report)
        else:
            self._set_tuned(None, int(grid[best, 0]), report)

    # ------------------------------------------------------------------ combine
    @classmethod
    def combine(
        cls, parts: Sequence[Recommender], names: Sequence[str] | None = None, **keys: Any
    ) -> Hybrid:
        """A hybrid of already-fitted ``parts`` (they must share one catalogue):
        ``keys`` are the hybrid's keys (kind, normalise, weights, threshold, ...); without
        weights (or threshold) call :meth:`tune` or :meth:`tune_by_retraining` next.
        ``names`` name the parts in errors (e.g. their directories)."""
        if len(parts) < 2:
            raise ConfigError(f"a hybrid needs at least 2 parts, got {len(parts)}")
        for i, p in enumerate(parts):
            if p.n_items_ <= 0:
                raise ConfigError(f"part {i} ({p.name}) is not fitted")
        check_catalogues(parts, names)
        tables = [{**config_to_dict(p.config), **p.training_keys} for p in parts]
        model = cls({**keys, "parts": [p.name for p in parts], "part_configs": tables})
        first = parts[0]
        model.item_index_ = first.item_index_
        model.n_items_ = first.n_items_
        model.item_support_ = first.item_support_
        model.meta_ = {"trained_at": first.meta_.get("trained_at"), "combined": True}
        model._set_parts(list(parts))
        if model._fixed():
            model._set_tuned(model.config.weights, model.config.threshold, None)
        return model

    # ------------------------------------------------------------------ score
    def _check_parts(self) -> None:
        super()._check_fitted()
        if not self.parts_:
            raise ConfigError("hybrid is not fitted (no parts)")

    def _check_fitted(self) -> None:
        self._check_parts()
        if self.weights_ is None and self.threshold_ is None:
            raise ConfigError("hybrid is not tuned yet (no weights or threshold)")

    def score(self, histories: Histories) -> torch.Tensor:
        """(B, n_items): the weighted sum of the parts' normalised rows, or (switching)
        the normalised row of the part the history's length picks."""
        self._check_fitted()
        how = self.config.normalise
        if self.threshold_ is None:
            assert self.weights_ is not None
            out: torch.Tensor | None = None
            for w, part in zip(self.weights_, self.parts_, strict=True):
                if w == 0:
                    continue
                row = normalise_rows(part.score(histories), how).mul_(w)  # (B, n_items)
                out = row if out is None else out.add_(row.to(out.device))
            assert out is not None
            return out
        short = np.array([_length(h) < self.threshold_ for h in histories], dtype=bool)
        out = torch.zeros(len(histories), self.n_items_)
        for part, rows in zip(self.parts_, (np.flatnonzero(short), np.flatnonzero(~short))):
            if len(rows):
                scores = normalise_rows(part.score([histories[i] for i in rows]), how)
                out[torch.as_tensor(rows)] = scores.cpu()
        return out

    # ------------------------------------------------------------ persistence
    def _weights(self) -> dict[str, torch.Tensor]:
        return {}

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        if weights:
            raise ValueError(f"unexpected tensors {sorted(weights)}")

    def _extra_info(self) -> dict[str, Any]:
        return {
            "hybrid": {
                "parts": [{"dir": d, "model": p.name} for d, p in zip(PART_DIRS, self.parts_)],
                "kind": self.config.kind,
                "normalise": self.config.normalise,
                "weights": list(self.weights_) if self.weights_ is not None else None,
                "threshold": self.threshold_,
            }
        }

    def _write(self, directory: Path) -> None:
        for d, part in zip(PART_DIRS, self.parts_):
            (directory / d).mkdir()
            part._write(directory / d)
        super()._write(directory)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Hybrid:
        """Load the hybrid and its parts (each part directory loaded by its own class)."""
        p = Path(path)
        model = super().load(p, device)
        assert isinstance(model, Hybrid)
        file = p / "config.json"
        info = read_model_info(p).get("hybrid")
        if not isinstance(info, dict) or not isinstance(info.get("parts"), list):
            raise ModelFileError(f"{file}: field 'hybrid' is missing or not an object")
        names = model.config.parts
        if len(info["parts"]) != len(names):
            raise ModelFileError(
                f"{file}: field 'hybrid' lists {len(info['parts'])} parts, the config {len(names)}"
            )
        parts = []
        for name, d in zip(names, PART_DIRS):
            part = part_class(name).load(p / d, device=device)
            if part.item_index_ != model.item_index_:
                raise ModelFileError(f"{p / d}: its catalogue differs from the hybrid's")
            parts.append(part)
        model.parts_ = parts
        try:
            if model.config.kind == "weighted":
                model.weights_ = check_weights(info.get("weights") or (), len(parts))
            else:
                thr = info.get("threshold")
                if isinstance(thr, bool) or not isinstance(thr, int) or thr < 0:
                    raise ConfigError(f"threshold must be an integer >= 0, got {thr!r}")
                model.threshold_ = thr
        except ConfigError as exc:
            raise ModelFileError(f"{file}: field 'hybrid': {exc}") from None
        return model


def _best(grid: np.ndarray, values: np.ndarray, weighted: bool) -> int:
    """The best grid point. Ties are common on small validation sets: thresholds take
    the smallest; weights the tied point nearest the mean of the tied points, so a flat
    optimum gives a central weight rather than an extreme one (then the first)."""
    tied = np.flatnonzero(values >= values.max())
    if not weighted or len(tied) == 1:
        return int(tied[0])
    centre = grid[tied].mean(axis=0)
    dist = np.round(((grid[tied] - centre) ** 2).sum(axis=1), 12)
    return int(tied[int(np.argmin(dist))])


def _grid_point(g: np.ndarray, weighted: bool) -> Any:
    return [round(float(x), 6) for x in g] if weighted else int(g[0])


def _default(cfg_cls: type, name: str) -> Any:
    f = next(f for f in fields(cfg_cls) if f.name == name)
    return f.default


def _gather_part_tables(values: dict[str, Any], cfg_cls: type) -> dict[str, Any]:
    """Move tables named after a part (``gru4rec = {...}``) and dotted keys
    (``gru4rec.n_epochs``) into ``part_configs``; other keys are left to the config."""
    names = list(values.get("parts") or _default(cfg_cls, "parts"))
    own = {f.name for f in fields(cfg_cls)}
    tables: dict[int, dict[str, Any]] = {}

    def index_of(name: str) -> int:
        if names.count(name) > 1:
            raise ConfigError(
                f"model {name!r} is more than one part; give its keys in part_configs"
            )
        return names.index(name)

    out = {}
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if key not in own and key in names and isinstance(value, Mapping):
            tables.setdefault(index_of(key), {}).update(value)
        elif key not in own and rest and head in names:
            tables.setdefault(index_of(head), {})[rest] = value
        elif key not in own and isinstance(value, Mapping):
            raise ConfigError(
                f"table [{key}] names no part of this hybrid (parts: {', '.join(names)})"
            )
        else:
            out[key] = value
    if tables:
        given = list(out.get("part_configs") or [{} for _ in names])
        if len(given) != len(names):
            raise ConfigError(f"part_configs has {len(given)} tables for {len(names)} parts")
        out["part_configs"] = [{**given[i], **tables.get(i, {})} for i in range(len(names))]
    return out


@dataclass(frozen=True)
class GRU4RecVSKNNConfig(HybridConfig):
    parts: tuple[str, ...] = ("gru4rec", "v-sknn")


class GRU4RecVSKNN(Hybrid):
    """GRU4Rec + V-SKNN, weighted, weights tuned on validation (the hybrid of Ludewig
    and Jannach's comparisons); part keys in [gru4rec] and [v-sknn] tables."""

    name = "gru4rec+vsknn"
    Config = GRU4RecVSKNNConfig
    small_config: ClassVar[dict[str, Any]] = {
        "gru4rec": {
            "layers": [16],
            "n_epochs": 2,
            "batch_size": 4,
            "n_sample": 8,
            "sample_cache": 100,
            "learning_rate": 0.1,
        },
        "v-sknn": {"k": 5, "sample_size": 20},
    }
