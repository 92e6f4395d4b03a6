"""Requests to the serving runtime, their validation, and the answers.

:class:`Request` is one of four operations; :func:`prepare` checks it against the
:class:`~seqrec.serving.options.RuntimeOptions` limits and encodes its external ids
with the model's item index (a :class:`Prepared` request, in dense ids). Bad input
raises :class:`RequestError`, whose ``code`` and ``status`` the HTTP API answers with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seqrec.data.idmap import ItemIndex
from seqrec.errors import SeqrecError
from seqrec.serving.options import RuntimeOptions

EVENT, SESSION, ITEMS, FORGET = "event", "session", "items", "forget"


class RequestError(SeqrecError):
    """A request the runtime refuses; ``code`` is machine-readable, ``status`` the HTTP
    status the API answers with."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class Request:
    """One request to :meth:`Runtime.process <seqrec.serving.runtime.Runtime.process>`.

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
class Prepared:
    """A validated request in dense ids (``index``: its position in the batch)."""

    index: int
    req: Request
    k: int = 20
    item: int = -1  # dense id of an event's item (-1: unknown, the event only reads)
    history: np.ndarray | None = None  # dense ids of a stateless request
    allow: np.ndarray | None = None
    deny: np.ndarray | None = None
    unknown: list[str] = field(default_factory=list)
    unknown_filter: list[str] = field(default_factory=list)


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


def prepare(options: RuntimeOptions, index: ItemIndex, position: int, req: Request) -> Prepared:
    """Validate ``req`` against ``options``' limits and encode its ids with ``index``."""
    if req.op not in (EVENT, SESSION, ITEMS, FORGET):
        raise RequestError("invalid_op", f"unknown request op {req.op!r}")
    if req.op != ITEMS:
        check_session_id(req.session_id, options.max_session_id)
    p = Prepared(position, req)
    if req.op == FORGET:
        return p
    p.k = check_k(req.k, options.max_k)
    strict = options.strict if req.strict is None else bool(req.strict)
    limit, longest = options.max_filter_items, options.max_item_id
    if req.allow is not None:
        ids = check_ids(req.allow, "allow", limit, longest)
        p.allow, unknown = encode(index, ids, strict, "allow")
        p.unknown_filter += unknown
    if req.deny is not None:
        ids = check_ids(req.deny, "deny", limit, longest)
        p.deny, unknown = encode(index, ids, strict, "deny")
        p.unknown_filter += unknown
    if req.op == EVENT:
        (item,) = check_ids([req.item], "item", 1, longest)
        dense, p.unknown = encode(index, [item], strict, "item")
        p.item = int(dense[0]) if len(dense) else -1
    elif req.op == ITEMS:
        ids = check_ids(req.items, "items", options.max_items, longest)
        history, p.unknown = encode(index, ids, strict, "items")
        p.history = history.astype(np.int32)
    return p


def check_session_id(session_id: str, limit: int) -> None:
    if not isinstance(session_id, str) or not session_id:
        raise RequestError("invalid_session_id", "session id must be a non-empty string")
    if len(session_id) > limit:
        raise RequestError(
            "session_id_too_long",
            f"session id has {len(session_id)} characters, the limit is {limit}",
        )


def check_k(k: int, cap: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise RequestError("invalid_k", f"k must be an integer, got {k!r}")
    if k <= 0:
        raise RequestError("invalid_k", f"k must be positive, got {k}")
    if k > cap:
        raise RequestError("k_too_large", f"k={k} is above the limit of {cap}")
    return int(k)


def check_ids(ids: Sequence[str], what: str, limit: int, longest: int) -> list[str]:
    """The ids as strings; item ids are strings or integers (never booleans)."""
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
    for x in out:
        if len(x) > longest:
            raise RequestError(
                "item_id_too_long",
                f"an item id in {what} has {len(x)} characters, the limit is {longest}",
            )
    return out


def encode(
    index: ItemIndex, ids: list[str], strict: bool, what: str
) -> tuple[np.ndarray, list[str]]:
    """(dense ids of the known ids, the unknown ids); strict: unknown ids are an error."""
    dense = index.encode(ids)
    unknown = [ids[i] for i in np.flatnonzero(dense < 0)]
    if unknown and strict:
        shown = ", ".join(repr(u) for u in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise RequestError(
            "unknown_item",
            f"unknown item id(s) in {what}: {shown}{more} (not in the model's catalogue)",
        )
    return dense[dense >= 0].astype(np.int64), unknown
