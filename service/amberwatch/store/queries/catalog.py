"""SQL of the published catalog: what the OGC layers read (published runs, their extents and dates, count, extent
and dates of the monitoring layers, column types) and the views created for them.

The views: per run ``run_<id>`` (over ``published_detections``, so a run that leaves the ``published`` state empties
its view in the same transaction that unpublishes it), one view per admin kind (``admin_oblasts``, ``admin_raions``,
``admin_hromadas``) and ``mapped_site_history`` (the observations that have a geometry). A migration that drops or
changes ``admin_units`` or ``site_history`` must drop these first (:func:`drop_layer_views`) or use CASCADE; the next
refresh re-creates them.

Functions take an open ``Connection`` (the caller owns the transaction: one REPEATABLE READ snapshot for the reads,
one transaction per view change) and return plain tuples.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

ADMIN_VIEWS: dict[str, str] = {"oblast": "admin_oblasts", "raion": "admin_raions", "hromada": "admin_hromadas"}
HISTORY_VIEW = "mapped_site_history"
REPORTS_VIEW = "public_reports"  # approved crowd reports without personal data (migration 0008)

# The relations the layers read (besides the views created here); run_<id> views have the columns of
# published_detections.
LAYER_SOURCES = ("mining_sites", "published_detections", "site_events", HISTORY_VIEW, "protected_areas",
                 REPORTS_VIEW)

# One row per published run: id, model version (name@version or None), published_at, number of detections, first
# and last observed_at, distinct UTC dates (YYYY-MM-DD) of its detections, xmin, ymin, xmax, ymax (None when empty).
PublishedRunRow = tuple[int, str | None, datetime | None, int, datetime | None, datetime | None, list[str],
                        float | None, float | None, float | None, float | None]
# count, min/max of the time column (None without one), distinct UTC dates, xmin, ymin, xmax, ymax
SourceStatsRow = tuple[int, datetime | None, datetime | None, list[str], tuple[Any, Any, Any, Any]]


def run_view_name(run_id: int) -> str:
    return f"run_{int(run_id)}"


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


def published_runs(conn: Connection) -> list[PublishedRunRow]:
    """Every published run by id (see :data:`PublishedRunRow`)."""
    return [tuple(row) for row in conn.execute(_RUNS_SQL)]


def sites_summary(conn: Connection) -> tuple[int, datetime | None, datetime | None, tuple[Any, Any, Any, Any]]:
    """The ``mining_sites`` layer: count, first first_seen, last last_seen, (xmin, ymin, xmax, ymax)."""
    n, first, last, *ext = conn.execute(_SITES_SQL).one()
    return int(n), first, last, (ext[0], ext[1], ext[2], ext[3])


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


def source_stats(conn: Connection, source: str, time_column: str | None = None) -> SourceStatsRow:
    """Rows, extent and (with ``time_column``) the time span and distinct UTC dates of one layer source (a table
    or view name from this module, never user input)."""
    n, *rest = conn.execute(text(_stats_sql(source, time_column))).one()
    return int(n), rest[4], rest[5], list(rest[6]), (rest[0], rest[1], rest[2], rest[3])


def column_types(conn: Connection, relations: list[str]) -> dict[str, dict[str, str]]:
    """relation -> column -> PostgreSQL type, in column order (relations of the current schema)."""
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


# -- the layer views -----------------------------------------------------------------------------
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


def ensure_layer_views(conn: Connection) -> list[str]:
    """Create the admin-kind views and ``mapped_site_history``; re-create one whose columns no longer match its
    source (after a migration). Views already right are left alone (no lock on live views). Serialised with other
    callers until the transaction ends."""
    created: list[str] = []
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


def drop_layer_views(conn: Connection) -> list[str]:
    """Drop the admin-kind views and ``mapped_site_history`` (the next refresh re-creates them)."""
    for view in _LAYER_VIEWS:
        conn.execute(text(f"drop view if exists {view}"))
    return list(_LAYER_VIEWS)


def ensure_run_views(conn: Connection, run_ids: list[int]) -> list[str]:
    """Create the missing views ``run_<id>``; re-create those whose columns no longer match
    ``published_detections`` (after a migration). Views already right are left alone (no lock on live views).
    Serialised with other callers until the transaction ends."""
    created: list[str] = []
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


def drop_run_views(conn: Connection, run_ids: list[int] | None = None) -> list[str]:
    """Drop the views ``run_<id>`` (all of them when ``run_ids`` is None); the next refresh re-creates what is
    published. A migration that drops ``published_detections`` must drop these first (or use CASCADE)."""
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


def postgis_version(conn: Connection) -> str | None:
    """The PostGIS library version (the health check's round trip to the database)."""
    value = conn.execute(text("select postgis_lib_version()")).scalar()
    return None if value is None else str(value)


# One row per published run for the versions listing (/api/versions), newest first, without touching detections:
# id, model version (name@version or None), published_at, n_detections (as stored on the run), scene acquisition
# time (None without a scene).
VersionRow = tuple[int, str | None, datetime | None, int, datetime | None]

_VERSIONS_SQL = text(
    """
    select r.id, case when m.id is null then null else m.name || '@' || m.version end, r.published_at,
           coalesce(r.n_detections, 0),
           (select max(s.acquired) from run_scenes rs join scenes s on s.id = rs.scene_id where rs.run_id = r.id)
    from runs r
    left join model_versions m on m.id = r.model_version_id
    where r.state = 'published'
    order by r.id desc
    limit :limit offset :offset
    """
)


def published_versions(conn: Connection, limit: int = 100, offset: int = 0) -> list[VersionRow]:
    """Published runs, newest first (see :data:`VersionRow`): cheap, reads ``runs`` and the run's scenes only."""
    return [tuple(row) for row in conn.execute(_VERSIONS_SQL, {"limit": limit, "offset": offset})]


def count_published_runs(conn: Connection) -> int:
    return int(conn.execute(text("select count(*) from runs where state = 'published'")).scalar_one())
