"""SQL of the portal's vector tiles: one Mapbox Vector Tile (``ST_AsMVT``) per layer and z/x/y (Web Mercator).

Layers:

* ``mining_sites`` — two tile layers: ``mining_sites`` (polygons) and ``site_points`` (a point on each site, for
  small scales where the polygons are smaller than a pixel). Without ``at`` the current state of every live site;
  with ``at`` (a date) only sites first seen by then, each with its status after the last event up to that date
  and its extent at the last observation up to that date where it was detected.
  Both carry the site's volunteer validation status (``validation_status``: unvalidated, pending, confirmed,
  rejected, disputed — as the ``mining_sites`` OGC layer) and ``field_checked`` (a field team visited it).
* ``detections`` — every published detection polygon (observed up to ``at`` when given, with its age in days).
* ``reports`` — approved crowd reports as points, with their public fields only (id, text cut to 300 characters,
  dates, ``photo_url``: the approved-media route of the first photo or video poster); never contact or address.
* ``oblasts``, ``raions``, ``hromadas`` (``admin_units``) and ``protected_areas`` — reference polygons,
  simplified to the tile's resolution.

Callers validate z/x/y and the layer name (``check_tile``); nothing else reaches the SQL text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

MAX_ZOOM = 22
EXTENT = 4096  # tile coordinate space
BUFFER = 64
SITE_LAYERS = ("mining_sites", "detections")
ADMIN_LAYERS = {"oblasts": "oblast", "raions": "raion", "hromadas": "hromada"}
LAYERS = (*SITE_LAYERS, *ADMIN_LAYERS, "protected_areas", "reports")
TEXT_CHARS = 300  # a report's text in its tile feature (the full text: GET /api/reports/{id})
# every detection of every run at a small scale would be a huge tile of invisible polygons: the map draws them from
# zoom 11 and asks from zoom 10, the server refuses below this
MIN_ZOOM = {"detections": 8}

_BOUNDS = f"""bounds as (
    select ST_TileEnvelope(:z, :x, :y) as env,
           ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => {BUFFER / EXTENT}), 4326) as env4326)"""

_ISO_DAY = "to_char({} at time zone 'UTC', 'YYYY-MM-DD')"

# as the mining_sites view (migration 0009): the best-settled item of the site — decided, then disputed, then pending
_VALIDATION = """coalesce((select vi.status from validation_items vi where vi.site_id = c.site_id
                   order by case vi.status when 'confirmed' then 0 when 'rejected' then 0 when 'disputed' then 1
                   when 'pending' then 2 else 3 end, vi.id desc limit 1), 'unvalidated') as validation_status,
           exists (select 1 from field_checks fc where fc.site_id = c.site_id) as field_checked"""

_SITES_NOW = f"""with {_BOUNDS},
chosen as (
    select s.id as site_id, s.status, {_ISO_DAY.format('s.first_seen')} as first_seen,
           {_ISO_DAY.format('s.last_seen')} as last_seen, round(s.area_ha::numeric, 3)::float8 as area_ha,
           round(s.max_area_ha::numeric, 3)::float8 as max_area_ha, round(s.confidence::numeric, 3)::float8
           as confidence, s.oblast, s.geom
    from sites s, bounds b
    where s.merged_into_id is null and s.geom is not null and s.geom && b.env4326)"""

_SITES_AT = f"""with {_BOUNDS},
candidates as (
    select s.* from sites s, bounds b
    where s.merged_into_id is null and s.max_geom && b.env4326 and s.first_seen <= :at),
chosen as (
    select c.id as site_id,
           coalesce((select e.to_status from events e where e.site_id = c.id and e.observed_at <= :at
                     order by e.observed_at desc, e.id desc limit 1), c.status) as status,
           {_ISO_DAY.format('c.first_seen')} as first_seen, {_ISO_DAY.format('o.observed_at')} as last_seen,
           round(coalesce(o.area_ha, c.area_ha)::numeric, 3)::float8 as area_ha,
           round(c.max_area_ha::numeric, 3)::float8 as max_area_ha,
           round(c.confidence::numeric, 3)::float8 as confidence, c.oblast, coalesce(o.geom, c.geom) as geom
    from candidates c
    left join lateral (
        select so.observed_at, so.area_ha, so.geom from site_observations so
        where so.site_id = c.id and so.observed_at <= :at and so.geom is not null
        order by so.observed_at desc limit 1) o on true)"""

_SITES_TILE = f"""{{cte}}
select coalesce((select ST_AsMVT(q, 'mining_sites', {EXTENT}, 'geom') from (
           select c.site_id, c.status, c.first_seen, c.last_seen, c.area_ha, c.max_area_ha, c.confidence, c.oblast,
                  {_VALIDATION},
                  ST_AsMVTGeom(ST_Transform(c.geom, 3857), b.env, {EXTENT}, {BUFFER}, true) as geom
           from chosen c, bounds b where c.geom is not null) q where q.geom is not null), ''::bytea)
    || coalesce((select ST_AsMVT(p, 'site_points', {EXTENT}, 'geom') from (
           select c.site_id, c.status, c.first_seen, c.area_ha, {_VALIDATION},
                  ST_AsMVTGeom(ST_Transform(ST_PointOnSurface(c.geom), 3857), b.env, {EXTENT}, 0, true) as geom
           from chosen c, bounds b where c.geom is not null) p where p.geom is not null), ''::bytea)"""

_DETECTIONS_TILE = f"""with {_BOUNDS}
select ST_AsMVT(q, 'detections', {EXTENT}, 'geom') from (
    select d.id, d.run_id, d.class, round(d.confidence::numeric, 3)::float8 as confidence,
           round(d.area_ha::numeric, 3)::float8 as area_ha, d.model_version, d.site_id,
           {_ISO_DAY.format('d.observed_at')} as observed_at,
           floor(extract(epoch from (cast(:at as timestamptz) - d.observed_at)) / 86400)::int as age_days,
           ST_AsMVTGeom(ST_Transform(d.geom, 3857), b.env, {EXTENT}, {BUFFER}, true) as geom
    from published_detections d, bounds b
    where d.geom && b.env4326 and d.observed_at <= :at) q
where q.geom is not null"""

_ADMIN_TILE = f"""with {_BOUNDS}
select ST_AsMVT(q, :layer, {EXTENT}, 'geom') from (
    select a.id, a.name, a.code,
           ST_AsMVTGeom(ST_Transform(ST_Simplify(a.geom, :tolerance), 3857), b.env, {EXTENT}, {BUFFER}, true) as geom
    from admin_units a, bounds b
    where a.kind = :kind and a.geom && b.env4326) q
where q.geom is not null"""

_PROTECTED_TILE = f"""with {_BOUNDS}
select ST_AsMVT(q, 'protected_areas', {EXTENT}, 'geom') from (
    select p.id, p.name, p.category, p.source,
           ST_AsMVTGeom(ST_Transform(ST_Simplify(p.geom, :tolerance), 3857), b.env, {EXTENT}, {BUFFER}, true) as geom
    from protected_areas p, bounds b
    where p.geom && b.env4326) q
where q.geom is not null"""


_REPORTS_TILE = f"""with {_BOUNDS}
select ST_AsMVT(q, 'reports', {EXTENT}, 'geom') from (
    select r.id as report_id,
           case when char_length(r.text) > {TEXT_CHARS} then left(r.text, {TEXT_CHARS - 1}) || '…' else r.text end
           as text,
           {_ISO_DAY.format('r.observed_at')} as observed_at, {_ISO_DAY.format('r.created_at')} as reported_at,
           (select '/api/reports/' || r.id || '/media/' || m.id || case when m.kind = 'video' then '/poster' else ''
                   end
            from crowd_report_media m where m.report_id = r.id and (m.kind <> 'video' or m.poster_name is not null)
            order by m.id limit 1) as photo_url,
           (select count(*) from crowd_report_media m where m.report_id = r.id)::int as n_media,
           ST_AsMVTGeom(ST_Transform(r.geom, 3857), b.env, {EXTENT}, {BUFFER}, true) as geom
    from crowd_reports r, bounds b
    where r.status = 'approved' and r.geom && b.env4326) q
where q.geom is not null"""


def check_tile(layer: str, z: int, x: int, y: int) -> str | None:
    """A message saying what is wrong with the request, or None when the layer and z/x/y are valid."""
    if layer not in LAYERS:
        return f"unknown tile layer {layer[:40]!r}: use one of {', '.join(LAYERS)}"
    if not MIN_ZOOM.get(layer, 0) <= z <= MAX_ZOOM:
        return f"zoom {z}: {layer} tiles exist from zoom {MIN_ZOOM.get(layer, 0)} to {MAX_ZOOM}"
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        return f"tile {z}/{x}/{y}: x and y must be between 0 and {n - 1} at zoom {z}"
    return None


def _end_of_day(at: date | None) -> datetime | None:
    if at is None:
        return None
    return datetime.combine(at, time(0), tzinfo=UTC) + timedelta(days=1) - timedelta(microseconds=1)


def tile(session: Session, layer: str, z: int, x: int, y: int, at: date | None = None) -> bytes:
    """The MVT bytes of one tile (empty bytes when nothing is in it); ``at`` = state at the end of that day (UTC)."""
    problem = check_tile(layer, z, x, y)
    if problem:
        raise ValueError(problem)
    params: dict[str, object] = {"z": z, "x": x, "y": y}
    # simplification tolerance: a quarter of a tile pixel (256 px tiles), in degrees
    params["tolerance"] = 360.0 / (1 << z) / 256 / 4
    if layer == "mining_sites":
        if at is None:
            sql = _SITES_TILE.format(cte=_SITES_NOW)
        else:
            sql = _SITES_TILE.format(cte=_SITES_AT)
            params["at"] = _end_of_day(at)
    elif layer == "detections":
        sql = _DETECTIONS_TILE
        params["at"] = _end_of_day(at) or datetime.now(UTC)
    elif layer == "reports":
        sql = _REPORTS_TILE
    elif layer in ADMIN_LAYERS:
        sql = _ADMIN_TILE
        params.update(layer=layer, kind=ADMIN_LAYERS[layer])
    else:
        sql = _PROTECTED_TILE
    data = session.execute(text(sql), params).scalar()
    return bytes(data) if data else b""
