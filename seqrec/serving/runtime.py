"""The recommendation runtime: a loaded model, a session-state store, and four answers.

Independent of HTTP. :class:`Runtime` answers

* :meth:`Runtime.add_event` - add a click to a session, return its top-K;
* :meth:`Runtime.session_recommendations` - top-K for a session as it is;
* :meth:`Runtime.recommend_items` - top-K for an explicit item list (stateless);
* :meth:`Runtime.forget` - drop a session;

and :meth:`Runtime.reload` swaps in a new model directory atomically.

How a model is scored (recurrent state, read-outs, rescoring the recent history) is in
:mod:`.loaded_model`; requests and their validation in :mod:`.requests`. The history
is kept for recurrent models too, for ``exclude_history`` and to rebuild a state after
a reload, capped at ``max_history`` clicks. A model that scores known users
(``uses_users``) gets a session's id as its user id; stateless requests have none.

:meth:`Runtime.process` answers a batch of requests with one batched model call per
round; concurrent calls from threads are coalesced into such batches
(:mod:`.coalesce`), the HTTP server coalesces concurrent requests on its event loop. A
request always finishes on the model it started with, even across a reload. A stored
session written by another model is migrated (same catalogue: its history is replayed
through the new model) or restarted empty (different catalogue); the answer says
``restarted`` then.

All methods are thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqrec.errors import SeqrecError
from seqrec.serving import loaded_model
from seqrec.serving.coalesce import Batcher, Job
from seqrec.serving.loaded_model import READ, SCORE, STEP, LoadedModel, ScoreJob
from seqrec.serving.options import RuntimeOptions
from seqrec.serving.requests import (
    EVENT,
    FORGET,
    ITEMS,
    SESSION,
    Prepared,
    Recommendations,
    Request,
    RequestError,
    prepare,
)
from seqrec.serving.state import SessionState
from seqrec.serving.stores import MemoryStore, SessionStore

log = logging.getLogger("seqrec.serving")


@dataclass
class SessionView:
    """A stored session in external terms (for inspection and tests)."""

    n_events: int
    history: list[str]
    hidden: np.ndarray | None
    model_fp: bytes


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
    threads are coalesced into such batches (:class:`~.coalesce.Batcher`); the HTTP
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
        return loaded_model.load(path, self.options)

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
        stateless: list[Prepared] = []
        rounds: list[list[Prepared]] = []
        seen: dict[str, int] = {}
        for i, req in enumerate(requests):
            try:
                prep = prepare(self.options, lm.index, i, req)
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

    def _round(self, lm: LoadedModel, ops: list[Prepared], out: list[Any]) -> None:
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
            jobs: list[ScoreJob] = []
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
                if job.kind == STEP or (job.kind == SCORE and p.item >= 0):
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

    def _session_job(self, lm: LoadedModel, p: Prepared, st: SessionState, cap: int) -> ScoreJob:
        opts: dict[str, Any] = {"exclude": p.req.exclude_history, "allow": p.allow, "deny": p.deny}
        opts["user"] = p.req.session_id if lm.uses_users else None  # the session id names the user
        if p.req.op == EVENT and p.item >= 0:
            history = np.append(st.history, np.int32(p.item))[-cap:].astype(np.int32)
            if lm.recurrent:
                return ScoreJob(STEP, p.k, hidden=st.hidden, item=p.item, history=history, **opts)
            return ScoreJob(SCORE, p.k, history=history, **opts)
        readout = lm.adapters.readout if lm.adapters is not None else None
        kind = READ if readout is not None else SCORE
        return ScoreJob(kind, p.k, hidden=st.hidden, history=st.history, **opts)

    @staticmethod
    def _items_job(p: Prepared) -> ScoreJob:
        assert p.history is not None
        return ScoreJob(
            SCORE,
            p.k,
            history=p.history,
            exclude=p.req.exclude_history,
            allow=p.allow,
            deny=p.deny,
        )

    @staticmethod
    def _answer(
        lm: LoadedModel,
        p: Prepared,
        job: ScoreJob,
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
