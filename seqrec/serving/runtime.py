"""The recommendation runtime: a loaded model, a session-state store, and four answers.

Independent of HTTP. :class:`Runtime` answers

* :meth:`Runtime.add_event` - add a click to a session, return its top-K;
* :meth:`Runtime.session_recommendations` - top-K for a session as it is;
* :meth:`Runtime.recommend_items` - top-K for an explicit item list (stateless);
* :meth:`Runtime.forget` - drop a session;

and :meth:`Runtime.reload` swaps in a new model directory atomically.

Recurrent models (``init_state``/``step``) keep a hidden state per session and advance
it by one ``step`` per click; reading a session's top-K reads the scores out of that
state (GRU4Rec) or, for a recurrent model without a read-out, rescoring its recent
history. Every other model (``pop``, ``session-pop``, later ones) is rescored from the
session's recent history, capped at ``max_history`` clicks. The history is kept for
recurrent models too, for ``exclude_history`` and to rebuild a state after a reload.

:meth:`Runtime.process` answers a batch of requests with one batched model call per
round; concurrent calls from threads are coalesced into such batches
(:mod:`.batching`), the HTTP server coalesces concurrent requests on its event loop. A
request always finishes on the model it started with, even across a reload. A stored
session written by another model is migrated (same catalogue: its history is replayed
through the new model) or restarted empty (different catalogue); the answer says
``restarted`` then.

All methods are thread-safe.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrec.config import config_to_dict
from seqrec.errors import ModelFileError, SeqrecError
from seqrec.models import load_model
from seqrec.models.base import Recommender, is_recurrent
from seqrec.serving.ann import ANN_MIN_ITEMS, InnerProductIndex, faiss_available
from seqrec.serving.batching import Batcher, Job
from seqrec.serving.state import SessionState, StateFormatError
from seqrec.serving.stores import MemoryStore, SessionStore

log = logging.getLogger("seqrec.serving")


# ------------------------------------------------------------------ options & results
@dataclass(frozen=True)
class Limits:
    """Request size limits (violations raise :class:`RequestError`)."""

    max_k: int = 1000  # largest k a request may ask for
    max_items: int = 200  # items in a stateless request
    max_filter_items: int = 10_000  # items in an allow- or deny-list
    max_session_id: int = 128  # characters in a session id
    max_item_id: int = 256  # characters in one item id


@dataclass(frozen=True)
class RuntimeOptions:
    max_history: int = 50  # clicks remembered per session (oldest dropped first)
    strict: bool = False  # reject unknown item ids instead of reporting and ignoring them
    device: str = "cpu"  # where the model runs (cpu, cuda, ...)
    max_batch: int = 64  # most requests coalesced into one model call
    # top-K: "exact" (full scoring), "faiss" (approximate inner-product index, GRU4Rec)
    # or "auto": faiss when the catalogue has >= ann_min_items items and faiss is there
    ann: str = "auto"
    ann_min_items: int = ANN_MIN_ITEMS
    ann_nprobe: int = 32
    limits: Limits = field(default_factory=Limits)


class RequestError(SeqrecError):
    """A request the runtime refuses; ``code`` is machine-readable, ``status`` the HTTP
    status the API answers with."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class Recommendations:
    """Top-K answer: external ids and scores, best first (fewer than k if filters or
    the catalogue leave fewer candidates)."""

    items: list[str]
    scores: list[float]
    model_version: str
    unknown_items: list[str] = field(default_factory=list)  # ignored ids of the request
    unknown_filter_items: list[str] = field(default_factory=list)  # ignored allow/deny ids
    session_length: int | None = None  # clicks in the session (None: stateless request)
    restarted: bool = False  # stored state was unusable (other catalogue / corrupt)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "items": self.items,
            "scores": self.scores,
            "unknown_items": self.unknown_items,
            "model_version": self.model_version,
        }
        if self.unknown_filter_items:
            out["unknown_filter_items"] = self.unknown_filter_items
        if self.session_length is not None:
            out["session_length"] = self.session_length
            out["restarted"] = self.restarted
        return out


@dataclass
class SessionView:
    """A stored session in external terms (for inspection and tests)."""

    n_events: int
    history: list[str]
    hidden: np.ndarray | None
    model_fp: bytes


# ------------------------------------------------------------------ jobs
_STEP, _READ, _SCORE = 0, 1, 2


class _ScoreJob:
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
    ) -> None:
        self.kind = kind
        self.k = k
        self.hidden = hidden
        self.item = item
        self.history = history if history is not None else np.zeros(0, np.int32)
        self.exclude = exclude
        self.allow = allow
        self.deny = deny
        self.new_hidden: np.ndarray | None = None
        self.ids = np.zeros(0, np.int64)
        self.values = np.zeros(0, np.float32)


# ------------------------------------------------------------------ model adapters
Readout = Callable[[torch.Tensor], torch.Tensor]
Replay = Callable[[np.ndarray], torch.Tensor]
Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Adapters:
    """Model-specific fast paths of a recurrent model (see :func:`_adapters`)."""

    step: Step  # (states (L, B, S), items (B,)) -> (states, scores (B, n_items))
    readout: Readout | None  # states -> scores without a step; None: rescore history
    replay: Replay  # history -> state (1 session)
    # For approximate top-K (scores = query . w_i + b_i): states -> queries (B, H);
    # (states, items) -> (states, queries); histories -> queries; the (w, b) tables.
    query: Callable[[torch.Tensor], torch.Tensor] | None = None
    advance: Step | None = None
    encode: Callable[[list[np.ndarray]], torch.Tensor] | None = None
    item_table: tuple[torch.Tensor, torch.Tensor] | None = None


def _linear_adapters(model: Recommender) -> Adapters | None:
    """Models whose scores are linear in a slice of their state, ``query . W^T + b``
    (GRU4Rec): they expose ``advance``, ``query_from_state``, ``scores_from_state``,
    ``item_table`` and ``encode_histories``, so a session's top-K is read from its stored
    state (or an inner-product index) and a history is replayed in one batched pass.
    Equal to ``model.step`` (tested)."""
    needed = ("advance", "query_from_state", "scores_from_state", "item_table")
    if not all(callable(getattr(model, n, None)) for n in (*needed, "encode_histories")):
        return None
    m: Any = model

    def advance(states: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new = m.advance(states, items)
        return new, m.query_from_state(new)

    def replay(history: np.ndarray) -> torch.Tensor:  # -> (1, 1, S)
        state, _ = m.encode_histories([history])
        return state.unsqueeze(0)

    def encode(histories: list[np.ndarray]) -> torch.Tensor:  # -> (B, H)
        return m.encode_histories(histories)[1]

    return Adapters(
        m.step, m.scores_from_state, replay, m.query_from_state, advance, encode, m.item_table()
    )


def _adapters(model: Recommender) -> Adapters:
    """Fast paths for a recurrent model: see :func:`_linear_adapters`; a model may also
    define only ``scores_from_state(state)``; otherwise ``step`` is the model's own, there
    is no read-out (a session's top-K rescores its history) and a history is replayed one
    ``step`` at a time."""
    found = _linear_adapters(model)
    if found is not None:
        return found
    m: Any = model
    custom = getattr(model, "scores_from_state", None)

    def replay(history: np.ndarray) -> torch.Tensor:
        state = m.init_state(1)
        for item in history:
            state, _ = m.step(state, torch.tensor([int(item)]))
        return state

    return Adapters(m.step, custom if callable(custom) else None, replay)


def _file_digest(paths: Sequence[Path]) -> bytes:
    h = hashlib.blake2b(digest_size=8)
    for p in paths:
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.digest()


# ------------------------------------------------------------------ loaded model
class LoadedModel:
    """A model directory loaded for serving.

    ``model_fp`` fingerprints config, catalogue and weights; ``catalog_fp`` the item
    index alone. Stored session states carry both, so a state written by another
    model is recognised.
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        ann: str = "auto",
        ann_min_items: int = ANN_MIN_ITEMS,
        ann_nprobe: int = 32,
    ) -> None:
        if ann not in ("auto", "exact", "faiss"):
            raise SeqrecError(f"ann must be auto, exact or faiss, got {ann!r}")
        self.path = Path(path).absolute()
        files = [self.path / n for n in ("config.json", "items.json", "weights.safetensors")]
        for _ in range(3):  # the directory may be replaced while we read it: retry
            try:
                before = _file_digest(files)
                model = load_model(self.path, device=device)
                after = _file_digest(files)
            except FileNotFoundError as exc:
                raise ModelFileError(f"{self.path}: incomplete model directory ({exc})") from None
            if before == after:
                break
        else:
            raise ModelFileError(f"{self.path}: the model directory kept changing while loading")
        if model.item_index_ is None or model.n_items_ <= 0:
            raise ModelFileError(f"{self.path}: model is not fitted")
        model_any: Any = model
        self.model = model
        self.index = model.item_index_
        self.n_items = int(model.n_items_)
        self.name = model.name
        self.model_fp = after
        self.catalog_fp = hashlib.blake2b(
            "\n".join(self.index.external_ids).encode(), digest_size=8
        ).digest()
        self.version = after.hex()
        self.recurrent = is_recurrent(model)
        self.adapters: Adapters | None = None
        self.ann: InnerProductIndex | None = None
        self.state_shape: tuple[int, ...] = ()
        self.hidden_size = 0
        self.device = torch.device(device if device != "auto" else "cpu")
        if self.recurrent:
            with torch.inference_mode():
                s0 = model_any.init_state(1)  # (L, 1, S...)
            self.device = s0.device
            self.state_shape = (s0.shape[0], *s0.shape[2:])  # per session: (L, S...)
            self.hidden_size = int(math.prod(self.state_shape))
            self.init_hidden = s0[:, 0].reshape(-1).cpu().numpy().astype(np.float32)
            use_ann = ann == "faiss" or (
                ann == "auto" and self.n_items >= ann_min_items and faiss_available()
            )
            self.adapters = _adapters(model)
            if use_ann:
                self._build_ann(ann_nprobe)
        elif ann == "faiss":
            raise SeqrecError(f"{self.name}: approximate top-K needs a GRU4Rec-like model")
        self.loaded_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        meta = model.meta_ or {}
        self.info: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "items": self.n_items,
            "trained_at": meta.get("trained_at"),
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
            raise SeqrecError(f"{self.name}: approximate top-K needs a GRU4Rec-like model")
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
    def _stack(self, jobs: Sequence[_ScoreJob]) -> torch.Tensor:
        arr = np.stack([j.hidden.reshape(self.state_shape) for j in jobs], axis=1)  # type: ignore[union-attr]
        return torch.from_numpy(arr).to(self.device)  # (L, B, S...)

    def compute(self, jobs: Sequence[_ScoreJob]) -> None:
        """Score ``jobs`` with one model call per kind of job; fill in their results."""
        groups: dict[int, list[_ScoreJob]] = {}
        for j in jobs:
            groups.setdefault(j.kind, []).append(j)
        model: Any = self.model
        ad = self.adapters
        with torch.inference_mode():
            for kind, js in groups.items():
                if kind == _STEP:
                    assert ad is not None
                    items = torch.tensor([j.item for j in js], dtype=torch.long, device=self.device)
                    if self.ann is not None and ad.advance is not None:
                        new_state, queries = ad.advance(self._stack(js), items)
                        scores = None
                    else:
                        new_state, scores = ad.step(self._stack(js), items)
                    new = new_state.cpu().numpy()
                    for b, j in enumerate(js):
                        j.new_hidden = new[:, b].reshape(-1).astype(np.float32)
                elif kind == _READ:
                    assert ad is not None and ad.readout is not None
                    if self.ann is not None and ad.query is not None:
                        queries, scores = ad.query(self._stack(js)), None
                    else:
                        scores = ad.readout(self._stack(js))
                elif self.ann is not None and ad is not None and ad.encode is not None:
                    queries, scores = ad.encode([j.history for j in js]), None
                else:
                    scores = model.score([j.history for j in js])
                if scores is None:
                    self._top_k_ann(js, queries)
                else:
                    self._top_k(js, scores)

    def _top_k_ann(self, jobs: Sequence[_ScoreJob], queries: torch.Tensor) -> None:
        """Approximate top-k from the index; an allow-list is scored exactly (it is
        small); excluded and denied items are dropped from enough extra candidates."""
        assert self.ann is not None and self.adapters is not None
        assert self.adapters.item_table is not None
        w, b = self.adapters.item_table
        q = queries.float()
        plain = []
        for r, j in enumerate(jobs):
            if j.allow is None:
                plain.append(r)
                continue
            keep = torch.as_tensor(j.allow, dtype=torch.long)
            scores = torch.addmm(b[keep].unsqueeze(0), q[r : r + 1], w[keep].t())[0]
            banned = set()
            if j.exclude:
                banned.update(int(x) for x in j.history)
            if j.deny is not None:
                banned.update(int(x) for x in j.deny)
            order = torch.argsort(scores, descending=True).numpy()
            ids = keep.numpy()[order]
            vals = scores.numpy()[order]
            ok = np.fromiter((int(i) not in banned for i in ids), bool, len(ids))
            j.ids, j.values = ids[ok][: j.k], vals[ok][: j.k]
        if not plain:
            return
        banned_sets = []
        for r in plain:
            j = jobs[r]
            banned = set()
            if j.exclude:
                banned.update(int(x) for x in j.history)
            if j.deny is not None:
                banned.update(int(x) for x in j.deny)
            banned_sets.append(banned)
        k_max = max(jobs[r].k + len(bs) for r, bs in zip(plain, banned_sets, strict=True))
        vals, ids = self.ann.search(q[plain].cpu().numpy(), k_max)
        for row, (r, banned) in enumerate(zip(plain, banned_sets, strict=True)):
            j = jobs[r]
            ok = np.isfinite(vals[row]) & (ids[row] >= 0)
            if banned:
                ok &= np.fromiter((int(i) not in banned for i in ids[row]), bool, len(ids[row]))
            j.ids, j.values = ids[row][ok][: j.k], vals[row][ok][: j.k]

    def _top_k(self, jobs: Sequence[_ScoreJob], scores: torch.Tensor) -> None:
        """Apply each row's filters, then one batched top-k."""
        if any(j.exclude or j.allow is not None or j.deny is not None for j in jobs):
            scores = scores.float().clone()  # the model's tensor may be shared (pop)
            neg = -torch.inf
            for r, j in enumerate(jobs):
                row = scores[r]
                if j.exclude and len(j.history):
                    row[torch.as_tensor(j.history.astype(np.int64), device=row.device)] = neg
                if j.deny is not None and len(j.deny):
                    row[torch.as_tensor(j.deny, device=row.device)] = neg
                if j.allow is not None:
                    keep = torch.as_tensor(j.allow, device=row.device)
                    kept = row[keep].clone()
                    row.fill_(neg)
                    row[keep] = kept
        k_max = min(max(j.k for j in jobs), scores.shape[1])
        vals, idx = torch.topk(scores, k_max, dim=1)
        vals_np = vals.float().cpu().numpy()
        idx_np = idx.cpu().numpy()
        for r, j in enumerate(jobs):
            v = vals_np[r, : j.k]
            ok = np.isfinite(v)
            j.values = v[ok]
            j.ids = idx_np[r, : j.k][ok]


# ------------------------------------------------------------------ requests
EVENT, SESSION, ITEMS, FORGET = "event", "session", "items", "forget"


@dataclass
class Request:
    """One request to :meth:`Runtime.process`.

    ``op``: ``event`` (add ``item`` to ``session_id``, answer its top-K), ``session``
    (top-K of ``session_id``), ``items`` (stateless top-K after ``items``) or
    ``forget`` (drop ``session_id``; the answer is True if it existed).
    """

    op: str
    session_id: str = ""
    item: str = ""
    items: Sequence[str] = ()
    k: int = 20
    exclude_history: bool = False
    allow: Sequence[str] | None = None
    deny: Sequence[str] | None = None
    strict: bool | None = None


@dataclass
class _Prepared:
    """A validated request in dense ids."""

    index: int
    req: Request
    k: int = 20
    item: int = -1  # dense id of an event's item (-1: unknown, the event only reads)
    history: np.ndarray | None = None  # dense ids of a stateless request
    allow: np.ndarray | None = None
    deny: np.ndarray | None = None
    unknown: list[str] = field(default_factory=list)
    unknown_filter: list[str] = field(default_factory=list)


class _Pending(Job):
    def __init__(self, req: Request) -> None:
        super().__init__()
        self.req = req
        self.result: Any = None


# ------------------------------------------------------------------ runtime
class Runtime:
    """Serve a model directory with per-session state in ``store``.

    Every answer goes through :meth:`process`, which handles a batch of requests with
    one batched model call per round (the n-th request for the same session of a batch
    is in round n, so events of one session apply in order). Calls from several
    threads are coalesced into such batches (:class:`~.batching.Batcher`); the HTTP
    API coalesces concurrent requests itself and calls :meth:`process` directly.
    ``on_batch`` (optional) is called with the number of requests of every batch.
    """

    def __init__(
        self,
        model_dir: str | Path,
        store: SessionStore | None = None,
        options: RuntimeOptions | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.options = options or RuntimeOptions()
        if self.options.max_history < 1:
            raise SeqrecError("max_history must be >= 1")
        self._on_batch = on_batch
        self._lm = self._load(model_dir)
        self.store: SessionStore = store if store is not None else MemoryStore()
        self._reload_lock = threading.Lock()
        self._batcher = Batcher(self._run_pending, max_batch=self.options.max_batch)
        self.reloads = 0
        self.restarted_sessions = 0

    def _load(self, path: str | Path) -> LoadedModel:
        """Load a model directory; any failure is a :class:`ModelFileError` (one line)."""
        o = self.options
        try:
            return LoadedModel(path, o.device, o.ann, o.ann_min_items, o.ann_nprobe)
        except SeqrecError:
            raise
        except Exception as exc:  # corrupt files raise anything: OSError, KeyError, ...
            why = (str(exc).splitlines() or [""])[0][:300]
            raise ModelFileError(
                f"{path}: cannot load the model ({type(exc).__name__}: {why})"
            ) from exc

    def set_batch_observer(self, fn: Callable[[int], None] | None) -> None:
        """Call ``fn(n_requests)`` after every batch :meth:`process` handles."""
        self._on_batch = fn

    # -- properties ---------------------------------------------------------------
    @property
    def model(self) -> LoadedModel:
        """The model new requests use (a request keeps the one it started with)."""
        return self._lm

    def model_info(self) -> dict[str, Any]:
        return dict(self._lm.info)

    def ready(self) -> bool:
        """True when a model is loaded and the store answers."""
        return self.store.ping()

    # -- the four answers (thread-safe; concurrent calls are batched) -----------------
    def add_event(
        self,
        session_id: str,
        item: str,
        k: int = 20,
        *,
        exclude_history: bool = False,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
        strict: bool | None = None,
    ) -> Recommendations:
        """Add a click to the session and return its top-``k`` after it.

        An unknown ``item`` is reported in ``unknown_items`` and leaves the session
        unchanged (``strict``: rejected with RequestError ``unknown_item``).
        """
        return self._one(
            Request(EVENT, session_id, item=item, k=k, exclude_history=exclude_history,
                    allow=allow, deny=deny, strict=strict)
        )  # fmt: skip

    def session_recommendations(
        self,
        session_id: str,
        k: int = 20,
        *,
        exclude_history: bool = False,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
        strict: bool | None = None,
    ) -> Recommendations:
        """Top-``k`` for the session as stored (an unknown session is an empty one)."""
        return self._one(
            Request(SESSION, session_id, k=k, exclude_history=exclude_history, allow=allow,
                    deny=deny, strict=strict)
        )  # fmt: skip

    def recommend_items(
        self,
        items: Sequence[str],
        k: int = 20,
        *,
        exclude_history: bool = False,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
        strict: bool | None = None,
    ) -> Recommendations:
        """Top-``k`` after an explicit click sequence (oldest first); no state kept."""
        return self._one(
            Request(ITEMS, items=items, k=k, exclude_history=exclude_history, allow=allow,
                    deny=deny, strict=strict)
        )  # fmt: skip

    def forget(self, session_id: str) -> bool:
        """Drop the session's state; True if it existed."""
        return bool(self._one(Request(FORGET, session_id)))

    def _one(self, req: Request) -> Any:
        job = self._batcher.run(_Pending(req))
        if isinstance(job.result, BaseException):
            raise job.result
        return job.result

    def _run_pending(self, jobs: Sequence[_Pending]) -> None:
        for job, result in zip(jobs, self.process([j.req for j in jobs]), strict=True):
            job.result = result

    def session(self, session_id: str) -> SessionView | None:
        """The stored session decoded (reading it refreshes its TTL)."""
        raw = self.store.get(session_id)
        if raw is None:
            return None
        st = SessionState.from_bytes(raw)
        lm = self._lm
        known = st.catalog_fp == lm.catalog_fp
        history = lm.index.decode(st.history) if known and len(st.history) else []
        return SessionView(st.n_events, history, st.hidden, st.model_fp)

    # -- batch processing -------------------------------------------------------------
    def process(self, requests: Sequence[Request]) -> list[Any]:
        """Answer a batch of requests. Returns, per request, its answer
        (:class:`Recommendations`, or a bool for ``forget``) or the exception it raised
        (:class:`RequestError` for bad input; a store failure fails every request)."""
        lm = self._lm  # the whole batch runs on this model, even across a reload
        out: list[Any] = [None] * len(requests)
        stateless: list[_Prepared] = []
        rounds: list[list[_Prepared]] = []
        seen: dict[str, int] = {}
        for i, req in enumerate(requests):
            try:
                prep = self._prepare(lm, i, req)
            except RequestError as exc:
                out[i] = exc
                continue
            if req.op == ITEMS:
                stateless.append(prep)
                continue
            n = seen.get(req.session_id, 0)  # n-th request of this session in the batch
            seen[req.session_id] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(prep)
        try:
            if stateless:
                jobs = [self._items_job(p) for p in stateless]
                lm.compute(jobs)
                for p, job in zip(stateless, jobs, strict=True):
                    out[p.index] = self._answer(lm, p, job)
            for ops in rounds:
                self._round(lm, ops, out)
        except Exception as exc:  # a store or model failure fails what is unanswered
            for i in range(len(out)):
                if out[i] is None:
                    out[i] = exc
        if self._on_batch is not None:
            self._on_batch(len(requests))
        return out

    def _round(self, lm: LoadedModel, ops: list[_Prepared], out: list[Any]) -> None:
        """Requests for distinct sessions: forget, then read/update all the others
        in one store transaction and one batched model call."""
        rest = []
        for p in ops:
            if p.req.op == FORGET:
                out[p.index] = self.store.delete(p.req.session_id)
            else:
                rest.append(p)
        if not rest:
            return
        cap = self.options.max_history

        def update(positions: list[int], olds: list[bytes | None]) -> list[bytes | None]:
            jobs: list[_ScoreJob] = []
            states: list[tuple[SessionState, bool]] = []
            for pos, raw in zip(positions, olds, strict=True):
                p = rest[pos]
                st, restarted = lm.adopt(raw, cap)
                states.append((st, restarted))
                jobs.append(self._session_job(lm, p, st, cap))
            lm.compute(jobs)
            news: list[bytes | None] = []
            for pos, job, (st, restarted) in zip(positions, jobs, states, strict=True):
                p = rest[pos]
                n_events = st.n_events
                if job.kind == _STEP or (job.kind == _SCORE and p.item >= 0):
                    n_events += 1
                    new = SessionState(
                        lm.model_fp, lm.catalog_fp, n_events, job.history, job.new_hidden
                    )
                    news.append(new.to_bytes())
                else:
                    news.append(None)
                out[p.index] = self._answer(lm, p, job, n_events, restarted)
            return news

        self.store.update_many([p.req.session_id for p in rest], update)
        for p in rest:
            if out[p.index] is not None and out[p.index].restarted:
                self.restarted_sessions += 1

    def _session_job(self, lm: LoadedModel, p: _Prepared, st: SessionState, cap: int) -> _ScoreJob:
        opts = {"exclude": p.req.exclude_history, "allow": p.allow, "deny": p.deny}
        if p.req.op == EVENT and p.item >= 0:
            history = np.append(st.history, np.int32(p.item))[-cap:].astype(np.int32)
            if lm.recurrent:
                return _ScoreJob(_STEP, p.k, hidden=st.hidden, item=p.item, history=history, **opts)
            return _ScoreJob(_SCORE, p.k, history=history, **opts)
        readout = lm.adapters.readout if lm.adapters is not None else None
        kind = _READ if readout is not None else _SCORE
        return _ScoreJob(kind, p.k, hidden=st.hidden, history=st.history, **opts)

    @staticmethod
    def _items_job(p: _Prepared) -> _ScoreJob:
        assert p.history is not None
        return _ScoreJob(
            _SCORE,
            p.k,
            history=p.history,
            exclude=p.req.exclude_history,
            allow=p.allow,
            deny=p.deny,
        )

    # -- validation -----------------------------------------------------------------
    def _prepare(self, lm: LoadedModel, index: int, req: Request) -> _Prepared:
        """Validate ``req`` against the limits and encode its ids with ``lm``."""
        if req.op not in (EVENT, SESSION, ITEMS, FORGET):
            raise RequestError("invalid_op", f"unknown request op {req.op!r}")
        if req.op != ITEMS:
            self._check_session_id(req.session_id)
        p = _Prepared(index, req)
        if req.op == FORGET:
            return p
        p.k = self._check_k(req.k)
        strict = self.options.strict if req.strict is None else bool(req.strict)
        limit = self.options.limits.max_filter_items
        if req.allow is not None:
            ids = self._check_ids(req.allow, "allow", limit)
            p.allow, unknown = self._encode(lm, ids, strict, "allow")
            p.unknown_filter += unknown
        if req.deny is not None:
            ids = self._check_ids(req.deny, "deny", limit)
            p.deny, unknown = self._encode(lm, ids, strict, "deny")
            p.unknown_filter += unknown
        if req.op == EVENT:
            (item,) = self._check_ids([req.item], "item", 1)
            dense, p.unknown = self._encode(lm, [item], strict, "item")
            p.item = int(dense[0]) if len(dense) else -1
        elif req.op == ITEMS:
            ids = self._check_ids(req.items, "items", self.options.limits.max_items)
            p.history, p.unknown = self._encode(lm, ids, strict, "items")
            p.history = p.history.astype(np.int32)
        return p

    def _check_session_id(self, session_id: str) -> None:
        limit = self.options.limits.max_session_id
        if not isinstance(session_id, str) or not session_id:
            raise RequestError("invalid_session_id", "session id must be a non-empty string")
        if len(session_id) > limit:
            raise RequestError(
                "session_id_too_long",
                f"session id has {len(session_id)} characters, the limit is {limit}",
            )

    def _check_k(self, k: int) -> int:
        cap = self.options.limits.max_k
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise RequestError("invalid_k", f"k must be an integer, got {k!r}")
        if k <= 0:
            raise RequestError("invalid_k", f"k must be positive, got {k}")
        if k > cap:
            raise RequestError("k_too_large", f"k={k} is above the limit of {cap}")
        return int(k)

    def _check_ids(self, ids: Sequence[str], what: str, limit: int) -> list[str]:
        if isinstance(ids, str | bytes):
            raise RequestError("invalid_items", f"{what} must be a list of item ids")
        if len(ids) > limit:
            raise RequestError(
                "too_many_items", f"{what} has {len(ids)} items, the limit is {limit}", 413
            )
        for x in ids:
            if isinstance(x, bool) or not isinstance(x, str | int | np.integer):
                raise RequestError(
                    "invalid_request",
                    f"{what}: item ids are strings or integers, got {type(x).__name__}",
                )
        out = [str(x) for x in ids]
        longest = self.options.limits.max_item_id
        for x in out:
            if len(x) > longest:
                raise RequestError(
                    "item_id_too_long",
                    f"an item id in {what} has {len(x)} characters, the limit is {longest}",
                )
        return out

    @staticmethod
    def _encode(
        lm: LoadedModel, ids: list[str], strict: bool, what: str
    ) -> tuple[np.ndarray, list[str]]:
        dense = lm.index.encode(ids)
        unknown = [ids[i] for i in np.flatnonzero(dense < 0)]
        if unknown and strict:
            shown = ", ".join(repr(u) for u in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise RequestError(
                "unknown_item",
                f"unknown item id(s) in {what}: {shown}{more} (not in the model's catalogue)",
            )
        return dense[dense >= 0].astype(np.int64), unknown

    @staticmethod
    def _answer(
        lm: LoadedModel,
        p: _Prepared,
        job: _ScoreJob,
        session_length: int | None = None,
        restarted: bool = False,
    ) -> Recommendations:
        return Recommendations(
            items=lm.index.decode(job.ids) if len(job.ids) else [],
            scores=np.round(job.values.astype(np.float64), 6).tolist(),
            model_version=lm.version,
            unknown_items=p.unknown,
            unknown_filter_items=p.unknown_filter,
            session_length=session_length,
            restarted=restarted,
        )

    # -- reload ---------------------------------------------------------------------
    def reload(self, model_dir: str | Path | None = None) -> dict[str, Any]:
        """Load ``model_dir`` (default: the current model's directory again) and make
        it the model of new requests; on error the current model stays."""
        with self._reload_lock:
            target = model_dir if model_dir is not None else self._lm.path
            new = self._load(target)
            self._lm = new  # atomic reference swap; in-flight batches keep the old one
            self.reloads += 1
        log.info("serving %s model %s from %s", new.name, new.version, new.path)
        return dict(new.info)

    def close(self) -> None:
        self.store.close()
