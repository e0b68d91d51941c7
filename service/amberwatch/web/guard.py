"""The ASGI guard in front of everything (REST, /ogcapi, /ows): hostile bytes out, bodies capped before they are
stored, rate limits per key and per client address, and an audit record of every state-changing request."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any
from urllib.parse import unquote_to_bytes

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amberwatch.errors import PayloadTooLargeError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.usecases import keys as keys_uc

log = logging.getLogger(__name__)
READ_METHODS = {"GET", "HEAD", "OPTIONS"}
JSON_BODY_LIMIT = 1 << 20  # any body but a scene upload
UPLOAD_PATH = "/api/scenes"
REPORTS_PATH = "/api/reports"  # crowd reports: photos and videos (AMBERWATCH_REPORT_MAX_UPLOAD_MB)
FIELD_CHECKS_PATH = "/api/field-checks"  # field checks: photos (AMBERWATCH_FIELD_PHOTO_MAX_MB x FIELD_MAX_PHOTOS)


def _expensive_read(path: str) -> bool:
    return (path in ("/api/stats", "/api/events.atom", "/ows", "/stac/search")
            or (path.startswith(("/ogcapi/collections/", "/stac/collections/")) and path.endswith("/items")))


class BodyTooLarge(PayloadTooLargeError):
    """Raised inside the app while it reads a body past the cap (the errors table makes it a 413)."""


class Guard:
    """Pure ASGI middleware (no buffering of bodies, streaming answers pass through)."""

    def __init__(self, app: ASGIApp, store: Store, settings: Settings):
        self.app, self.store, self.settings = app, store, settings
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.write_limit = parse(settings.rate_limit_writes)
        self.read_limit = parse(settings.rate_limit_expensive_reads)
        self.report_limit = parse(settings.rate_limit_reports)  # new crowd reports, per client address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        raw_query: bytes = scope.get("query_string", b"")
        if b"\x00" in scope.get("raw_path", b"") or "\x00" in path or b"\x00" in unquote_to_bytes(raw_query):
            await _answer(send, 400, "a NUL byte is not allowed in a URL")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = (scope.get("client") or ("", 0))[0]
        # WFS/WMS requests may come as POST (XML), STAC searches as POST (JSON): reads all the same (no transactions
        # are enabled in either)
        write = method not in READ_METHODS and not path.startswith(("/ows", "/ogcapi", "/stac"))

        limit = self.write_limit if write else self.read_limit if _expensive_read(path) else None
        if limit is not None:
            for ident in _identities(client, headers):
                if retry := self._refused(limit, "w" if write else "r", ident):
                    await _answer(send, 429, f"too many requests: at most {limit} ({'writes' if write else 'reads'})"
                                  f"; try again in {retry} s", {"Retry-After": str(retry)})
                    return
        if path == REPORTS_PATH and method == "POST" and (retry := self._refused(self.report_limit, "reports",
                                                                                 f"addr:{client or 'unknown'}")):
            await _answer(send, 429, f"too many reports from this address: at most {self.report_limit}"
                          f"; try again in {retry} s", {"Retry-After": str(retry)})
            return

        cap = self.settings.max_upload_mb << 20 if path == UPLOAD_PATH else JSON_BODY_LIMIT
        if path == REPORTS_PATH and method == "POST":
            cap = self.settings.report_max_upload_mb << 20
        if path == FIELD_CHECKS_PATH and method == "POST":
            cap = (self.settings.field_photo_max_mb * max(1, self.settings.field_max_photos) + 1) << 20
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(declared) > cap:
                await _answer(send, 413, _too_large(cap, path))
                return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise BodyTooLarge(_too_large(cap, path))
            return message

        status = 500
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            status = 413
            if not started:
                await _answer(send, 413, _too_large(cap, path))
        finally:
            if write:
                await self._audit(scope, method, path, client, status)

    def _refused(self, limit: Any, namespace: str, ident: str) -> int:
        """0 when the request is within ``limit`` (and counted), else the seconds until it would be."""
        if self.limiter.hit(limit, namespace, ident):
            return 0
        reset, _ = self.limiter.get_window_stats(limit, namespace, ident)
        return max(1, int(reset - time.time()))

    async def _audit(self, scope: Scope, method: str, path: str, client: str, status: int) -> None:
        principal = (scope.get("state") or {}).get("principal")
        try:
            await run_in_threadpool(keys_uc.audit, self.store, principal, f"{method} {path}", client=client,
                                    status=status)
        except Exception:  # an audit failure must be seen in the log, and not hide the answer
            log.exception("could not write the audit record of %s %s", method, path)


def _identities(client: str, headers: dict[str, str]) -> list[str]:
    out = [f"addr:{client}"]
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        out.append("key:" + hashlib.sha256(auth[7:].strip().encode()).hexdigest()[:24])
    return out


def _too_large(cap: int, path: str) -> str:
    what = "upload" if path in (UPLOAD_PATH, REPORTS_PATH) else "request body"
    setting = {UPLOAD_PATH: " (AMBERWATCH_MAX_UPLOAD_MB)",
               REPORTS_PATH: " (AMBERWATCH_REPORT_MAX_UPLOAD_MB)"}.get(path, "")
    return f"{what} larger than {cap >> 20} MB{setting}: refused before it was stored"


async def _answer(send: Send, status: int, detail: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
