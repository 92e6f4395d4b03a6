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

Start it with ``seqrec serve --model DIR`` (see :func:`serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from seqrec.errors import ConfigError, ModelFileError, SeqrecError
from seqrec.serving.runtime import (
    EVENT,
    FORGET,
    ITEMS,
    SESSION,
    Limits,
    RequestError,
    Runtime,
    RuntimeOptions,
)
from seqrec.serving.runtime import Request as RuntimeRequest
from seqrec.serving.stores import DEFAULT_MAX_SESSIONS, DEFAULT_TTL, StoreError, open_store

try:
    from fastapi import Body, FastAPI, Query, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Histogram,
        generate_latest,
    )
    from prometheus_client.core import GaugeMetricFamily
    from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        f"seqrec serve needs the 'serve' extra ({_exc.name} is missing): "
        "pip install 'seqrec[serve]'"
    ) from None

log = logging.getLogger("seqrec.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EVENTS_PATH = "/v1/sessions/{session_id}/events"
ENV_CONFIG = "SEQREC_SERVE_CONFIG"  # JSON ServeConfig handed to uvicorn worker processes
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
    2.5,
)


@dataclass
class ServeConfig:
    """Everything a server process needs (JSON-serialisable: workers get it via env)."""

    model: str
    store: str = "memory"
    api_key_env: str | None = None  # name of the environment variable holding the key
    strict: bool = False
    max_history: int = 50
    session_ttl: float = DEFAULT_TTL
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_store_bytes: int | None = None
    max_body_bytes: int = 64 * 1024
    max_k: int = 1000
    max_items: int = 200
    max_filter_items: int = 10_000
    max_session_id: int = 128
    max_batch: int = 64
    device: str = "cpu"
    workers: int = 1
    offload: bool | None = None  # answer in a worker thread (default: only for Redis)
    install_sighup: bool = True
    fast_path: bool = True  # serve well-formed click events without FastAPI's machinery
    ann: str = "auto"  # top-K: auto | exact | faiss (approximate, large catalogues)
    ann_nprobe: int = 32

    def runtime_options(self) -> RuntimeOptions:
        return RuntimeOptions(
            max_history=self.max_history,
            strict=self.strict,
            device=self.device,
            max_batch=self.max_batch,
            ann=self.ann,
            ann_nprobe=self.ann_nprobe,
            limits=Limits(
                max_k=self.max_k,
                max_items=self.max_items,
                max_filter_items=self.max_filter_items,
                max_session_id=self.max_session_id,
            ),
        )

    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise ConfigError(
                f"--api-key-env {self.api_key_env}: environment variable "
                f"{self.api_key_env} is not set or empty"
            )
        return key


# ------------------------------------------------------------------ schemas
def _json_number(value: Any) -> Any:
    """Refuse what pydantic would coerce into an integer: booleans and strings."""
    if isinstance(value, bool | str):
        raise ValueError(f"expected a JSON integer, got {type(value).__name__}")
    return value


def _json_id(value: Any) -> Any:
    """Refuse what pydantic would coerce into an item id: booleans (true is not "1")."""
    if isinstance(value, bool):
        raise ValueError("expected a string or an integer, got a boolean")
    return value


# JSON bodies: an item id is a JSON string or integer (never a boolean, or a float with
# a fraction), k an integer (2.0 is one, as in JSON Schema), a flag a JSON boolean.
ItemId = Annotated[str | int, BeforeValidator(_json_id)]
Count = Annotated[int, BeforeValidator(_json_number)]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: Count = Field(20, description="number of items to return (1 .. the server's cap)")
    exclude_history: StrictBool = Field(False, description="never return items of the session")
    allow: list[ItemId] | None = Field(None, description="only return these items")
    deny: list[ItemId] | None = Field(None, description="never return these items")
    strict: StrictBool | None = Field(
        None, description="reject unknown item ids (default: the server's --strict)"
    )


class EventIn(_Options):
    item: ItemId = Field(..., description="the clicked item (external id)")


class ItemsIn(_Options):
    items: list[ItemId] = Field(..., description="the clicks so far, oldest first")


class ReloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(
        None, description="model directory (default: the current one)"
    )


class RecommendationsOut(BaseModel):
    items: list[str]
    scores: list[float]
    unknown_items: list[str]
    model_version: str
    unknown_filter_items: list[str] | None = None
    session_length: int | None = None
    restarted: bool | None = None


class ForgetOut(BaseModel):
    session_id: str
    deleted: bool


class ModelInfoOut(BaseModel):
    name: str
    version: str = Field(..., description="content hash of the model files")
    items: int
    trained_at: str | None
    recurrent: bool
    directory: str = Field(..., description="name of the model directory (not its path)")
    loaded_at: str
    config: dict[str, Any]
    top_k: str


class ModelOut(ModelInfoOut):
    reloads: int
    store: dict[str, Any]


class ReloadOut(BaseModel):
    status: str
    model: ModelInfoOut


class RestartOut(BaseModel):
    status: str
    model: str = Field(..., description="name of the model directory")


class StatusOut(BaseModel):
    status: str


class ReadyOut(StatusOut):
    model: str
    version: str


class ErrorDetail(BaseModel):
    loc: list[str]
    msg: str | None = None
    type: str | None = None


class ErrorBody(BaseModel):
    code: str = Field(..., description="machine-readable error code (see the README)")
    message: str = Field(..., description="what was wrong, for a person")
    details: list[ErrorDetail] | None = Field(
        None, description="per-field problems (invalid_request only)"
    )


class ErrorOut(BaseModel):
    """Every error answer: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorBody


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route: these statuses answer with :class:`ErrorOut`."""
    return {s: {"model": ErrorOut} for s in statuses}


def _str_ids(ids: list[ItemId] | None) -> list[str] | None:
    return None if ids is None else [str(x) for x in ids]


def _json(data: Any, status: int = 200) -> Response:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    try:
        body = text.encode()
    except UnicodeEncodeError:  # a lone surrogate echoed from the request ("\ud800")
        body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    return _json({"error": {"code": code, "message": message, **extra}}, status)


async def _send_error(send: Send, status: int, code: str, message: str, **headers: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------ middleware
class BodyLimitMiddleware:
    """413 for request bodies over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit:
                    await _send_error(
                        send,
                        413,
                        "body_too_large",
                        f"request body of {declared} bytes is over the limit of {self.limit}",
                    )
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _send_error(
                    send,
                    413,
                    "body_too_large",
                    f"request body is over the limit of {self.limit} bytes",
                )
                return
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ApiKeyMiddleware:
    """401 for ``/v1/`` requests without the configured key (constant-time compare)."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app = app
        self.key = key.encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key is None or scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                given = value
            elif name == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
        if not hmac.compare_digest(given, self.key):
            what = "missing" if not given else "wrong"
            await _send_error(
                send,
                401,
                "unauthorized",
                f"{what} API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                **{"www-authenticate": "Bearer"},
            )
            return
        await self.app(scope, receive, send)


class MetricsMiddleware:
    """Counts requests and times them, labelled by route template (not raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def send_status(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - t0)


# ------------------------------------------------------------------ metrics
class Metrics:
    """Prometheus metrics of one server process (own registry; multi-process aware)."""

    def __init__(self, runtime_ref: Callable[[], Runtime]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "seqrec_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "seqrec_http_request_duration_seconds",
            "HTTP request latency in the server (seconds)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "seqrec_batch_size",
            "requests coalesced into one model call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.unknown = Counter(
            "seqrec_unknown_items", "unknown item ids in requests (ignored)", registry=self.registry
        )
        self.reloads = Counter(
            "seqrec_model_reloads", "model reloads by outcome", ["outcome"], registry=self.registry
        )
        self._runtime_ref = runtime_ref
        self.registry.register(_RuntimeCollector(runtime_ref))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
            reg.register(_RuntimeCollector(self._runtime_ref))
            return generate_latest(reg)
        return generate_latest(self.registry)


class _RuntimeCollector:
    """Gauges read at scrape time: model size, sessions and bytes in the store."""

    def __init__(self, runtime_ref: Callable[[], Runtime]) -> None:
        self._ref = runtime_ref

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        rt = self._ref()
        g = GaugeMetricFamily("seqrec_model_items", "items in the served model's catalogue")
        g.add_metric([], rt.model.n_items)
        yield g
        try:
            stats = rt.store.stats()
        except StoreError:
            stats = {}
        for key, name, doc in (
            ("sessions", "seqrec_store_sessions", "sessions held in the in-memory store"),
            ("bytes", "seqrec_store_bytes", "bytes held by the in-memory store"),
            ("keys_in_db", "seqrec_store_keys", "keys in the Redis database"),
            ("redis_used_memory", "seqrec_store_redis_used_bytes", "Redis used_memory"),
            ("evictions", "seqrec_store_evictions", "sessions evicted (LRU bound)"),
        ):
            if key in stats:
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], float(stats[key]))
                yield g
        g = GaugeMetricFamily("seqrec_sessions_restarted", "sessions restarted after a reload")
        g.add_metric([], rt.restarted_sessions)
        yield g


class EventFastPath:
    """The hot path, ``POST /v1/sessions/{id}/events`` (one request per click), served
    without FastAPI's request machinery when the body is plain, well-formed JSON of the
    documented types. Anything else (other routes, values FastAPI would coerce or
    reject, other content types) goes on to the FastAPI route, which validates and
    answers as documented; the answers of both paths are identical (tested)."""

    PREFIX = "/v1/sessions/"
    SUFFIX = "/events"
    KEYS = frozenset({"item", "k", "exclude_history", "allow", "deny", "strict"})

    def __init__(
        self,
        app: ASGIApp,
        handle: Callable[[RuntimeRequest], Awaitable[Response]],
        route: Any,
    ) -> None:
        self.app = app
        self.handle = handle
        self.route = route

    @classmethod
    def parse(cls, session_id: str, body: bytes) -> RuntimeRequest | None:
        """The request, or None if the body is not in the plain documented form."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # FastAPI's route answers it (400)
            return None
        if type(data) is not dict or "item" not in data or not cls.KEYS.issuperset(data):
            return None
        item = data["item"]
        k = data.get("k", 20)
        exclude = data.get("exclude_history", False)
        strict = data.get("strict")
        lists = [data.get("allow"), data.get("deny")]
        if type(item) not in (str, int) or type(k) is not int or type(exclude) is not bool:
            return None
        if strict is not None and type(strict) is not bool:
            return None
        for ids in lists:
            if ids is not None and (
                type(ids) is not list or any(type(x) not in (str, int) for x in ids)
            ):
                return None
        allow, deny = ([str(x) for x in ids] if ids is not None else None for ids in lists)
        return RuntimeRequest(
            EVENT,
            session_id,
            item=str(item),
            k=k,
            exclude_history=exclude,
            allow=allow,
            deny=deny,
            strict=strict,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and path.startswith(self.PREFIX)
            and path.endswith(self.SUFFIX)
        ):
            session_id = path[len(self.PREFIX) : -len(self.SUFFIX)]
            json_body = any(
                n == b"content-type" and v.split(b";")[0].strip().lower() == b"application/json"
                for n, v in scope["headers"]
            )
            if session_id and "/" not in session_id and json_body:
                msg = await receive()
                req = None
                if msg["type"] == "http.request" and not msg.get("more_body", False):
                    req = self.parse(session_id, msg.get("body", b""))
                if req is not None:
                    scope["route"] = self.route  # for the metrics label
                    response = await self.handle(req)
                    await response(scope, receive, send)
                    return
                receive = _replay(msg, receive)
        await self.app(scope, receive, send)


def _replay(first: Message, receive: Receive) -> Receive:
    """A receive callable that returns ``first`` once, then defers to ``receive``."""
    done = False

    async def replay() -> Message:
        nonlocal done
        if not done:
            done = True
            return first
        return await receive()

    return replay


# ------------------------------------------------------------------ coalescing
class Coalescer:
    """Micro-batching on the event loop: the requests that arrive together (parsed in
    the same loop iteration, or while the previous batch was being computed) are
    answered by one :meth:`Runtime.process` call, i.e. one batched model call per
    round. Nothing waits on a timer: at low load a batch is a single request.

    ``offload``: compute in a dedicated worker thread (the store may block on I/O, and
    the loop keeps parsing requests meanwhile); else inline on the loop.
    """

    def __init__(self, runtime: Runtime, offload: bool, max_batch: int = 64) -> None:
        self.runtime = runtime
        self.offload = offload
        self.max_batch = max_batch
        self.pending: list[tuple[RuntimeRequest, asyncio.Future[Any]]] = []
        self.scheduled = False
        self.busy = False
        self._executor: ThreadPoolExecutor | None = None

    async def submit(self, req: RuntimeRequest) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self.pending.append((req, fut))
        self._kick(loop)
        result = await fut
        if isinstance(result, BaseException):
            raise result
        return result

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.pending and not self.scheduled and not self.busy:
            self.scheduled = True
            loop.call_soon(self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self.scheduled = False
        if self.busy or not self.pending:
            return
        batch = self.pending[: self.max_batch]
        del self.pending[: self.max_batch]
        reqs = [r for r, _ in batch]
        if not self.offload:
            self._deliver(batch, self._process(reqs))
            self._kick(loop)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="seqrec-batch")
        self.busy = True
        work = loop.run_in_executor(self._executor, self._process, reqs)

        def done(f: asyncio.Future[list[Any]]) -> None:
            self.busy = False
            exc = f.exception()
            self._deliver(batch, [exc] * len(batch) if exc else f.result())
            self._kick(loop)

        work.add_done_callback(done)

    def _process(self, reqs: list[RuntimeRequest]) -> list[Any]:
        try:
            return self.runtime.process(reqs)
        except Exception as exc:  # never leave a request without an answer
            return [exc] * len(reqs)

    @staticmethod
    def _deliver(
        batch: list[tuple[RuntimeRequest, asyncio.Future[Any]]], results: list[Any]
    ) -> None:
        for (_, fut), res in zip(batch, results, strict=True):
            if not fut.done():  # a cancelled request (client gone) is skipped
                fut.set_result(res)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)


# ------------------------------------------------------------------ app
def create_app(runtime: Runtime, config: ServeConfig) -> FastAPI:
    """The FastAPI application serving ``runtime`` (``app.state.runtime``)."""
    api_key = config.api_key()
    offload = config.offload
    if offload is None and os.environ.get("SEQREC_SERVE_OFFLOAD", "") in ("0", "1"):
        offload = os.environ["SEQREC_SERVE_OFFLOAD"] == "1"
    if offload is None:
        offload = runtime.store.kind != "memory"
    metrics = Metrics(lambda: runtime)

    coalescer = Coalescer(runtime, offload, config.max_batch)

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a (quick) runtime helper: in a thread when the store may block (Redis)."""
        if offload:
            return await run_in_threadpool(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    def on_batch(n: int) -> None:
        metrics.batch.observe(n)

    runtime.set_batch_observer(on_batch)

    def do_reload(model_dir: str | None) -> dict[str, Any]:
        try:
            info = runtime.reload(model_dir)
        except SeqrecError:
            metrics.reloads.labels("error").inc()
            raise
        metrics.reloads.labels("ok").inc()
        return info

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if config.install_sighup and config.workers == 1:

            def on_hup() -> None:
                log.info("SIGHUP: reloading %s", runtime.model.path)

                def job() -> None:
                    try:
                        do_reload(None)
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
            coalescer.close()
            runtime.close()

    app = FastAPI(
        title="seqrec recommendation service",
        version=runtime.model.version,
        description=(
            "Real-time session-based recommendations. Item ids are the external ids of "
            "the training data. When the server has an API key, every /v1/ route needs "
            "`Authorization: Bearer KEY` or `X-API-Key: KEY`."
        ),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.metrics = metrics
    app.state.config = config

    # -- errors: always JSON, 4xx for anything the client did --------------------------
    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> Response:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> Response:
        log.error("%s", exc)
        return _error(503, "store_unavailable", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        for e in errors:
            if e.get("type") == "json_invalid":
                why = (e.get("ctx") or {}).get("error", "invalid JSON")
                pos = e.get("loc", ("body", "?"))[-1]
                return _error(
                    400,
                    "malformed_json",
                    f"request body is not valid JSON: {why} (at character {pos})",
                )
        parts = []
        for e in errors[:5]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            msg = e.get("msg", "invalid")
            if e.get("type") == "model_attributes_type":
                msg = "expected a JSON object (send Content-Type: application/json)"
            parts.append(f"{loc}: {msg.removeprefix('Value error, ')}")
        details = [
            {"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")}
            for e in errors[:20]
        ]
        return _error(422, "invalid_request", "; ".join(parts), details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not parse the body (JSON errors are 422s)
            return _error(400, "malformed_json", _unparsable_body(exc.__cause__))
        codes = {404: "not_found", 405: "method_not_allowed"}
        response = _error(
            exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
        )
        response.headers.update(exc.headers or {})  # 405: Allow
        return response

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:  # pragma: no cover
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "internal server error")

    def answer(rec: Any) -> Response:
        if rec.unknown_items or rec.unknown_filter_items:
            metrics.unknown.inc(len(rec.unknown_items) + len(rec.unknown_filter_items))
        return _json(rec.to_dict())

    # -- routes --------------------------------------------------------------------
    @app.post(
        EVENTS_PATH,
        response_model=RecommendationsOut,
        responses=_errors(400, 401, 413, 422, 503),
        summary="Add a click to a session; get the top-K after it",
    )
    async def add_event(session_id: str, body: EventIn) -> Response:
        rec = await coalescer.submit(
            RuntimeRequest(
                EVENT,
                session_id,
                item=str(body.item),
                k=body.k,
                exclude_history=body.exclude_history,
                allow=_str_ids(body.allow),
                deny=_str_ids(body.deny),
                strict=body.strict,
            )
        )
        return answer(rec)

    @app.get(
        "/v1/sessions/{session_id}/recommendations",
        response_model=RecommendationsOut,
        responses=_errors(401, 413, 422, 503),
        summary="Top-K for a session (an unknown or expired session is an empty one)",
    )
    async def session_recommendations(
        request: Request,
        session_id: str,
        k: Annotated[int, Query(description="number of items")] = 20,
        exclude_history: Annotated[
            bool, Query(description="never return items of the session")
        ] = False,
        allow: Annotated[
            list[str] | None, Query(description="only these items (repeatable)")
        ] = None,
        deny: Annotated[
            list[str] | None, Query(description="never these items (repeatable)")
        ] = None,
        strict: Annotated[
            bool | None, Query(description="reject unknown ids in allow/deny")
        ] = None,
    ) -> Response:
        for name in ("k", "exclude_history", "strict"):  # FastAPI would take the last one
            if len(request.query_params.getlist(name)) > 1:
                raise RequestError("invalid_request", f"query parameter {name} is repeated")
        rec = await coalescer.submit(
            RuntimeRequest(
                SESSION,
                session_id,
                k=k,
                exclude_history=exclude_history,
                allow=allow,
                deny=deny,
                strict=strict,
            )
        )
        return answer(rec)

    @app.post(
        "/v1/recommendations",
        response_model=RecommendationsOut,
        responses=_errors(400, 401, 413, 422, 503),
        summary="Top-K after an explicit list of clicks (stateless)",
    )
    async def recommend_items(body: ItemsIn) -> Response:
        rec = await coalescer.submit(
            RuntimeRequest(
                ITEMS,
                items=[str(x) for x in body.items],
                k=body.k,
                exclude_history=body.exclude_history,
                allow=_str_ids(body.allow),
                deny=_str_ids(body.deny),
                strict=body.strict,
            )
        )
        return answer(rec)

    @app.delete(
        "/v1/sessions/{session_id}",
        response_model=ForgetOut,
        responses=_errors(401, 422, 503),
        summary="Forget a session",
    )
    async def forget(session_id: str) -> Response:
        existed = await coalescer.submit(RuntimeRequest(FORGET, session_id))
        return _json({"session_id": session_id, "deleted": bool(existed)})

    @app.get(
        "/v1/model",
        response_model=ModelOut,
        responses=_errors(401),
        summary="The served model: name, version, items, trained-at",
    )
    async def model_info() -> Response:
        rt = runtime
        info = rt.model_info()
        info["reloads"] = rt.reloads
        try:
            info["store"] = await call(rt.store.stats)
        except StoreError as exc:
            info["store"] = {"kind": rt.store.kind, "error": str(exc)}
        return _json(info)

    @app.post(
        "/v1/admin/reload",
        response_model=ReloadOut,
        responses={
            202: {"model": RestartOut, "description": "workers restarting (--workers > 1)"},
            **_errors(400, 401, 403, 409, 413, 422),
        },
        summary="Load a model directory atomically (API key required)",
    )
    async def reload(body: Annotated[ReloadIn | None, Body()] = None) -> Response:
        if api_key is None:
            return _error(
                403,
                "admin_disabled",
                "admin endpoints need an API key: start the server with --api-key-env VAR",
            )
        target = body.model if body is not None else None
        if config.workers > 1:
            same = target is None or Path(target).absolute() == runtime.model.path
            if not same:
                return _error(
                    409,
                    "multi_worker_reload",
                    "with --workers > 1 only the current model directory can be reloaded "
                    "(replace it, then reload); restart the server to serve another one",
                )
            os.kill(os.getppid(), signal.SIGHUP)  # uvicorn restarts every worker in turn
            return _json({"status": "restarting workers", "model": runtime.model.path.name}, 202)
        try:
            info = await run_in_threadpool(do_reload, target)
        except SeqrecError as exc:  # Runtime.reload turns every load failure into one
            return _error(422, "model_load_failed", f"{exc} (still serving the previous model)")
        return _json({"status": "reloaded", "model": info})

    @app.get("/healthz", response_model=StatusOut, summary="Liveness")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get(
        "/readyz",
        response_model=ReadyOut,
        responses=_errors(503),
        summary="Readiness: a model is loaded and the store answers",
    )
    async def readyz() -> Response:
        rt = runtime
        ok = await call(rt.ready)
        if not ok:
            return _error(503, "not_ready", f"session store ({rt.store.kind}) does not answer")
        return _json({"status": "ready", "model": rt.model.name, "version": rt.model.version})

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
        summary="Prometheus metrics (text exposition format)",
    )
    async def prometheus() -> Response:
        data = await run_in_threadpool(metrics.render)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    async def fast_event(req: RuntimeRequest) -> Response:
        try:
            return answer(await coalescer.submit(req))
        except RequestError as exc:
            return _error(exc.status, exc.code, exc.message)
        except StoreError as exc:
            log.error("%s", exc)
            return _error(503, "store_unavailable", str(exc))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            _document_limits(schema, runtime.options.limits)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if config.fast_path:
        route = next(r for r in app.routes if getattr(r, "path", "") == EVENTS_PATH)
        app.add_middleware(EventFastPath, handle=fast_event, route=route)
    # outermost last: metrics see every request, then the body limit, then the key check
    app.add_middleware(ApiKeyMiddleware, key=api_key)
    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _id_schema(limits: Limits) -> dict[str, Any]:
    """JSON schema of one item id as the runtime accepts it (at most max_item_id chars)."""
    n = limits.max_item_id
    return {
        "anyOf": [
            {"type": "string", "maxLength": n},
            {"type": "integer", "minimum": -(10 ** (n - 1) - 1), "maximum": 10**n - 1},
        ]
    }


def _document_limits(schema: dict[str, Any], limits: Limits) -> None:
    """Write the server's request limits into its OpenAPI schema (in place), so the
    schema describes exactly what is accepted (the runtime checks them, with their own
    error codes, so they are not pydantic constraints)."""
    k = {"minimum": 1, "maximum": limits.max_k}
    ids = _id_schema(limits)
    str_id = {"type": "string", "maxLength": limits.max_item_id}
    for name in ("EventIn", "ItemsIn"):
        props = schema["components"]["schemas"][name]["properties"]
        props["k"].update(k)
        for key in ("allow", "deny"):
            props[key]["anyOf"][0].update(items=ids, maxItems=limits.max_filter_items)
        if "item" in props:
            props["item"].update(ids)
        if "items" in props:
            props["items"].update(items=ids, maxItems=limits.max_items)
    for ops in schema["paths"].values():
        for op in ops.values():
            for param in op.get("parameters", []):
                ps = param["schema"]
                if param["name"] == "session_id":
                    ps.update(minLength=1, maxLength=limits.max_session_id)
                elif param["name"] == "k":
                    ps.update(k)
                elif param["name"] in ("allow", "deny"):
                    ps["anyOf"][0].update(items=str_id, maxItems=limits.max_filter_items)


def _unparsable_body(cause: BaseException | None) -> str:
    """The message of a 400 for a body FastAPI could not read as JSON."""
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start]
        return f"request body is not valid JSON: not UTF-8 (byte 0x{byte:02x} at {cause.start})"
    if isinstance(cause, RecursionError):
        return "request body is not valid JSON: nested too deeply"
    why = (str(cause).splitlines() or [""])[0][:200] if cause is not None else ""
    return f"request body is not valid JSON: {why}" if why else "request body is not valid JSON"


def build_runtime(config: ServeConfig) -> Runtime:
    store = open_store(
        config.store,
        ttl=config.session_ttl,
        max_sessions=config.max_sessions,
        max_bytes=config.max_store_bytes,
    )
    return Runtime(config.model, store, config.runtime_options())


def app_from_env() -> FastAPI:
    """Application factory for uvicorn worker processes (config in $SEQREC_SERVE_CONFIG)."""
    raw = os.environ.get(ENV_CONFIG)
    if not raw:
        raise ConfigError(f"${ENV_CONFIG} is not set (start the server with `seqrec serve`)")
    config = ServeConfig(**json.loads(raw))
    _tune_process(config)
    return create_app(build_runtime(config), config)


def _tune_process(config: ServeConfig, threads: int | None = None) -> None:
    import gc

    import torch

    n = threads if threads is not None else int(os.environ.get("SEQREC_SERVE_THREADS", "1"))
    torch.set_num_threads(max(1, n))
    gc.freeze()  # model and imports never need collecting: shorter GC pauses


def serve(
    config: ServeConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 1,
    log_level: str = "info",
    access_log: bool = False,
) -> int:
    """Run the server until interrupted (``seqrec serve``)."""
    import uvicorn

    from seqrec.serving.protocol import H11_MAX_HEAD_BYTES

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be a TCP port between 0 and 65535, got {port}")
    protocol = {
        "http": "seqrec.serving.protocol:JsonErrorProtocol",
        "h11_max_incomplete_event_size": H11_MAX_HEAD_BYTES,
    }
    if config.workers < 1:
        raise ConfigError("--workers must be >= 1")
    if config.workers > 1 and config.store == "memory":
        raise ConfigError(
            "--workers > 1 needs a shared session store: add --store redis://host:port/db "
            "(in-memory sessions are per process)"
        )
    if config.api_key() is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "serving on %s without an API key: anyone who can reach this address can "
            "use the API (use --api-key-env)",
            host,
        )
    if not (Path(config.model) / "config.json").is_file():
        raise ModelFileError(f"{config.model}: model directory not found (no config.json)")
    os.environ["SEQREC_SERVE_THREADS"] = str(threads)
    if config.workers == 1:
        runtime = build_runtime(config)
        if not runtime.ready():
            raise ConfigError(f"session store {config.store} does not answer")
        _tune_process(config, threads)
        app = create_app(runtime, config)
        uvicorn.run(
            app, host=host, port=port, log_level=log_level, access_log=access_log, **protocol
        )
        return 0
    config.model = str(Path(config.model).absolute())
    os.environ[ENV_CONFIG] = json.dumps(asdict(config))
    with tempfile.TemporaryDirectory(prefix="seqrec-metrics-") as mdir:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", mdir)
        uvicorn.run(
            "seqrec.serving.api:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=config.workers,
            log_level=log_level,
            access_log=access_log,
            **protocol,
        )
    return 0
