"""ETags on the JSON reads of the API (``/api/sites``, ``/api/sites/{id}``, ``/api/events``, ``/api/stats``): a
strong validator over the body; ``If-None-Match`` with it gives ``304 Not Modified`` and no body.

Pure ASGI: only those paths' 200 JSON answers are buffered (they are paged or small); everything else streams.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amberwatch.httpcache import etag_matches

PATHS = re.compile(r"^/api/(sites|events|stats|sites/[0-9]+)$")
JSON_TYPES = (b"application/json", b"application/geo+json")


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'




class ETags:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or not PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if_none_match = headers.get(b"if-none-match", b"").decode("latin-1")
        start: Message | None = None
        chunks: list[bytes] = []
        passthrough = False

        async def buffering_send(message: Message) -> None:
            nonlocal start, passthrough
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] != 200 or not content_type.startswith(JSON_TYPES):
                    passthrough = True
                    await send(message)
                else:
                    start = message
                return
            if passthrough or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert start is not None
            body = b"".join(chunks)
            tag = etag_of(body)
            kept: list[Any] = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"etag",)]
            kept.append((b"etag", tag.encode()))
            if not any(k.lower() == b"cache-control" for k, _ in kept):
                kept.append((b"cache-control", b"no-cache"))
            if if_none_match and etag_matches(if_none_match, tag):
                kept = [(k, v) for k, v in kept if k.lower() not in (b"content-length", b"content-type")]
                await send({"type": "http.response.start", "status": 304, "headers": kept})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({**start, "headers": kept})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffering_send)
