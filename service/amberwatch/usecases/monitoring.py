"""Use cases of the monitoring read side: sites, their history, events (list and Atom feed), statistics, the
per-status summary, the sites export and loading the reference layers.

The web API and the CLI call these; the SQL is in ``amberwatch.store.queries``. Filters arrive validated
(``SiteFilter``/``EventFilter`` built by the caller); names like ``by``/``fmt`` are checked here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from amberwatch.errors import NotFoundError
from amberwatch.store.db import Store
from amberwatch.store.queries import events as event_queries
from amberwatch.store.queries import layers as layer_queries
from amberwatch.store.queries import sites as site_queries
from amberwatch.store.queries import stats as stat_queries
from amberwatch.store.queries.events import EventFilter
from amberwatch.store.queries.sites import BBox, SiteFilter
from amberwatch.track.export import write_site_rows
from amberwatch.track.feed import atom_feed
from amberwatch.track.layers import read_layer
from amberwatch.track.rules import STATUSES
from amberwatch.track.stats import check_by, check_format, stats_csv
from amberwatch.vector_out import vector_driver

__all__ = [  # the filter types, statuses and report checks are re-exported for the web and CLI layers
    "STATUSES", "BBox", "EventFilter", "Page", "SiteFilter", "SiteHistory", "check_by", "check_format",
    "compute_stats", "events_atom", "export_sites", "get_site", "list_events", "list_sites", "load_layer",
    "load_layer_files", "stats", "stats_csv", "stats_text", "track_summary", "write_sites",
]

log = logging.getLogger(__name__)
INT32_MAX = 2**31 - 1  # ids are PostgreSQL integers


@dataclass
class Page:
    """One page of rows and the number of rows matching the filter."""

    total: int
    rows: list[dict]


@dataclass
class SiteHistory:
    site: dict  # site columns, ``geometry`` and ``max_extent`` as GeoJSON text
    observations: list[dict]
    events: list[dict]


# -- sites and events ----------------------------------------------------------------------------
def list_sites(store: Store, f: SiteFilter) -> Page:
    """Live sites matching ``f`` (ordered by id)."""
    with store.session() as session:
        return Page(site_queries.count_sites(session, f), site_queries.list_sites(session, f))


def get_site(store: Store, site_id: int) -> SiteHistory:
    """One site (a merged one too) with its observations and events; NotFoundError when there is none."""
    if not 1 <= site_id <= INT32_MAX:
        raise NotFoundError(f"site {site_id} not found")
    with store.session() as session:
        site = site_queries.get_site(session, site_id)
        if site is None:
            raise NotFoundError(f"site {site_id} not found")
        return SiteHistory(site, site_queries.site_observations(session, site_id),
                           site_queries.site_events(session, site_id))


def list_events(store: Store, f: EventFilter) -> Page:
    """Events of live sites matching ``f``, oldest observation first."""
    with store.session() as session:
        return Page(event_queries.count_events(session, f), event_queries.list_events(session, f, "observed"))


def events_atom(store: Store, f: EventFilter, base_url: str, self_url: str) -> bytes:
    """The events matching ``f`` as an Atom feed, newest recorded first; entries link to ``{base_url}/api/sites``."""
    with store.session() as session:
        rows = event_queries.list_events(session, f, "recorded")
    return atom_feed(rows, base_url, self_url)


def track_summary(store: Store) -> dict[str, int]:
    """Number of live sites per status."""
    with store.session() as session:
        return site_queries.count_by_status(session)


# -- statistics ----------------------------------------------------------------------------------
def compute_stats(session: Session, by: str = "oblast") -> dict:
    """``{"by": ..., "groups": [...], "total": {...}}`` in the caller's transaction; areas in hectares (geodesic).

    ``by`` is oblast, raion, hromada or year (InputError otherwise)."""
    check_by(by)
    if by == "year":
        groups, total = stat_queries.stats_by_year(session)
    else:
        level = next(level for level in stat_queries.ADMIN_LEVELS if level == by)
        groups, total = stat_queries.stats_by_admin(session, level)
    return {"by": by, "groups": groups, "total": total}


def stats(store: Store, by: str = "oblast") -> dict:
    """:func:`compute_stats` in its own transaction (which checks ``by``)."""
    with store.session() as session:
        return compute_stats(session, by)


def stats_text(store: Store, by: str = "oblast", fmt: str = "json") -> str:
    """The statistics as CSV (groups, then ``total``) or indented JSON (ending with a newline)."""
    check_format(fmt)
    report = stats(store, by)
    if fmt == "csv":
        return stats_csv(report)
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


# -- export --------------------------------------------------------------------------------------
def write_sites(session: Session, out: Path) -> int:
    """Write every live site (current extent = last seen extent) to ``out`` (.gpkg/.geojson, EPSG:4326) in the
    caller's transaction; returns the number written."""
    vector_driver(out)
    fields, rows, wkb = site_queries.export_sites(session)
    return write_site_rows(out, fields, rows, wkb)


def export_sites(store: Store, out: Path) -> int:
    with store.session() as session:
        return write_sites(session, out)


# -- reference layers ----------------------------------------------------------------------------
def load_layer(session: Session, kind: str, paths: list[Path], name_field: str | None = None,
               code_field: str | None = None, category_field: str | None = None, source: str | None = None,
               layer: str | None = None) -> int:
    """Replace a layer in the caller's transaction; returns the number of features stored.

    Admin kinds replace the whole kind; protected areas replace the rows of the same ``source`` (default: the
    directory or file name), so several protected-area datasets can live side by side. Every site's admin
    position and protected areas are then recomputed.
    """
    read = read_layer(kind, paths, name_field, code_field, category_field, source, layer)
    if kind == "protected_area":
        layer_queries.replace_protected_areas(session, read.source, read.features)
    else:
        layer_queries.replace_admin_units(session, kind, read.source, read.features)
    layer_queries.assign_admin(session)
    log.info("loaded %d %s features from %s (source %s)", len(read.features), kind, ", ".join(map(str, read.files)),
             read.source)
    return len(read.features)


def load_layer_files(store: Store, kind: str, paths: list[Path], name_field: str | None = None,
                     code_field: str | None = None, category_field: str | None = None, source: str | None = None,
                     layer: str | None = None) -> int:
    """``load_layer`` in its own transaction (all or nothing)."""
    with store.session() as session:
        return load_layer(session, kind, paths, name_field, code_field, category_field, source, layer)
