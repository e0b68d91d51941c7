"""What is published, read from the database: published runs, their extents and dates, and the count, extent and
dates of the monitoring layers (sites, events, site history, admin units, protected areas).

Also keeps the views the layers read (per run ``run_<id>``, one per admin kind, ``mapped_site_history``: see
:mod:`amberwatch.store.queries.catalog`, which holds their DDL and every query of this module). A migration that
drops or changes ``admin_units``, ``site_history`` or ``published_detections`` must drop these first
(:func:`drop_layer_views`, :func:`drop_run_views`) or use CASCADE; the next refresh re-creates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine

from amberwatch.store.queries import catalog as q
from amberwatch.store.queries.catalog import ADMIN_VIEWS, HISTORY_VIEW, LAYER_SOURCES, REPORTS_VIEW, run_view_name

__all__ = [
    "ADMIN_VIEWS", "HISTORY_VIEW", "LAYER_SOURCES", "REGION_EXTENT", "Catalog", "Extent", "PublishedRun",
    "SourceStats", "drop_layer_views", "drop_run_views", "ensure_layer_views", "ensure_run_views", "read_catalog",
    "run_view_name",
]

# North-west Ukraine (Volyn, Rivne, Zhytomyr): the map extent, and a layer's extent while it is empty.
REGION_EXTENT: tuple[float, float, float, float] = (23.5, 49.5, 31.5, 52.5)

Extent = tuple[float, float, float, float]


@dataclass(frozen=True)
class PublishedRun:
    id: int
    model_version: str | None
    published_at: datetime | None
    n_detections: int
    observed_from: datetime | None
    observed_to: datetime | None
    dates: tuple[str, ...]
    extent: Extent | None

    @property
    def layer_name(self) -> str:
        return run_view_name(self.id)


@dataclass(frozen=True)
class SourceStats:
    """Rows, extent and (for layers with a time column) the time span and distinct UTC dates of one layer source."""

    count: int = 0
    extent: Extent | None = None
    first: datetime | None = None
    last: datetime | None = None
    dates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    runs: tuple[PublishedRun, ...]
    dates: tuple[str, ...]  # distinct UTC dates (YYYY-MM-DD) of all published detections
    detections_extent: Extent | None
    n_detections: int
    sites_extent: Extent | None
    n_sites: int
    sites_from: datetime | None
    sites_to: datetime | None
    sites_first_seen: SourceStats = SourceStats()  # time = first_seen (the sites' WMS TIME)
    events: SourceStats = SourceStats()
    history: SourceStats = SourceStats()
    admin: dict[str, SourceStats] = field(default_factory=dict)  # kind -> stats
    protected_areas: SourceStats = SourceStats()
    reports: SourceStats = SourceStats()  # approved crowd reports (time = reported_at)
    column_types: dict[str, dict[str, str]] = field(default_factory=dict)  # relation -> column -> PostgreSQL type


def _extent(row) -> Extent | None:
    if row is None or row[0] is None:
        return None
    minx, miny, maxx, maxy = (float(v) for v in row)
    pad = 1e-4  # a single point or a line still gets an area (WMS clients zoom to it)
    if maxx - minx < pad:
        minx, maxx = minx - pad, maxx + pad
    if maxy - miny < pad:
        miny, maxy = miny - pad, maxy + pad
    return (minx, miny, maxx, maxy)


def _union(extents: list[Extent]) -> Extent | None:
    if not extents:
        return None
    return (
        min(e[0] for e in extents),
        min(e[1] for e in extents),
        max(e[2] for e in extents),
        max(e[3] for e in extents),
    )


def _stats(conn: Connection, source: str, time_column: str | None = None) -> SourceStats:
    n, first, last, dates, ext = q.source_stats(conn, source, time_column)
    return SourceStats(n, _extent(ext), first, last, tuple(sorted(dates)))


def read_catalog(engine: Engine) -> Catalog:
    """One consistent snapshot (REPEATABLE READ) of the published runs and the monitoring layers."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        runs = tuple(
            PublishedRun(
                id=row[0],
                model_version=row[1],
                published_at=row[2],
                n_detections=int(row[3]),
                observed_from=row[4],
                observed_to=row[5],
                dates=tuple(sorted(row[6])),
                extent=_extent(row[7:11]),
            )
            for row in q.published_runs(conn)
        )
        n_sites, sites_from, sites_to, ext = q.sites_summary(conn)
        first_seen = _stats(conn, "mining_sites", "first_seen")
        events = _stats(conn, "site_events", "observed_at")
        history = _stats(conn, HISTORY_VIEW, "observed_at")
        admin = {kind: _stats(conn, view) for kind, view in ADMIN_VIEWS.items()}
        protected = _stats(conn, "protected_areas")
        reports = _stats(conn, REPORTS_VIEW, "reported_at")
        column_types = q.column_types(conn, [*LAYER_SOURCES, *ADMIN_VIEWS.values()])
    dates = tuple(sorted({d for run in runs for d in run.dates}))
    return Catalog(
        runs=runs,
        dates=dates,
        detections_extent=_union([r.extent for r in runs if r.extent]),
        n_detections=sum(r.n_detections for r in runs),
        sites_extent=_extent(ext),
        n_sites=int(n_sites),
        sites_from=sites_from,
        sites_to=sites_to,
        sites_first_seen=first_seen,
        events=events,
        history=history,
        admin=admin,
        protected_areas=protected,
        reports=reports,
        column_types=column_types,
    )


def ensure_layer_views(engine: Engine) -> list[str]:
    """Create the admin-kind views and ``mapped_site_history``; re-create one whose columns no longer match its
    source (after a migration). Views already right are left alone (no lock on live views)."""
    with engine.begin() as conn:
        return q.ensure_layer_views(conn)


def drop_layer_views(engine: Engine) -> list[str]:
    """Drop the admin-kind views and ``mapped_site_history`` (the next refresh re-creates them)."""
    with engine.begin() as conn:
        return q.drop_layer_views(conn)


def ensure_run_views(engine: Engine, run_ids: list[int]) -> list[str]:
    """Create the missing views ``run_<id>``; re-create those whose columns no longer match
    ``published_detections`` (after a migration). Views already right are left alone (no lock on live views)."""
    with engine.begin() as conn:
        return q.ensure_run_views(conn, run_ids)


def drop_run_views(engine: Engine, run_ids: list[int] | None = None) -> list[str]:
    """Drop the views ``run_<id>`` (all of them when ``run_ids`` is None); the next refresh re-creates what is
    published. A migration that drops ``published_detections`` must drop these first (or use CASCADE)."""
    with engine.begin() as conn:
        return q.drop_run_views(conn, run_ids)
