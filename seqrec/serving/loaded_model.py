"""A model directory loaded for serving: fingerprints, per-session state, batched
scoring.

A recurrent model (:class:`~seqrec.models.base.RecurrentScorer`) keeps a hidden state
per session and advances it by one ``step`` per click. Its optional fast paths are
protocols of :mod:`seqrec.models.base`, checked with ``isinstance``:

* :class:`~seqrec.models.base.LinearReadout` + :class:`~seqrec.models.base.StateAdvancer`
  (GRU4Rec): a session's top-K is read from its stored state, or searched in an
  inner-product index; a history is replayed in one batched pass;
* :class:`~seqrec.models.base.StateReadout` alone: top-K read from the state;
* neither: ``step`` per click, a stored session's top-K rescored from its history,
  a history replayed one ``step`` at a time.

Every other model is rescored from the session's recent history. A model that scores
known users (``uses_users``, :func:`~seqrec.models.base.takes_users`) gets the session
id as the user id: a session named after a user of the training data is scored with
that user's learned vector, any other with its history alone; a stateless request has
no user (``users=None``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrec.config import config_to_dict
from seqrec.errors import ModelFileError, SeqrecError
from seqrec.models.base import (
    LinearReadout,
    Recommender,
    StateAdvancer,
    StateReadout,
    is_recurrent,
    takes_users,
)
from seqrec.persist import model_dir_files
from seqrec.serving.ann import InnerProductIndex, faiss_available
from seqrec.serving.options import RuntimeOptions
from seqrec.serving.state import SessionState, StateFormatError
from seqrec.serving.topk import ann_top_k, exact_top_k

log = logging.getLogger("seqrec.serving")

STEP, READ, SCORE = 0, 1, 2  # kinds of ScoreJob


class ScoreJob:
    """One row of a batched model call plus its filters and results."""

    def __init__(
        self,
        kind: int,
        k: int,
        *,
        hidden: np.ndarray | None = None,
        item: int = -1,
        history: np.ndarray | None = None,
        exclude: bool = False,
        allow: np.ndarray | None = None,
        deny: np.ndarray | None = None,
        user: str | None = None,
    ) -> None:
        self.kind = kind  # STEP: advance + top-K; READ: top-K of a state; SCORE: rescore
        self.k = k
        self.hidden = hidden
        self.item = item
        self.history = history if history is not None else np.zeros(0, np.int32)
        self.exclude = exclude
        self.allow = allow
        self.deny = deny
        self.user = user  # the session id, for a model that uses_users (None: stateless)
        self.new_hidden: np.ndarray | None = None
        self.ids = np.zeros(0, np.int64)
        self.values = np.zeros(0, np.float32)


Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Adapters:
    """The fast paths of a recurrent model (see the module docstring)."""

    step: Step  # (states (L, B, S), items (B,)) -> (states, scores (B, n_items))
    readout: Callable[[torch.Tensor], torch.Tensor] | None  # states -> scores; None: rescore
    replay: Callable[[np.ndarray], torch.Tensor]  # history -> state (1 session)
    # approximate top-K (scores = query . w_i + b_i): states -> queries (B, H);
    # (states, items) -> (states, queries); histories -> queries; the (w, b) tables
    query: Callable[[torch.Tensor], torch.Tensor] | None = None
    advance: Step | None = None
    encode: Callable[[list[np.ndarray]], torch.Tensor] | None = None
    item_table: tuple[torch.Tensor, torch.Tensor] | None = None


def adapters_for(model: Any) -> Adapters:
    """The fast paths a recurrent model declares (equal to ``model.step``: tested)."""
    if isinstance(model, LinearReadout) and isinstance(model, StateAdvancer):

        def advance(states: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            new = model.advance(states, items)
            return new, model.query_from_state(new)

        def replay_all(history: np.ndarray) -> torch.Tensor:  # -> (1, 1, S)
            return model.encode_histories([history])[0].unsqueeze(0)

        def encode(histories: list[np.ndarray]) -> torch.Tensor:  # -> (B, H)
            return model.encode_histories(histories)[1]

        return Adapters(
            model.step,
            model.scores_from_state,
            replay_all,
            model.query_from_state,
            advance,
            encode,
            model.item_table(),
        )

    def replay(history: np.ndarray) -> torch.Tensor:
        state = model.init_state(1)
        for item in history:
            state, _ = model.step(state, torch.tensor([int(item)]))
        return state

    readout = model.scores_from_state if isinstance(model, StateReadout) else None
    return Adapters(model.step, readout, replay)


def _file_digest(paths: Sequence[Path]) -> bytes:
    h = hashlib.blake2b(digest_size=8)
    for p in paths:
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.digest()


def _read_model(path: Path, device: str) -> tuple[Recommender, bytes]:
    """Load the model directory (retried if it is replaced meanwhile): (model, digest)."""
    from seqrec.models import load_model  # lazily: importing serving loads no model

    for _ in range(3):
        try:
            files = model_dir_files(path)  # a hybrid's parts included
            if not files:
                raise FileNotFoundError(f"no files in {path}")
            before = _file_digest(files)
            model = load_model(path, device=device)
            after = _file_digest(model_dir_files(path))
        except FileNotFoundError as exc:
            raise ModelFileError(f"{path}: incomplete model directory ({exc})") from None
        if before == after:
            return model, after
    raise ModelFileError(f"{path}: the model directory kept changing while loading")


def load(path: str | Path, options: RuntimeOptions) -> LoadedModel:
    """Load a model directory for serving; any failure is one :class:`ModelFileError`
    line (corrupt files make loaders raise anything: OSError, KeyError, ...)."""
    try:
        return LoadedModel(path, options)
    except SeqrecError:
        raise
    except Exception as exc:
        why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
        raise ModelFileError(f"{path}: cannot load the model ({why})") from exc


class LoadedModel:
    """A model directory loaded for serving (use :func:`load`).

    ``model_fp`` fingerprints config, catalogue and weights; ``catalog_fp`` the item
    index alone. Stored session states carry both, so a state written by another
    model is recognised.
    """

    def __init__(self, path: str | Path, options: RuntimeOptions) -> None:
        ann = options.ann
        if ann not in ("auto", "exact", "faiss"):
            raise SeqrecError(f"ann must be auto, exact or faiss, got {ann!r}")
        self.path = Path(path).absolute()
        model, self.model_fp = _read_model(self.path, options.device)
        if model.item_index_ is None or model.n_items_ <= 0:
            raise ModelFileError(f"{self.path}: model is not fitted")
        self.model: Any = model
        self.index = model.item_index_
        self.n_items = int(model.n_items_)
        self.name = model.name
        self.catalog_fp = hashlib.blake2b(
            "\n".join(self.index.external_ids).encode(), digest_size=8
        ).digest()
        self.version = self.model_fp.hex()
        self.recurrent = is_recurrent(model)
        self.uses_users = takes_users(model)
        self.adapters: Adapters | None = None
        self.ann: InnerProductIndex | None = None
        self.state_shape: tuple[int, ...] = ()
        self.hidden_size = 0
        self.device = torch.device(options.device if options.device != "auto" else "cpu")
        if self.recurrent:
            with torch.inference_mode():
                s0 = self.model.init_state(1)  # (L, 1, S...)
            self.device = s0.device
            self.state_shape = (s0.shape[0], *s0.shape[2:])  # per session: (L, S...)
            self.hidden_size = int(math.prod(self.state_shape))
            self.init_hidden = s0[:, 0].reshape(-1).cpu().numpy().astype(np.float32)
            self.adapters = adapters_for(model)
            if ann == "faiss" or (
                ann == "auto" and self.n_items >= options.ann_min_items and faiss_available()
            ):
                self._build_ann(options.ann_nprobe)
        elif ann == "faiss":
            raise SeqrecError(f"{self.name}: approximate top-K needs a linear read-out")
        self.loaded_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.info: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "items": self.n_items,
            "trained_at": (model.meta_ or {}).get("trained_at"),
            "recurrent": self.recurrent,
            "directory": self.path.name,  # not the absolute path: no server layout leaks
            "loaded_at": self.loaded_at,
            "config": config_to_dict(model.config),
            "top_k": (
                f"faiss IVF-Flat inner product (nlist {self.ann.nlist}, nprobe {self.ann.nprobe})"
                if self.ann is not None
                else "exact"
            ),
        }

    def _build_ann(self, nprobe: int) -> None:
        ad = self.adapters
        if ad is None or ad.item_table is None or ad.query is None:
            raise SeqrecError(f"{self.name}: approximate top-K needs a linear read-out")
        w, b = ad.item_table
        self.ann = InnerProductIndex(
            w.float().cpu().numpy(), b.float().cpu().numpy(), nprobe=nprobe, threads=1
        )

    # -- state -----------------------------------------------------------------
    def fresh_state(self) -> SessionState:
        return SessionState(
            model_fp=self.model_fp,
            catalog_fp=self.catalog_fp,
            hidden=self.init_hidden.copy() if self.recurrent else None,
        )

    def adopt(self, raw: bytes | None, max_history: int) -> tuple[SessionState, bool]:
        """Decode stored bytes for this model: (state, restarted).

        Same model: as stored. Same catalogue, other model: the history is kept and,
        for a recurrent model, replayed into a new hidden state. Otherwise (other
        catalogue, corrupt bytes, wrong state size): an empty session, restarted=True.
        """
        if raw is None:
            return self.fresh_state(), False
        try:
            st = SessionState.from_bytes(raw)
        except StateFormatError as exc:
            log.warning("dropping an unreadable session state: %s", exc)
            return self.fresh_state(), True
        if st.model_fp == self.model_fp:
            if not self.recurrent or (st.hidden is not None and st.hidden.size == self.hidden_size):
                return st, False
            return self.fresh_state(), True
        if st.catalog_fp != self.catalog_fp:
            return self.fresh_state(), True
        hist = st.history[-max_history:]
        hidden = None
        if self.recurrent:
            assert self.adapters is not None
            with torch.inference_mode():
                state = self.adapters.replay(hist)  # (L, 1, S...)
            hidden = state[:, 0].reshape(-1).cpu().numpy().astype(np.float32)
        return (
            SessionState(self.model_fp, self.catalog_fp, st.n_events, hist.copy(), hidden),
            False,
        )

    # -- batched scoring ---------------------------------------------------------
    def _stack(self, jobs: Sequence[ScoreJob]) -> torch.Tensor:
        arr = np.stack([j.hidden.reshape(self.state_shape) for j in jobs], axis=1)  # type: ignore[union-attr]
        return torch.from_numpy(arr).to(self.device)  # (L, B, S...)

    def _score_users(self, js: Sequence[ScoreJob]) -> torch.Tensor:
        """Rescore jobs of a ``uses_users`` model: the jobs with a user (session jobs)
        and those without (stateless) in one call each."""
        named = [b for b, j in enumerate(js) if j.user is not None]
        if len(named) == len(js) or not named:
            users = [j.user for j in js] if named else None
            return self.model.score([j.history for j in js], users=users)
        anon = [b for b, j in enumerate(js) if j.user is None]
        a = self.model.score([js[b].history for b in named], users=[js[b].user for b in named])
        c = self.model.score([js[b].history for b in anon], users=None)
        out = torch.empty(len(js), a.shape[1], dtype=a.dtype, device=a.device)
        out[torch.as_tensor(named, device=a.device)] = a
        out[torch.as_tensor(anon, device=a.device)] = c
        return out

    def compute(self, jobs: Sequence[ScoreJob]) -> None:
        """Score ``jobs`` with one model call per kind of job; fill in their results."""
        groups: dict[int, list[ScoreJob]] = {}
        for j in jobs:
            groups.setdefault(j.kind, []).append(j)
        ad = self.adapters
        with torch.inference_mode():
            for kind, js in groups.items():
                queries: torch.Tensor | None = None
                scores: torch.Tensor | None = None
                if kind == STEP:
                    assert ad is not None
                    items = torch.tensor([j.item for j in js], dtype=torch.long, device=self.device)
                    if self.ann is not None and ad.advance is not None:
                        new_state, queries = ad.advance(self._stack(js), items)
                    else:
                        new_state, scores = ad.step(self._stack(js), items)
                    new = new_state.cpu().numpy()
                    for b, j in enumerate(js):
                        j.new_hidden = new[:, b].reshape(-1).astype(np.float32)
                elif kind == READ:
                    assert ad is not None and ad.readout is not None
                    if self.ann is not None and ad.query is not None:
                        queries = ad.query(self._stack(js))
                    else:
                        scores = ad.readout(self._stack(js))
                elif self.ann is not None and ad is not None and ad.encode is not None:
                    queries = ad.encode([j.history for j in js])
                elif self.uses_users:
                    scores = self._score_users(js)
                else:
                    scores = self.model.score([j.history for j in js])
                if scores is None:
                    assert self.ann is not None and ad is not None and ad.item_table is not None
                    assert queries is not None
                    ann_top_k(self.ann, ad.item_table, js, queries)
                else:
                    exact_top_k(js, scores)
