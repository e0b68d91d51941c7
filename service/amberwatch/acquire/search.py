"""Find the items of a collection over an area since a date: STAC APIs with pystac-client, static catalogs
(catalog.json / collection.json over HTTP or on disk) with pystac. Every request goes to an allowed host only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pystac
import requests
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from amberwatch.acquire.bands import acquired
from amberwatch.acquire.hosts import check_redirect, check_url, is_http
from amberwatch.errors import InputError

MAX_JSON_BYTES = 16 * 1024 * 1024  # one catalog, collection or item document
TIMEOUT_S = 30.0
MAX_DOCUMENTS = 20_000  # catalogs, collections and items read in one walk of a static catalog
PathCheck = Callable[[Path], Path]  # refuses a local path outside the allowed roots


def fetch_bytes(url: str, patterns: list[str], limit: int = MAX_JSON_BYTES, headers: dict | None = None,
                head: bool = False) -> bytes:
    """GET ``url`` (allowed host, redirects followed only to allowed hosts), at most ``limit`` bytes (``head``: the
    first ``limit`` bytes, the rest is not read)."""
    for _ in range(5):
        check_url(url, patterns)
        with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False) as client, \
                client.stream("GET", url, headers=headers or {}) as resp:
            if resp.is_redirect:
                url = check_redirect(url, resp.headers.get("location", ""), patterns)
                continue
            if resp.status_code >= 400:
                raise InputError(f"{_name(url)}: HTTP {resp.status_code}")
            data = bytearray()
            for chunk in resp.iter_bytes():
                data += chunk
                if head and len(data) >= limit:
                    return bytes(data[:limit])
                if len(data) > limit:
                    raise InputError(f"{_name(url)} is larger than {limit // (1024 * 1024)} MB: not read")
            return bytes(data)
    raise InputError(f"{_name(url)}: too many redirects")


def _name(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.netloc}/…/{parts.path.rsplit('/', 1)[-1]}" if parts.netloc else Path(url).name


class GuardedStacIO(pystac.StacIO):
    """pystac I/O for static catalogs: allowed hosts only, local files only under the allowed roots, sizes capped."""

    def __init__(self, patterns: list[str], check_path: PathCheck, max_documents: int = MAX_DOCUMENTS):
        super().__init__()
        self.patterns, self.check_path = patterns, check_path
        self.max_documents, self.documents = max_documents, 0

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        href = str(source)
        self.documents += 1
        if self.documents > self.max_documents:
            raise InputError(f"the catalog links more than {self.max_documents} documents: not walked further")
        if is_http(href):
            return fetch_bytes(href, self.patterns).decode("utf-8")
        if "://" in href:
            raise InputError(f"{_name(href)}: only http(s) URLs and local files are read")
        path = self.check_path(Path(href))
        if path.stat().st_size > MAX_JSON_BYTES:
            raise InputError(f"{path.name} is larger than {MAX_JSON_BYTES // (1024 * 1024)} MB: not read")
        return path.read_text()

    def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
        raise InputError("monitors never write catalogs")


class _GuardedSession(requests.Session):
    """A requests session that follows redirects to allowed hosts only (pystac-client's I/O)."""

    def __init__(self, patterns: list[str]):
        super().__init__()
        self.patterns = patterns

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is not None:
            check_redirect(resp.url, target, self.patterns)
        return target


def is_static(url: str) -> bool:
    """A static catalog (a .json document) rather than a STAC API landing page."""
    return urlsplit(url).path.lower().endswith(".json") or not is_http(url)


def search(url: str, collection: str, aoi: BaseGeometry, start: datetime | None, patterns: list[str],
           check_path: PathCheck, max_items: int = 1000) -> list[dict[str, Any]]:
    """The items of ``collection`` intersecting ``aoi`` (EPSG:4326) acquired at or after ``start``, oldest first."""
    if is_static(url):
        items = _static_items(url, collection, aoi, start, patterns, check_path, max_items)
    else:
        items = _api_items(url, collection, aoi, start, patterns, max_items)
    return sorted(items, key=lambda it: (acquired(it) or datetime.min.replace(tzinfo=UTC), str(it.get("id"))))


def _api_items(url: str, collection: str, aoi: BaseGeometry, start: datetime | None, patterns: list[str],
               max_items: int) -> list[dict[str, Any]]:
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO

    def modifier(request: requests.Request) -> None:
        check_url(str(request.url), patterns)

    io = StacApiIO(request_modifier=modifier, timeout=TIMEOUT_S, max_retries=2)
    io.session = _GuardedSession(patterns)
    try:
        client = Client.open(check_url(url, patterns), stac_io=io, request_modifier=modifier, timeout=TIMEOUT_S)
        found = client.search(collections=[collection], intersects=mapping(aoi),
                              datetime=f"{start:%Y-%m-%dT%H:%M:%SZ}/.." if start else None,
                              max_items=max_items, limit=min(100, max_items))
        return list(found.items_as_dicts())
    except requests.RequestException as err:
        raise InputError(f"STAC API at {urlsplit(url).netloc} unreachable ({type(err).__name__})") from err
    except (APIError, pystac.STACError, ValueError) as err:
        raise InputError(f"STAC API search failed at {urlsplit(url).netloc}: {str(err)[:200]}") from err


def _static_items(url: str, collection: str, aoi: BaseGeometry, start: datetime | None, patterns: list[str],
                  check_path: PathCheck, max_items: int) -> list[dict[str, Any]]:
    io = GuardedStacIO(patterns, check_path)
    try:
        root = pystac.read_file(url, stac_io=io)
        if not isinstance(root, pystac.Catalog):
            raise InputError(f"{_name(url)} is not a STAC catalog or collection")
        out: list[dict[str, Any]] = []
        for item in root.get_items(recursive=True):
            if item.collection_id not in (collection, None) and root.id != collection:
                continue
            if item.geometry is None or not shape(item.geometry).intersects(aoi):
                continue
            if start is not None and item.datetime is not None and item.datetime < start:
                continue
            d = item.to_dict(include_self_link=False, transform_hrefs=False)
            base = item.get_self_href() or url
            for asset in (d.get("assets") or {}).values():  # relative asset hrefs against the item's own location
                href = str(asset.get("href", ""))
                if href and not is_http(href) and not href.startswith("/"):
                    asset["href"] = urljoin(base, href) if is_http(base) else str(Path(base).parent / href)
            d.setdefault("collection", item.collection_id or root.id)
            out.append(d)
            if len(out) >= max_items:
                break
        return out
    except (pystac.STACError, ValueError, KeyError, OSError) as err:
        raise InputError(f"{_name(url)} is not a readable STAC catalog: {str(err)[:200]}") from err
