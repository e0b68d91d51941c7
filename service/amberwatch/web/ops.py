"""Operations endpoints: ``GET /healthz`` (liveness: the process answers, no database), ``GET /readyz``
(readiness: database, migrations, MapServer, queue and workers; 503 with the reasons) and ``GET /metrics``
(Prometheus text; open, or behind ``Authorization: Bearer <AMBERWATCH_METRICS_TOKEN>`` when that is set)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from amberwatch import __version__
from amberwatch.errors import UnauthorizedError
from amberwatch.observability.metrics import CONTENT_TYPE, StoreCollector, exposition
from amberwatch.publish import OgcPaths
from amberwatch.store.db import Store
from amberwatch.usecases import health as health_uc
from amberwatch.web.deps import SettingsDep, StoreDep

router = APIRouter(tags=["service"])


@router.get("/healthz", summary="Liveness: the process answers (no database round trip)")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


def mapserver_state(request: Request) -> health_uc.MapServerState | None:
    """What the app's /ows backend looks like now (None when mapserv was not found at start)."""
    ows = getattr(request.app.state, "ows", None)
    if ows is None:
        return None
    config_written = OgcPaths.of(request.app.state.settings).mapserver_config.exists()
    pool = ows.pool
    if pool is None:
        mode, alive = "cgi", 0
    elif pool.running:
        mode, alive = "fastcgi", len(pool.pids)
    elif getattr(ows, "_pool_failed", False):
        mode, alive = "cgi (the FastCGI pool could not start)", 0
    else:
        mode, alive = "fastcgi (starts on first request)", 0
    return health_uc.MapServerState(True, config_written, mode, alive)


@router.get("/readyz", summary="Readiness: database, migrations, MapServer, job queue and workers",
            responses={503: {"description": "not ready; `reasons` says why"}})
async def readyz(request: Request, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    worker_required = bool(getattr(request.app.state, "runs_worker", False))
    result = await run_in_threadpool(health_uc.readiness, store, mapserver_state(request),
                                     worker_required=worker_required,
                                     heartbeat_within_s=settings.job_stalled_after_s)
    body = {"status": "ready" if result.ready else "not ready", "reasons": result.reasons, "checks": result.checks}
    return JSONResponse(body, status_code=200 if result.ready else 503, headers={"Cache-Control": "no-store"})


def store_registry(store: Store, heartbeat_within_s: float) -> CollectorRegistry:
    """A registry holding the collector of the store's counts (one per app)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(lambda: health_uc.store_snapshot(store, heartbeat_within_s)))
    return registry


@router.get("/metrics", summary="Prometheus metrics (text exposition format)",
            responses={200: {"content": {CONTENT_TYPE: {}}}, 401: {"description": "metrics token required"}})
async def metrics(request: Request, settings: SettingsDep) -> Response:
    token = settings.metrics_token
    if token:
        sent = request.headers.get("authorization", "")
        if not (sent.lower().startswith("bearer ") and hmac.compare_digest(sent[7:].strip().encode(),
                                                                           token.encode())):
            raise UnauthorizedError("/metrics needs 'Authorization: Bearer <AMBERWATCH_METRICS_TOKEN>'")
    body = await run_in_threadpool(exposition, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
