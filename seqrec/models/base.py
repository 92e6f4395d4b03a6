"""The model API every seqrec model follows, and the capabilities serving and evaluation use.

Evaluation and serving see a model only through small ``runtime_checkable`` protocols,
checked with ``isinstance``:

* :class:`Scorer` - ``score(histories) -> (B, n_items)`` for any model;
* :class:`RecurrentScorer` - ``init_state(B)`` / ``step(state, items) -> (state, scores)``
  for models that carry a per-session state (one O(1) update per click);
* :class:`StateAdvancer` - ``advance`` (a step without scores) and ``encode_histories``
  (whole histories in one batched pass);
* :class:`StateReadout` - ``scores_from_state``: the scores of a stored state;
* :class:`LinearReadout` - scores linear in a slice of the state, ``query . W^T + b``
  (``query_from_state``, ``item_table``): a server can read a session's top-K from its
  stored state or from an inner-product index.

User ids. A model whose class sets ``uses_users = True`` (it learns something per
user, e.g. BPR-MF's user factors) is always called as ``score(histories, users=...)``
(and ``recommend(..., users=...)``), ``users`` being None or a sequence of external
user id strings, one per history (:func:`takes_users` tells; evaluation passes the ids
its data carries, serving the session id). An id the model does not know, or
``users=None``, is scored from the history alone. Every other model is called without
``users``, exactly as before. The users of a training log are its ``session_ids``
(:func:`user_rows`); such a model saves its user index as ``users.json``.

States are tensors whose dimension 1 is the batch (``state[:, idx]`` selects
sessions), so a protocol or a server can slice, reset and store them without knowing
the model.

:class:`Recommender` is the sklearn-like base class: ``__init__`` stores the config,
``fit`` learns (attributes ending in ``_``) and returns self, ``recommend`` turns
scores into top-k ids, and ``save``/``load`` write a pickle-free model directory.
A neural model declares its batching ``family`` and ``training_defaults``; its ``fit``
is :func:`seqrec.training.fit` (the one import of training from models, see
:meth:`Recommender.fit`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from seqrec import __version__
from seqrec.config import build_config, config_to_dict, route_keys
from seqrec.data.idmap import ItemIndex
from seqrec.data.samples import Samples
from seqrec.data.sessions import SessionLog
from seqrec.errors import ConfigError, ModelFileError, one_line
from seqrec.nn.padding import pad_histories
from seqrec.persist import (
    MODEL_ENTRIES,
    MODEL_FORMAT,
    USERS_FILE,
    atomic_dir,
    is_model_dir,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)
from seqrec.trainconfig import training_configs, training_owners

SUPPORT_KEY = "__item_support__"  # training event count per item, saved with every model
# config.json format versions this code reads (it writes the last): 1 = one flat
# config; 2 = "config" (the model's keys) + "training" (every training key used)
FORMAT_VERSIONS = (1, 2)

Histories = Sequence[np.ndarray] | Sequence[Sequence[int]]
Users = Sequence[str] | None  # external user ids, one per history (``uses_users`` models)


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
    return isinstance(model, RecurrentScorer)


def takes_users(model: object) -> bool:
    """True for a model that scores known users: its class sets ``uses_users = True``
    and it is called as ``score(histories, users=...)``."""
    return getattr(model, "uses_users", False) is True


def check_users(users: Users, n: int) -> list[str] | None:
    """``users`` as a list of ``n`` id strings (None stays None); ConfigError otherwise."""
    if users is None:
        return None
    if isinstance(users, (str, bytes)):
        raise ConfigError("users must be a sequence of user ids (one per history), not a string")
    out = [str(u) for u in users]
    if len(out) != n:
        raise ConfigError(f"got {len(out)} user ids for {n} histories (need one per history)")
    return out


def user_rows(log: SessionLog) -> tuple[ItemIndex, np.ndarray]:
    """The user of every session of a training log, for a model that learns a vector
    per user: ``(index, rows)``, ``rows`` (n_sessions,) int64.

    Users are the log's ``session_ids`` (the user ids of user-history data: one history
    per user; with session data every session is its own user). Sessions with the same
    id share a row; rows are numbered in order of first appearance and ``index`` maps
    each id to its row. A log without ids gives one row per session and an empty index:
    no user can be named at inference."""
    if log.session_ids is None:
        return ItemIndex(), np.arange(log.n_sessions, dtype=np.int64)
    index = ItemIndex()
    rows = index.add(log.session_ids).astype(np.int64)
    return index, rows


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
    """Base class: config handling, fit, recommend, save/load.

    Subclasses set ``name`` and ``Config`` (a frozen dataclass of the model's own keys),
    implement ``score`` and ``_weights()``/``_set_weights()`` for persistence, and set
    ``small_config`` (fast settings the contract suite trains every model with). A
    non-neural model implements ``fit``. A neural model sets ``family`` (its batching
    family in :mod:`seqrec.training`, e.g. ``"session-parallel"``) and
    ``training_defaults`` (its defaults of the training, loss and sampler keys of
    :mod:`seqrec.trainconfig`), implements ``build_net`` and inherits ``fit``.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type]
    family: ClassVar[str | None] = None
    training_defaults: ClassVar[dict[str, Any]] = {}
    small_config: ClassVar[dict[str, Any]] = {}
    # True: called as score(histories, users=...); saves its user index (users.json)
    uses_users: ClassVar[bool] = False

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        """``config``: a ``Config`` instance or a flat dict of keys (model keys and, for a
        neural model, training keys: ``GRU4Rec(layers=[100], loss="bpr-max")``); each key
        is routed to its owner, unknown keys are errors."""
        if config is not None and not isinstance(config, Mapping):
            config = config_to_dict(config)
        parts = route_keys({**(config or {}), **overrides}, self.config_owners(), self.name)
        self.config = build_config(self.Config, parts.pop("model"))
        # every training key this model trains with (its defaults, then the given keys)
        self.training_keys: dict[str, Any] = {}
        if self.family is not None:
            given = {k: v for part in parts.values() for k, v in part.items()}
            keys = {**self.training_defaults, **given}
            self.training_keys = {
                k: list(v) if isinstance(v, tuple) else v
                for c in training_configs(keys, self.family)
                for k, v in config_to_dict(c).items()
            }
            self._check_training(self.training_keys)
        self.item_index_: ItemIndex | None = None
        self.n_items_: int = 0
        self.meta_: dict[str, Any] = {}
        self.item_support_: torch.Tensor | None = None  # (n_items,) training event counts
        self.user_index_: ItemIndex | None = None  # uses_users models: user id -> row
        self.device_ = torch.device("cpu")
        self.in_fit = False  # True while seqrec.training changes the weights in place

    @classmethod
    def config_owners(cls) -> dict[str, type]:
        """The config dataclass of every owner of this model's flat keys."""
        owners: dict[str, type] = {"model": cls.Config}
        if cls.family is not None:
            owners.update(training_owners(cls.family))
        return owners

    @classmethod
    def with_run_defaults(cls, cfg: Mapping[str, Any], keys: Mapping[str, Any]) -> dict[str, Any]:
        """``cfg`` plus the training ``keys`` it does not set, for a neural model (the
        command line's process tuning, ``pipeline.PROCESS_TUNING``); any other model gets
        ``cfg`` unchanged (a hybrid passes them on to its neural parts)."""
        return dict(cfg) if cls.family is None else {**keys, **cfg}

    # ------------------------------------------------------------------ API
    def fit(
        self,
        train: SessionLog,
        valid: SessionLog | Samples | None = None,
        *,
        item_index: ItemIndex | None = None,
    ) -> Recommender:
        """Learn from ``train`` and return self; ``valid`` is evaluated after every epoch
        (early stopping with ``patience``); ``item_index`` fixes the catalogue.

        Non-neural models override this. A neural model is trained by
        :func:`seqrec.training.fit` with its ``training_keys``: this lazy import is the
        one place where a model reaches the training package (allow-listed by name in
        tests/test_layering.py).
        """
        if self.family is None:
            raise NotImplementedError(f"{self.name} does not implement fit")
        from seqrec.training import fit

        return fit(self, train, valid, item_index=item_index)

    def score(self, histories: Histories) -> torch.Tensor:
        raise NotImplementedError

    def build_net(self, n_items: int, device: torch.device, seed: int) -> None:
        """Neural models: create ``net_`` (initial weights drawn from ``seed``) on ``device``."""
        raise NotImplementedError

    def _check_training(self, keys: dict[str, Any]) -> None:
        """Checks of training keys that depend on the model's own config (none here)."""

    def begin_fit(self, train: SessionLog, item_index: ItemIndex | None) -> None:
        """Validate the training log and set the catalogue, item support and metadata."""
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
        users: Users = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` dense ids and scores per history, best first: ``(B, k)`` arrays.

        ``exclude_history`` removes items already in the history; ``allow`` keeps only
        the given ids; ``deny`` removes them. Fewer than ``k`` candidates pad with -1.
        ``users``: external user ids, one per history, passed to ``score`` of a model
        that ``uses_users`` (any other model: must be None).
        """
        self._check_fitted()
        if k <= 0:
            raise ConfigError(f"k must be positive, got {k}")
        if self.uses_users:
            scores = self.score(histories, users=users)  # type: ignore[call-arg]
        elif users is not None:
            raise ConfigError(f"{self.name} does not use user ids (users must be None)")
        else:
            scores = self.score(histories)
        scores = scores.float().clone()
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
        """The tensors a model file holds; a neural model's are its network's state."""
        if self.family is None:
            raise NotImplementedError
        return dict(self.net_.state_dict())

    def _set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`_weights`; a neural model rebuilds its network and loads the
        state, a mismatch being a one-line ModelFileError."""
        if self.family is None:
            raise NotImplementedError
        self.build_net(self.n_items_, self.device_, seed=0)
        try:
            self.net_.load_state_dict({k: v.to(self.device_) for k, v in weights.items()})
        except RuntimeError as exc:
            msg = f"weights do not match the {self.name} config: {one_line(exc)}"
            raise ModelFileError(msg) from None
        self.net_.eval()

    def save(self, path: str | Path, *, replace: Literal["model", "never"] = "model") -> Path:
        """Write the model directory atomically (temp dir + rename).

        An existing ``path`` is replaced only when it is an empty directory or (with
        ``replace="model"``, the default) a seqrec model directory holding nothing but
        its own files; ``replace="never"`` refuses any non-empty directory. Anything
        else (a regular file, a directory with other files) raises OutputError and is
        left untouched.
        """
        self._check_fitted()
        assert self.item_index_ is not None
        if replace not in ("model", "never"):
            raise ConfigError(f"replace must be 'model' or 'never', got {replace!r}")
        accept = is_model_dir if replace == "model" else _never
        with atomic_dir(path, names=MODEL_ENTRIES, accept=accept, what="model directory") as tmp:
            self._write(tmp)
        return Path(path)

    def _write(self, directory: Path) -> None:
        """Write the model's files into ``directory`` (the temporary directory of
        :meth:`save`; a hybrid writes its parts into sub-directories of it)."""
        assert self.item_index_ is not None
        write_json(
            directory / "config.json",
            {
                "format": MODEL_FORMAT,
                "format_version": FORMAT_VERSIONS[-1],
                "model": self.name,
                "config": config_to_dict(self.config),
                "training": self.training_keys,
                "n_items": self.n_items_,
                "seqrec_version": __version__,
                "meta": self.meta_,
                **self._extra_info(),
            },
        )
        self.item_index_.save(directory / "items.json")
        if self.uses_users:
            (self.user_index_ or ItemIndex()).save(directory / USERS_FILE)
        tensors = dict(self._weights())
        if self.item_support_ is not None:
            tensors[SUPPORT_KEY] = self.item_support_
        save_tensors(directory / "weights.safetensors", tensors)

    def _extra_info(self) -> dict[str, Any]:
        """Fields a subclass adds to ``config.json`` (a hybrid: its parts and weights)."""
        return {}

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Recommender:
        """Load a model directory written by :meth:`save` (no pickle involved).

        Every field is checked: a corrupt or foreign file raises a one-line
        ModelFileError naming the file and the field."""
        p = Path(path)
        info = read_model_info(p)
        file = p / "config.json"
        if info["model"] != cls.name:
            raise ModelFileError(f"{p}: holds a {info['model']!r} model, not {cls.name!r}")
        cfg = dict(info["config"])
        training = dict(info["training"])
        try:
            if info["format_version"] == 1:  # one flat config: route keys to their owners
                parts = route_keys(cfg, cls.config_owners(), cls.name)
                cfg = parts.pop("model")
                training = {k: v for part in parts.values() for k, v in part.items()}
            model = cls(cfg)
        except ConfigError as exc:
            raise ModelFileError(f"{file}: field 'config': {exc}") from None
        model.training_keys = {**model.training_keys, **training}  # as trained (metadata)
        if cls.family is not None:
            model.device_ = resolve_device(device or str(training.get("device", "cpu")))
        model.item_index_ = ItemIndex.load(p / "items.json")
        model.n_items_ = info["n_items"]
        if len(model.item_index_) != model.n_items_:
            raise ModelFileError(
                f"{p / 'items.json'}: {len(model.item_index_)} items, but field 'n_items' "
                f"of config.json says {model.n_items_}"
            )
        model.meta_ = dict(info["meta"])
        if cls.uses_users:
            model.user_index_ = ItemIndex.load(p / USERS_FILE, what="user index")
        tensors = load_tensors(p / "weights.safetensors")
        support = tensors.pop(SUPPORT_KEY, None)
        if support is not None and tuple(support.shape) != (model.n_items_,):
            raise ModelFileError(
                f"{p / 'weights.safetensors'}: item support has shape {tuple(support.shape)}, "
                f"expected ({model.n_items_},)"
            )
        model.item_support_ = support
        weights_file = p / "weights.safetensors"
        try:
            model._set_weights(tensors)
        except ModelFileError as exc:
            raise ModelFileError(f"{weights_file}: {one_line(exc)}") from None
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ModelFileError(
                f"{weights_file}: weights do not match the {cls.name} config ({one_line(exc)})"
            ) from None
        return model


class PaddedSequenceModel(Recommender):
    """A ``"sequences"``-family model (NARM, STAMP, SR-GNN, SASRec, BERT4Rec) that
    answers a query by re-encoding the last ``max_len`` items of each history (the
    training key, also the inference window): :func:`seqrec.nn.padding.pad_histories`
    right-aligns them (PAD on the left; ``append_mask``: the last slot is the MASK
    token), the net returns its states ``(B, T, d)`` and the query is the state at
    ``query_position`` (``0``: the one state per row of the ``last`` layout; ``-1``: the
    most recent slot of the per-position layouts); scores are the net's ``item_scores``
    of the query. A subclass gives ``make_net`` and, where its net needs one training
    layout, ``required_layout`` with the reason (a config error names both)."""

    family: ClassVar[str | None] = "sequences"
    # the training layout the net needs (None: any the task accepts) and why
    required_layout: ClassVar[str | None] = None
    layout_reason: ClassVar[str] = ""
    # the slot of the net's (B, T, d) states that is the query; append a MASK slot
    query_position: ClassVar[int] = 0
    append_mask: ClassVar[bool] = False

    @property
    def max_len(self) -> int:
        """The window: the most recent items read, in training and at inference."""
        return int(self.training_keys["max_len"])

    def _check_training(self, keys: dict[str, Any]) -> None:
        if self.required_layout is not None and keys["layout"] != self.required_layout:
            raise ConfigError(
                f"{self.name}: layout must be {self.required_layout!r} ({self.layout_reason}), "
                f"got {keys['layout']!r}"
            )

    def make_net(self, n_items: int, seed: int) -> torch.nn.Module:
        """The network over ``n_items`` items, initialised from ``seed``."""
        raise NotImplementedError

    def build_net(self, n_items: int, device: torch.device, seed: int) -> None:
        self.device_ = device
        self.net_ = self.make_net(n_items, seed).to(device)

    @torch.no_grad()
    def query(self, histories: Histories) -> torch.Tensor:
        """(B, d): the net's state at ``query_position`` for each history's window."""
        self._check_fitted()
        seqs = pad_histories(histories, self.max_len, append_mask=self.append_mask)
        return self.net_(torch.from_numpy(seqs).to(self.device_))[:, self.query_position]

    @torch.no_grad()
    def score(self, histories: Histories) -> torch.Tensor:
        return self.net_.item_scores(self.query(histories))  # (B, n_items)


def _never(path: Path) -> bool:
    return False


def _field_error(file: Path, key: str, want: str, info: dict[str, Any]) -> ModelFileError:
    if key not in info:
        return ModelFileError(f"{file}: field {key!r} is missing (expected {want})")
    got = repr(info[key])
    got = got if len(got) <= 40 else got[:37] + "..."
    return ModelFileError(f"{file}: field {key!r} must be {want}, got {got}")


def read_model_info(path: str | Path) -> dict[str, Any]:
    """The validated ``config.json`` of model directory ``path``.

    Raises a one-line ModelFileError naming the file and the field when the directory
    or file is missing, the JSON is not an object, or a field has the wrong type or an
    unknown value (format, format_version, model, config, training, n_items, meta)."""
    p = Path(path)
    if not p.is_dir():
        raise ModelFileError(f"{p}: model directory not found")
    file = p / "config.json"
    info = read_json(file)
    if not isinstance(info, dict):
        raise ModelFileError(
            f"{file}: must be a JSON object, got {type(info).__name__} (not a seqrec model file)"
        )
    if info.get("format") != MODEL_FORMAT:
        raise _field_error(file, "format", repr(MODEL_FORMAT) + " (not a seqrec model file)", info)
    version = info.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _field_error(file, "format_version", "an integer", info)
    if version not in FORMAT_VERSIONS:
        raise ModelFileError(
            f"{file}: field 'format_version' is {version}, this seqrec reads "
            f"{', '.join(map(str, FORMAT_VERSIONS))} (written by a newer seqrec?)"
        )
    if not isinstance(info.get("model"), str):
        raise _field_error(file, "model", "a model name (string)", info)
    if not isinstance(info.get("config"), dict):
        raise _field_error(file, "config", "an object", info)
    n = info.get("n_items")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise _field_error(file, "n_items", "a positive integer", info)
    info.setdefault("meta", {})
    if not isinstance(info["meta"], dict):
        raise _field_error(file, "meta", "an object", info)
    info.setdefault("training", {})
    if not isinstance(info["training"], dict):
        raise _field_error(file, "training", "an object", info)
    return info


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
