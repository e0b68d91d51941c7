"""Typed dependencies of the routers: the store, settings and queue of the app, the caller, a page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import procrastinate
from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from amberwatch.accounts import ANONYMOUS, Principal
from amberwatch.errors import PermissionDeniedError, UnauthorizedError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.usecases import keys as keys_uc

MAX_OFFSET = 10_000_000
MAX_ID = 2**31 - 1

bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey", bearerFormat="aw_…",
                    description="An API key made with `amberwatch keys create NAME --role ROLE`. "
                    "Reads are public; every state-changing request needs a key whose role allows it.")


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_queue(request: Request) -> procrastinate.App:
    queue: procrastinate.App = request.app.state.queue
    return queue


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
QueueDep = Annotated[procrastinate.App, Depends(get_queue)]


async def get_principal(request: Request, store: StoreDep,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Principal:
    """The caller: the key's owner, or the anonymous public when no key is sent. A bad key is a 401."""
    if credentials is None:
        return ANONYMOUS
    principal = await run_in_threadpool(keys_uc.authenticate, store, credentials.credentials)
    if principal is None:
        raise UnauthorizedError("unknown or revoked API key")
    request.state.principal = principal
    return principal


def require(permission: str) -> Callable[..., object]:
    """A dependency that lets only keys whose role has ``permission`` through (401 anonymous, 403 wrong role)."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.anonymous:
            raise UnauthorizedError(f"this needs an API key ({permission}): send 'Authorization: Bearer <key>'")
        if not principal.may(permission):
            raise PermissionDeniedError(f"the role {principal.role!r} of key {principal.name!r} may not {permission}")
        return principal

    return check


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


def page(limit: Annotated[int, Query(ge=1, le=1000, description="Items per page.")] = 100,
         offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page)]
