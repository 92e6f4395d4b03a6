"""The FastAPI application: a :class:`Service` (runtime, settings, coalescer, metrics),
the routes of :mod:`.routes`, the error handlers, the fast path and the middleware."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from seqrec.errors import SeqrecError
from seqrec.serving.coalesce import Coalescer
from seqrec.serving.http.config import ServeConfig
from seqrec.serving.http.errors import error_response, install_error_handlers, json_response
from seqrec.serving.http.fastpath import EventFastPath
from seqrec.serving.http.metrics import Metrics
from seqrec.serving.http.middleware import ApiKeyMiddleware, BodyLimitMiddleware, MetricsMiddleware
from seqrec.serving.http.routes import EVENTS_PATH, add_routes
from seqrec.serving.http.schemas import document_limits
from seqrec.serving.requests import Recommendations, Request, RequestError
from seqrec.serving.runtime import Runtime
from seqrec.serving.stores import StoreError, open_store

log = logging.getLogger("seqrec.serving")


@dataclass
class Service:
    """What the routes use."""

    runtime: Runtime
    config: ServeConfig
    api_key: str | None
    offload: bool  # run store calls and batches in a worker thread (the store may block)
    coalescer: Coalescer
    metrics: Metrics

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a (quick) runtime helper: in a thread when the store may block (Redis)."""
        if self.offload:
            return await run_in_threadpool(fn, *args)
        return fn(*args)

    def reload(self, model_dir: str | None) -> dict[str, Any]:
        """Runtime.reload, counted in the metrics (blocking: run it in a thread)."""
        try:
            info = self.runtime.reload(model_dir)
        except SeqrecError:
            self.metrics.reloads.labels("error").inc()
            raise
        self.metrics.reloads.labels("ok").inc()
        return info

    def answer(self, rec: Recommendations) -> Response:
        if rec.unknown_items or rec.unknown_filter_items:
            self.metrics.unknown.inc(len(rec.unknown_items) + len(rec.unknown_filter_items))
        return json_response(rec.to_dict())

    async def fast_event(self, req: Request) -> Response:
        """The fast path's answer: the route's, errors included."""
        try:
            return self.answer(await self.coalescer.submit(req))
        except RequestError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except StoreError as exc:
            log.error("%s", exc)
            return error_response(503, "store_unavailable", str(exc))


def build_runtime(config: ServeConfig) -> Runtime:
    store = open_store(
        config.store,
        ttl=config.session_ttl,
        max_sessions=config.max_sessions,
        max_bytes=config.max_store_bytes,
    )
    return Runtime(config.model, store, config)


def create_app(runtime: Runtime, config: ServeConfig) -> FastAPI:
    """The FastAPI application serving ``runtime`` (``app.state.runtime``)."""
    offload = config.offload if config.offload is not None else runtime.store.kind != "memory"
    metrics = Metrics(lambda: runtime)
    svc = Service(
        runtime,
        config,
        config.api_key(),
        offload,
        Coalescer(runtime, offload, config.max_batch),
        metrics,
    )
    runtime.set_batch_observer(metrics.batch.observe)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if config.install_sighup and config.workers == 1:

            def on_hup() -> None:
                log.info("SIGHUP: reloading %s", runtime.model.path)

                def job() -> None:
                    try:
                        svc.reload(None)
                    except SeqrecError as exc:
                        log.error("reload failed, keeping the current model: %s", exc)

                loop.run_in_executor(None, job)

            # not possible outside the main thread (e.g. under a test client): skip
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signal.SIGHUP, on_hup)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(signal.SIGHUP)
            svc.coalescer.close()
            runtime.close()

    app = FastAPI(
        title="seqrec recommendation service",
        version=runtime.model.version,
        description=(
            "Real-time session-based recommendations. Item ids are the external ids of "
            "the training data. When the server has an API key, every /v1/ route needs "
            "`Authorization: Bearer KEY` or `X-API-Key: KEY`. Every error answer is "
            '`{"error": {"code": ..., "message": ...}}`.'
        ),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.metrics = metrics
    app.state.config = config
    app.state.service = svc
    install_error_handlers(app)
    add_routes(app, svc)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_limits(FastAPI.openapi(app), config)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
    if config.fast_path:
        route = next(r for r in app.routes if getattr(r, "path", "") == EVENTS_PATH)
        app.add_middleware(EventFastPath, handle=svc.fast_event, route=route)
    # outermost last: metrics see every request, then the body limit, then the key check
    app.add_middleware(ApiKeyMiddleware, key=svc.api_key)
    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
