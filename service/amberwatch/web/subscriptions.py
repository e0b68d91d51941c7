"""Alerts for an area: ``POST /api/subscriptions`` (anonymous allowed, rate-limited per address and per key),
the subscription's Atom feed, and unsubscribing with the token returned at creation (or an admin key)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from amberwatch.accounts import Principal
from amberwatch.errors import RateLimitedError
from amberwatch.usecases import alerts
from amberwatch.web.deps import SettingsDep, StoreDep, get_principal
from amberwatch.web.monitoring import base_url

router = APIRouter(prefix="/api/subscriptions", tags=["alerts"])
PUBLIC_WRITES = ("create_subscription", "unsubscribe")  # the only writes anonymous callers may make (docs)
SubscriptionId = Annotated[str, Path(pattern=r"^sub_[A-Za-z0-9_-]{16}$", description="The subscription's id.")]


class AdminArea(BaseModel):
    kind: Literal["oblast", "raion", "hromada"]
    name: str = Field(min_length=1, max_length=200)


class SubscriptionIn(BaseModel):
    webhook_url: str = Field(max_length=2000, description="http(s) URL the signed JSON is POSTed to.")
    area: dict[str, Any] | None = Field(
        None, description="A GeoJSON Polygon or MultiPolygon (or a Feature with one), longitude/latitude.")
    admin: AdminArea | None = Field(None, description="Or an admin unit loaded in the store, by kind and name.")
    statuses: list[str] | None = Field(None, description="Only events to these statuses (default: all).")


class SubscriptionOut(BaseModel):
    id: str
    secret: str = Field(description="HMAC-SHA256 key of X-AmberWatch-Signature; shown only now.")
    unsubscribe_token: str = Field(description="DELETE /api/subscriptions/{id}?token=...; shown only now.")
    area_kind: str
    area_name: str | None
    feed_url: str
    signature_header: str = alerts.SIGNATURE_HEADER


def _limiter(request: Request, settings: SettingsDep) -> tuple[MovingWindowRateLimiter, Any]:
    state = request.app.state
    if getattr(state, "subscription_limiter", None) is None:
        state.subscription_limiter = (MovingWindowRateLimiter(MemoryStorage()),
                                      parse(settings.rate_limit_subscriptions))
    limiter: tuple[MovingWindowRateLimiter, Any] = state.subscription_limiter
    return limiter


@router.post("", status_code=201, response_model=SubscriptionOut, operation_id="create_subscription",
             responses={400: {"description": "bad area or webhook URL"}, 429: {"description": "too many"}})
async def create_subscription(request: Request, body: SubscriptionIn, store: StoreDep, settings: SettingsDep,
                              principal: Annotated[Principal, Depends(get_principal)]) -> SubscriptionOut:
    """Subscribe a webhook to new events inside an area. Anyone may subscribe (no key needed); at most
    ``AMBERWATCH_RATE_LIMIT_SUBSCRIPTIONS`` per client address (and per key), 50 active per address. The secret
    and the unsubscribe token are in this answer only."""
    limiter, limit = _limiter(request, settings)
    client = request.client.host if request.client else "unknown"
    ident = f"key:{principal.key_id}" if not principal.anonymous else f"addr:{client}"
    if not limiter.hit(limit, "subscriptions", ident):
        reset, _ = limiter.get_window_stats(limit, "subscriptions", ident)
        raise RateLimitedError(f"too many new subscriptions: at most {limit}", max(1, int(reset - time.time())))
    area = body.area
    if area is not None and area.get("type") == "Feature":
        area = area.get("geometry")
    new = await run_in_threadpool(
        lambda: alerts.create_subscription(
            store, settings, webhook_url=body.webhook_url, area=area,
            admin_kind=body.admin.kind if body.admin else None, admin_name=body.admin.name if body.admin else None,
            statuses=body.statuses, created_by=None if principal.anonymous else principal.name,
            client=None if not principal.anonymous else client))
    return SubscriptionOut(id=new.id, secret=new.secret, unsubscribe_token=new.unsubscribe_token,
                           area_kind=new.area_kind, area_name=new.area_name,
                           feed_url=f"{base_url(request)}/api/subscriptions/{new.id}/events.atom")


@router.get("/{subscription_id}")
async def get_subscription(store: StoreDep, subscription_id: SubscriptionId) -> dict:
    """The subscription's area and filters (never its webhook URL or secret)."""
    return await run_in_threadpool(alerts.subscription_info, store, subscription_id)


@router.get("/{subscription_id}/events.atom", response_class=Response,
            responses={200: {"content": {"application/atom+xml": {}}, "description": "An Atom feed."}})
async def subscription_feed(request: Request, store: StoreDep, subscription_id: SubscriptionId) -> Response:
    """The newest events inside the subscription's area as Atom (the same entries as /api/events.atom)."""
    body = await run_in_threadpool(alerts.subscription_atom, store, subscription_id, base_url(request),
                                   str(request.url))
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.delete("/{subscription_id}", status_code=204, response_class=Response, operation_id="unsubscribe")
async def unsubscribe(store: StoreDep, subscription_id: SubscriptionId,
                      principal: Annotated[Principal, Depends(get_principal)],
                      token: Annotated[str | None, Query(max_length=200, description="The unsubscribe token.")] = None
                      ) -> Response:
    """End the subscription: with its unsubscribe token, or with an admin key."""
    await run_in_threadpool(alerts.unsubscribe, store, subscription_id, token, principal.may("admin"))
    return Response(status_code=204)
