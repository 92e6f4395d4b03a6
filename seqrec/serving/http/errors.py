"""The one error answer of the HTTP API, ``{"error": {"code": ..., "message": ...}}``,
and the exception handlers that make every failure one: 4xx for anything the client
did, never a 500 for client input."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqrec.serving.requests import RequestError
from seqrec.serving.stores import StoreError

log = logging.getLogger("seqrec.serving")
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def json_response(data: Any, status: int = 200) -> Response:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    try:
        body = text.encode()
    except UnicodeEncodeError:  # a lone surrogate echoed from the request ("\ud800")
        body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    return json_response({"error": {"code": code, "message": message, **extra}}, status)


async def send_error(send: Send, status: int, code: str, message: str, **headers: str) -> None:
    """The error answer from plain ASGI middleware (no Response object)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def unparsable_body(cause: BaseException | None) -> str:
    """The message of a 400 for a body FastAPI could not read as JSON."""
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start]
        return f"request body is not valid JSON: not UTF-8 (byte 0x{byte:02x} at {cause.start})"
    if isinstance(cause, RecursionError):
        return "request body is not valid JSON: nested too deeply"
    why = (str(cause).splitlines() or [""])[0][:200] if cause is not None else ""
    return f"request body is not valid JSON: {why}" if why else "request body is not valid JSON"


def validation_error(exc: RequestValidationError) -> Response:
    """400 malformed_json for a JSON syntax error, else 422 invalid_request naming
    the fields (``details``: one entry per field)."""
    errors = exc.errors()
    for e in errors:
        if e.get("type") == "json_invalid":
            why = (e.get("ctx") or {}).get("error", "invalid JSON")
            pos = e.get("loc", ("body", "?"))[-1]
            return error_response(
                400, "malformed_json", f"request body is not valid JSON: {why} (at character {pos})"
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
    return error_response(422, "invalid_request", "; ".join(parts), details=details)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception of a route with the JSON error body."""

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> Response:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> Response:
        log.error("%s", exc)
        return error_response(503, "store_unavailable", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return validation_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not parse the body (JSON errors are 422s)
            return error_response(400, "malformed_json", unparsable_body(exc.__cause__))
        codes = {404: "not_found", 405: "method_not_allowed"}
        response = error_response(
            exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
        )
        response.headers.update(exc.headers or {})  # 405: Allow
        return response

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:  # pragma: no cover
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error")
