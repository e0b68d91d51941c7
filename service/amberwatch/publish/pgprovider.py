"""pygeoapi's PostgreSQL provider without the exact ``count()`` of a whole table on unfiltered pages.

pygeoapi (up to 0.21, the last release for Python 3.11) runs ``select count(*)`` for ``numberMatched`` on every
items request: without a filter that counts the whole table, ~93 % of the latency on 1M rows (docs/STACK). pygeoapi
0.24 adds a per-provider ``count`` option (PR #2215; ``count: false`` drops ``numberMatched``), but 0.22+ needs
Python 3.12. This provider reads the same option from the provider definition:

* ``count: true`` — pygeoapi's behaviour (always count);
* ``count: false`` — never count (0.24's meaning), except for ``resulttype=hits``, which asks for nothing else;
* ``count: filtered`` (what the generated config sets) — count only when the request is filtered (bbox, datetime,
  properties, CQL2 ``filter``, ``q``): an unfiltered page answers without ``numberMatched`` — unless it is the
  last page, where ``offset + numberReturned`` is the exact total at no cost.

Paging keeps working without ``numberMatched``: pygeoapi adds ``next`` when a page is full.

CQL2 geometry literals: pygeoapi 0.21 labels them with the storage CRS as ``urn:ogc:def:crs:OGC::CRS84`` and
pygeofilter turns that into ``SRID=CRS84;...``, which PostGIS refuses (every spatial filter failed). The geometry
columns are SRID 4326 in lon/lat order, i.e. CRS84: literals are relabelled as ``EPSG::4326`` (coordinates as they
are) before the SQL translation.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any

from pygeoapi.provider.sql import PostgreSQLProvider as _PostgreSQLProvider
from sqlalchemy.orm import Session

COUNT_FILTERED = "filtered"


def _count_mode(value: Any) -> bool | str:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == COUNT_FILTERED:
            return COUNT_FILTERED
        return lowered not in ("false", "no", "0", "off")
    return True if value is None else bool(value)


_CRS84_NAMES = ("urn:ogc:def:crs:OGC::CRS84", "urn:ogc:def:crs:OGC:1.3:CRS84",
                "http://www.opengis.net/def/crs/OGC/1.3/CRS84")
_EPSG_4326 = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4326"}}


def relabel_crs84(node: Any) -> Any:
    """The pygeofilter AST ``node`` with CRS84-labelled geometry literals labelled EPSG:4326 (same coordinates)."""
    if isinstance(node, dict):
        crs = ((node.get("crs") or {}).get("properties") or {}).get("name")
        return {**node, "crs": _EPSG_4326} if crs in _CRS84_NAMES else node
    if isinstance(node, list | tuple) and node and not isinstance(node[0], int | float):
        return type(node)(relabel_crs84(n) for n in node)
    if is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: relabel_crs84(getattr(node, f.name)) for f in fields(node) if f.init}
        return replace(node, **changes)
    return node


class PostgreSQLProvider(_PostgreSQLProvider):  # type: ignore[misc]
    """pygeoapi's provider plus the ``count`` option (see the module docstring)."""

    def __init__(self, provider_def: dict) -> None:
        super().__init__(provider_def)
        self.count: bool | str = _count_mode(provider_def.get("count", True))

    def _get_cql_filters(self, filterq: Any) -> Any:
        return super()._get_cql_filters(relabel_crs84(filterq) if filterq else filterq)

    def _counts(self, resulttype: str, filtered: bool) -> bool:
        if resulttype == "hits" or self.count is True:
            return True
        return self.count == COUNT_FILTERED and filtered

    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results", bbox: list | None = None,
              datetime_: str | None = None, properties: list | None = None, sortby: list | None = None,
              select_properties: list | None = None, skip_geometry: bool = False, q: str | None = None,
              filterq: Any = None, crs_transform_spec: Any = None, **kwargs: Any) -> dict:
        bbox, properties, sortby = bbox or [], properties or [], sortby or []
        select_properties = select_properties or []
        filtered = bool(bbox or datetime_ or properties or filterq is not None or q)
        if self._counts(resulttype, filtered):
            return super().query(  # type: ignore[no-any-return]
                offset=offset, limit=limit, resulttype=resulttype, bbox=bbox, datetime_=datetime_,
                properties=properties, sortby=sortby, select_properties=select_properties,
                skip_geometry=skip_geometry, q=q, filterq=filterq, crs_transform_spec=crs_transform_spec, **kwargs)
        # pygeoapi's GenericSQLProvider.query minus ``results.count()``
        with Session(self._engine) as session:
            results = (
                session.query(self.table_model)
                .filter(self._get_property_filters(properties))
                .filter(self._get_cql_filters(filterq))
                .filter(self._get_bbox_filter(bbox))
                .filter(self._get_datetime_filter(datetime_))
                .options(self._select_properties_clause(select_properties, skip_geometry))
            )
            order_by = self._get_order_by_clauses(sortby, self.table_model)
            transform = self._get_crs_transform(crs_transform_spec)
            features = [self._sqlalchemy_to_feature(item, transform)
                        for item in results.order_by(*order_by).offset(offset).limit(limit)]
        page = {"type": "FeatureCollection", "features": features, "numberReturned": len(features)}
        if len(features) < limit and (features or offset == 0):  # the last page: the total is known for free
            page["numberMatched"] = offset + len(features)
        return page
