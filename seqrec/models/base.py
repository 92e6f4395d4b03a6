"""The model API every seqrec model follows, and the protocols evaluation uses.

Evaluation and serving see a model only through two small protocols:

* :class:`Scorer` - ``score(histories) -> (B, n_items)`` for any model;
* :class:`RecurrentScorer` - ``init_state(B)`` / ``step(state, items) -> (state, scores)``
  for models that carry a per-session state (one O(1) update per click).

States are tensors whose dimension 1 is the batch (``state[:, idx]`` selects
sessions), so a protocol or a server can slice, reset and store them without knowing
the model.

:class:`Recommender` is the sklearn-like base class: ``__init__`` stores the config,
``fit`` learns (attributes ending in ``_``) and returns self, ``recommend`` turns
scores into top-k ids, and ``save``/``load`` write a pickle-free model directory.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from seqrec import __version__
from seqrec.config import build_config, config_to_dict
from seqrec.data.idmap import ItemIndex
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, ModelFileError
from seqrec.persist import atomic_dir, load_tensors, read_json, save_tensors, write_json

SUPPORT_KEY = "__item_support__"  # training event count per item, saved with every model

Histories = Sequence[np.ndarray] | Sequence[Sequence[int]]


@runtime_checkable
class Scorer(Protocol):
    n_items_: int

    def score(self, histories: Histories) -> torch.Tensor:
        """(B, n_items) float scores of every item as the next one after each history."""
        ...


@runtime_checkable
class RecurrentScorer(Protocol):
    def init_state(self, batch_size: int) -> torch.Tensor:
        """Initial (empty-session) state of ``batch_size`` sessions; dim 1 is the batch."""
        ...

    def step(self, state: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed one item per session: returns (new state, (B, n_items) scores)."""
        ...


# Optional fast paths of recurrent models, used by serving (checked with isinstance;
# a method set to None in a class body blocks its protocol).
@runtime_checkable
class StateReadout(Protocol):
    def scores_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """(B, n_items) scores of a state: what the ``step`` into it returned."""
        ...


@runtime_checkable
class LinearReadout(StateReadout, Protocol):
    """Scores linear in a slice of the state: ``query . W^T + b`` (an inner-product
    index can search them)."""

    def query_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """(B, H) query vectors of a state."""
        ...

    def item_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The item weights and biases ``(W (n_items, H), b (n_items,))``."""
        ...


@runtime_checkable
class StateAdvancer(Protocol):
    def advance(self, state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``step`` without the scores: (state, (B,) items) -> new state."""
        ...

    def encode_histories(self, histories: Histories) -> tuple[torch.Tensor, torch.Tensor]:
        """Run whole histories at once: (final states (B, S), queries (B, H))."""
        ...


def is_recurrent(model: object) -> bool:
    return callable(getattr(model, "init_state", None)) and callable(getattr(model, "step", None))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but no CUDA GPU is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from None


class Recommender:
    """Base class: config handling, recommend, save/load.

    Subclasses set ``name`` and ``Config`` (a frozen dataclass), implement
    ``fit``/``score`` and ``_weights()``/``_set_weights()`` for persistence.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type]

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        if config is None or isinstance(config, Mapping):
            values = dict(config or {})
            values.update(overrides)
            config = build_config(self.Config, values)
        elif overrides:
            merged = config_to_dict(config)
            merged.update(overrides)
            config = build_config(self.Config, merged)
        self.config = config
        self.item_index_: ItemIndex | None = None
        self.n_items_: int = 0
        self.meta_: dict[str, Any] = {}
        self.item_support_: torch.Tensor | None = None  # (n_items,) training event counts

    # ------------------------------------------------------------------ API
    def fit(
        self,
        train: SessionLog,
        valid: SessionLog | None = None,
        *,
        item_index: ItemIndex | None = None,
    ) -> Recommender:
        raise NotImplementedError

    def score(self, histories: Histories) -> torch.Tensor:
        raise NotImplementedError

    def _begin_fit(self, train: SessionLog, item_index: ItemIndex | None) -> None:
        if train.n_events == 0:
            raise ConfigError("cannot fit on an empty training log")
        if np.any(train.items < 0):
            raise ConfigError("training log contains unknown (-1) items; drop them first")
        n = int(train.items.max()) + 1
        if item_index is not None:
            if len(item_index) < n:
                raise ConfigError("item index is smaller than the largest item id in the log")
            n = len(item_index)
        self.item_index_ = item_index if item_index is not None else ItemIndex(range(n))
        self.n_items_ = n
        self.item_support_ = torch.as_tensor(train.item_counts(n), dtype=torch.float32)
        self.meta_ = {
            "trained_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "train_events": int(train.n_events),
            "train_sessions": int(train.n_sessions),
        }

    def _check_fitted(self) -> None:
        if self.n_items_ <= 0:
            raise ConfigError(f"{self.name} model is not fitted")

    def recommend(
        self,
        histories: Histories,
        k: int = 20,
        *,
        exclude_history: bool = False,
        allow: np.ndarray | Sequence[int] | None = None,
        deny: np.ndarray | Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` dense ids and scores per history, best first: ``(B, k)`` arrays.

        ``exclude_history`` removes items already in the history; ``allow`` keeps only
        the given ids; ``deny`` removes them. Fewer than ``k`` candidates pad with -1.
        """
        self._check_fitted()
        if k <= 0:
            raise ConfigError(f"k must be positive, got {k}")
        scores = self.score(histories).float().clone()
        mask_scores(scores, histories if exclude_history else None, allow=allow, deny=deny)
        k_eff = min(k, scores.shape[1])
        top_s, top_i = torch.topk(scores, k_eff, dim=1)
        ids = top_i.cpu().numpy().astype(np.int64)
        vals = top_s.cpu().numpy()
        invalid = ~np.isfinite(vals)
        ids[invalid] = -1
        if k_eff < k:
            pad = k - k_eff
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            vals = np.pad(vals, ((0, 0), (0, pad)), constant_values=-np.inf)
        return ids, vals

    # ---------------------------------------------------------- persistence
    def _weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the model directory atomically (temp dir + rename)."""
        self._check_fitted()
        assert self.item_index_ is not None
        with atomic_dir(path) as tmp:
            write_json(
                tmp / "config.json",
                {
                    "format": "seqrec-model",
                    "format_version": 1,
                    "model": self.name,
                    "config": config_to_dict(self.config),
                    "n_items": self.n_items_,
                    "seqrec_version": __version__,
                    "meta": self.meta_,
                },
            )
            self.item_index_.save(tmp / "items.json")
            tensors = dict(self._weights())
            if self.item_support_ is not None:
                tensors[SUPPORT_KEY] = self.item_support_
            save_tensors(tmp / "weights.safetensors", tensors)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Recommender:
        """Load a model directory written by :meth:`save` (no pickle involved)."""
        p = Path(path)
        if not p.is_dir():
            raise ModelFileError(f"{p}: model directory not found")
        info = read_json(p / "config.json")
        if not isinstance(info, dict) or info.get("format") != "seqrec-model":
            raise ModelFileError(f"{p / 'config.json'}: not a seqrec model file")
        if info.get("model") != cls.name:
            raise ModelFileError(f"{p}: holds a {info.get('model')!r} model, not {cls.name!r}")
        cfg = dict(info.get("config", {}))
        if device is not None and "device" in cfg:
            cfg["device"] = device
        model = cls(cfg)
        model.item_index_ = ItemIndex.load(p / "items.json")
        model.n_items_ = int(info["n_items"])
        if len(model.item_index_) != model.n_items_:
            raise ModelFileError(f"{p}: items.json does not match n_items in config.json")
        model.meta_ = dict(info.get("meta", {}))
        tensors = load_tensors(p / "weights.safetensors")
        model.item_support_ = tensors.pop(SUPPORT_KEY, None)
        try:
            model._set_weights(tensors)
        except (KeyError, RuntimeError, ValueError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelFileError(
                f"{p}: weights do not match the {cls.name} config ({msg})"
            ) from None
        return model


def mask_scores(
    scores: torch.Tensor,
    histories: Histories | None = None,
    *,
    allow: np.ndarray | Sequence[int] | None = None,
    deny: np.ndarray | Sequence[int] | None = None,
) -> torch.Tensor:
    """In place: set to -inf the history items (if given), everything outside
    ``allow`` and everything in ``deny``."""
    if histories is not None:
        rows, cols = history_coords(histories)
        if len(rows):
            scores[
                torch.as_tensor(rows, device=scores.device),
                torch.as_tensor(cols, device=scores.device),
            ] = -torch.inf
    if allow is not None:
        keep = torch.zeros(scores.shape[1], dtype=torch.bool, device=scores.device)
        keep[torch.as_tensor(np.asarray(allow, dtype=np.int64), device=scores.device)] = True
        scores[:, ~keep] = -torch.inf
    if deny is not None and len(deny):
        scores[
            :, torch.as_tensor(np.asarray(deny, dtype=np.int64), device=scores.device)
        ] = -torch.inf
    return scores


def history_coords(histories: Histories) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) pairs of every known item in every history."""
    lens = [len(h) for h in histories]
    if not sum(lens):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = np.repeat(np.arange(len(lens)), lens)
    cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories if len(h)])
    ok = cols >= 0
    return rows[ok], cols[ok]
