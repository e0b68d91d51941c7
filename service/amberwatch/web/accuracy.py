"""``/api/accuracy``: the accuracy reports of each model version (Olofsson et al. 2014; docs/accuracy.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from amberwatch.usecases import accuracy
from amberwatch.web.deps import StoreDep

router = APIRouter(prefix="/api/accuracy", tags=["accuracy"])


@router.get("")
async def list_reports(store: StoreDep) -> JSONResponse:
    """Every stored accuracy report by model version (newest version first): overall accuracy, the area-adjusted
    mining area with its 95% confidence interval, and the link to the full report."""
    rows = await run_in_threadpool(accuracy.list_reports, store)
    return JSONResponse({"reports": [{**r, "href": f"/api/accuracy/{r['model_version']}?version={r['version']}"}
                                     for r in rows]})


@router.get("/{model_version}", responses={404: {"description": "no report for this model version"}})
async def get_report(store: StoreDep,
                     model_version: Annotated[str, Path(max_length=accuracy.MAX_MODEL_VERSION,
                                                        description="name@version, e.g. s2-unet@1.2.0")],
                     version: Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                                          description="Report version (default: latest).")] = None,
                     ) -> JSONResponse:
    """One report (the latest unless ``version`` is given): strata, the error matrix in sample counts and in
    estimated area proportions, user's / producer's / overall accuracy and the area-adjusted estimate of each
    class, every estimate with its standard error and 95% confidence interval (``low``, ``high``)."""
    return JSONResponse(await run_in_threadpool(accuracy.get_report, store, model_version, version))
