"""The hot path of the HTTP API, ``POST /v1/sessions/{id}/events`` (one request per
click), served without FastAPI's request machinery when the body is plain JSON of the
documented types."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import Response

from seqrec.serving.http.middleware import ASGIApp, Message, Receive, Scope, Send
from seqrec.serving.requests import EVENT, Request


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
        handle: Callable[[Request], Awaitable[Response]],
        route: Any,
    ) -> None:
        self.app = app
        self.handle = handle
        self.route = route

    @classmethod
    def parse(cls, session_id: str, body: bytes) -> Request | None:
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
        return Request(
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
