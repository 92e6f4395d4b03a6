"""The endpoints of the HTTP API (see :mod:`seqrec.serving.api` for the list)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Body, FastAPI, Query
from fastapi import Request as HTTPRequest
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from seqrec.errors import SeqrecError
from seqrec.serving.http.errors import error_response, json_response
from seqrec.serving.http.schemas import (
    EventIn,
    ForgetOut,
    ItemsIn,
    ModelOut,
    ReadyOut,
    RecommendationsOut,
    ReloadIn,
    ReloadOut,
    RestartOut,
    StatusOut,
    error_responses,
)
from seqrec.serving.requests import EVENT, FORGET, ITEMS, SESSION, Request, RequestError
from seqrec.serving.stores import StoreError

if TYPE_CHECKING:
    from seqrec.serving.http.app import Service

EVENTS_PATH = "/v1/sessions/{session_id}/events"


def _str_ids(ids: list[str | int] | None) -> list[str] | None:
    return None if ids is None else [str(x) for x in ids]


def add_routes(app: FastAPI, svc: Service) -> None:
    """Register the endpoints on ``app``; they answer through ``svc``."""

    @app.post(
        EVENTS_PATH,
        response_model=RecommendationsOut,
        responses=error_responses(400, 401, 413, 422, 503),
        summary="Add a click to a session; get the top-K after it",
    )
    async def add_event(session_id: str, body: EventIn) -> Response:
        rec = await svc.coalescer.submit(
            Request(
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
        return svc.answer(rec)

    @app.get(
        "/v1/sessions/{session_id}/recommendations",
        response_model=RecommendationsOut,
        responses=error_responses(401, 413, 422, 503),
        summary="Top-K for a session (an unknown or expired session is an empty one)",
    )
    async def session_recommendations(
        request: HTTPRequest,
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
        rec = await svc.coalescer.submit(
            Request(
                SESSION,
                session_id,
                k=k,
                exclude_history=exclude_history,
                allow=allow,
                deny=deny,
                strict=strict,
            )
        )
        return svc.answer(rec)

    @app.post(
        "/v1/recommendations",
        response_model=RecommendationsOut,
        responses=error_responses(400, 401, 413, 422, 503),
        summary="Top-K after an explicit list of clicks (stateless)",
    )
    async def recommend_items(body: ItemsIn) -> Response:
        rec = await svc.coalescer.submit(
            Request(
                ITEMS,
                items=[str(x) for x in body.items],
                k=body.k,
                exclude_history=body.exclude_history,
                allow=_str_ids(body.allow),
                deny=_str_ids(body.deny),
                strict=body.strict,
            )
        )
        return svc.answer(rec)

    @app.delete(
        "/v1/sessions/{session_id}",
        response_model=ForgetOut,
        responses=error_responses(401, 422, 503),
        summary="Forget a session",
    )
    async def forget(session_id: str) -> Response:
        existed = await svc.coalescer.submit(Request(FORGET, session_id))
        return json_response({"session_id": session_id, "deleted": bool(existed)})

    @app.get(
        "/v1/model",
        response_model=ModelOut,
        responses=error_responses(401),
        summary="The served model: name, version, items, trained-at",
    )
    async def model_info() -> Response:
        rt = svc.runtime
        info = rt.model_info()
        info["reloads"] = rt.reloads
        try:
            info["store"] = await svc.call(rt.store.stats)
        except StoreError as exc:
            info["store"] = {"kind": rt.store.kind, "error": str(exc)}
        return json_response(info)

    @app.post(
        "/v1/admin/reload",
        response_model=ReloadOut,
        responses={
            202: {"model": RestartOut, "description": "workers restarting (--workers > 1)"},
            **error_responses(400, 401, 403, 409, 413, 422),
        },
        summary="Load a model directory atomically (API key required)",
    )
    async def reload(body: Annotated[ReloadIn | None, Body()] = None) -> Response:
        if svc.api_key is None:
            return error_response(
                403,
                "admin_disabled",
                "admin endpoints need an API key: start the server with --api-key-env VAR",
            )
        target = body.model if body is not None else None
        if svc.config.workers > 1:
            same = target is None or Path(target).absolute() == svc.runtime.model.path
            if not same:
                return error_response(
                    409,
                    "multi_worker_reload",
                    "with --workers > 1 only the current model directory can be reloaded "
                    "(replace it, then reload); restart the server to serve another one",
                )
            os.kill(os.getppid(), signal.SIGHUP)  # uvicorn restarts every worker in turn
            return json_response(
                {"status": "restarting workers", "model": svc.runtime.model.path.name}, 202
            )
        try:
            info = await run_in_threadpool(svc.reload, target)
        except SeqrecError as exc:  # Runtime.reload turns every load failure into one
            return error_response(
                422, "model_load_failed", f"{exc} (still serving the previous model)"
            )
        return json_response({"status": "reloaded", "model": info})

    @app.get("/healthz", response_model=StatusOut, summary="Liveness")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get(
        "/readyz",
        response_model=ReadyOut,
        responses=error_responses(503),
        summary="Readiness: a model is loaded and the store answers",
    )
    async def readyz() -> Response:
        rt = svc.runtime
        ok = await svc.call(rt.ready)
        if not ok:
            return error_response(
                503, "not_ready", f"session store ({rt.store.kind}) does not answer"
            )
        return json_response(
            {"status": "ready", "model": rt.model.name, "version": rt.model.version}
        )

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
        summary="Prometheus metrics (text exposition format)",
    )
    async def prometheus() -> Response:
        data = await run_in_threadpool(svc.metrics.render)
        return Response(data, media_type=CONTENT_TYPE_LATEST)
