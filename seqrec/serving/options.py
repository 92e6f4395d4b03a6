"""Options of the serving runtime: behaviour, top-K search and request limits."""

from __future__ import annotations

from dataclasses import dataclass

from seqrec.serving.ann import ANN_MIN_ITEMS


@dataclass(frozen=True, kw_only=True)
class RuntimeOptions:
    """How a :class:`~seqrec.serving.runtime.Runtime` answers; limit violations raise
    :class:`~seqrec.serving.requests.RequestError`. ``seqrec serve``'s
    :class:`~seqrec.serving.http.config.ServeConfig` extends it with server settings."""

    max_history: int = 50  # clicks remembered per session (oldest dropped first)
    strict: bool = False  # reject unknown item ids instead of reporting and ignoring them
    device: str = "cpu"  # where the model runs (cpu, cuda, ...)
    max_batch: int = 64  # most requests coalesced into one model call
    # top-K: "exact" (full scoring), "faiss" (approximate inner-product index, models
    # with a linear read-out) or "auto": faiss from ann_min_items items, if installed
    ann: str = "auto"
    ann_min_items: int = ANN_MIN_ITEMS
    ann_nprobe: int = 32
    # request limits
    max_k: int = 1000  # largest k a request may ask for
    max_items: int = 200  # items in a stateless request
    max_filter_items: int = 10_000  # items in an allow- or deny-list
    max_session_id: int = 128  # characters in a session id
    max_item_id: int = 256  # characters in one item id
