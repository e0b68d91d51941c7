"""The FastAPI application: REST API under /api, OGC API Features at /ogcapi, WMS/WFS at /ows.

One factory: the routers are modules with typed dependencies (``web.deps``), errors go through one table
(``web.errors``), and the guard (``web.guard``) sits in front of everything. The lifespan opens the job queue
and, unless AMBERWATCH_INPROCESS_WORKER=false, runs a bounded worker in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from amberwatch import __version__
from amberwatch.jobs.queue import make_queue
from amberwatch.observability.logs import RequestIds
from amberwatch.observability.metrics import HttpMetrics
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.queries import catalog as catalog_queries
from amberwatch.usecases import stac_catalog
from amberwatch.web import accuracy, errors, jobs, monitoring, ops, registry, runs, scenes
from amberwatch.web.guard import Guard

log = logging.getLogger(__name__)


def create_app(settings: Settings, store: Store | None = None, *, worker: bool | None = None) -> FastAPI:
    """Build the app; starts the store (embedded PostGIS by default) when none is given. ``worker`` overrides
    ``settings.inprocess_worker``."""
    own_store = store is None
    active = store or Store(settings).start()
    queue = make_queue(active.url)
    run_worker = settings.inprocess_worker if worker is None else worker

    from amberwatch.web import stac_api

    stac_app = stac_api.build(settings) if settings.stac_api else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        from amberwatch.worker.loop import run_worker as worker_loop

        await queue.open_async()
        if stac_app is not None:  # a mounted app's own lifespan does not run: its pools follow ours
            await stac_api.open_pools(stac_app, active)
            await asyncio.to_thread(stac_catalog.publish_models, active, settings)  # runs arrive as published
        task = asyncio.create_task(worker_loop(queue, active, settings)) if run_worker else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await queue.close_async()
            if stac_app is not None:
                await stac_api.close_pools(stac_app)
            if own_store:
                active.stop()

    app = FastAPI(title="AmberWatch", version=__version__, lifespan=lifespan,
                  description="Amber mining detections in north-west Ukraine as open, versioned OGC layers. "
                  "OGC API Features at /ogcapi, WMS 1.3.0 and WFS 2.0 at /ows. Reads are public; writes need an "
                  "API key (`Authorization: Bearer <key>`).")
    app.state.store, app.state.settings, app.state.queue = active, settings, queue
    app.state.runs_worker = run_worker  # /readyz then needs a live worker
    app.state.metrics_registry = ops.store_registry(active, settings.job_stalled_after_s)
    errors.install(app)

    @app.get("/health", tags=["service"], responses={503: {"description": "the database is unavailable"}})
    def health() -> JSONResponse:
        """Liveness and the database: details of a failure go to the server log only."""
        try:
            with active.engine.connect() as conn:
                postgis = catalog_queries.postgis_version(conn)
        except Exception:
            log.exception("health check: database unavailable")
            return JSONResponse(status_code=503, content={"status": "unavailable", "detail": "database unavailable"})
        return JSONResponse({"status": "ok", "version": __version__, "postgis": postgis,
                             "embedded_db": active.embedded is not None})

    app.include_router(ops.router)  # /healthz, /readyz, /metrics
    for module in (scenes, runs, registry, jobs, accuracy):
        app.include_router(module.router)
    from amberwatch.web import portal, subscriptions, tiles  # /api/sites/{id}.{fmt} must precede /api/sites/{id}

    for router in (portal.api, portal.router, tiles.router, subscriptions.router):
        app.include_router(router)
    from amberwatch.web import crowd  # after portal.api: /api/reports/area.html is the area report

    app.include_router(crowd.router)
    app.include_router(crowd.pages)  # /report, /moderation
    from amberwatch.web import field, validation  # volunteer validation, field checks and the /field/ app

    app.include_router(validation.router)
    app.include_router(validation.pages)  # /validate/
    app.include_router(field.router)
    app.include_router(monitoring.router, prefix="/api")
    from amberwatch.web import stac_monitors

    app.include_router(stac_monitors.router)
    if stac_app is not None:
        app.mount(stac_api.MOUNT, stac_app)  # STAC API (pgstac) of our scenes, runs and models

    from amberwatch import publish

    publish.refresh(active, settings)
    publish.mount(app, active, settings)
    from amberwatch.web.etag import ETags

    app.add_middleware(ETags)  # 304s on /api/sites, /api/events, /api/stats (docs/portal.md)
    app.add_middleware(Guard, store=active, settings=settings)
    app.add_middleware(HttpMetrics)  # outside the guard: its 413/429 answers count too
    app.add_middleware(RequestIds)  # outermost: every log line of a request carries its id
    return app


def app_from_environment() -> FastAPI:
    """The app with the settings of the environment (``uvicorn --factory amberwatch.web.app:app_from_environment``)."""
    from amberwatch.settings import get_settings

    return create_app(get_settings())
