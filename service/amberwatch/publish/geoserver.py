"""Publish our layers on a GeoServer through its REST API (the ``geoserver-rest`` package).

What is published, in the workspace ``settings.geoserver_workspace``: one PostGIS store on our database and one
feature type per layer on the same views MapServer and pygeoapi read (:data:`LAYERS`), each with our SLD 1.0 style
from ``ogc_config/styles`` as its default style, and a WMS TIME dimension on the layer's date column
(``observed_at`` for detections and events, ``first_seen`` for sites, ``reported_at`` for reports).

Idempotent: every resource is looked up first, then created (POST) or updated (PUT); running it again after a new
run updates the store parameters, styles, bounding boxes and dimensions in place and creates nothing twice. The
views are live, so new runs show up in GeoServer without any request; publishing after a run refreshes the
bounding boxes (``recalculate=nativebbox,latlonbbox``).

The bodies are built here (:func:`featuretype_xml`, :func:`layer_style_xml`) where ``geoserver-rest`` has no
call for them (feature types with a dimension, a style update, a layer's workspace style); the workspace, store
and new styles go through its calls. Values given to it are XML-escaped first: it formats them into XML as they
are.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from xml.sax.saxutils import escape

import requests

from amberwatch.errors import AmberWatchError
from amberwatch.publish.connection import DbParams

log = logging.getLogger(__name__)

STORE_NAME = "amberwatch_postgis"
REQUEST_TIMEOUT_S = 30
SLD_CONTENT_TYPE = "application/vnd.ogc.sld+xml"
XML = {"content-type": "text/xml"}
PRESENTATIONS = ("LIST", "DISCRETE_INTERVAL", "CONTINUOUS_INTERVAL")
DEFAULT_STRATEGIES = ("MINIMUM", "MAXIMUM", "NEAREST", "FIXED")


@dataclass(frozen=True)
class GeoServerLayer:
    """One published layer: its name, the view it reads, its style and its TIME column."""

    name: str
    view: str
    title: str
    abstract: str
    style: str  # ogc_config/styles/<style>.sld
    time_attribute: str
    default_time: str = "MAXIMUM"  # the latest date, as MapServer's TIME default for detections


LAYERS: tuple[GeoServerLayer, ...] = (
    GeoServerLayer("detections", "published_detections", "Detections of amber mining (every published run)",
                   "Pit and pond polygons of every published detection run, with run_id, model_version, "
                   "observed_at, class, area_ha and confidence. TIME = observed_at (default: the latest date).",
                   "detections", "observed_at"),
    GeoServerLayer("mining_sites", "mining_sites", "Amber mining sites (latest state)",
                   "Every live mining site with its status (new, active, abandoned, recovering), first and last "
                   "seen, area. TIME = first_seen (default: every site).", "mining_sites", "first_seen",
                   default_time="MINIMUM"),
    GeoServerLayer("events", "site_events", "Status changes of the mining sites",
                   "One point per change of a site's status, at its date. TIME = observed_at.", "events",
                   "observed_at"),
    GeoServerLayer("reports", "public_reports", "Crowd reports of amber mining (approved by a moderator)",
                   "Approved crowd reports without personal data. TIME = reported_at.", "reports", "reported_at"),
)


@dataclass
class PublishReport:
    """What one publication did: ``actions`` lists ``(resource, "created" | "updated")`` in order."""

    url: str
    workspace: str
    actions: list[tuple[str, str]] = field(default_factory=list)

    def add(self, resource: str, created: bool) -> None:
        self.actions.append((resource, "created" if created else "updated"))

    @property
    def created(self) -> list[str]:
        return [r for r, a in self.actions if a == "created"]


# -- bodies ----------------------------------------------------------------------------------------------------------
def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def time_dimension(attribute: str, default_strategy: str = "MAXIMUM", presentation: str = "LIST") -> ET.Element:
    """``<entry key="time"><dimensionInfo>`` of a feature type's metadata (GeoServer REST featuretypes docs)."""
    if presentation not in PRESENTATIONS or default_strategy not in DEFAULT_STRATEGIES:
        raise ValueError(f"bad dimension presentation {presentation!r} or default {default_strategy!r}")
    entry = ET.Element("entry", {"key": "time"})
    info = _sub(entry, "dimensionInfo")
    _sub(info, "enabled", "true")
    _sub(info, "attribute", attribute)
    _sub(info, "presentation", presentation)
    _sub(info, "units", "ISO8601")
    _sub(info, "nearestMatchEnabled", "false")
    default = _sub(info, "defaultValue")
    _sub(default, "strategy", default_strategy)
    return entry


def featuretype_xml(layer: GeoServerLayer, workspace: str, store: str = STORE_NAME) -> bytes:
    """The ``featureType`` body (POST to create, PUT to update) with the TIME dimension on the layer's column."""
    ft = ET.Element("featureType")
    _sub(ft, "name", layer.name)
    _sub(ft, "nativeName", layer.view)
    ns = _sub(ft, "namespace")
    _sub(ns, "name", workspace)
    _sub(ft, "title", layer.title)
    _sub(ft, "abstract", layer.abstract)
    keywords = _sub(ft, "keywords")
    for word in ("AmberWatch", "amber mining", "Ukraine", layer.name):
        _sub(keywords, "string", word)
    _sub(ft, "srs", "EPSG:4326")
    _sub(ft, "projectionPolicy", "FORCE_DECLARED")
    _sub(ft, "enabled", "true")
    metadata = _sub(ft, "metadata")
    metadata.append(time_dimension(layer.time_attribute, layer.default_time))
    st = _sub(ft, "store", **{"class": "dataStore"})
    _sub(st, "name", f"{workspace}:{store}")
    return ET.tostring(ft, encoding="utf-8")


def layer_style_xml(style: str, workspace: str) -> bytes:
    """The ``layer`` body that sets a workspace style as the layer's default style."""
    layer = ET.Element("layer")
    default = _sub(layer, "defaultStyle")
    _sub(default, "name", style)
    _sub(default, "workspace", workspace)
    _sub(layer, "enabled", "true")
    return ET.tostring(layer, encoding="utf-8")


def store_parameters(db: DbParams) -> dict[str, str | int]:
    """Arguments of ``Geoserver.create_featurestore`` for our database, XML-escaped (it formats them into XML)."""
    return {
        "db": escape(db.dbname), "host": escape(db.host), "port": db.port, "schema": "public",
        "pg_user": escape(db.user), "pg_password": escape(db.password or ""),
        "description": "AmberWatch published views (detections, sites, events, reports)",
    }


# -- the publisher ---------------------------------------------------------------------------------------------------
class GeoServerPublisher:
    """Creates or updates our workspace, store, styles and layers on one GeoServer (see the module docstring)."""

    def __init__(self, url: str, user: str, password: str, workspace: str, styles_dir: Path,
                 layers: tuple[GeoServerLayer, ...] = LAYERS, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        from geo.Geoserver import Geoserver

        self.url = url.rstrip("/")
        self.geo = Geoserver(self.url, username=user, password=password,
                             request_options={"timeout": timeout_s, "allow_redirects": False})
        self.workspace, self.styles_dir, self.layers = workspace, styles_dir, layers

    def publish(self, db: DbParams) -> PublishReport:
        """Make GeoServer serve our layers (idempotent); raises AmberWatchError naming the step that failed."""
        report = PublishReport(self.url, self.workspace)
        ws = self.workspace
        self._step(f"workspace {ws}", lambda: self._workspace(report))
        self._step(f"store {STORE_NAME}", lambda: self._store(report, db))
        for layer in self.layers:
            self._step(f"style {layer.style}", partial(self._style, report, layer.style))
            self._step(f"layer {layer.name}", partial(self._featuretype, report, layer))
            self._step(f"style of layer {layer.name}", partial(
                self._put, f"workspaces/{ws}/layers/{layer.name}", layer_style_xml(layer.style, ws), XML))
        log.info("GeoServer %s: workspace %s published (%s)", self.url, ws,
                 ", ".join(f"{r} {a}" for r, a in report.actions))
        return report

    # steps
    def _workspace(self, report: PublishReport) -> None:
        created = not self._exists(f"workspaces/{self.workspace}")
        if created:
            self.geo.create_workspace(escape(self.workspace))
        report.add(f"workspace {self.workspace}", created)

    def _store(self, report: PublishReport, db: DbParams) -> None:
        exists = self._exists(f"workspaces/{self.workspace}/datastores/{STORE_NAME}")
        self.geo.create_featurestore(STORE_NAME, workspace=self.workspace, overwrite=exists,
                                     **store_parameters(db))  # type: ignore[arg-type]
        report.add(f"store {STORE_NAME}", not exists)

    def _style(self, report: PublishReport, style: str) -> None:
        path = self.styles_dir / f"{style}.sld"
        if self._exists(f"workspaces/{self.workspace}/styles/{style}"):
            self._put(f"workspaces/{self.workspace}/styles/{style}", path.read_bytes(),
                      {"content-type": SLD_CONTENT_TYPE})
            report.add(f"style {style}", False)
        else:
            self.geo.upload_style(str(path), name=style, workspace=self.workspace, sld_version="1.0.0")
            report.add(f"style {style}", True)

    def _featuretype(self, report: PublishReport, layer: GeoServerLayer) -> None:
        base = f"workspaces/{self.workspace}/datastores/{STORE_NAME}/featuretypes"
        body = featuretype_xml(layer, self.workspace)
        if self._exists(f"{base}/{layer.name}"):
            self._put(f"{base}/{layer.name}", body, XML, params={"recalculate": "nativebbox,latlonbbox"})
            report.add(f"layer {layer.name}", False)
        else:
            self._call("post", base, data=body, headers=XML, ok=(201,))
            report.add(f"layer {layer.name}", True)

    # HTTP through the package's authenticated session helper
    def _call(self, method: str, path: str, ok: tuple[int, ...], **kwargs) -> requests.Response:
        from geo.Geoserver import GeoserverException

        r = self.geo._requests(method, f"{self.url}/rest/{path}", **kwargs)
        if r.status_code not in ok:
            raise GeoserverException(r.status_code, r.content)
        return r

    def _put(self, path: str, body: bytes, headers: dict[str, str], params: dict[str, str] | None = None) -> None:
        self._call("put", path, ok=(200, 201), data=body, headers=headers, params=params)

    def _exists(self, path: str) -> bool:
        r = self._call("get", f"{path}.json", ok=(200, 404))
        return r.status_code == 200

    def _step(self, what: str, action: Callable[[], object]) -> None:
        from geo.Geoserver import GeoserverException

        try:
            action()
        except GeoserverException as err:
            detail = err.message.decode("utf-8", "replace") if isinstance(err.message, bytes) else str(err.message)
            raise AmberWatchError(f"GeoServer {self.url}: {what} failed: HTTP {err.status}: {detail[:300]}") from err
        except requests.RequestException as err:
            raise AmberWatchError(f"GeoServer {self.url}: {what} failed: {type(err).__name__}") from err
