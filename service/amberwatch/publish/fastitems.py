"""The OGC API Features items fast path: the common GeoJSON items request answered with one SQL query.

QGIS and GDAL page through a collection with ``bbox``, ``limit`` and ``offset`` (and our ``run_id``-style property
filters). pygeoapi answers those by loading its provider, building every feature as Python objects and encoding them
again — half the speed of tipg on the same view (bench/bench_serving.py). Here PostgreSQL writes the features
(``store.queries.ogc_items``) and the page around them gets the very links, headers and numbers pygeoapi gives:

* the same ``self``/``alternate``/``prev``/``next``/``collection`` links (``next`` keeps ``bbox`` and the filters);
* ``numberMatched`` as our provider's ``count: filtered``: a filtered request counts (a ``bbox`` request finds its
  matches once for both the count and the page), an unfiltered one does not, except on its last page where
  ``offset + numberReturned`` is the total;
* the response headers of pygeoapi (``Content-Crs``, ``Content-Language``) plus ``X-AmberWatch-Items: fast``.

Anything else — HTML, JSON-LD, ``crs``/``bbox-crs``, ``datetime``, ``filter``, ``sortby``, ``properties``,
``skipGeometry``, ``resulttype``, ``q``, ``lang``, a 6-value or antimeridian ``bbox``, a repeated or invalid
parameter — goes to pygeoapi unchanged (:meth:`FastItems.plan` returns None), which also gives the error answers.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pygeoapi.api import API, SYSTEM_LOCALE, APIRequest, evaluate_limit, validate_bbox
from pygeoapi.plugin import load_plugin
from starlette.requests import Request
from starlette.responses import Response

from amberwatch.store.queries.ogc_items import (
    ItemsFilter,
    ItemsView,
    count_matched,
    features_page,
    features_page_counted,
    property_columns,
)

log = logging.getLogger(__name__)

OUR_PROVIDER = "amberwatch.publish.pgprovider.PostgreSQLProvider"
GEOJSON = "application/geo+json"
PAGING = frozenset({"f", "bbox", "limit", "offset"})


@dataclass(frozen=True)
class ItemsQuery:
    """A request the fast path answers."""

    collection: str
    where: ItemsFilter
    limit: int
    offset: int
    params: tuple[tuple[str, str], ...]  # the request's parameters, in order (for the links)
    json_rel: str  # ``self`` (or ``alternate`` when the request asked for another format — never here)


@dataclass
class _Collection:
    title: str
    provider_def: dict
    limits: dict
    view: ItemsView | None = None
    engine: Any = None


class FastItems:
    """Plans and answers fast-path items requests for the collections served by our PostgreSQL provider."""

    def __init__(self, api: API, config: dict) -> None:
        self.api = api
        self.server_limits = (config.get("server") or {}).get("limits") or {}
        self.collections: dict[str, _Collection] = {}
        for name, resource in (config.get("resources") or {}).items():
            if resource.get("type") != "collection":
                continue
            provider = next((p for p in resource.get("providers") or [] if p.get("type") == "feature"), None)
            if provider and provider.get("name") == OUR_PROVIDER and not provider.get("properties"):
                self.collections[name] = _Collection(title=str(resource.get("title") or name),
                                                     provider_def=provider, limits=resource.get("limits") or {})

    def _bind(self, collection: _Collection) -> _Collection:
        """Reflect the view once (through pygeoapi's provider: the same engine pool and the same columns)."""
        if collection.view is None:
            provider = load_plugin("provider", collection.provider_def)
            columns = [c.name for c in provider.table_model.__table__.columns]
            collection.engine = provider._engine
            collection.view = ItemsView(
                schema=provider.db_search_path[0], table=provider.table, id_column=provider.id_field,
                geom_column=provider.geom, properties=property_columns(columns, provider.id_field, provider.geom))
        return collection

    def plan(self, collection_id: str, request: Request, api_request: APIRequest) -> ItemsQuery | None:
        """The fast-path query for this request, or None when pygeoapi must answer it."""
        collection = self.collections.get(collection_id)
        if collection is None or api_request.format not in ("json", None):
            return None
        items = request.query_params.multi_items()
        names = [name for name, _ in items]
        if len(set(names)) != len(names):
            return None
        collection = self._bind(collection)
        assert collection.view is not None
        properties = set(collection.view.properties)
        if any(name not in PAGING and name not in properties for name in names):
            return None
        params = dict(items)
        if params.get("f") not in (None, "json"):
            return None
        try:
            offset = int(params.get("offset", "0"))
            limit = evaluate_limit(params.get("limit"), self.server_limits, collection.limits)
            bbox = validate_bbox(params["bbox"]) if "bbox" in params else []
        except (TypeError, ValueError):
            return None  # pygeoapi words the 400
        if offset < 0 or len(bbox) not in (0, 4) or (bbox and bbox[0] > bbox[2]):
            return None
        where = ItemsFilter(bbox=(bbox[0], bbox[1], bbox[2], bbox[3]) if bbox else None,
                            equals=tuple((name, value) for name, value in items if name in properties))
        return ItemsQuery(collection=collection_id, where=where, limit=limit, offset=offset, params=tuple(items),
                          json_rel=api_request.get_linkrel("json"))

    def answer(self, query: ItemsQuery, api_request: APIRequest) -> Response:
        """The GeoJSON page (blocking: call it from a worker thread)."""
        collection = self.collections[query.collection]
        assert collection.view is not None
        matched: int | None = None
        if query.where.bbox is not None:  # one pass over the box's geometries for the page and the count
            features, returned, matched = features_page_counted(collection.engine, collection.view, query.where,
                                                                query.limit, query.offset)
        else:
            features, returned = features_page(collection.engine, collection.view, query.where, query.limit,
                                               query.offset)
            if returned < query.limit and (returned > 0 or query.offset == 0):  # the last page: total for free
                matched = query.offset + returned
            elif query.where.active:
                matched = count_matched(collection.engine, collection.view, query.where)
        body = "".join((
            '{"type":"FeatureCollection","features":', features,
            "" if matched is None else f',"numberMatched":{matched}',
            f',"numberReturned":{returned},"links":', json.dumps(self._links(query, matched, returned)),
            ',"timeStamp":', json.dumps(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")), "}",
        ))
        headers = dict(api_request.get_response_headers(SYSTEM_LOCALE, **self.api.api_headers))
        headers.update({"Content-Type": GEOJSON, "Content-Crs": f"<{self._storage_crs(collection)}>",
                        "X-AmberWatch-Items": "fast"})
        return Response(body.encode("utf-8"), headers=headers)

    @staticmethod
    def _storage_crs(collection: _Collection) -> str:
        return str(collection.provider_def.get("storage_crs", "http://www.opengis.net/def/crs/OGC/1.3/CRS84"))

    def _links(self, query: ItemsQuery, matched: int | None, returned: int) -> list[dict[str, str]]:
        """pygeoapi's links for an items page (pygeoapi.api.itemtypes.get_collection_items)."""
        rest = "".join(f"&{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe=',')}"
                       for k, v in query.params if k not in ("f", "offset"))
        uri = f"{self.api.get_collections_url()}/{query.collection}/items"
        links = [
            {"type": GEOJSON, "rel": query.json_rel, "title": "This document as GeoJSON",
             "href": f"{uri}?f=json{rest}"},
            {"rel": "alternate", "type": "application/ld+json", "title": "This document as RDF (JSON-LD)",
             "href": f"{uri}?f=jsonld{rest}"},
            {"type": "text/html", "rel": "alternate", "title": "This document as HTML", "href": f"{uri}?f=html{rest}"},
        ]
        if query.offset > 0:
            links.append({"type": GEOJSON, "rel": "prev", "title": "Items (prev)",
                          "href": f"{uri}?offset={max(0, query.offset - query.limit)}{rest}"})
        if (matched if matched is not None else -1) > query.limit + query.offset or returned == query.limit:
            links.append({"type": GEOJSON, "rel": "next", "title": "Items (next)",
                          "href": f"{uri}?offset={query.offset + query.limit}{rest}"})
        links.append({"type": "application/json", "title": self.collections[query.collection].title,
                      "rel": "collection", "href": uri.rsplit("/", 1)[0]})
        return links
