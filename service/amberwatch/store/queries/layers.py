"""SQL of the reference layers (admin units, protected areas) and of the sites' position in them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from amberwatch.store.models import AdminUnit, ProtectedArea


class LayerFeature(Protocol):
    """One polygon of a reference layer (see ``amberwatch.track.layers.Feature``)."""

    name: str
    code: str | None
    parent: str | None
    category: str | None
    geom: shapely.MultiPolygon  # EPSG:4326


def replace_protected_areas(session: Session, source: str, features: Iterable[LayerFeature]) -> None:
    """Replace the protected areas of one ``source`` dataset (other sources stay)."""
    session.execute(delete(ProtectedArea).where(ProtectedArea.source == source))
    session.add_all(ProtectedArea(name=f.name, category=f.category, code=f.code, source=source,
                                  geom=from_shape(f.geom, srid=4326)) for f in features)
    session.flush()


def replace_admin_units(session: Session, kind: str, source: str, features: Iterable[LayerFeature]) -> None:
    """Replace every admin unit of ``kind`` (oblast, raion, hromada)."""
    session.execute(delete(AdminUnit).where(AdminUnit.kind == kind))
    session.add_all(AdminUnit(kind=kind, name=f.name, code=f.code, parent=f.parent, source=source,
                              geom=from_shape(f.geom, srid=4326)) for f in features)
    session.flush()


# The unit holding the largest part of the site's cumulative footprint (max_geom).
_UNIT = """(
    select a.name from admin_units a
    where a.kind = '{kind}' and ST_Intersects(a.geom, s.max_geom)
    order by ST_Area(ST_Intersection(a.geom, s.max_geom)::geography) desc, a.id limit 1)"""  # amberwatch.area

_ASSIGN = f"""
update sites s set
    oblast = {_UNIT.format(kind="oblast")},
    raion = {_UNIT.format(kind="raion")},
    hromada = {_UNIT.format(kind="hromada")},
    protected_areas = (
        select string_agg(distinct p.name, '; ' order by p.name) from protected_areas p
        where ST_Intersects(p.geom, s.max_geom)),
    in_protected_area = exists (select 1 from protected_areas p where ST_Intersects(p.geom, s.max_geom)),
    protected_distance_m = (
        select min(ST_Distance(n.geom::geography, s.max_geom::geography)) from (
            select p.geom from protected_areas p order by p.geom <-> s.max_geom limit 5) n)
where s.max_geom is not null {{where}}
"""


def assign_admin(session: Session, site_ids: Sequence[int] | None = None) -> None:
    """Set oblast/raion/hromada, touched protected areas and distance to the nearest one (metres, geodesic).

    ``site_ids=None`` updates every site (after a layer was (re)loaded). A site outside every loaded unit gets NULL.
    """
    if site_ids is None:
        session.execute(text(_ASSIGN.format(where="")))
    elif site_ids:
        session.execute(text(_ASSIGN.format(where="and s.id = any(:ids)")), {"ids": list(site_ids)})
