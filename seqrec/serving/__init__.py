"""Real-time serving: a runtime with per-session state (:mod:`.runtime`), session-state
stores (:mod:`.stores`: in-memory and Redis) and the HTTP API (:mod:`.api`, needs the
``serve`` extra: ``pip install 'seqrec[serve]'``)."""

from seqrec.serving.runtime import (
    Limits,
    Recommendations,
    Request,
    RequestError,
    Runtime,
    RuntimeOptions,
)
from seqrec.serving.state import SessionState
from seqrec.serving.stores import MemoryStore, RedisStore, StoreError, open_store

__all__ = [
    "Limits",
    "MemoryStore",
    "Recommendations",
    "RedisStore",
    "Request",
    "RequestError",
    "Runtime",
    "RuntimeOptions",
    "SessionState",
    "StoreError",
    "open_store",
]
