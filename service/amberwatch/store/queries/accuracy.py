"""SQL of the accuracy assessment: strata (mining / not mining by oblast), the stratified random sample, the
reference answers of the sample and the stored reports (see amberwatch.accuracy and docs/accuracy.md)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from amberwatch.area import sql_area_ha

EQUAL_AREA_SRID = 3035  # ETRS89 / LAEA Europe: points are drawn uniformly by area, not by degree


def published_detection_count(session: Session, model_version: str) -> int:
    return int(session.scalar(text("select count(*) from published_detections where model_version = :mv"),
                              {"mv": model_version}) or 0)


def published_model_versions(session: Session) -> list[str]:
    return list(session.scalars(text(
        "select distinct model_version from published_detections where model_version is not null order by 1")))


def oblast_count(session: Session) -> int:
    return int(session.scalar(text("select count(*) from admin_units where kind = 'oblast'")) or 0)


def create_design(session: Session, model_version: str, seed: int, n_total: int, parameters: dict,
                  created_by: str | None) -> int:
    return int(session.scalar(text(
        "insert into accuracy_designs (model_version, seed, n_total, parameters, total_area_ha, created_by)"
        " values (:mv, :seed, :n, cast(:p as jsonb), 0, :by) returning id"),
        {"mv": model_version, "seed": seed, "n": n_total, "p": json.dumps(parameters), "by": created_by}))


_STRATA_SQL = f"""
with mining as (
    select ST_UnaryUnion(ST_Collect(ST_MakeValid(geom))) as g from published_detections where model_version = :mv
), oblasts as (
    select name, ST_UnaryUnion(ST_Collect(ST_MakeValid(geom))) as g from admin_units where kind = 'oblast'
    group by name
), parts as (
    select o.name as oblast, 'mining' as map_class,
           ST_CollectionExtract(ST_Intersection(o.g, coalesce(m.g, 'SRID=4326;POLYGON EMPTY')), 3) as g
    from oblasts o cross join mining m
    union all
    select o.name, 'not_mining',
           ST_CollectionExtract(case when m.g is null then o.g else ST_Difference(o.g, m.g) end, 3)
    from oblasts o cross join mining m
)
insert into accuracy_strata (design_id, name, oblast, map_class, area_ha, n_planned, geom)
select :design, oblast || ' / ' || map_class, oblast, map_class, coalesce({sql_area_ha("g")}, 0), 0,
       case when ST_IsEmpty(g) then null else ST_Multi(g) end
from parts
order by oblast, map_class
returning id, name, oblast, map_class, area_ha
"""


def create_strata(session: Session, design_id: int, model_version: str) -> list[dict]:
    """Mining (the union of the model version's published detections) and not mining (the rest) inside each
    oblast, stored with their geodesic area (ha); ordered by oblast, then class."""
    rows = session.execute(text(_STRATA_SQL), {"design": design_id, "mv": model_version}).mappings().all()
    total = sum(r["area_ha"] for r in rows)
    session.execute(text("update accuracy_designs set total_area_ha = :t where id = :id"),
                    {"t": total, "id": design_id})
    return sorted((dict(r) for r in rows), key=lambda r: (r["oblast"], r["map_class"]))


def sample_stratum(session: Session, stratum_id: int, n: int, seed: int) -> int:
    """Draw ``n`` points uniformly by area inside the stratum (seeded, so the same seed gives the same points):
    ``ST_GeneratePoints`` in an equal-area projection, kept only where they fall inside the stratum as stored in
    EPSG:4326 (edges differ by slivers between projections), then ``n`` of them in a seeded shuffled order (not
    the drawing order: ``ST_GeneratePoints`` fills a multipolygon part after part, so the first ``n`` would favour
    the first parts). Returns how many were stored (fewer than ``n`` only for a stratum too thin to hit)."""
    session.execute(text("update accuracy_strata set n_planned = :n where id = :id"), {"n": n, "id": stratum_id})
    if n <= 0:
        return 0
    result = session.execute(text(f"""
        insert into accuracy_points (design_id, stratum_id, geom)
        select s.design_id, s.id, p.pt from accuracy_strata s
        cross join lateral (
            select d.path[1] as k, ST_Transform(d.geom, 4326) as pt
            from ST_Dump(ST_GeneratePoints(ST_Transform(s.geom, {EQUAL_AREA_SRID}), :draw, :seed)) d
        ) p
        where s.id = :id and ST_Intersects(p.pt, s.geom)
        order by md5(:seed || ':' || p.k)
        limit :n
        returning id
        """), {"id": stratum_id, "n": n, "draw": n + n // 5 + 10, "seed": seed})
    return len(result.all())


def design_points(session: Session, design_id: int) -> list[dict]:
    """The sample of a design: point id, stratum, map class, oblast, lon/lat, the site it falls in (if any) and
    its validation item."""
    return [dict(r) for r in session.execute(text("""
        select p.id, s.name as stratum, s.map_class, s.oblast, ST_X(p.geom) as lon, ST_Y(p.geom) as lat,
               ST_AsText(p.geom) as wkt, p.validation_item_id,
               (select min(t.id) from sites t where t.merged_into_id is null and ST_Intersects(t.max_geom, p.geom))
                   as site_id
        from accuracy_points p join accuracy_strata s on s.id = p.stratum_id
        where p.design_id = :d order by p.id"""), {"d": design_id}).mappings()]


def link_item(session: Session, point_id: int, item_id: int) -> None:
    session.execute(text("update accuracy_points set validation_item_id = :i where id = :p"),
                    {"i": item_id, "p": point_id})


def latest_design(session: Session, model_version: str) -> dict | None:
    row = session.execute(text(
        "select id, model_version, seed, n_total, parameters, total_area_ha, created_at from accuracy_designs"
        " where model_version = :mv order by id desc limit 1"), {"mv": model_version}).mappings().first()
    return dict(row) if row else None


def design_strata(session: Session, design_id: int) -> list[dict]:
    return [dict(r) for r in session.execute(text(
        "select id, name, oblast, map_class, area_ha, n_planned,"
        " (select count(*) from accuracy_points p where p.stratum_id = s.id) as n_points"
        " from accuracy_strata s where design_id = :d order by oblast, map_class"), {"d": design_id}).mappings()]


def point_items(session: Session, design_id: int) -> list[tuple[int, int, int | None]]:
    """(point id, stratum id, validation item id) of every point of the design."""
    return [(r.id, r.stratum_id, r.validation_item_id) for r in session.execute(text(
        "select id, stratum_id, validation_item_id from accuracy_points where design_id = :d order by id"),
        {"d": design_id})]


def add_report(session: Session, design_id: int, model_version: str, report: dict[str, Any],
               created_by: str | None) -> tuple[int, int]:
    """Store a report as the next version for its model version; returns (id, version)."""
    session.execute(text("select pg_advisory_xact_lock(hashtext('accuracy_reports:' || :mv))"),
                    {"mv": model_version})
    version = int(session.scalar(text(
        "select coalesce(max(version), 0) + 1 from accuracy_reports where model_version = :mv"),
        {"mv": model_version}))
    report = {**report, "version": version}
    rid = int(session.scalar(text(
        "insert into accuracy_reports (design_id, model_version, version, report, created_by)"
        " values (:d, :mv, :v, cast(:r as jsonb), :by) returning id"),
        {"d": design_id, "mv": model_version, "v": version, "r": json.dumps(report), "by": created_by}))
    return rid, version


def list_reports(session: Session) -> list[dict]:
    """Every report's summary, newest version first within each model version."""
    return [dict(r) for r in session.execute(text("""
        select model_version, version, design_id, created_at,
               report -> 'overall' as overall, report -> 'mining_area_ha' as mining_area_ha,
               report -> 'answered' as answered, report -> 'planned' as planned
        from accuracy_reports order by model_version, version desc""")).mappings()]


def get_report(session: Session, model_version: str, version: int | None = None) -> dict | None:
    """A stored report (the latest version when ``version`` is None)."""
    row = session.execute(text(
        "select report, created_at from accuracy_reports where model_version = :mv"
        " and (cast(:v as integer) is null or version = :v) order by version desc limit 1"),
        {"mv": model_version, "v": version}).first()
    if row is None:
        return None
    return {**row.report, "created_at": row.created_at.isoformat()}


def latest_reports(session: Session) -> list[dict]:
    """The latest report of each model version, newest first."""
    rows = session.execute(text("""
        select distinct on (model_version) report, created_at from accuracy_reports
        order by model_version, version desc""")).all()
    out = [{**r.report, "created_at": r.created_at.isoformat()} for r in rows]
    return sorted(out, key=lambda r: r["created_at"], reverse=True)
