"""The FastAPI application: REST API under /api, OGC API Features at /ogcapi, WMS/WFS at /ows."""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select, text

from amberwatch import __version__
from amberwatch.errors import AmberWatchError, InputError, NotFoundError
from amberwatch.settings import Settings, get_settings
from amberwatch.store.db import Store
from amberwatch.store.models import Run, Scene
from amberwatch.track.api import router as track_router
from amberwatch.usecases import runs as pipeline
from amberwatch.usecases import scenes as scenes_uc
from amberwatch.web.schemas import ModelOut, RunIn, RunOut, SceneOut, ScenePathIn

log = logging.getLogger(__name__)


def run_out(run: Run, settings: Settings) -> RunOut:
    layers = {}
    if run.state == "published":
        layers = {
            "ogcapi": f"{settings.base_url}/ogcapi/collections/run_{run.id}",
            "wfs": f"{settings.base_url}/ows?SERVICE=WFS&REQUEST=GetFeature&VERSION=2.0.0&TYPENAMES=run_{run.id}",
            "wms": f"{settings.base_url}/ows?SERVICE=WMS&REQUEST=GetCapabilities",
        }
    return RunOut(
        id=run.id, state=run.state, progress=run.progress, message=run.message,
        model_version=run.model_version.label if run.model_version else None,
        scene_ids=[s.id for s in run.scenes], n_detections=run.n_detections, provider=run.provider,
        parameters=run.parameters or {}, error=run.error, created_at=run.created_at, started_at=run.started_at,
        finished_at=run.finished_at, published_at=run.published_at, layers=layers,
    )


def build_router(store: Store, settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.get("/scenes", response_model=list[SceneOut], tags=["scenes"])
    def list_scenes(limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> list[Scene]:
        with store.session() as session:
            return list(session.scalars(select(Scene).order_by(Scene.id).limit(limit).offset(offset)))

    @router.get("/scenes/{scene_id}", response_model=SceneOut, tags=["scenes"])
    def get_scene(scene_id: int) -> Scene:
        return scenes_uc.get_scene(store, scene_id)

    @router.get("/scenes/{scene_id}/stac", tags=["scenes"])
    def get_scene_stac(scene_id: int) -> dict:
        """The scene's STAC item."""
        return scenes_uc.get_scene(store, scene_id).stac_item

    @router.post("/scenes", response_model=SceneOut, status_code=201, tags=["scenes"],
                 openapi_extra={"requestBody": {"content": {
                     "application/json": {"schema": ScenePathIn.model_json_schema()},
                     "multipart/form-data": {"schema": {"type": "object", "properties": {
                         "file": {"type": "string", "format": "binary"}}}}}}})
    async def post_scene(request: Request) -> Scene:
        """Ingest a scene: upload one file (GeoTIFF or zipped .SAFE) as multipart ``file``, or give a
        server-side ``path`` (JSON) under the allowed roots."""
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            try:
                body = ScenePathIn.model_validate(await request.json())
            except Exception as err:
                raise InputError(f"expected JSON {{\"path\": \"...\"}}: {err}") from err
            path = scenes_uc.check_allowed(Path(body.path), settings)
            return await _in_thread(scenes_uc.ingest, store, settings, path)
        if ctype.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("file")
            if upload is None or not hasattr(upload, "filename"):
                raise InputError("multipart upload needs a 'file' field")
            name = Path(upload.filename or "upload.tif").name
            tmpdir = settings.path("uploads", uuid.uuid4().hex)
            tmpdir.mkdir(parents=True)
            target = tmpdir / name
            size = 0
            try:
                with open(target, "wb") as f:
                    while chunk := await upload.read(1 << 20):
                        size += len(chunk)
                        if size > settings.max_upload_mb * 1 << 20:
                            raise InputError(f"upload larger than {settings.max_upload_mb} MB")
                        f.write(chunk)
                if size == 0:
                    raise InputError(f"uploaded file {name} is empty")
                return await _in_thread(scenes_uc.ingest, store, settings, target)
            finally:
                shutil.rmtree(tmpdir, ignore_errors=True)
        raise InputError("send multipart/form-data with a 'file' or application/json with a 'path'")

    @router.get("/models", response_model=list[ModelOut], tags=["models"])
    def list_models() -> list[ModelOut]:
        from amberwatch.detect.registry import list_models as registry_models
        from amberwatch.detect.registry import newest

        models = registry_models(settings.models_dir)
        # the version a run without --model uses: the configured name at its highest version
        defaults = {m.ref for m in (newest(models, n) for n in settings.default_models.values()) if m is not None}
        return [
            ModelOut(name=m.name, version=m.version, family=m.family, sha256=m.sha256, metrics=m.metrics,
                     card=m.card, default=m.ref in defaults and settings.default_models.get(m.family) == m.name)
            for m in models
        ]

    @router.post("/runs", response_model=RunOut, status_code=202, tags=["runs"])
    def post_run(body: RunIn, wait: bool = Query(False, description="Return when the run is published.")) -> RunOut:
        """Start a detection run on a stored scene; follow it at ``GET /api/runs/{id}``."""
        scene = scenes_uc.get_scene(store, body.scene)
        reference = scenes_uc.get_scene(store, body.reference) if body.reference is not None else None
        run = pipeline.create_run(store, settings, scene, body.model, reference=reference,
                                  pixel_threshold=body.pixel_threshold, min_confidence=body.min_confidence)
        if wait:
            pipeline.execute_run(store, settings, run.id)
        else:
            threading.Thread(target=_execute_logged, args=(store, settings, run.id), daemon=True).start()
        return get_run(run.id)

    @router.get("/runs", response_model=list[RunOut], tags=["runs"])
    def list_runs(state: str | None = None, limit: int = Query(100, ge=1, le=1000),
                  offset: int = Query(0, ge=0)) -> list[RunOut]:
        with store.session() as session:
            q = select(Run).order_by(Run.id.desc()).limit(limit).offset(offset)
            if state:
                q = q.where(Run.state == state)
            return [run_out(r, settings) for r in session.scalars(q)]

    @router.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
    def get_run(run_id: int) -> RunOut:
        with store.session() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} not found")
            return run_out(run, settings)

    return router


def _execute_logged(store: Store, settings: Settings, run_id: int) -> None:
    try:
        pipeline.execute_run(store, settings, run_id)
    except Exception:  # the run row records the error
        log.exception("run %d failed", run_id)


async def _in_thread(fn, *args):  # noqa: ANN001, ANN202
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the app; starts the store (embedded PostGIS by default) when none is given."""
    settings = settings or get_settings()
    own_store = store is None
    store = store or Store(settings).start()

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202
        yield
        if own_store:
            store.stop()

    app = FastAPI(title="AmberWatch", version=__version__, lifespan=lifespan,
                  description="Amber mining detections in north-west Ukraine as open, versioned OGC layers. "
                  "OGC API Features at /ogcapi, WMS 1.3.0 and WFS 2.0 at /ows.")
    app.state.store, app.state.settings = store, settings

    @app.exception_handler(AmberWatchError)
    async def amberwatch_error(_: Request, err: AmberWatchError) -> JSONResponse:
        return JSONResponse(status_code=err.status_code, content={"detail": str(err)})

    @app.get("/health", tags=["service"])
    def health() -> dict:
        try:
            with store.engine.connect() as conn:
                postgis = conn.execute(text("select postgis_lib_version()")).scalar()
        except Exception as err:  # report, don't crash
            raise HTTPException(503, f"database unavailable: {err}") from err
        return {"status": "ok", "version": __version__, "postgis": postgis, "embedded_db": store.embedded is not None}

    app.include_router(build_router(store, settings))
    app.include_router(track_router, prefix="/api")

    from amberwatch import publish

    publish.refresh(store, settings)
    publish.mount(app, store, settings)
    return app
