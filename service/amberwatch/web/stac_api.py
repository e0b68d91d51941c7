"""The STAC API at /stac: stac-fastapi-pgstac (read-only: core, item search, filter, sort, fields, collection search)
on the ``pgstac`` schema of our own database (migration 0011). Loaded by ``usecases.stac_catalog``."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.engine import make_url

from amberwatch import __version__
from amberwatch.settings import Settings
from amberwatch.store.db import Store

MOUNT = "/stac"


def postgres_settings(store: Store):  # noqa: ANN201
    from stac_fastapi.pgstac.config import PostgresSettings

    url = make_url(store.url)
    return PostgresSettings(pguser=url.username or "postgres", pgpassword=url.password or "",
                            pghost=url.host or "127.0.0.1", pgport=url.port or 5432, pgdatabase=url.database or "",
                            db_min_conn_size=1, db_max_conn_size=4)


def build(settings: Settings) -> FastAPI:
    """The stac-fastapi-pgstac application (its database pools are opened by ``open_pools``)."""
    from contextlib import asynccontextmanager
    from functools import partial
    from typing import cast

    from stac_fastapi.pgstac.app import instantiate_api
    from stac_fastapi.pgstac.config import Settings as StacSettings
    from stac_fastapi.pgstac.core import CoreCrudClient
    from stac_fastapi.pgstac.models.extensions import Extensions

    @asynccontextmanager
    async def no_lifespan(_: FastAPI):  # noqa: ANN202  # the pools follow our app's lifespan (a mount has none)
        yield

    stac_settings = StacSettings(
        stac_fastapi_title="AmberWatch STAC API", stac_fastapi_version=__version__,
        stac_fastapi_description="AmberWatch scenes, detection runs and models (MLM) as STAC.",
        stac_fastapi_landing_id="amberwatch", enable_transactions_extensions=False,
        openapi_url="/api", docs_url="/api.html", enabled_extensions=None,
    )
    # the landing page's id comes from the client (its default: "stac-fastapi"), not from the settings above
    client = cast(type[CoreCrudClient], partial(CoreCrudClient, landing_page_id=stac_settings.stac_fastapi_landing_id))
    app = instantiate_api(extensions=Extensions(settings=stac_settings), lifespan=no_lifespan, settings=stac_settings,
                          client=client).app
    # links: a mount's path is not in request.base_url (Starlette keeps the outer root path there); stac-fastapi
    # adds state.router_prefix to it (set after the build: its routes stay relative to the mount)
    app.state.router_prefix = MOUNT
    return app


async def open_pools(stac_app: FastAPI, store: Store) -> None:
    from stac_fastapi.pgstac.db import connect_to_db

    await connect_to_db(stac_app, postgres_settings=postgres_settings(store))


async def close_pools(stac_app: FastAPI) -> None:
    from stac_fastapi.pgstac.db import close_db_connection

    await close_db_connection(stac_app)
