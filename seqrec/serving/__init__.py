"""Real-time serving: a runtime with per-session state (:mod:`.runtime`; the model side
in :mod:`.loaded_model` and :mod:`.topk`, requests in :mod:`.requests`), session-state
stores (:mod:`.stores`: in-memory and Redis) and the HTTP API (:mod:`.api`, built in
:mod:`.http`; needs the ``serve`` extra: ``pip install 'seqrec[serve]'``)."""

from seqrec.serving.options import RuntimeOptions
from seqrec.serving.requests import Recommendations, Request, RequestError
from seqrec.serving.runtime import Runtime
from seqrec.serving.state import SessionState
from seqrec.serving.stores import MemoryStore, RedisStore, StoreError, open_store

__all__ = [
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
