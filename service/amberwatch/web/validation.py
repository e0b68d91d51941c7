"""``/api/validation``: the volunteers' task queue and votes, the analysts' decisions, gold items and scores
(docs/validation.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from amberwatch import portal
from amberwatch.accounts import Principal
from amberwatch.usecases import validation as uc
from amberwatch.validation.items import NewItem
from amberwatch.web.deps import MAX_ID, PageDep, SettingsDep, StoreDep, require
from amberwatch.web.portal import HeavyDep, LangDep, common_context, page_response

router = APIRouter(prefix="/api/validation", tags=["validation"])
pages = APIRouter(include_in_schema=False)
ItemId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
Validator = Annotated[Principal, Depends(require("validate"))]
Analyst = Annotated[Principal, Depends(require("decide"))]
Reason = Literal["bare_field", "sand_road", "beach", "quarry", "clear_cut", "village", "cloud", "fish_pond", "other"]


class VoteIn(BaseModel):
    answer: Literal["mining", "not_mining", "unsure"]
    reason: Reason | None = Field(None, description="Required with not_mining, refused otherwise.")
    comment: str | None = Field(None, max_length=uc.MAX_COMMENT)


class DecisionIn(BaseModel):
    answer: Literal["mining", "not_mining"]
    reason: Reason | None = Field(None, description="Required with not_mining, refused otherwise.")
    note: str | None = Field(None, max_length=uc.MAX_COMMENT)


class GoldIn(BaseModel):
    kind: Literal["detection", "site", "location"]
    detection_id: int | None = Field(None, ge=1, le=2**63 - 1)
    site_id: int | None = Field(None, ge=1, le=MAX_ID)
    geom_wkt: str | None = Field(None, max_length=100_000, description="EPSG:4326 WKT of a location item.")
    expected_answer: Literal["mining", "not_mining"]


class EnqueueIn(BaseModel):
    threshold: float | None = Field(None, ge=0, le=1, description="The threshold on confidence; default: each "
                                    "run's own decision rule.")
    margin: float | None = Field(None, ge=0, le=1, description="Default: AMBERWATCH_VALIDATION_UNCERTAIN_MARGIN.")


@router.get("/next", responses={204: {"description": "Nothing left for this volunteer."}})
async def next_task(store: StoreDep, principal: Validator) -> Response:
    """The next task for this volunteer, never one they voted on: new sites first, then detections whose
    confidence is closest to the threshold, then the random accuracy sample. 204 when there is none."""
    task = await run_in_threadpool(uc.next_task, store, principal)
    return Response(status_code=204) if task is None else JSONResponse(task)


@router.post("/items/{item_id}/votes", status_code=201)
async def post_vote(item_id: ItemId, body: VoteIn, store: StoreDep, principal: Validator) -> dict[str, Any]:
    """One vote: mining / not_mining (with a reason) / unsure. 409 on a second vote of the same volunteer or when
    the item needs no more votes. Answers the item's status after the vote."""
    return await run_in_threadpool(uc.vote, store, principal, item_id, body.answer, body.reason, body.comment)


@router.get("/items/{item_id}/chips/{which}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "A true-colour PNG."}})
async def item_chip(item_id: ItemId, which: Annotated[str, PathParam(description="before or after")],
                    store: StoreDep, slot: HeavyDep) -> Response:
    """Public: the item in true colour in the earliest (``before``) or latest (``after``) stored scene covering
    it, outlined (as the site chips of the portal). No answer or source is shown."""
    async with slot:
        png = await run_in_threadpool(uc.item_chip_png, store, item_id, which)
    return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=300"})


@router.post("/items/{item_id}/decision")
async def post_decision(item_id: ItemId, body: DecisionIn, store: StoreDep, principal: Analyst) -> dict[str, Any]:
    """The analyst's final answer on an item (the audit step for disputed items)."""
    return await run_in_threadpool(uc.decide, store, principal, item_id, body.answer, body.reason, body.note)


@router.get("/items/{item_id}")
async def get_item(item_id: ItemId, store: StoreDep, _: Analyst) -> dict[str, Any]:
    """An item with its source, votes and state (analysts)."""
    return await run_in_threadpool(uc.get_item, store, item_id)


@router.get("/disputed")
async def disputed(store: StoreDep, _: Analyst, page: PageDep) -> list[dict[str, Any]]:
    """The expert queue: items whose votes did not agree, oldest first."""
    return await run_in_threadpool(uc.expert_queue, store, page.limit, page.offset)


@router.get("/volunteers")
async def volunteers(store: StoreDep, _: Analyst) -> list[dict[str, Any]]:
    """Each volunteer's votes and reliability (share right on gold items)."""
    return await run_in_threadpool(uc.volunteers, store)


@router.post("/gold", status_code=201)
async def post_gold(body: GoldIn, store: StoreDep, settings: SettingsDep, _: Analyst) -> dict[str, Any]:
    """Add a gold item: something whose answer is known, mixed into the queue to score volunteers."""
    item = NewItem(body.kind, "gold", detection_id=body.detection_id, site_id=body.site_id, geom_wkt=body.geom_wkt,
                   expected_answer=body.expected_answer)
    ids = await run_in_threadpool(uc.add_items, store, settings, [item])
    return {"id": ids[0]}


@router.post("/enqueue")
async def post_enqueue(store: StoreDep, settings: SettingsDep, _: Analyst,
                       body: EnqueueIn | None = None) -> dict[str, int]:
    """Queue the new sites and the uncertain detections that have no item yet."""
    body = body or EnqueueIn()
    return await run_in_threadpool(lambda: uc.enqueue(store, settings, threshold=body.threshold, margin=body.margin))


@router.get("/sites/{site_id}")
async def site_validation(site_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], store: StoreDep) -> dict[str, Any]:
    """Public: a site's validation status, its items' states and its field checks (as on the site page)."""
    return await run_in_threadpool(uc.site_validation, store, site_id)


# -- the volunteers' page ---------------------------------------------------------------------------------------
@pages.get("/validate")
def validate_root() -> RedirectResponse:
    return RedirectResponse("/validate/", status_code=308)


@pages.get("/validate/", response_class=HTMLResponse)
def validate_page(request: Request, lang: LangDep) -> HTMLResponse:
    """The volunteers' page (the portal's header, uk/en); the validator's key is entered in the page."""
    return page_response(portal.render("validate.html", lang.code, **common_context(request, lang)), lang)
