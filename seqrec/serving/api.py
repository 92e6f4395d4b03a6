"""HTTP API over :class:`seqrec.serving.runtime.Runtime` (FastAPI + uvicorn).

Endpoints (JSON in and out; OpenAPI docs at ``/docs``):

* ``POST /v1/sessions/{session_id}/events`` ``{"item": "...", "k": 20}`` - add a click,
  get the top-K after it;
* ``GET /v1/sessions/{session_id}/recommendations?k=20`` - top-K for a session;
* ``POST /v1/recommendations`` ``{"items": [...], "k": 20}`` - stateless top-K;
* ``DELETE /v1/sessions/{session_id}`` - forget a session;
* ``POST /v1/admin/reload`` ``{"model": "DIR"}`` (optional body; API key required) -
  load a model directory atomically (SIGHUP reloads the current one);
* ``GET /healthz``, ``GET /readyz``, ``GET /v1/model``, ``GET /metrics`` (Prometheus).

Every request option: ``k``, ``exclude_history``, ``allow`` / ``deny`` (external ids),
``strict`` (reject unknown ids instead of reporting them). Bad input is a 4xx JSON
``{"error": {"code": ..., "message": ...}}``, never a 500. With an API key configured,
every ``/v1/`` route wants ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.

Start it with ``seqrec serve --model DIR`` (see :func:`serve`). The implementation is
split by concern in :mod:`seqrec.serving.http`; this module is its public entry point.
"""

from seqrec.serving.http.app import Service, build_runtime, create_app
from seqrec.serving.http.config import ServeConfig
from seqrec.serving.http.fastpath import EventFastPath
from seqrec.serving.http.server import app_from_env, serve

__all__ = [
    "EventFastPath",
    "ServeConfig",
    "Service",
    "app_from_env",
    "build_runtime",
    "create_app",
    "serve",
]
