"""``/api/runs``: detection runs as queued jobs (analysts and admins start them; everyone reads them)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from amberwatch.accounts import Principal
from amberwatch.publish.versions import wfs_run_filter
from amberwatch.settings import Settings
from amberwatch.store.models import Run
from amberwatch.usecases import runs as runs_uc
from amberwatch.usecases import scenes as scenes_uc
from amberwatch.web.deps import MAX_ID, PageDep, QueueDep, SettingsDep, StoreDep, require
from amberwatch.web.schemas import RunIn, RunOut

router = APIRouter(prefix="/api/runs", tags=["runs"])
RunId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
RunState = Literal["pending", "queued", "running", "published", "failed"]
WAIT_LIMIT_S = 3600.0


def run_out(run: Run, settings: Settings) -> RunOut:
    layers = {}
    if run.state == "published":
        base = settings.base_url
        wfs = {"SERVICE": "WFS", "VERSION": "2.0.0", "REQUEST": "GetFeature", "TYPENAMES": "detections",
               "FILTER": wfs_run_filter(run.id)}
        layers = {  # one version of the fixed `detections` layer (docs: versions without a layer per run)
            "ogcapi": f"{base}/ogcapi/collections/detections/items?f=json&run_id={run.id}",
            "wfs": f"{base}/ows?{urlencode(wfs)}",
            "wms": f"{base}/ows?SERVICE=WMS&REQUEST=GetCapabilities (layer detections, DIM_RUN={run.id})",
            "versions": f"{base}/api/versions",
        }
    return RunOut(
        id=run.id, state=run.state, progress=run.progress, message=run.message,
        model_version=run.model_version.label if run.model_version else None,
        scene_ids=[s.id for s in run.scenes], n_detections=run.n_detections, provider=run.provider,
        parameters=_public_parameters(run.parameters or {}), error=run.error, created_at=run.created_at,
        started_at=run.started_at, finished_at=run.finished_at, published_at=run.published_at, layers=layers,
    )


def _public_parameters(parameters: dict) -> dict:
    """Run parameters without server paths (work files are the operator's business)."""
    return {k: v for k, v in parameters.items() if not k.endswith("_path")}


@router.post("", response_model=RunOut, status_code=202)
async def post_run(body: RunIn, store: StoreDep, settings: SettingsDep, queue: QueueDep,
                   principal: Annotated[Principal, Depends(require("run"))],
                   wait: Annotated[bool, Query(description="Answer when the run is published or failed.")] = False,
                   ) -> RunOut:
    """Queue a detection run on a stored scene; follow it at ``GET /api/runs/{id}``. At most
    AMBERWATCH_WORKER_CONCURRENCY runs execute at once; the others wait as ``queued``."""

    def create() -> Run:
        scene = scenes_uc.get_scene(store, body.scene)
        reference = scenes_uc.get_scene(store, body.reference) if body.reference is not None else None
        return runs_uc.create_run(store, settings, scene, body.model, reference=reference,
                                  pixel_threshold=body.pixel_threshold, min_confidence=body.min_confidence,
                                  created_by=principal.name)

    run = await run_in_threadpool(create)
    await runs_uc.queue_run(queue, store, run.id)
    if wait:
        deadline = time.monotonic() + WAIT_LIMIT_S
        while time.monotonic() < deadline:  # until the job has ended: the run's layers are refreshed by then
            if await run_in_threadpool(runs_uc.finished, store, run.id):
                break
            await asyncio.sleep(0.5)
    return run_out(await run_in_threadpool(runs_uc.get_run, store, run.id), settings)


@router.get("", response_model=list[RunOut])
def list_runs(store: StoreDep, settings: SettingsDep, page: PageDep,
              state: Annotated[RunState | None, Query(description="Only runs in this state.")] = None,
              ) -> list[RunOut]:
    return [run_out(r, settings) for r in runs_uc.list_runs(store, state, page.limit, page.offset)]


@router.get("/{run_id}", response_model=RunOut)
def get_run(store: StoreDep, settings: SettingsDep, run_id: RunId) -> RunOut:
    return run_out(runs_uc.get_run(store, run_id), settings)
