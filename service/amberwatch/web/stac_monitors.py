"""``/api/monitors``: STAC monitors for the ``admin`` role (add, list, status, run now) and ``/api/stac/sync``."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from amberwatch.accounts import Principal
from amberwatch.usecases import stac_catalog
from amberwatch.usecases import stac_monitors as uc
from amberwatch.web.deps import QueueDep, SettingsDep, StoreDep, require

router = APIRouter(prefix="/api", tags=["monitors"])
Admin = Annotated[Principal, Depends(require("admin"))]
Name = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="The monitor's name.")]


class MonitorIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    stac_url: str = Field(..., min_length=1, max_length=2000,
                          description="STAC API root, or a static catalog.json (http(s) on an allowed host).")
    collection: str = Field(..., min_length=1, max_length=200, description="STAC collection id.")
    aoi: dict[str, Any] = Field(..., description="Area of interest: GeoJSON (Multi)Polygon, Feature or "
                                "FeatureCollection in EPSG:4326.")
    cloud_max: float | None = Field(None, ge=0, le=100, description="Items above this cloud cover % are skipped.")
    start: datetime | None = Field(None, description="Only items acquired at or after this date.")


class MonitorOut(BaseModel):
    name: str
    stac_url: str
    collection: str
    cloud_max: float | None
    start: datetime | None
    active: bool
    last_run: dict[str, Any] | None = Field(
        None, description="The last search: started_at, finished_at, trigger, found, new, skipped, error.")
    items: dict[str, int] = Field(..., description="Items by status: found (to do), processed, skipped, failed.")


class MonitorItemOut(BaseModel):
    item_id: str
    acquired: datetime | None
    cloud_cover: float | None
    status: str
    reason: str | None
    attempts: int
    scene_id: int | None
    run_id: int | None


class RunQueued(BaseModel):
    monitor: str
    queued: bool = Field(..., description="False when a search of this monitor is already waiting.")


@router.post("/monitors", response_model=MonitorOut, status_code=201)
async def post_monitor(body: MonitorIn, store: StoreDep, settings: SettingsDep, principal: Admin) -> uc.MonitorStatus:
    """Watch a STAC collection over an area: the scheduler searches it every AMBERWATCH_MONITOR_INTERVAL_HOURS."""
    aoi = uc.parse_aoi(body.aoi)

    def add() -> uc.MonitorStatus:
        uc.add_monitor(store, settings, body.name, body.stac_url, body.collection, aoi, body.cloud_max, body.start,
                       principal.name)
        return uc.get_monitor(store, body.name)

    return await asyncio.to_thread(add)


@router.get("/monitors", response_model=list[MonitorOut])
def list_monitors(store: StoreDep, _: Admin) -> list[uc.MonitorStatus]:
    return uc.list_monitors(store)


@router.get("/monitors/{name}", response_model=MonitorOut)
def get_monitor(store: StoreDep, name: Name, _: Admin) -> uc.MonitorStatus:
    """Status: the last search (when, found, new, skipped) and the items processed, skipped and failed."""
    return uc.get_monitor(store, name)


@router.get("/monitors/{name}/items", response_model=list[MonitorItemOut])
def get_monitor_items(store: StoreDep, name: Name, _: Admin) -> list[dict[str, Any]]:
    return uc.monitor_items(store, name)


@router.post("/monitors/{name}/run", response_model=RunQueued, status_code=202)
async def run_monitor(store: StoreDep, queue: QueueDep, name: Name, _: Admin) -> RunQueued:
    """Search now (a queued job); new items are then processed one job each. Follow ``GET /api/monitors/{name}``."""
    mid = await asyncio.to_thread(uc.monitor_id, store, name)
    return RunQueued(monitor=name, queued=await uc.request_search(queue, mid, "api") is not None)


@router.post("/stac/sync", tags=["stac"])
async def sync_stac(store: StoreDep, settings: SettingsDep, _: Admin) -> dict[str, int]:
    """Upsert our scenes, published runs and models into the STAC API at /stac."""
    return await asyncio.to_thread(stac_catalog.sync, store, settings)
