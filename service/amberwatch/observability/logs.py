"""Logging for the CLI, ``serve`` and ``worker``: plain text lines, or one JSON object per line
(``AMBERWATCH_LOG_FORMAT=json``) with time, level, logger, message and the request id where there is one."""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The id of the HTTP request being served (set by ``web.observe``), "-" outside a request.
request_id: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message``, ``request_id`` (+ ``exc_info``)."""
    return JsonFormatter(
        ["asctime", "levelname", "name", "message", "request_id"],
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure_logging(level: int = logging.INFO, fmt: str = "text") -> None:
    """Send every logger (uvicorn's included, when it is started without its own log config) to stderr in ``fmt``."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # no handlers of their own: they reach the root's
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIds:
    """ASGI middleware: every HTTP request gets an id — the client's ``X-Request-ID`` when it is a short token,
    a new one otherwise — set for the logs while it is served and sent back in ``X-Request-ID``."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), "")
        rid = sent if _SAFE_ID.match(sent) else uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
