"""What is published, read from the database: published runs, their extents and dates, and the count, extent and
dates of the monitoring layers (sites, events, site history, admin units, protected areas).

Also creates the views the layers read: per run ``run_<id>`` (over ``published_detections``, so a run that leaves
the ``published`` state empties its view in the same transaction that unpublishes it), one view per admin kind
(``admin_oblasts``, ``admin_raions``, ``admin_hromadas``) and ``mapped_site_history`` (the observations that have a
geometry). A migration that drops or changes ``admin_units`` or ``site_history`` must drop these first
(:func:`drop_layer_views`) or use CASCADE; the next refresh re-creates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, text

# North-west Ukraine (Volyn, Rivne, Zhytomyr): the map extent, and a layer's extent while it is empty.
REGION_EXTENT: tuple[float, float, float, float] = (23.5, 49.5, 31.5, 52.5)

ADMIN_VIEWS: dict[str, str] = {"oblast": "admin_oblasts", "raion": "admin_raions", "hromada": "admin_hromadas"}
HISTORY_VIEW = "mapped_site_history"

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
    column_types: dict[str, dict[str, str]] = field(default_factory=dict)  # relation -> column -> PostgreSQL type


def run_view_name(run_id: int) -> str:
    return f"run_{int(run_id)}"


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


_RUNS_SQL = text(
    """
    select r.id, case when m.id is null then null else m.name || '@' || m.version end,
           r.published_at, count(d.id), min(d.observed_at), max(d.observed_at),
           coalesce(array_agg(distinct to_char(d.observed_at at time zone 'UTC', 'YYYY-MM-DD'))
                    filter (where d.id is not null), '{}'),
           st_xmin(st_extent(d.geom)), st_ymin(st_extent(d.geom)),
           st_xmax(st_extent(d.geom)), st_ymax(st_extent(d.geom))
    from runs r
    left join model_versions m on m.id = r.model_version_id
    left join detections d on d.run_id = r.id
    where r.state = 'published'
    group by r.id, m.id
    order by r.id
    """
)

_SITES_SQL = text(
    """
    select count(*), min(first_seen), max(last_seen),
           st_xmin(st_extent(geom)), st_ymin(st_extent(geom)), st_xmax(st_extent(geom)), st_ymax(st_extent(geom))
    from mining_sites
    """
)


def _stats_sql(source: str, time_column: str | None = None) -> str:
    """count, extent and, with ``time_column``, min/max and the distinct UTC dates of one source."""
    times = (
        f"min({time_column}), max({time_column}), "
        f"coalesce(array_agg(distinct to_char({time_column} at time zone 'UTC', 'YYYY-MM-DD')), '{{}}')"
        if time_column else "null, null, '{}'::text[]"
    )
    return (
        f"select count(*), st_xmin(st_extent(geom)), st_ymin(st_extent(geom)), st_xmax(st_extent(geom)), "
        f"st_ymax(st_extent(geom)), {times} from {source}"
    )


def _stats(conn: Connection, source: str, time_column: str | None = None) -> SourceStats:
    n, *rest = conn.execute(text(_stats_sql(source, time_column))).one()
    ext, first, last, dates = rest[:4], rest[4], rest[5], rest[6]
    return SourceStats(int(n), _extent(ext), first, last, tuple(sorted(dates)))


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
            for row in conn.execute(_RUNS_SQL)
        )
        n_sites, sites_from, sites_to, *ext = conn.execute(_SITES_SQL).one()
        first_seen = _stats(conn, "mining_sites", "first_seen")
        events = _stats(conn, "site_events", "observed_at")
        history = _stats(conn, HISTORY_VIEW, "observed_at")
        admin = {kind: _stats(conn, view) for kind, view in ADMIN_VIEWS.items()}
        protected = _stats(conn, "protected_areas")
        column_types = _column_types(conn, [*LAYER_SOURCES, *ADMIN_VIEWS.values()])
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
        column_types=column_types,
    )


# The relations the layers read (besides the views created here); run_<id> views have the columns of
# published_detections.
LAYER_SOURCES = ("mining_sites", "published_detections", "site_events", HISTORY_VIEW, "protected_areas")


def _column_types(conn: Connection, relations: list[str]) -> dict[str, dict[str, str]]:
    rows = conn.execute(
        text(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = current_schema() and table_name = any(:names) order by ordinal_position"
        ),
        {"names": list(relations)},
    )
    out: dict[str, dict[str, str]] = {}
    for relation, column, data_type in rows:
        out.setdefault(relation, {})[column] = data_type
    return out


_LAYER_VIEWS: dict[str, tuple[str, str]] = {
    # view: (the relation it reads, its definition)
    **{
        view: ("admin_units", f"select * from admin_units where kind = '{kind}'")
        for kind, view in ADMIN_VIEWS.items()
    },
    HISTORY_VIEW: ("site_history", "select * from site_history where geom is not null"),
}
_LAYER_VIEW_COMMENTS = {
    **{view: f"AmberWatch OGC layer {view.removeprefix('admin_')}: admin_units of kind {kind}"
       for kind, view in ADMIN_VIEWS.items()},
    HISTORY_VIEW: "AmberWatch OGC layer site_history: the site observations that have a geometry",
}


def ensure_layer_views(engine: Engine) -> list[str]:
    """Create the admin-kind views and ``mapped_site_history``; re-create one whose columns no longer match its
    source (after a migration). Views already right are left alone (no lock on live views)."""
    created: list[str] = []
    with engine.begin() as conn:
        conn.execute(text("select pg_advisory_xact_lock(hashtext('amberwatch.publish.layer_views'))"))
        for view, (source, definition) in _LAYER_VIEWS.items():
            have = _columns(conn, view)
            if have == _columns(conn, source):
                continue
            if have:
                conn.execute(text(f"drop view {view}"))
            conn.execute(text(f"create view {view} as {definition}"))
            conn.execute(text(f"comment on view {view} is '{_LAYER_VIEW_COMMENTS[view]}'"))
            created.append(view)
    return created


def drop_layer_views(engine: Engine) -> list[str]:
    """Drop the admin-kind views and ``mapped_site_history`` (the next refresh re-creates them)."""
    with engine.begin() as conn:
        for view in _LAYER_VIEWS:
            conn.execute(text(f"drop view if exists {view}"))
    return list(_LAYER_VIEWS)


def ensure_run_views(engine: Engine, run_ids: list[int]) -> list[str]:
    """Create the missing views ``run_<id>``; re-create those whose columns no longer match
    ``published_detections`` (after a migration). Views already right are left alone (no lock on live views)."""
    created: list[str] = []
    with engine.begin() as conn:
        conn.execute(text("select pg_advisory_xact_lock(hashtext('amberwatch.publish.run_views'))"))
        wanted = _columns(conn, "published_detections")
        for run_id in run_ids:
            name = run_view_name(run_id)
            have = _columns(conn, name)
            if have == wanted:
                continue
            if have:
                conn.execute(text(f"drop view {name}"))
            conn.execute(
                text(f"create view {name} as select * from published_detections where run_id = {int(run_id)}")
            )
            conn.execute(
                text(f"comment on view {name} is 'AmberWatch: detections of run {int(run_id)} while it is published'")
            )
            created.append(name)
    return created


def drop_run_views(engine: Engine, run_ids: list[int] | None = None) -> list[str]:
    """Drop the views ``run_<id>`` (all of them when ``run_ids`` is None); the next refresh re-creates what is
    published. A migration that drops ``published_detections`` must drop these first (or use CASCADE)."""
    with engine.begin() as conn:
        names = _run_views(conn) if run_ids is None else [run_view_name(i) for i in run_ids]
        for name in names:
            conn.execute(text(f"drop view if exists {name}"))
    return names


def _columns(conn: Connection, view: str) -> list[str]:
    rows = conn.execute(
        text(
            "select column_name from information_schema.columns where table_schema = current_schema() "
            "and table_name = :name order by ordinal_position"
        ),
        {"name": view},
    )
    return [r[0] for r in rows]


def _run_views(conn: Connection) -> list[str]:
    rows = conn.execute(
        text("select viewname from pg_views where schemaname = current_schema() and viewname ~ '^run_[0-9]+$'")
    )
    return [r[0] for r in rows]
