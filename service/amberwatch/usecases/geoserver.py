"""Use case: publish our layers on a GeoServer (``amberwatch geoserver publish`` and after each published run)."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from amberwatch.errors import AmberWatchError, InputError
from amberwatch.publish.connection import DbParams
from amberwatch.publish.geoserver import GeoServerPublisher, PublishReport
from amberwatch.settings import Settings
from amberwatch.store.db import Store

log = logging.getLogger(__name__)

WORKSPACE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")  # it goes into REST paths


def publisher(settings: Settings) -> GeoServerPublisher:
    if not settings.geoserver_url:
        raise InputError("no GeoServer configured: set AMBERWATCH_GEOSERVER_URL (e.g. http://host:8080/geoserver)")
    if not settings.geoserver_url.startswith(("http://", "https://")):
        raise InputError("AMBERWATCH_GEOSERVER_URL must be an http:// or https:// URL")
    if not WORKSPACE_NAME.fullmatch(settings.geoserver_workspace):
        raise InputError("AMBERWATCH_GEOSERVER_WORKSPACE must be a name of letters, digits, '_', '-' and '.', "
                         "starting with a letter or '_'")
    return GeoServerPublisher(settings.geoserver_url, settings.geoserver_user, settings.geoserver_password,
                              settings.geoserver_workspace, settings.ogc_config_dir / "styles")


def store_params(store: Store, settings: Settings) -> DbParams:
    """How GeoServer logs in to our database: the store's parameters, with the GeoServer-specific overrides."""
    db = DbParams.from_store(store)
    if settings.geoserver_db_user:
        db = replace(db, user=settings.geoserver_db_user, password=settings.geoserver_db_password)
    return replace(db, host=settings.geoserver_db_host or db.host)


def publish(store: Store, settings: Settings) -> PublishReport:
    """Create or update the workspace, PostGIS store, styles and layers on the configured GeoServer."""
    return publisher(settings).publish(store_params(store, settings))


def publish_after_run(store: Store, settings: Settings) -> None:
    """After a run is published: update GeoServer when one is configured. The run stays published if GeoServer
    fails (logged; ``amberwatch geoserver publish`` catches up)."""
    if not settings.geoserver_url:
        return
    try:
        publish(store, settings)
    except AmberWatchError as err:
        log.warning("GeoServer not updated: %s (run `amberwatch geoserver publish` when it is back)", err)
