"""One errors table: every error becomes a JSON ``{"detail": ...}`` with its status and nothing of the server
(no paths, no database text, no traceback) — unexpected errors are logged and answered with a plain 500."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from amberwatch.errors import AmberWatchError, RateLimitedError, UnauthorizedError

log = logging.getLogger(__name__)

# status -> extra headers of the answer
HEADERS: dict[type[AmberWatchError], dict[str, str]] = {UnauthorizedError: {"WWW-Authenticate": "Bearer"}}


# absolute server paths in a message keep only their last part: "/srv/aw/var/uploads/x/a.tif" -> "a.tif"
SERVER_PATH = re.compile(r"(?<![\w:/.])/(?!api/|ogcapi|ows)(?:[\w.@+-]+/)+([\w.@+-]+)")


def scrub(message: str) -> str:
    return SERVER_PATH.sub(lambda m: m.group(1), message)


def error_response(err: AmberWatchError) -> JSONResponse:
    headers = dict(HEADERS.get(type(err), {}))
    if isinstance(err, RateLimitedError):
        headers["Retry-After"] = str(err.retry_after)
    return JSONResponse(status_code=err.status_code, content={"detail": scrub(str(err))}, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(AmberWatchError)
    async def amberwatch_error(_: Request, err: AmberWatchError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        problems, in_url = [], True
        for e in err.errors()[:10]:
            loc = tuple(e.get("loc", ()))
            in_url = in_url and bool(loc) and loc[0] in ("query", "path")
            where = ".".join(str(p) for p in loc[1:] if p != "body") or "request"
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        # a bad URL parameter is a 400 (as in the OGC services); a body that fails its schema a 422
        return JSONResponse(status_code=400 if in_url else 422, content={"detail": "; ".join(problems)})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal error; the server log has the details"})
