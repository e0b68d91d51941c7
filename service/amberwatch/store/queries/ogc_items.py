"""SQL of the OGC API Features items fast path (``amberwatch.publish.fastitems``): one page of a published view as
GeoJSON text built by PostGIS, and the count of a filtered query.

PostgreSQL writes the features (``json_build_object`` + ``ST_AsGeoJSON``), so a page goes from the database to
the client without being decoded and re-encoded in Python — what tipg does. Identifiers (view, columns) come from
the generated pygeoapi configuration and the reflected view, never from the request; values are bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine

# coordinates with 15 decimals: the doubles as stored (PostGIS' default of 9 would round them)
GEOJSON_DECIMALS = 15


@dataclass(frozen=True)
class ItemsView:
    """A published view as the fast path reads it."""

    schema: str
    table: str
    id_column: str
    geom_column: str
    properties: tuple[str, ...]  # every column but the id and the geometry, in the view's order


@dataclass(frozen=True)
class ItemsFilter:
    """``bbox`` (lon/lat, CRS84) and property equalities (``name = value``, the value cast by PostgreSQL)."""

    bbox: tuple[float, float, float, float] | None = None
    equals: tuple[tuple[str, str], ...] = ()

    @property
    def active(self) -> bool:
        return self.bbox is not None or bool(self.equals)


def _quote(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _literal(name: str) -> str:
    return name.replace("'", "''")


def _where(engine: Engine, view: ItemsView, where: ItemsFilter) -> tuple[str, dict[str, object]]:
    clauses: list[str] = []
    params: dict[str, object] = {}
    if where.bbox is not None:
        geom = _quote(engine, view.geom_column)
        clauses.append(f"ST_Intersects(ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326), {geom})")
        params.update(zip(("minx", "miny", "maxx", "maxy"), where.bbox, strict=True))
    for i, (name, value) in enumerate(where.equals):
        if name not in view.properties:
            raise ValueError(f"{name} is not a property of {view.table}")
        clauses.append(f"{_quote(engine, name)} = :p{i}")
        params[f"p{i}"] = value
    return (" where " + " and ".join(clauses)) if clauses else "", params


def _relation(engine: Engine, view: ItemsView) -> str:
    return f"{_quote(engine, view.schema)}.{_quote(engine, view.table)}"


def _features_sql(engine: Engine, view: ItemsView, page: str, extra: str = "") -> str:
    """``select <features as a JSON array text>, <their number>[, extra]`` over the rows of ``page`` (a relation
    expression with the view's columns), the features ordered by id as pygeoapi's provider orders them."""
    ident, geom = _quote(engine, view.id_column), _quote(engine, view.geom_column)
    props = ", ".join(f"'{_literal(name)}', p.{_quote(engine, name)}" for name in view.properties)
    return f"""
        select coalesce(t.features::text, '[]'), coalesce(json_array_length(t.features), 0){extra}
        from (select json_agg(json_build_object(
                         'type', 'Feature', 'id', p.{ident},
                         'geometry', ST_AsGeoJSON(p.{geom}, {GEOJSON_DECIMALS})::json,
                         'properties', json_build_object({props})) order by p.{ident}) as features
              from {page} p) t"""


def _columns(engine: Engine, view: ItemsView) -> str:
    return ", ".join(_quote(engine, c) for c in (view.id_column, view.geom_column, *view.properties))


def _page_row(engine: Engine, sql: str, params: dict[str, object], limit: int, offset: int) -> tuple:
    with engine.connect() as conn:
        return tuple(conn.execute(text(sql), {**params, "limit": limit, "offset": offset}).one())


def features_page(engine: Engine, view: ItemsView, where: ItemsFilter, limit: int, offset: int) -> tuple[str, int]:
    """The JSON array of one page of features (ordered by id, as pygeoapi's provider) and their number."""
    ident = _quote(engine, view.id_column)
    condition, params = _where(engine, view, where)
    page = (f"(select {_columns(engine, view)} from {_relation(engine, view)}{condition}"
            f" order by {ident} limit :limit offset :offset)")
    features, returned = _page_row(engine, _features_sql(engine, view, page), params, limit, offset)
    return str(features), int(returned)


def features_page_counted(engine: Engine, view: ItemsView, where: ItemsFilter, limit: int,
                          offset: int) -> tuple[str, int, int]:
    """:func:`features_page` plus the number of matches, in one statement for a spatial request: the matching ids
    are found once (one pass over the geometries) and both counted and paged; the page's columns are read by id."""
    if where.bbox is None:
        raise ValueError("one-pass paging and counting is for spatial requests")
    ident = _quote(engine, view.id_column)
    condition, params = _where(engine, view, where)
    relation = _relation(engine, view)
    sql = (f"with matched as materialized (select {ident} as id from {relation}{condition}),"
           f" page as (select {_columns(engine, view)} from {relation}"
           f" where {ident} in (select id from matched order by id limit :limit offset :offset))"
           + _features_sql(engine, view, "page", extra=", (select count(*) from matched)"))
    features, returned, matched = _page_row(engine, sql, params, limit, offset)
    return str(features), int(returned), int(matched)


def count_matched(engine: Engine, view: ItemsView, where: ItemsFilter) -> int:
    """The number of features matching a filtered request (never called without a filter: see the fast path)."""
    if not where.active:
        raise ValueError("an unfiltered request does not count the whole view")
    condition, params = _where(engine, view, where)
    sql = f"select count(*) from {_relation(engine, view)}{condition}"
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def property_columns(columns: Sequence[str], id_column: str, geom_column: str) -> tuple[str, ...]:
    """The properties of a feature: the view's columns without its id and geometry."""
    return tuple(c for c in columns if c not in (id_column, geom_column))
