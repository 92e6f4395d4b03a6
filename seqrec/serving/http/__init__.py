"""The HTTP service over :class:`seqrec.serving.runtime.Runtime` (FastAPI + uvicorn;
needs the ``serve`` extra), split by concern:

* :mod:`.config` - :class:`~.config.ServeConfig`, every setting of ``seqrec serve``;
* :mod:`.schemas` - request and response models, the OpenAPI limits;
* :mod:`.errors` - the JSON error body and the exception handlers;
* :mod:`.middleware` - body limit, API key, request metrics (plain ASGI);
* :mod:`.metrics` - Prometheus metrics;
* :mod:`.fastpath` - the click-event hot path without FastAPI's machinery;
* :mod:`.routes` / :mod:`.app` - the endpoints, the application;
* :mod:`.server` / :mod:`.protocol` - running it under uvicorn.

:mod:`seqrec.serving.api` is the public entry point (``create_app``, ``serve``).
"""

from seqrec.errors import ConfigError

try:  # the 'serve' extra
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import pydantic  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        f"seqrec serve needs the 'serve' extra ({_exc.name} is missing): "
        "pip install 'seqrec[serve]'"
    ) from None
