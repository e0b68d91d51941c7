"""``/api/accuracy``: the accuracy reports of each model version (Olofsson et al. 2014; docs/accuracy.md); admins
draw a sample (``POST /api/accuracy/designs``) and compute a report (``POST /api/accuracy/{model_version}/reports``)
as the CLI does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from amberwatch.accounts import Principal
from amberwatch.usecases import accuracy
from amberwatch.web.deps import SettingsDep, StoreDep, require

router = APIRouter(prefix="/api/accuracy", tags=["accuracy"])
Admin = Annotated[Principal, Depends(require("admin"))]
ModelVersionPath = Annotated[str, Path(max_length=accuracy.MAX_MODEL_VERSION,
                                       description="name@version, e.g. s2-unet@1.2.0")]


class DesignIn(BaseModel):
    """A stratified random sample of a model version's map (``amberwatch accuracy design``)."""

    model_config = ConfigDict(extra="forbid")
    model_version: str = Field(min_length=1, max_length=accuracy.MAX_MODEL_VERSION)
    n_total: int = Field(500, ge=2, le=accuracy.MAX_SAMPLE, description="Sample size over all strata.")
    min_per_stratum: int = Field(50, ge=2, le=accuracy.MAX_SAMPLE, description="Points for each rare stratum.")
    seed: int | None = Field(None, ge=1, le=accuracy.MAX_SEED, description="Default: a random one, recorded.")
    sizes: dict[str, int] | None = Field(None, max_length=200,
                                         description="Fixed size of every stratum ('Rivne / mining': 60, ...).")


@router.get("")
async def list_reports(store: StoreDep) -> JSONResponse:
    """Every stored accuracy report by model version (newest version first): overall accuracy, the area-adjusted
    mining area with its 95% confidence interval, and the link to the full report."""
    rows = await run_in_threadpool(accuracy.list_reports, store)
    return JSONResponse({"reports": [{**r, "href": f"/api/accuracy/{r['model_version']}?version={r['version']}"}
                                     for r in rows]})


@router.get("/{model_version}", responses={404: {"description": "no report for this model version"}})
async def get_report(store: StoreDep,
                     model_version: ModelVersionPath,
                     version: Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                                          description="Report version (default: latest).")] = None,
                     ) -> JSONResponse:
    """One report (the latest unless ``version`` is given): strata, the error matrix in sample counts and in
    estimated area proportions, user's / producer's / overall accuracy and the area-adjusted estimate of each
    class, every estimate with its standard error and 95% confidence interval (``low``, ``high``)."""
    return JSONResponse(await run_in_threadpool(accuracy.get_report, store, model_version, version))


@router.post("/designs", status_code=201)
async def post_design(body: DesignIn, store: StoreDep, settings: SettingsDep, principal: Admin) -> JSONResponse:
    """Draw a stratified random sample (mining / not mining in each oblast) and put it in the validation queue
    (source ``accuracy_sample``). Admins only."""
    result = await run_in_threadpool(
        lambda: accuracy.design(store, body.model_version, n_total=body.n_total, minimum=body.min_per_stratum,
                                seed=body.seed, sizes=body.sizes, created_by=principal.name,
                                votes_needed=settings.validation_votes))
    return JSONResponse(result, status_code=201)


@router.post("/{model_version}/reports", status_code=201)
async def post_report(model_version: ModelVersionPath, store: StoreDep, principal: Admin) -> JSONResponse:
    """Estimate from the reference answers known now and store the result as the next report version. 400 while
    a stratum has fewer than 2 answers (the message gives the counts). Admins only."""
    result = await run_in_threadpool(accuracy.report, store, model_version, principal.name)
    return JSONResponse(result, status_code=201)
