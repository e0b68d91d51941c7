"""SQL of the statistics: disturbed area, new/abandoned sites and protected areas by oblast, raion, hromada or year.

Each report has its group rows and a total computed by a separate query, so "groups add up to the total" is a
check, not a tautology. Sites outside every loaded admin unit are grouped under ``(unknown)``.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from amberwatch.area import sql_area_ha

UNKNOWN = "(unknown)"
AdminLevel = Literal["oblast", "raion", "hromada"]
ADMIN_LEVELS: tuple[AdminLevel, ...] = ("oblast", "raion", "hromada")

_PROTECTED_HA = f"""coalesce((
    select {sql_area_ha("ST_Intersection(s.max_geom, u.g)")} from (
        select ST_Union(p.geom) as g from protected_areas p where ST_Intersects(p.geom, s.max_geom)) u
    where u.g is not null), 0)"""

_SITE_AGG = """count(*) as sites,
    coalesce(sum(max_area_ha), 0) as disturbed_area_ha,
    coalesce(sum(area_ha), 0) as current_area_ha,
    coalesce(sum(pond_area_ha), 0) as pond_area_ha,
    coalesce(sum(protected_ha), 0) as protected_disturbed_area_ha,
    count(*) filter (where in_protected_area) as sites_in_protected_areas,
    count(*) filter (where status = 'new') as new,
    count(*) filter (where status = 'active') as active,
    count(*) filter (where status = 'abandoned') as abandoned,
    count(*) filter (where status = 'recovering') as recovering"""

_LIVE = f"""select s.*, {_PROTECTED_HA} as protected_ha from sites s where s.merged_into_id is null"""

# Newly disturbed area per year = growth of each site's cumulative footprint during that year.
_YEARS = """
with live as (select id, first_seen from sites where merged_into_id is null),
cum as (
    select o.site_id, extract(year from o.observed_at at time zone 'UTC')::int as year,
           max(o.cumulative_area_ha) as cum
    from site_observations o join live on live.id = o.site_id group by 1, 2),
added as (
    select year, cum - coalesce(lag(cum) over (partition by site_id order by year), 0) as ha from cum),
ev as (
    select extract(year from e.observed_at at time zone 'UTC')::int as year, e.site_id, e.from_status, e.to_status
    from events e join live on live.id = e.site_id),
years as (select year from added union select year from ev)
select y.year,
    (select count(*) from live where extract(year from first_seen at time zone 'UTC')::int = y.year) as new_sites,
    (select count(distinct site_id) from ev where ev.year = y.year and to_status = 'abandoned') as abandoned_sites,
    (select count(distinct site_id) from ev where ev.year = y.year and to_status = 'recovering') as recovering_sites,
    (select count(distinct site_id) from ev where ev.year = y.year and to_status = 'active'
        and from_status in ('abandoned', 'recovering')) as reactivated_sites,
    (select coalesce(sum(ha), 0) from added where added.year = y.year) as disturbed_area_ha
from years y order by y.year
"""

_YEAR_TOTAL = """
with live as (select id, max_area_ha from sites where merged_into_id is null),
ev as (select distinct e.site_id, extract(year from e.observed_at at time zone 'UTC')::int as year, e.from_status,
              e.to_status from events e join live on live.id = e.site_id)
select (select count(*) from live) as new_sites,
    (select count(*) from (select distinct site_id, year from ev where to_status = 'abandoned') x) as abandoned_sites,
    (select count(*) from (select distinct site_id, year from ev where to_status = 'recovering') x)
        as recovering_sites,
    (select count(*) from (select distinct site_id, year from ev where to_status = 'active'
        and from_status in ('abandoned', 'recovering')) x) as reactivated_sites,
    (select coalesce(sum(max_area_ha), 0) from live) as disturbed_area_ha
"""



def _rows(session: Session, sql: str) -> list[dict]:
    return [_clean(dict(r._mapping)) for r in session.execute(text(sql))]


def _clean(row: dict) -> dict:
    """Areas (and any float) rounded to 4 decimals, as floats."""
    return {k: (round(float(v), 4) if isinstance(v, float) or k.endswith("_ha") else v) for k, v in row.items()}


def stats_by_admin(session: Session, by: AdminLevel) -> tuple[list[dict], dict]:
    """(one row per ``by`` unit, the total row) over the live sites; areas in hectares (geodesic)."""
    if by not in ADMIN_LEVELS:  # the column name goes into the SQL text: never anything else
        raise ValueError(f"not an admin level: {by!r}")
    groups = _rows(session, f"select coalesce({by}, '{UNKNOWN}') as {by}, {_SITE_AGG} from ({_LIVE}) x "
                            f"group by 1 order by 1")
    total = _rows(session, f"select {_SITE_AGG} from ({_LIVE}) x")[0]
    return groups, total


def stats_by_year(session: Session) -> tuple[list[dict], dict]:
    """(one row per year with observations or events, the total row): new/abandoned/recovering/reactivated sites
    and newly disturbed area (growth of each site's cumulative footprint during the year)."""
    return _rows(session, _YEARS), _rows(session, _YEAR_TOTAL)[0]
