"""uvicorn's HTTP protocol, answering the requests it rejects itself with JSON.

A request uvicorn cannot parse never reaches the application: uvicorn answers it with
a plain-text 400. The commonest case is a URL over 65,535 bytes (the limit of
httptools' URL parser), e.g. a 100 KB session id. :class:`JsonErrorProtocol` answers
such a request with the API's JSON error body instead: 414 ``url_too_long`` for an
over-long URL, else 400 ``invalid_http_request``. Shorter URLs reach the application,
whose own limits (a session id of at most 128 characters by default) answer with their
documented codes.

Used by :func:`seqrec.serving.api.serve` as uvicorn's ``http`` protocol class:
httptools' when it is installed (uvicorn's default), else h11's.
"""

from __future__ import annotations

import importlib.util
import json

MAX_URL_BYTES = 65_535  # httptools' parse_url keeps 16-bit offsets
H11_MAX_HEAD_BYTES = 96 * 1024  # h11: request line + headers (uvicorn's default is 16 KiB)

if importlib.util.find_spec("httptools") is not None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
else:  # pragma: no cover - exercised only without httptools
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

_REASONS = {400: "Bad Request", 414: "URI Too Long"}


def error_response(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response with the API's JSON error body (connection closed)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class JsonErrorProtocol(_Base):
    """uvicorn's protocol with a JSON body for the requests it rejects unparsed."""

    def send_400_response(self, msg: str) -> None:
        url = getattr(self, "url", b"")  # httptools: the request target read so far
        if isinstance(url, bytes) and len(url) > MAX_URL_BYTES:
            data = error_response(
                414,
                "url_too_long",
                f"request URL has {len(url)} bytes, the limit is {MAX_URL_BYTES} "
                "(a session id may have at most 128 characters by default)",
            )
        else:
            data = error_response(
                400,
                "invalid_http_request",
                "malformed HTTP request: request line or headers could not be parsed "
                "(or are too long)",
            )
        self.transport.write(data)
        self.transport.close()
