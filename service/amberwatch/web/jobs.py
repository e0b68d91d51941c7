"""``POST /api/track`` (a queued tracking job) and ``/api/jobs``: the state and progress of long operations."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam

from amberwatch.accounts import Principal
from amberwatch.store.models import Job
from amberwatch.usecases import tracking as tracking_uc
from amberwatch.web.deps import MAX_ID, PageDep, QueueDep, SettingsDep, StoreDep, require
from amberwatch.web.schemas import JobOut, TrackIn

router = APIRouter(prefix="/api", tags=["jobs"])
JobState = Literal["queued", "running", "succeeded", "failed"]


@router.post("/track", response_model=JobOut, status_code=202, tags=["monitoring"])
async def post_track(body: TrackIn, store: StoreDep, settings: SettingsDep, queue: QueueDep,
                     principal: Annotated[Principal, Depends(require("track"))]) -> Job:
    """Queue a tracking job: ingest server-side scenes (under the allowed roots), detect them in date order and
    update the sites. Follow it at ``GET /api/jobs/{id}``; its ``result`` lists the runs and the sites per status."""
    return await tracking_uc.queue_track(queue, store, settings, body.paths, body.model, principal)


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(store: StoreDep, page: PageDep,
              state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None) -> list[Job]:
    return tracking_uc.list_jobs(store, state, page.limit, page.offset)


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(store: StoreDep, job_id: Annotated[int, PathParam(ge=1, le=MAX_ID)]) -> Job:
    return tracking_uc.get_job(store, job_id)
